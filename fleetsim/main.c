/* kdeploy-fleetsim: a simulated fleet, to drive a planner at scale. It
 * announces N hosts on the hosts topic the way workers do (P000000,
 * P000001, ...), reads the steps topic, and answers every step of its
 * hosts at once with a correct result (succeeded; Install reports the
 * revision installed), so a benchmark measures the planner and the bus,
 * not hooks.
 *
 *   kdeploy-fleetsim --count N --prefix P [--label K=V]... [--brokers B]
 *
 * It runs no hook and installs nothing: it is a load generator, not a
 * worker, and never needs root. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "event.h"
#include "ids.h"
#include "log.h"
#include "signals.h"
#include "spec_check.h"

#define MAX_COUNT 1000000
#define MAX_LABELS 32
/* Results are flushed at most this many at a time or when the steps topic
 * goes quiet, so the planner gets answers in batches as a fleet's would
 * come in. */
#define FLUSH_EVERY 5000
#define MAX_PARTITIONS 1024

typedef struct fleet_opts {
    kd_cli_common_t cli;
    long count;
    const char *prefix;
    const char *labels[MAX_LABELS];
    size_t label_count;
    const char *group;
} fleet_opts_t;

static volatile sig_atomic_t fleet_stop;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kdeploy-fleetsim --count N --prefix P [options]\n"
            "Simulates N hosts named P000000, P000001, ...: announces them as workers do and\n"
            "answers each of their steps at once with a correct result. A load generator\n"
            "for the planner: it runs no hook and installs nothing.\n\n"
            "  --count N             hosts to simulate (1 to %d)\n"
            "  --prefix P            host id prefix (the id is P and six digits)\n"
            "  --label K=V           a label every simulated host announces (repeatable)\n"
            "  --group G             consumer group on the steps topic\n"
            "                        (default kdeploy-fleetsim-<prefix>)\n"
            KD_CLI_COMMON_HELP,
            MAX_COUNT);
}

static int parse_args(int argc, char **argv, fleet_opts_t *o)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"count", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'p'},
        {"label", required_argument, NULL, 'l'},
        {"group", required_argument, NULL, 'g'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int opt;

    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&o->cli, opt, optarg))
            continue;
        switch (opt) {
        case 'n':
            o->count = strtol(optarg, &end, 10);
            if (*end || o->count < 1 || o->count > MAX_COUNT) {
                fprintf(stderr, "kdeploy-fleetsim: --count: expected 1 to %d, not \"%s\"\n",
                        MAX_COUNT, optarg);
                return 2;
            }
            break;
        case 'p': o->prefix = optarg; break;
        case 'g': o->group = optarg; break;
        case 'l':
            if (o->label_count == MAX_LABELS || !strchr(optarg, '=') || optarg[0] == '=') {
                fprintf(stderr, "kdeploy-fleetsim: --label: expected KEY=VALUE (at most %d)\n",
                        MAX_LABELS);
                return 2;
            }
            o->labels[o->label_count++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("kdeploy-fleetsim %s\n", KD_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !o->count || !o->prefix) {
        fprintf(stderr, "kdeploy-fleetsim: --count and --prefix are required\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The index of a host id of this fleet ("P" and six digits), or -1. */
static long host_index(const fleet_opts_t *o, const char *host)
{
    size_t plen = strlen(o->prefix);
    char *end;
    long i;

    if (!host || strncmp(host, o->prefix, plen) != 0 || strlen(host + plen) != 6)
        return -1;
    i = strtol(host + plen, &end, 10);
    return *end || i < 0 || i >= o->count ? -1 : i;
}

static kd_status_t announce(kd_producer_t *p, const fleet_opts_t *o, char *err, size_t errsz)
{
    Kdeploy__V1__HostLabel labels[MAX_LABELS], *lp[MAX_LABELS];
    char keys[MAX_LABELS][128];
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < o->label_count; i++) {
        const char *eq = strchr(o->labels[i], '=');

        kdeploy__v1__host_label__init(&labels[i]);
        snprintf(keys[i], sizeof keys[i], "%.*s", (int)(eq - o->labels[i]), o->labels[i]);
        labels[i].key = keys[i];
        labels[i].value = (char *)eq + 1;
        lp[i] = &labels[i];
    }
    for (long i = 0; i < o->count && st == KD_OK && !fleet_stop; i++) {
        Kdeploy__V1__HostStatus hs = KDEPLOY__V1__HOST_STATUS__INIT;
        char host[KD_HOST_ID_MAX + 1], id[KD_UUID_LEN];
        kd_envelope_t env;

        snprintf(host, sizeof host, "%s%06ld", o->prefix, i);
        kd_envelope_init(&env, id, "", kd_producer_self(p));
        hs.host = host;
        hs.agent_version = "fleetsim-" KD_VERSION;
        hs.alive = true;
        hs.labels = lp;
        hs.n_labels = o->label_count;
        env.body_case = KD_BODY(HOST_STATUS);
        env.host_status = &hs;
        st = kd_producer_send(p, KD_TOPIC_HOSTS, host, &env, false, err, errsz);
    }
    return st == KD_OK ? kd_producer_flush(p, 60000, err, errsz) : st;
}

/* The result a worker would publish for a step that ran no hook. */
static kd_status_t answer(kd_producer_t *p, const kd_envelope_t *in, char *err, size_t errsz)
{
    const Kdeploy__V1__StepCommand *cmd = in->step;
    Kdeploy__V1__StepResult r = KDEPLOY__V1__STEP_RESULT__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_envelope_init(&env, id, in->deploy_id, kd_producer_self(p));
    r.step_id = cmd->step_id;
    r.host = cmd->host;
    r.event = cmd->event;
    r.attempt = cmd->attempt;
    r.status = KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED;
    r.started_ms = env.ts_ms;
    r.output_tail = "";
    r.error = "";
    r.revision_installed = cmd->event == KD_EVENT(Install) ? cmd->revision_deploy_id : "";
    env.body_case = KD_BODY(STEP_RESULT);
    env.step_result = &r;
    return kd_producer_send(p, KD_TOPIC_RESULTS, in->deploy_id, &env, false, err, errsz);
}

/* The newest message of each partition: committed once its answers are
 * out, not one commit per message (which would load the broker more than
 * the answers do). */
static void keep(kd_message_t **last, kd_message_t *m)
{
    if (m->partition < 0 || m->partition >= MAX_PARTITIONS) {
        kd_message_free(m);
        return;
    }
    kd_message_free(last[m->partition]);
    last[m->partition] = m;
}

static kd_status_t commit(kd_consumer_t *c, kd_message_t **last, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;

    for (int i = 0; i < MAX_PARTITIONS; i++) {
        if (last[i] && st == KD_OK)
            st = kd_consumer_commit(c, last[i], err, errsz);
        kd_message_free(last[i]);
        last[i] = NULL;
    }
    return st;
}

static kd_status_t run(const kd_bus_conf_t *conf, const fleet_opts_t *o, char *err, size_t errsz)
{
    kd_topic_t topic = KD_TOPIC_STEPS;
    char group[256];
    kd_consumer_opts_t co = {.group_id = group, .topics = &topic, .topic_count = 1};
    kd_producer_t *p = NULL;
    kd_consumer_t *c = NULL;
    kd_message_t *last[MAX_PARTITIONS] = {0};
    long answered = 0, pending = 0;
    kd_status_t st;

    snprintf(group, sizeof group, "%s", o->group ? o->group : "");
    if (!o->group)
        snprintf(group, sizeof group, "kdeploy-fleetsim-%s", o->prefix);
    if ((st = kd_producer_new(conf, "fleetsim", &p, err, errsz)) != KD_OK ||
        (st = kd_consumer_new(conf, &co, &c, err, errsz)) != KD_OK)
        goto out;
    if ((st = announce(p, o, err, errsz)) != KD_OK)
        goto out;
    kd_info("%ld hosts %s000000..%s%06ld announced; answering their steps", o->count, o->prefix,
            o->prefix, o->count - 1);
    while (!fleet_stop && st == KD_OK) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;

        if ((st = kd_consumer_poll(c, pending ? 0 : 100, &m, err, errsz)) != KD_OK)
            break;
        if (!m) {
            /* Quiet: what was answered goes out now, then the offsets. */
            if (pending && (st = kd_producer_flush(p, 60000, err, errsz)) == KD_OK) {
                pending = 0;
                st = commit(c, last, err, errsz);
            }
            continue;
        }
        if (host_index(o, m->key) >= 0 && kd_message_decode(c, m, &env, NULL, 0) == KD_OK &&
            env->body_case == KD_BODY(STEP) && host_index(o, env->step->host) >= 0) {
            st = answer(p, env, err, errsz);
            answered++;
            pending++;
        }
        kd_envelope_free(env);
        keep(last, m);
        if (st == KD_OK && pending >= FLUSH_EVERY &&
            (st = kd_producer_flush(p, 60000, err, errsz)) == KD_OK) {
            pending = 0;
            st = commit(c, last, err, errsz);
        }
    }
    commit(c, last, err, errsz);
    kd_info("answered %ld step(s)", answered);
out:
    kd_consumer_free(c);
    kd_producer_free(p);
    return st;
}

int main(int argc, char **argv)
{
    fleet_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_config_t *cfg = NULL;
    char err[1024] = "";
    int rc;

    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    if (strlen(o.prefix) + 6 > KD_HOST_ID_MAX || !kd_host_id_valid(o.prefix)) {
        fprintf(stderr, "kdeploy-fleetsim: --prefix: \"%s\" does not make host ids\n", o.prefix);
        return 2;
    }
    if (kd_cli_setup(&o.cli, "fleetsim", &conf, &cfg, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy-fleetsim: %s\n", err);
        return 2;
    }
    kd_signals_install(&fleet_stop);
    rc = run(conf, &o, err, sizeof err) == KD_OK ? 0 : 1;
    if (rc)
        kd_error("%s", err);
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
    return rc;
}
