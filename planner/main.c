/* kdeploy-planner: turns deployment requests into per-host step events and
 * follows their results. Planners scale out as one consumer group over the
 * requests and results topics (keyed alike by deploy id), so one planner
 * owns a deployment from start to end; all of them read the deployments
 * topic, which is where their state comes from.
 *
 *   kdeploy-planner --brokers B [--group G] [--signing-key FILE] [--config FILE] */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ids.h"
#include "log.h"
#include "daemon.h"
#include "deploy_metrics.h"
#include "metrics.h"
#include "notify.h"
#include "signals.h"

typedef struct planner_opts {
    kd_cli_common_t cli;
    const char *group;
    const char *signing_key;
    const char *instance_id;
    const char *metrics_listen;
} planner_opts_t;

static volatile sig_atomic_t planner_stop;

/* Every key a planner config file may hold: any other is refused at start
 * (a misspelt signing_key must not leave the planner signing nothing). */
static const char *const planner_keys[] = {
    KD_CONFIG_COMMON_KEYS, "group", "instance_id", "signing_key", "metrics_listen", "notify.*",
    NULL,
};


static void usage(FILE *f)
{
    fprintf(f,
            "usage: kdeploy-planner [options]\n"
            "Plans deployments: per-host lifecycle steps, batches, failures, rollbacks.\n\n"
            "  --group G             consumer group of the planners (default kdeploy-planner)\n"
            "  --instance-id ID      static group membership: a restarted planner with the\n"
            "                        same id takes its place at once\n"
            "  --signing-key FILE    sign step and traffic events with this Ed25519 key\n"
            "  --metrics-listen A:P  serve Prometheus metrics on http://A:P/metrics\n"
            "  --version             print the version and exit\n"
            KD_CLI_COMMON_HELP
            "\nConfig file keys: group, instance_id, signing_key, metrics_listen, brokers,\n"
            "topic_prefix, log.level, log.format, kafka.*, notify (webhooks: a list of\n"
            "{url, secret, events}; see docs/observability.md)\n");
}

static int parse_args(int argc, char **argv, planner_opts_t *o)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"group", required_argument, NULL, 'g'},
        {"instance-id", required_argument, NULL, 'i'},
        {"signing-key", required_argument, NULL, 's'},
        {"metrics-listen", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&o->cli, opt, optarg))
            continue;
        switch (opt) {
        case 'g': o->group = optarg; break;
        case 'i': o->instance_id = optarg; break;
        case 's': o->signing_key = optarg; break;
        case 'm': o->metrics_listen = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("kdeploy-planner %s\n", KD_VERSION); return 0;
        case '?':
            kd_cli_bad_option("kdeploy-planner", argc, argv, longopts);
            return 2;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

static int configure(planner_opts_t *o, kd_bus_conf_t *conf, const kd_config_t *cfg)
{
    char err[512];

    if (cfg && !o->group)
        o->group = kd_config_get(cfg, "group");
    if (cfg && !o->signing_key)
        o->signing_key = kd_config_get(cfg, "signing_key");
    if (cfg && !o->instance_id)
        o->instance_id = kd_config_get(cfg, "instance_id");
    if (cfg && !o->metrics_listen)
        o->metrics_listen = kd_config_get(cfg, "metrics_listen");
    if (!o->group)
        o->group = "kdeploy-planner";
    if (o->signing_key && kd_bus_conf_set(conf, "signing_key", o->signing_key, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-planner: %s\n", err);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    planner_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_config_t *cfg = NULL;
    kd_daemon_opts_t d = {0};
    kd_notify_opts_t no = {0};
    kd_metrics_server_t *msrv = NULL;
    char err[1024] = "";
    int rc;

    if ((rc = parse_args(argc, argv, &o)) >= 0)
        goto out;
    o.cli.config_keys = planner_keys;
    if (kd_cli_setup(&o.cli, "planner", &conf, &cfg, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-planner: %s\n", err);
        rc = 2;
        goto out;
    }
    if ((rc = configure(&o, conf, cfg)) >= 0)
        goto out;
    d.group = o.group;
    d.instance_id = o.instance_id;
    /* Metrics and webhooks before any thread of the daemon: both are
     * handed to it ready. */
    if (!(d.metrics = kd_metrics_new()) || !(d.deploy_metrics = kd_deploy_metrics_new(d.metrics))) {
        fprintf(stderr, "kdeploy-planner: out of memory\n");
        rc = 1;
        goto out;
    }
    no.metrics = d.metrics;
    if (kd_notify_new(cfg, &no, &d.notify, err, sizeof err) != KD_OK ||
        (o.metrics_listen &&
         kd_metrics_serve(d.metrics, o.metrics_listen, &msrv, err, sizeof err) != KD_OK)) {
        fprintf(stderr, "kdeploy-planner: %s\n", err);
        rc = 2;
        goto out;
    }
    kd_signals_install(&planner_stop);
    rc = kd_daemon_run(conf, &d, &planner_stop, err, sizeof err) == KD_OK ? 0 : 1;
    if (rc)
        kd_error("%s", err);
    kd_info("stopped");
out:
    kd_metrics_server_stop(msrv);
    if (d.notify)
        kd_notify_flush(d.notify, 2000);
    kd_notify_free(d.notify);
    kd_deploy_metrics_free(d.deploy_metrics);
    kd_metrics_free(d.metrics);
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
    return rc;
}
