/* kdeploy-worker: the host agent. Reads its hosts' lifecycle steps from the
 * steps topic, performs each once, publishes the results.
 *
 *   kdeploy-worker --brokers B --host-id H --root DIR [--install-prefix DIR]
 *                  [--env NAME=VALUE]... [--label KEY=VALUE]... [--config FILE]
 *
 * Several --host-id options serve several hosts from one process, one
 * thread each; --root and --install-prefix pair with them in order, or,
 * given once, are shared with a per-host subdirectory. Labels are the
 * process's: every host it serves announces the same ones. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "bundle.h"
#include "cli.h"
#include "fsutil.h"
#include "log.h"
#include "signals.h"
#include "spec_check.h"

#define MAX_HOSTS 4096
#define MAX_ENV 256
#define MAX_VERIFY_KEYS 8

/* Every key a worker config file may hold: any other is refused. */
static const char *const worker_keys[] = {
    KD_CONFIG_COMMON_KEYS, "host_id", "root", "install_prefix", "env", "keep_revisions",
    "max_bundle_mb", "max_unpack_ratio", "max_cache_mb", "verify_key", "allow_unsigned",
    "metrics_listen", "labels.*", NULL,
};

/* "KEY=VALUE" of a label, checked: the longest a key and a value make. */
#define LABEL_TEXT_MAX (2 * KD_LABEL_LEN_MAX + 2)

typedef struct worker_opts {
    kd_cli_common_t cli;
    const char *host_ids[MAX_HOSTS];
    size_t host_count;
    const char *roots[MAX_HOSTS];
    size_t root_count;
    const char *prefixes[MAX_HOSTS];
    size_t prefix_count;
    const char *env[MAX_ENV + 1];  /* NULL-terminated */
    size_t env_count;
    unsigned keep_revisions;
    size_t max_bundle_bytes;
    unsigned max_unpack_ratio;
    uint64_t max_cache_bytes;
    const char *verify_keys[MAX_VERIFY_KEYS];
    size_t verify_key_count;
    bool allow_unsigned;
    const char *metrics_listen;
    kd_worker_metrics_t *metrics;
    char label_text[KD_LABEL_MAX][LABEL_TEXT_MAX];
    const char *labels[KD_LABEL_MAX + 1];  /* NULL-terminated, into label_text */
    size_t label_count;
} worker_opts_t;

typedef struct worker_host {
    kd_host_t host;
    char root[PATH_MAX];
    char prefix[PATH_MAX];
} worker_host_t;

static volatile sig_atomic_t worker_stop;


static void usage(FILE *f)
{
    fprintf(f,
            "usage: kdeploy-worker --host-id H --root DIR [options]\n"
            "The kdeploy host agent: performs its hosts' lifecycle steps.\n\n"
            "  --host-id H           this host's id, the steps topic key (repeatable)\n"
            "  --root DIR            cache dirs and journal (repeatable, pairs with --host-id)\n"
            "  --install-prefix DIR  place the appspec's absolute paths under DIR (repeatable)\n"
            "  --env NAME=VALUE      host-level variable for every hook (repeatable)\n"
            "  --label KEY=VALUE     a label announced on the hosts topic, which deployments\n"
            "                        select hosts by (repeatable, at most 32; every host of\n"
            "                        the process gets the same labels)\n"
            "  --keep-revisions N    cache dirs kept per application/group (default 5)\n"
            "  --max-bundle-mb N     largest bundle download (default 1024)\n"
            "  --max-unpack-ratio N  largest unpacked/archive size ratio (default 200)\n"
            "  --max-cache-mb N      largest cache of unpacked revisions (default 20480)\n"
            "  --verify-key FILE     planner's Ed25519 public key: steps not signed by it are\n"
            "                        refused (repeatable: old and new key while rotating)\n"
            "  --allow-unsigned      run without a verify key: anyone who can write the\n"
            "                        steps topic runs commands as this worker (tests only)\n"
            "  --metrics-listen A:P  serve Prometheus metrics on http://A:P/metrics\n"
            "  --version             print the version and exit\n"
            KD_CLI_COMMON_HELP
            "\nConfig file keys: host_id, root, install_prefix, env (list), keep_revisions,\n"
            "max_bundle_mb, max_unpack_ratio, max_cache_mb, verify_key (list),\n"
            "allow_unsigned, metrics_listen, labels (mapping), brokers, topic_prefix, log.level, log.format,\n"
            "kafka.*. Unknown keys and options are refused.\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int add_str(const char **list, size_t *count, size_t max, const char *s, const char *what)
{
    if (*count >= max) {
        fprintf(stderr, "kdeploy-worker: too many %s (at most %zu)\n", what, max);
        return -1;
    }
    list[(*count)++] = s;
    return 0;
}

/* One label, from --label KEY=VALUE or the config's labels mapping; a key
 * given twice is refused, not silently replaced. */
static int add_label(worker_opts_t *o, const char *text, const char *from)
{
    char key[KD_LABEL_LEN_MAX + 1], value[KD_LABEL_LEN_MAX + 1], err[256];
    size_t klen;

    if (kd_label_parse(text, key, value, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-worker: %s %s\n", from, err);
        return -1;
    }
    if (o->label_count == KD_LABEL_MAX) {
        fprintf(stderr, "kdeploy-worker: %s %s: more than %d labels\n", from, text,
                KD_LABEL_MAX);
        return -1;
    }
    klen = strlen(key);
    for (size_t i = 0; i < o->label_count; i++)
        if (strncmp(o->labels[i], key, klen) == 0 && o->labels[i][klen] == '=') {
            fprintf(stderr, "kdeploy-worker: %s %s: the label %s is given twice\n", from, text,
                    key);
            return -1;
        }
    snprintf(o->label_text[o->label_count], LABEL_TEXT_MAX, "%s=%s", key, value);
    o->labels[o->label_count] = o->label_text[o->label_count];
    o->labels[++o->label_count] = NULL;
    return 0;
}

static int set_number(worker_opts_t *o, const char *name, const char *value)
{
    unsigned long v;

    if (parse_uint(value, 1000000, &v) != 0 || v == 0) {
        fprintf(stderr, "kdeploy-worker: %s: expected a positive number, got '%s'\n", name, value);
        return -1;
    }
    if (strcmp(name, "keep_revisions") == 0)
        o->keep_revisions = (unsigned)v;
    else if (strcmp(name, "max_unpack_ratio") == 0)
        o->max_unpack_ratio = (unsigned)v;
    else if (strcmp(name, "max_cache_mb") == 0)
        o->max_cache_bytes = (uint64_t)v * 1024 * 1024;
    else
        o->max_bundle_bytes = (size_t)v * 1024 * 1024;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)
        *out = true;
    else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_args(int argc, char **argv, worker_opts_t *o)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"host-id", required_argument, NULL, 'H'},
        {"root", required_argument, NULL, 'r'},
        {"install-prefix", required_argument, NULL, 'p'},
        {"env", required_argument, NULL, 'e'},
        {"label", required_argument, NULL, 'l'},
        {"keep-revisions", required_argument, NULL, 'k'},
        {"max-bundle-mb", required_argument, NULL, 'm'},
        {"verify-key", required_argument, NULL, 'v'},
        {"allow-unsigned", no_argument, NULL, 'U'},
        {"max-unpack-ratio", required_argument, NULL, 'R'},
        {"max-cache-mb", required_argument, NULL, 'C'},
        {"metrics-listen", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt, bad = 0;

    opterr = 0; /* kd_cli_bad_option says it, with a hint */
    while (!bad && (opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&o->cli, opt, optarg))
            continue;
        switch (opt) {
        case 'H': bad = add_str(o->host_ids, &o->host_count, MAX_HOSTS, optarg, "hosts"); break;
        case 'r': bad = add_str(o->roots, &o->root_count, MAX_HOSTS, optarg, "roots"); break;
        case 'p': bad = add_str(o->prefixes, &o->prefix_count, MAX_HOSTS, optarg, "prefixes"); break;
        case 'e': bad = add_str(o->env, &o->env_count, MAX_ENV, optarg, "--env"); break;
        case 'l': bad = add_label(o, optarg, "--label"); break;
        case 'k': bad = set_number(o, "keep_revisions", optarg); break;
        case 'm': bad = set_number(o, "max_bundle_mb", optarg); break;
        case 'v':
            bad = add_str(o->verify_keys, &o->verify_key_count, MAX_VERIFY_KEYS, optarg,
                          "--verify-key");
            break;
        case 'U': o->allow_unsigned = true; break;
        case 'R': bad = set_number(o, "max_unpack_ratio", optarg); break;
        case 'C': bad = set_number(o, "max_cache_mb", optarg); break;
        case 'M': o->metrics_listen = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("kdeploy-worker %s\n", KD_VERSION); return 0;
        case '?':
            kd_cli_bad_option("kdeploy-worker", argc, argv, longopts);
            return 2;
        default: usage(stderr); return 2;
        }
    }
    if (bad)
        return 2;
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* labels: {role: web} in the config file: "labels.role" = "web". */
static int config_label(worker_opts_t *o, const char *key, const char *value)
{
    char text[LABEL_TEXT_MAX + 1];

    if (strlen(key) > KD_LABEL_LEN_MAX || strlen(value) > KD_LABEL_LEN_MAX) {
        fprintf(stderr, "kdeploy-worker: label %.64s: key and value are at most %d characters\n",
                key, KD_LABEL_LEN_MAX);
        return -1;
    }
    snprintf(text, sizeof text, "%s=%s", key, value);
    return add_label(o, text, "labels:");
}

/* Config file keys, applied where the command line left them unset. The
 * bus applied verify_key already; every key was checked to be known. */
static int apply_config(worker_opts_t *o, const kd_config_t *cfg)
{
    size_t n;
    const kd_config_entry_t *e = kd_config_entries(cfg, &n);
    int from_cli_hosts = o->host_count > 0;

    for (size_t i = 0; i < n; i++) {
        const char *k = e[i].key, *v = e[i].value;
        int bad = 0;

        if (strcmp(k, "host_id") == 0 && !from_cli_hosts)
            bad = add_str(o->host_ids, &o->host_count, MAX_HOSTS, v, "hosts");
        else if (strcmp(k, "root") == 0 && !from_cli_hosts)
            bad = add_str(o->roots, &o->root_count, MAX_HOSTS, v, "roots");
        else if (strcmp(k, "install_prefix") == 0 && !from_cli_hosts)
            bad = add_str(o->prefixes, &o->prefix_count, MAX_HOSTS, v, "prefixes");
        else if (strcmp(k, "env") == 0)
            bad = add_str(o->env, &o->env_count, MAX_ENV, v, "env");
        else if (strcmp(k, "keep_revisions") == 0 || strcmp(k, "max_bundle_mb") == 0 ||
                 strcmp(k, "max_unpack_ratio") == 0 || strcmp(k, "max_cache_mb") == 0)
            bad = set_number(o, k, v);
        else if (strcmp(k, "allow_unsigned") == 0)
            bad = parse_bool(v, &o->allow_unsigned);
        else if (strcmp(k, "metrics_listen") == 0 && !o->metrics_listen)
            o->metrics_listen = v;
        else if (strncmp(k, "labels.", 7) == 0)
            bad = config_label(o, k + 7, v);
        if (bad) {
            fprintf(stderr, "kdeploy-worker: %s:%d: %s\n", kd_config_name(cfg), e[i].line, k);
            return 2;
        }
    }
    return -1;
}

static int check_env(const worker_opts_t *o)
{
    for (size_t i = 0; i < o->env_count; i++) {
        const char *eq = strchr(o->env[i], '=');

        if (!eq || eq == o->env[i]) {
            fprintf(stderr, "kdeploy-worker: --env %s: expected NAME=VALUE\n", o->env[i]);
            return -1;
        }
    }
    return 0;
}

/* Pairs roots and prefixes with hosts: one each, or one shared by all
 * (then each host gets its own subdirectory). */
static int pick_dir(const char *const *list, size_t count, size_t i, const worker_opts_t *o,
                    const char *what, char *out, size_t outsz)
{
    if (count == 0) {
        out[0] = '\0';
        return 0;
    }
    if (count == o->host_count)
        return kd_pathf(out, outsz, "%s", list[i]) == KD_OK ? 0 : -1;
    if (count == 1)
        return kd_pathf(out, outsz, "%s/%s", list[0], o->host_ids[i]) == KD_OK ? 0 : -1;
    fprintf(stderr, "kdeploy-worker: give one %s, or one per --host-id\n", what);
    return -1;
}

static int setup_host(worker_host_t *wh, const worker_opts_t *o, size_t i,
                      const kd_bus_conf_t *conf, kd_producer_t *producer)
{
    char err[1024] = "", journal_dir[PATH_MAX];

    if (pick_dir(o->roots, o->root_count, i, o, "--root", wh->root, sizeof wh->root) != 0 ||
        pick_dir(o->prefixes, o->prefix_count, i, o, "--install-prefix", wh->prefix,
                 sizeof wh->prefix) != 0)
        return -1;
    /* The cache and journal are the worker's: a root dir someone else owns
     * or can write is refused, not used. 0755, not 0700: runas hooks read
     * their scripts from the cache (SECURITY.md). */
    if (kd_dir_owned(wh->root, 0755, err, sizeof err) != KD_OK ||
        (wh->prefix[0] && kd_mkdirs(wh->prefix, 0755, err, sizeof err) != KD_OK) ||
        kd_pathf(journal_dir, sizeof journal_dir, "%s/journal", wh->root) != KD_OK ||
        kd_journal_open(journal_dir, &wh->host.journal, err, sizeof err) != KD_OK) {
        kd_error("%s: %s", o->host_ids[i], err);
        return -1;
    }
    wh->host = (kd_host_t){
        .id = o->host_ids[i], .root = wh->root, .install_prefix = wh->prefix,
        .env = o->env, .labels = o->labels, .keep_revisions = o->keep_revisions,
        .max_bundle_bytes = o->max_bundle_bytes, .max_unpack_ratio = o->max_unpack_ratio,
        .max_cache_bytes = o->max_cache_bytes, .conf = conf, .producer = producer,
        .journal = wh->host.journal, .stop = &worker_stop, .metrics = o->metrics,
    };
    return 0;
}

/* Reads and performs the hosts' steps until a stop (fanout.h): the calling
 * thread reads, a pool of threads serves the hosts that have steps. */
static int run_fanout(worker_host_t *hosts, const worker_opts_t *o, const kd_bus_conf_t *conf,
                      kd_producer_t *producer)
{
    kd_journal_t **journals = calloc(o->host_count, sizeof *journals);
    void **opaque = calloc(o->host_count, sizeof *opaque);
    kd_fanout_t *fanout = NULL;
    char err[1024] = "";
    int rc = 0;

    if (!journals || !opaque)
        rc = 1;
    for (size_t i = 0; i < o->host_count && rc == 0; i++) {
        journals[i] = hosts[i].host.journal;
        opaque[i] = &hosts[i].host;
    }
    if (rc == 0) {
        kd_fanout_opts_t fo = {.conf = conf, .producer = producer, .host_ids = o->host_ids,
                               .journals = journals, .hosts = opaque, .count = o->host_count,
                               .serve = kd_agent_serve, .stop = &worker_stop};

        if (kd_fanout_start(&fo, &fanout, err, sizeof err) != KD_OK ||
            kd_fanout_run(fanout, err, sizeof err) != KD_OK) {
            kd_error("%s", err);
            rc = 1;
        }
    }
    kd_fanout_free(fanout);
    free(journals);
    free(opaque);
    return rc;
}

static int serve(const worker_opts_t *o, const kd_bus_conf_t *conf, kd_producer_t *producer)
{
    worker_host_t *hosts = calloc(o->host_count, sizeof *hosts);
    char err[1024] = "";
    size_t ready = 0;
    int rc = 0;

    if (!hosts)
        return 1;
    for (; ready < o->host_count && rc == 0; ready++)
        if (setup_host(&hosts[ready], o, ready, conf, producer) != 0 ||
            kd_agent_prepare(&hosts[ready].host, err, sizeof err) != KD_OK) {
            if (err[0])
                kd_error("%s: %s", o->host_ids[ready], err);
            rc = 1;
        }
    /* Queued, then waited for once: a thousand hosts start and stop in one
     * round trip, not a thousand. */
    for (size_t i = 0; i < o->host_count && rc == 0; i++)
        if (kd_agent_queue_status(&hosts[i].host, 1, err, sizeof err) != KD_OK)
            kd_warn("%s: host status not published: %s", hosts[i].host.id, err);
    if (rc == 0 && kd_producer_flush(producer, 10000, err, sizeof err) != KD_OK)
        kd_warn("host status not published: %s", err);
    /* Announced before the steps reader starts, which takes the brokers a
     * while: a deployment created right after the worker started finds its
     * hosts known. Steps sent meanwhile wait on the topic. */
    if (rc == 0)
        kd_info("announced %zu host(s) on the hosts topic", o->host_count);
    if (rc == 0) {
        rc = run_fanout(hosts, o, conf, producer);
        for (size_t i = 0; i < o->host_count; i++)
            kd_agent_queue_status(&hosts[i].host, 0, NULL, 0);
        kd_producer_flush(producer, 5000, NULL, 0);
    }
    for (size_t i = 0; i < ready; i++)
        kd_journal_close(hosts[i].host.journal);
    free(hosts);
    return rc;
}

/* Signed by default: a worker runs its steps as root, so without a verify
 * key anyone who can write the steps topic could run anything. */
static int setup_keys(const worker_opts_t *o, kd_bus_conf_t *conf)
{
    char err[1024] = "";

    for (size_t i = 0; i < o->verify_key_count; i++)
        if (kd_bus_conf_set(conf, "verify_key", o->verify_keys[i], err, sizeof err) != KD_OK) {
            fprintf(stderr, "kdeploy-worker: --verify-key %s\n", err);
            return 2;
        }
    if (!kd_bus_conf_verifier(conf) && !o->allow_unsigned) {
        fprintf(stderr, "kdeploy-worker: no verify key: give the planner's public key with "
                        "--verify-key (or verify_key in the config), or pass --allow-unsigned "
                        "to run unsigned steps from anyone who can write the steps topic\n");
        return 2;
    }
    if (!kd_bus_conf_verifier(conf))
        kd_warn("running UNSIGNED steps (--allow-unsigned): anyone who can write the steps "
                "topic runs commands on this host");
    return -1;
}

int main(int argc, char **argv)
{
    worker_opts_t o = {.keep_revisions = 5, .max_bundle_bytes = (size_t)1024 * 1024 * 1024,
                       .max_unpack_ratio = 200, .max_cache_bytes = (uint64_t)20480 * 1024 * 1024};
    kd_bus_conf_t *conf = NULL;
    kd_config_t *cfg = NULL;
    kd_producer_t *producer = NULL;
    char err[1024] = "";
    int rc;

    o.cli.config_keys = worker_keys;
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if (kd_cli_setup(&o.cli, "worker", &conf, &cfg, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-worker: %s\n", err);
        return 2;
    }
    rc = cfg ? apply_config(&o, cfg) : -1;
    if (rc < 0 && (o.host_count == 0 || (o.root_count == 0))) {
        fprintf(stderr, "kdeploy-worker: --host-id and --root are required\n");
        rc = 2;
    }
    if (rc < 0 && check_env(&o) != 0)
        rc = 2;
    if (rc < 0)
        rc = setup_keys(&o, conf);
    if (rc < 0 && kd_producer_new(conf, "worker", &producer, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-worker: %s\n", err);
        rc = 1;
    }
    if (rc < 0 && o.metrics_listen &&
        kd_worker_metrics_start(o.metrics_listen, (unsigned)o.host_count, &o.metrics, err,
                                sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-worker: --metrics-listen %s: %s\n", o.metrics_listen, err);
        rc = 2;
    }
    if (rc < 0) {
        kd_signals_install(&worker_stop);
        kd_bundle_global_init();
        kd_info("serving %zu host(s) on %s", o.host_count, kd_bus_conf_brokers(conf));
        rc = serve(&o, conf, producer);
        kd_info("stopped");
    }
    kd_worker_metrics_free(o.metrics);
    kd_producer_free(producer);
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
    return rc;
}
