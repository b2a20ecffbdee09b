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
#include "signals.h"
#include "planner.h"

#define TICK_MS 200

typedef struct planner_opts {
    kd_cli_common_t cli;
    const char *group;
    const char *signing_key;
    const char *instance_id;
} planner_opts_t;

static volatile sig_atomic_t planner_stop;


static void usage(FILE *f)
{
    fprintf(f,
            "usage: kdeploy-planner [options]\n"
            "Plans deployments: per-host lifecycle steps, batches, failures, rollbacks.\n\n"
            "  --group G             consumer group of the planners (default kdeploy-planner)\n"
            "  --instance-id ID      static group membership: a restarted planner with the\n"
            "                        same id takes its place at once\n"
            "  --signing-key FILE    sign step and traffic events with this Ed25519 key\n"
            KD_CLI_COMMON_HELP
            "\nConfig file keys: group, instance_id, signing_key, brokers, topic_prefix,\n"
            "log.level, log.format, kafka.*\n");
}

static int parse_args(int argc, char **argv, planner_opts_t *o)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"group", required_argument, NULL, 'g'},
        {"instance-id", required_argument, NULL, 'i'},
        {"signing-key", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

static void on_rebalance(void *opaque, bool assigned, const int32_t *parts, size_t n)
{
    kd_planner_t *p = opaque;

    if (!assigned)
        memset(p->owned, 0, sizeof p->owned);
    for (size_t i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < KD_PLANNER_MAX_PARTITIONS)
            p->owned[parts[i]] = assigned;
    p->rebalanced = true;
    kd_info("%s %zu partition(s)", assigned ? "took" : "gave back", n);
}

/* Applies the deployments topic's new events: other planners' decisions,
 * and on start-up the whole history. Own events were applied when made. */
static kd_status_t follow_history(kd_planner_t *p, kd_consumer_t *history, int timeout_ms,
                                  char *err, size_t errsz)
{
    kd_message_t *m;
    kd_status_t st;

    while ((st = kd_consumer_poll(history, timeout_ms, &m, err, errsz)) == KD_OK && m) {
        kd_envelope_t *env = NULL;
        char why[512];

        if (kd_message_decode(history, m, &env, why, sizeof why) != KD_OK)
            kd_warn("deployments partition %d offset %lld: skipped: %s", m->partition,
                    (long long)m->offset, why);
        else if (strcmp(env->producer, kd_producer_self(p->producer)) != 0)
            kd_model_apply(p->model, env);
        kd_envelope_free(env);
        kd_message_free(m);
        timeout_ms = 0;
    }
    return st;
}

static kd_status_t load_history(kd_planner_t *p, kd_consumer_t *history, char *err,
                                size_t errsz)
{
    kd_status_t st = KD_OK;
    int64_t start = kd_mono_ms();

    while (st == KD_OK && !kd_consumer_at_end(history) && !planner_stop)
        st = follow_history(p, history, 100, err, errsz);
    kd_info("history read in %lld ms", (long long)(kd_mono_ms() - start));
    return st;
}

static kd_status_t handle(kd_planner_t *p, kd_consumer_t *group, kd_message_t *m, char *err,
                          size_t errsz)
{
    kd_envelope_t *env = NULL;
    char why[1024];
    kd_status_t st = kd_message_decode(group, m, &env, why, sizeof why);

    if (st != KD_OK) {
        kd_error("%s partition %d offset %lld: skipping a malformed message: %s",
                 kd_topic_suffix(m->topic), m->partition, (long long)m->offset, why);
    } else {
        st = m->topic == KD_TOPIC_REQUESTS ? kd_requests_handle(p, env, err, errsz)
                                           : kd_engine_result(p, env, err, errsz);
        kd_envelope_free(env);
        if (st != KD_OK)
            return st; /* the bus failed: do not commit, the message comes again */
    }
    return kd_consumer_commit(group, m, err, errsz);
}

static kd_status_t run(kd_planner_t *p, const planner_opts_t *o, char *err, size_t errsz)
{
    kd_topic_t hist_topic = KD_TOPIC_DEPLOYMENTS;
    kd_topic_t topics[] = {KD_TOPIC_REQUESTS, KD_TOPIC_RESULTS};
    kd_consumer_opts_t ho = {.topics = &hist_topic, .topic_count = 1, .read_all = true};
    kd_consumer_opts_t go = {.group_id = o->group, .topics = topics, .topic_count = 2,
                             .on_rebalance = on_rebalance, .opaque = p,
                             .instance_id = o->instance_id};
    kd_consumer_t *history = NULL, *group = NULL;
    int64_t last_tick = 0;
    kd_status_t st;

    if ((st = kd_consumer_new(p->conf, &ho, &history, err, errsz)) != KD_OK ||
        (st = kd_consumer_topic_partitions(history, KD_TOPIC_REQUESTS, &p->partition_count,
                                           err, errsz)) != KD_OK ||
        (st = load_history(p, history, err, errsz)) != KD_OK ||
        (st = kd_consumer_new(p->conf, &go, &group, err, errsz)) != KD_OK)
        goto out;
    kd_info("planning (%d partitions, group %s)", p->partition_count, o->group);
    while (!planner_stop && st == KD_OK) {
        kd_message_t *m = NULL;

        if ((st = follow_history(p, history, 0, err, errsz)) != KD_OK ||
            (st = kd_consumer_poll(group, 50, &m, err, errsz)) != KD_OK)
            break;
        if (p->rebalanced) {
            p->rebalanced = false;
            st = kd_engine_redrive(p, err, errsz);
        }
        if (st == KD_OK && m)
            st = handle(p, group, m, err, errsz);
        kd_message_free(m);
        if (st == KD_OK && kd_mono_ms() - last_tick >= TICK_MS) {
            last_tick = kd_mono_ms();
            st = kd_engine_tick(p, err, errsz);
        }
    }
out:
    kd_consumer_free(group);
    kd_consumer_free(history);
    return st;
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
    kd_planner_t *p = calloc(1, sizeof *p);
    kd_bus_conf_t *conf = NULL;
    kd_config_t *cfg = NULL;
    char err[1024];
    int rc;

    if (!p)
        return 1;
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        goto out;
    if (kd_cli_setup(&o.cli, "planner", &conf, &cfg, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-planner: %s\n", err);
        rc = 2;
        goto out;
    }
    if ((rc = configure(&o, conf, cfg)) >= 0)
        goto out;
    p->conf = conf;
    if (kd_producer_new(conf, "planner", &p->producer, err, sizeof err) != KD_OK ||
        !(p->model = kd_model_new())) {
        fprintf(stderr, "kdeploy-planner: %s\n", err);
        rc = 1;
        goto out;
    }
    kd_signals_install(&planner_stop);
    rc = run(p, &o, err, sizeof err) == KD_OK ? 0 : 1;
    if (rc)
        kd_error("%s", err);
    kd_info("stopped");
out:
    kd_producer_free(p->producer);
    kd_model_free(p->model);
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
    free(p);
    return rc;
}
