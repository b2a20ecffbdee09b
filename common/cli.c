#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

bool kd_cli_common_opt(kd_cli_common_t *cli, int opt, const char *arg)
{
    switch (opt) {
    case KD_OPT_BROKERS: cli->brokers = arg; return true;
    case KD_OPT_CONFIG: cli->config_path = arg; return true;
    case KD_OPT_TOPIC_PREFIX: cli->topic_prefix = arg; return true;
    case KD_OPT_LOG_LEVEL: cli->log_level = arg; return true;
    case KD_OPT_LOG_JSON: cli->log_json = true; return true;
    case KD_OPT_BROKERS_FILE: cli->brokers_file = arg; return true;
    case KD_OPT_VERBOSE: cli->verbose = true; return true;
    case KD_OPT_PROPERTY:
        if (cli->prop_count < (int)(sizeof cli->props / sizeof cli->props[0]))
            cli->props[cli->prop_count++] = arg;
        return true;
    default: return false;
    }
}

void kd_cli_bad_option(const char *prog, int argc, char *const *argv,
                       const struct option *longopts)
{
    const char *arg = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "";
    const char *names[128];
    char word[128];
    size_t n = 0, len;
    const char *hint;

    if (strncmp(arg, "--", 2) != 0) {
        if (optopt && strchr("X", optopt))
            fprintf(stderr, "%s: option '-%c' needs a value\n", prog, optopt);
        else
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
        return;
    }
    len = strcspn(arg + 2, "=");
    snprintf(word, sizeof word, "%.*s", (int)(len < sizeof word ? len : sizeof word - 1),
             arg + 2);
    for (size_t i = 0; longopts[i].name && n + 1 < sizeof names / sizeof names[0]; i++) {
        if (strcmp(longopts[i].name, word) == 0) {
            fprintf(stderr, "%s: option '--%s' %s\n", prog, word,
                    longopts[i].has_arg == no_argument ? "takes no value" : "needs a value");
            return;
        }
        names[n++] = longopts[i].name;
    }
    names[n] = NULL;
    if ((hint = kd_did_you_mean(word, names)) != NULL)
        fprintf(stderr, "%s: unknown option '--%s' (did you mean '--%s'?)\n", prog, word, hint);
    else
        fprintf(stderr, "%s: unknown option '--%s'\n", prog, word);
}

static kd_status_t apply_props(const kd_cli_common_t *cli, kd_bus_conf_t *conf, char *err,
                               size_t errsz)
{
    for (int i = 0; i < cli->prop_count; i++) {
        char name[256];
        const char *eq = strchr(cli->props[i], '=');
        char why[512];

        if (!eq || eq == cli->props[i] || (size_t)(eq - cli->props[i]) >= sizeof name)
            return kd_err(err, errsz, KD_EINVAL, "-X %s: expected NAME=VALUE", cli->props[i]);
        snprintf(name, sizeof name, "%.*s", (int)(eq - cli->props[i]), cli->props[i]);
        if (kd_bus_conf_set(conf, name, eq + 1, why, sizeof why) != KD_OK)
            return kd_err(err, errsz, KD_EINVAL, "-X %s: %s", cli->props[i], why);
    }
    return KD_OK;
}

static kd_status_t setup_logging(const kd_cli_common_t *cli, const kd_config_t *cfg,
                                 const char *component, char *err, size_t errsz)
{
    const char *level = cli->log_level;
    const char *format = cfg ? kd_config_get(cfg, "log.format") : NULL;
    int lvl;

    if (!level && cli->verbose)
        level = "debug";
    if (!level && cfg)
        level = kd_config_get(cfg, "log.level");
    if (!level)
        level = getenv("KDEPLOY_LOG_LEVEL");
    lvl = level ? kd_log_level_parse(level) : KD_LOG_INFO;
    if (lvl < 0)
        return kd_err(err, errsz, KD_EINVAL, "log level %s: use error, warn, info or debug",
                      level);
    kd_log_setup(component, (kd_log_level_t)lvl,
                 cli->log_json || (format && strcmp(format, "json") == 0));
    return KD_OK;
}

/* A broker list is short: a file past this is not one. */
#define BROKERS_FILE_MAX 65536
#define SEPARATORS " \t\r\n,"

kd_status_t kd_cli_read_brokers_file(const char *path, char **out, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    char *text = NULL, *list = NULL;
    size_t len = 0, n = 0;
    kd_status_t st = KD_OK;

    if (!f)
        return kd_err(err, errsz, KD_EIO, "--brokers-file %s: %s", path, strerror(errno));
    if (!(text = malloc(BROKERS_FILE_MAX + 1)) || !(list = malloc(BROKERS_FILE_MAX + 1))) {
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
        goto out;
    }
    len = fread(text, 1, BROKERS_FILE_MAX + 1, f);
    if (ferror(f))
        st = kd_err(err, errsz, KD_EIO, "--brokers-file %s: %s", path, strerror(errno));
    else if (len > BROKERS_FILE_MAX)
        st = kd_err(err, errsz, KD_EINVAL, "--brokers-file %s: over %d bytes, not a broker list",
                    path, BROKERS_FILE_MAX);
    if (st != KD_OK)
        goto out;
    text[len] = '\0';
    /* Each line's words, comma-separated: "a:9092\nb:9092" and "a:9092,b:9092"
     * both become "a:9092,b:9092". */
    for (const char *p = text + strspn(text, SEPARATORS); *p; p += strspn(p, SEPARATORS)) {
        size_t word = strcspn(p, SEPARATORS);

        n += (size_t)snprintf(list + n, BROKERS_FILE_MAX + 1 - n, "%s%.*s", n ? "," : "",
                              (int)word, p);
        p += word;
    }
    if (n == 0) {
        st = kd_err(err, errsz, KD_EINVAL, "--brokers-file %s: empty, no broker in it", path);
        goto out;
    }
    *out = list;
    list = NULL;
out:
    free(text);
    free(list);
    fclose(f);
    return st;
}

static kd_status_t set_brokers_file(const kd_cli_common_t *cli, kd_bus_conf_t *conf, char *err,
                                    size_t errsz)
{
    char *list = NULL;
    kd_status_t st = kd_cli_read_brokers_file(cli->brokers_file, &list, err, errsz);

    if (st == KD_OK)
        st = kd_bus_conf_set(conf, "brokers", list, err, errsz);
    free(list);
    return st;
}

/* The operator's tool: one line about an unreachable broker, within seconds. */
static kd_status_t probe(const kd_cli_common_t *cli, kd_bus_conf_t *conf, char *err,
                         size_t errsz)
{
    kd_bus_quiet_kafka_log(!cli->verbose);
    return kd_bus_probe(conf, KD_CLI_PROBE_MS, err, errsz);
}

kd_status_t kd_cli_setup(const kd_cli_common_t *cli, const char *component,
                         kd_bus_conf_t **conf_out, kd_config_t **cfg_out, char *err,
                         size_t errsz)
{
    kd_config_t *cfg = NULL;
    kd_bus_conf_t *conf = NULL;
    kd_status_t st;

    if (cli->config_path && (st = kd_config_load(cli->config_path, &cfg, err, errsz)) != KD_OK)
        return st;
    /* Before anything is applied: a misspelt key must not fail open. */
    if (cfg && cli->config_keys &&
        (st = kd_config_check_keys(cfg, cli->config_keys, err, errsz)) != KD_OK)
        goto fail;
    if ((st = setup_logging(cli, cfg, component, err, errsz)) != KD_OK)
        goto fail;
    if (!(conf = kd_bus_conf_new())) {
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
        goto fail;
    }
    if (cfg && (st = kd_bus_conf_apply(conf, cfg, err, errsz)) != KD_OK)
        goto fail;
    if (cli->brokers && cli->brokers_file) {
        st = kd_err(err, errsz, KD_EINVAL, "--brokers and --brokers-file: give one of them");
        goto fail;
    }
    if (cli->brokers && (st = kd_bus_conf_set(conf, "brokers", cli->brokers, err, errsz)) != KD_OK)
        goto fail;
    if (cli->brokers_file && (st = set_brokers_file(cli, conf, err, errsz)) != KD_OK)
        goto fail;
    if (cli->topic_prefix &&
        (st = kd_bus_conf_set(conf, "topic_prefix", cli->topic_prefix, err, errsz)) != KD_OK)
        goto fail;
    if ((st = apply_props(cli, conf, err, errsz)) != KD_OK)
        goto fail;
    if ((st = kd_bus_conf_env_defaults(conf, err, errsz)) != KD_OK)
        goto fail;
    if (strcmp(component, "kdeploy") == 0 && (st = probe(cli, conf, err, errsz)) != KD_OK)
        goto fail;
    *conf_out = conf;
    if (cfg_out)
        *cfg_out = cfg;
    else
        kd_config_free(cfg);
    return KD_OK;
fail:
    kd_bus_conf_free(conf);
    kd_config_free(cfg);
    return st;
}
