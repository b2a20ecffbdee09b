/* kdeploy-lbctl: the traffic controller. Reads the traffic topic, blocks,
 * allows and swaps traffic on a load balancer, publishes the results.
 *
 *   kdeploy-lbctl --brokers B --driver haproxy --haproxy-socket PATH
 *                 [--state-dir DIR] [--drain-timeout S] [--health-timeout S]
 *   kdeploy-lbctl --brokers B --driver command --command PATH
 *
 * Every option also has a config file key (--config FILE); the command line
 * wins over the file. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "driver.h"
#include "fsutil.h"
#include "log.h"
#include "signals.h"
#include "traffic.h"

#define MAX_MAP_FILES 64
#define MAX_OPTS 32
#define OPT_BASE 2000
#define DEFAULT_STATE_DIR "/var/lib/kdeploy-lbctl"

typedef struct lbctl_opts {
    kd_cli_common_t cli;
    const char *driver, *state_dir, *group, *verify_key;
    const char *haproxy_socket, *server_state_file, *command, *metrics_listen;
    const char *map_files[MAX_MAP_FILES];
    size_t map_file_count;
    unsigned drain_timeout_s, health_timeout_s, command_timeout_s;
    bool allow_unsigned;
    bool from_cli[MAX_OPTS]; /* per opt_defs entry: given on the command line */
} lbctl_opts_t;

typedef enum { OPT_STRING, OPT_LIST, OPT_SECONDS, OPT_FLAG } opt_kind_t;

/* Every option of lbctl's own, once: its flag, config key, kind and help. */
typedef struct opt_def {
    const char *flag;
    const char *key;
    opt_kind_t kind;
    size_t offset;
    const char *help;
} opt_def_t;

#define OPT(flag, key, kind, field, help) {flag, key, kind, offsetof(lbctl_opts_t, field), help}

static const opt_def_t opt_defs[] = {
    OPT("driver", "driver", OPT_STRING, driver, "NAME  load-balancer driver: haproxy or command"),
    OPT("state-dir", "state_dir", OPT_STRING, state_dir,
        "DIR  journal of changes done (default " DEFAULT_STATE_DIR ")"),
    OPT("group", "group", OPT_STRING, group,
        "G  consumer group (default " KD_LB_DEFAULT_GROUP ")"),
    OPT("drain-timeout", "drain_timeout", OPT_SECONDS, drain_timeout_s,
        "S  block: longest wait for sessions to end (default 30)"),
    OPT("health-timeout", "health_timeout", OPT_SECONDS, health_timeout_s,
        "S  allow: longest wait for the health check (default 30)"),
    OPT("haproxy-socket", "haproxy.socket", OPT_STRING, haproxy_socket,
        "PATH  HAProxy runtime API socket (stats socket ... level admin)"),
    OPT("map-file", "haproxy.map_file", OPT_LIST, map_files,
        "FILE  a map swap may change (repeatable; default: any map)"),
    OPT("server-state-file", "haproxy.server_state_file", OPT_STRING, server_state_file,
        "FILE  write `show servers state` here after block/allow"),
    OPT("command", "command", OPT_STRING, command,
        "PATH  the command driver's executable: PATH block|allow|swap ARGS"),
    OPT("command-timeout", "command_timeout", OPT_SECONDS, command_timeout_s,
        "S  the command driver's timeout (default 60)"),
    OPT("verify-key", "verify_key", OPT_STRING, verify_key,
        "FILE  the planner's Ed25519 public key: unsigned commands are refused (in the "
        "config, a list of keys while rotating)"),
    OPT("allow-unsigned", "allow_unsigned", OPT_FLAG, allow_unsigned,
        "  run without a verify key: anyone who can write the traffic topic moves traffic"),
    OPT("metrics-listen", "metrics_listen", OPT_STRING, metrics_listen,
        "A:P  serve Prometheus metrics on http://A:P/metrics (ADDR:PORT)"),
};

#define OPT_COUNT (sizeof opt_defs / sizeof opt_defs[0])
_Static_assert(OPT_COUNT <= MAX_OPTS, "raise MAX_OPTS");

static volatile sig_atomic_t lbctl_stop;


/* Help text wrapped at 79 columns from column col (the first line is
 * already there). */
static void print_wrapped(FILE *f, const char *text, int col)
{
    const int width = 79 - col;

    while ((int)strlen(text) > width) {
        int cut = width;

        while (cut > 0 && text[cut] != ' ')
            cut--;
        if (cut == 0)
            break;
        fprintf(f, "%.*s\n%*s", cut, text, col, "");
        text += cut + 1;
    }
    fprintf(f, "%s\n", text);
}

/* lbctl's own options in the columns of the common ones (KD_CLI_COMMON_HELP:
 * the text at column 24), the config keys wrapped alike. */
static void usage(FILE *f)
{
    char keys[1024];
    size_t n = 0;

    fprintf(f, "usage: kdeploy-lbctl --driver haproxy|command [options]\n"
               "The kdeploy traffic controller: blocks, allows and swaps traffic.\n\n");
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const char *sp = strchr(opt_defs[i].help, ' ');
        char left[64];

        snprintf(left, sizeof left, "--%s %.*s", opt_defs[i].flag,
                 (int)(sp - opt_defs[i].help), opt_defs[i].help);
        if (strlen(left) > 20)
            fprintf(f, "  %s\n%24s", left, "");
        else
            fprintf(f, "  %-21s ", left);
        print_wrapped(f, sp + 2, 24);
    }
    fprintf(f, "  %-21s %s\n%s\n", "--version", "print the version and exit", KD_CLI_COMMON_HELP);
    for (size_t i = 0; i < OPT_COUNT && n < sizeof keys; i++)
        n += (size_t)snprintf(keys + n, sizeof keys - n, "%s, ", opt_defs[i].key);
    if (n < sizeof keys)
        snprintf(keys + n, sizeof keys - n, "brokers, topic_prefix, log.level, log.format, kafka.*");
    fprintf(f, "Config file keys:\n  ");
    print_wrapped(f, keys, 2);
}

static int parse_seconds(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > 86400)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Sets option i. The command line wins over the config file, whose later
 * entries win over earlier ones; a value is checked wherever it comes from. */
static int set_opt(lbctl_opts_t *o, size_t i, const char *value, bool from_cli)
{
    const opt_def_t *d = &opt_defs[i];
    char *field = (char *)o + d->offset;
    bool keep = !from_cli && o->from_cli[i];
    unsigned seconds;

    o->from_cli[i] = o->from_cli[i] || from_cli;
    switch (d->kind) {
    case OPT_STRING:
        if (!keep)
            *(const char **)field = value;
        return 0;
    case OPT_SECONDS:
        if (parse_seconds(value, &seconds) != 0)
            return -1;
        if (!keep)
            *(unsigned *)field = seconds;
        return 0;
    case OPT_FLAG:
        if (from_cli)
            value = "true";
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return -1;
        if (!keep)
            *(bool *)field = strcmp(value, "true") == 0;
        return 0;
    case OPT_LIST:
        if (keep)
            return 0;
        if (o->map_file_count >= MAX_MAP_FILES)
            return -1;
        o->map_files[o->map_file_count++] = value;
        return 0;
    }
    return -1;
}

static void build_longopts(struct option *lo)
{
    const struct option common[] = {KD_CLI_COMMON_LONGOPTS};
    size_t n = 0;

    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        lo[n++] = common[i];
    for (size_t i = 0; i < OPT_COUNT; i++)
        lo[n++] = (struct option){opt_defs[i].flag,
                                  opt_defs[i].kind == OPT_FLAG ? no_argument : required_argument,
                                  NULL, OPT_BASE + (int)i};
    lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n++] = (struct option){"version", no_argument, NULL, 'V'};
    lo[n] = (struct option){NULL, 0, NULL, 0};
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, lbctl_opts_t *o)
{
    struct option longopts[OPT_COUNT + 16];
    int opt;

    build_longopts(longopts);
    opterr = 0; /* kd_cli_bad_option says it, with a hint */
    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&o->cli, opt, optarg))
            continue;
        if (opt == 'h') {
            usage(stdout);
            return 0;
        }
        if (opt == 'V') {
            printf("kdeploy-lbctl %s\n", KD_VERSION);
            return 0;
        }
        if (opt == '?') {
            kd_cli_bad_option("kdeploy-lbctl", argc, argv, longopts);
            return 2;
        }
        if (opt < OPT_BASE || opt >= OPT_BASE + (int)OPT_COUNT) {
            usage(stderr);
            return 2;
        }
        if (set_opt(o, (size_t)(opt - OPT_BASE), optarg, true) != 0) {
            fprintf(stderr, "kdeploy-lbctl: --%s %s: bad value\n", opt_defs[opt - OPT_BASE].flag,
                    optarg);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Config file keys, applied where the command line left them unset. */
static int apply_config(lbctl_opts_t *o, const kd_config_t *cfg)
{
    size_t n;
    const kd_config_entry_t *e = kd_config_entries(cfg, &n);

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < OPT_COUNT; j++)
            if (strcmp(e[i].key, opt_defs[j].key) == 0 &&
                set_opt(o, j, e[i].value, false) != 0) {
                fprintf(stderr, "kdeploy-lbctl: %s:%d: %s: bad value\n", kd_config_name(cfg),
                        e[i].line, e[i].key);
                return 2;
            }
    return -1;
}

static void lb_conf_from(const lbctl_opts_t *o, kd_lb_conf_t *lc)
{
    *lc = (kd_lb_conf_t){
        .drain_timeout_s = o->drain_timeout_s,
        .health_timeout_s = o->health_timeout_s,
        .haproxy_socket = o->haproxy_socket,
        .map_files = o->map_files,
        .map_file_count = o->map_file_count,
        .server_state_file = o->server_state_file,
        .command = o->command,
        .command_timeout_s = o->command_timeout_s,
        .stop = &lbctl_stop,
    };
}

/* Opens the driver, the journal and the producer, then runs the traffic
 * loop. */
static int serve(const lbctl_opts_t *o, const kd_bus_conf_t *conf)
{
    kd_traffic_t t = {.conf = conf, .group_id = o->group, .stop = &lbctl_stop};
    char err[1024] = "", journal_dir[PATH_MAX];
    kd_lb_conf_t lc;
    int rc = 1;

    lb_conf_from(o, &lc);
    if (!(t.driver = kd_lb_driver_find(o->driver))) {
        fprintf(stderr, "kdeploy-lbctl: --driver %s: use one of %s\n", o->driver ? o->driver : "",
                kd_lb_driver_names());
        return 2;
    }
    if (t.driver->open(&lc, &t.driver_state, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-lbctl: %s\n", err);
        return 2;
    }
    if (kd_pathf(journal_dir, sizeof journal_dir, "%s/journal", o->state_dir) != KD_OK ||
        kd_journal_open(journal_dir, &t.journal, err, sizeof err) != KD_OK) {
        kd_error("state dir %s: %s", o->state_dir, err);
        goto out;
    }
    if (kd_producer_new(conf, "lbctl", &t.producer, err, sizeof err) != KD_OK) {
        kd_error("%s", err);
        goto out;
    }
    if (o->metrics_listen && kd_lb_metrics_start(o->metrics_listen, t.driver->name, &t.metrics,
                                                 err, sizeof err) != KD_OK) {
        kd_error("--metrics-listen %s: %s", o->metrics_listen, err);
        goto out;
    }
    kd_signals_install(&lbctl_stop);
    kd_info("driving %s traffic changes from %s", t.driver->name, kd_bus_conf_brokers(conf));
    if (kd_traffic_run(&t, err, sizeof err) == KD_OK)
        rc = 0;
    else
        kd_error("%s", err);
    kd_info("stopped");
out:
    kd_lb_metrics_free(t.metrics);
    kd_producer_free(t.producer);
    kd_journal_close(t.journal);
    t.driver->close(t.driver_state);
    return rc;
}

static size_t opt_index(const char *key)
{
    size_t i = 0;

    while (i + 1 < OPT_COUNT && strcmp(opt_defs[i].key, key) != 0)
        i++;
    return i;
}

/* Every config key: lbctl's own and the common ones; any other is refused. */
static void build_keys(const char **keys)
{
    static const char *const common[] = {KD_CONFIG_COMMON_KEYS};
    size_t n = 0;

    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        keys[n++] = common[i];
    for (size_t i = 0; i < OPT_COUNT; i++)
        keys[n++] = opt_defs[i].key;
    keys[n] = NULL;
}

/* Signed by default: without a verify key anyone who can write the
 * traffic topic could take hosts out of service. The bus took the config
 * file's verify_key list already. */
static int setup_keys(const lbctl_opts_t *o, kd_bus_conf_t *conf)
{
    char err[1024] = "";

    if (o->verify_key && o->from_cli[opt_index("verify_key")] &&
        kd_bus_conf_set(conf, "verify_key", o->verify_key, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-lbctl: --verify-key %s\n", err);
        return 2;
    }
    if (!kd_bus_conf_verifier(conf) && !o->allow_unsigned) {
        fprintf(stderr, "kdeploy-lbctl: no verify key: give the planner's public key with "
                        "--verify-key (or verify_key in the config), or pass --allow-unsigned "
                        "to act on unsigned traffic commands\n");
        return 2;
    }
    if (!kd_bus_conf_verifier(conf))
        kd_warn("acting on UNSIGNED traffic commands (--allow-unsigned)");
    return -1;
}

int main(int argc, char **argv)
{
    const char *keys[OPT_COUNT + 8];
    lbctl_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_config_t *cfg = NULL;
    char err[1024] = "";
    int rc;

    build_keys(keys);
    o.cli.config_keys = keys;
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if (kd_cli_setup(&o.cli, "lbctl", &conf, &cfg, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-lbctl: %s\n", err);
        return 2;
    }
    rc = cfg ? apply_config(&o, cfg) : -1;
    if (!o.state_dir)
        o.state_dir = DEFAULT_STATE_DIR;
    if (rc < 0 && !o.driver) {
        fprintf(stderr, "kdeploy-lbctl: --driver is required (%s)\n", kd_lb_driver_names());
        rc = 2;
    }
    if (rc < 0)
        rc = setup_keys(&o, conf);
    if (rc < 0)
        rc = serve(&o, conf);
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
    return rc;
}
