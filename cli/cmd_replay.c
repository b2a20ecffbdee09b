/* `kdeploy replay ID`: a deployment's full timeline rebuilt from the topics
 * alone (requests, deployments, steps, traffic, results): who asked, every
 * host's every step with its start, end, status, exit code and output
 * tail, traffic changes, and the rollback that followed. --json prints one
 * JSON object per line, for auditors' tools. */
#include "cmd_replay.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "event.h"
#include "ids.h"
#include "log.h"
#include "lookup.h"
#include "model.h"
#include "outcome.h"

/* The deployment and up to 15 rollbacks after it; a longer chain is cut
 * short, and the fixed arrays stay small. */
#define MAX_IDS 16

typedef struct replay {
    char ids[MAX_IDS][256];  /* the deployment and the rollbacks that followed */
    char rollback_of[MAX_IDS][256];
    size_t id_count;
    json_t *lines;          /* one object per event, sorted by ts at the end */
    bool json;
} replay_t;

static const char *step_status_name(Kdeploy__V1__StepStatus st)
{
    switch (st) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED: return "succeeded";
    case KDEPLOY__V1__STEP_STATUS__STEP_FAILED: return "failed";
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED: return "skipped";
    case KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT: return "timed_out";
    default: return "unknown";
    }
}

static int tracked(const replay_t *r, const char *id)
{
    for (size_t i = 0; i < r->id_count; i++)
        if (strcmp(r->ids[i], id) == 0)
            return (int)i;
    return -1;
}

static json_t *line(const kd_envelope_t *env, const char *kind, const char *rollback_of)
{
    json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s}", "deploy_id", env->deploy_id, "ts",
                          (json_int_t)env->ts_ms, "kind", kind, "producer", env->producer,
                          "event_id", env->event_id ? env->event_id : "");

    if (rollback_of && *rollback_of)
        json_object_set_new(o, "rollback_of", json_string(rollback_of));
    return o;
}

static void set_str(json_t *o, const char *key, const char *value)
{
    if (value && *value)
        json_object_set_new(o, key, json_string(value));
}

/* Requests and deployment-level events. */
static json_t *deployment_line(const kd_envelope_t *env)
{
    json_t *o = NULL;

    switch (env->body_case) {
    case KD_BODY(CREATE):
        o = line(env, "requested", NULL);
        set_str(o, "requested_by", env->create->requested_by);
        set_str(o, "application", env->create->spec ? env->create->spec->application : "");
        set_str(o, "group", env->create->spec ? env->create->spec->group : "");
        if (env->create->spec && env->create->spec->revision)
            set_str(o, "revision", env->create->spec->revision->url);
        break;
    case KD_BODY(ROLLBACK):
        o = line(env, "rollback_requested", env->rollback->rollback_of);
        set_str(o, "requested_by", env->rollback->requested_by);
        set_str(o, "reason", env->rollback->reason);
        break;
    case KD_BODY(STOP):
        o = line(env, "stop", NULL);
        set_str(o, "requested_by", env->stop->requested_by);
        set_str(o, "reason", env->stop->reason);
        if (env->stop->rollback)
            json_object_set_new(o, "rollback", json_true());
        break;
    case KD_BODY(PAUSE):
        o = line(env, "pause", NULL);
        set_str(o, "requested_by", env->pause->requested_by);
        break;
    case KD_BODY(RESUME):
        o = line(env, "resume", NULL);
        set_str(o, "requested_by", env->resume->requested_by);
        break;
    case KD_BODY(ACCEPTED):
        o = line(env, "accepted", env->accepted->rollback_of);
        set_str(o, "requested_by", env->accepted->requested_by);
        json_object_set_new(o, "hosts", json_integer((json_int_t)(env->accepted->n_hosts ? env->accepted->n_hosts
                                                                      : env->accepted->hosts_total)));
        break;
    case KD_BODY(REJECTED):
        o = line(env, "rejected", NULL);
        set_str(o, "error", env->rejected->reason);
        break;
    case KD_BODY(HOST_STARTED):
        o = line(env, "host_started", NULL);
        set_str(o, "host", env->host_started->host);
        break;
    case KD_BODY(HOST_FINISHED):
        o = line(env, "host_finished", NULL);
        set_str(o, "host", env->host_finished->host);
        set_str(o, "status", step_status_name(env->host_finished->status));
        set_str(o, "error", env->host_finished->error);
        break;
    case KD_BODY(SUCCEEDED):
        o = line(env, "deployment_succeeded", NULL);
        set_str(o, "status", "succeeded");
        break;
    case KD_BODY(FAILED):
        o = line(env, "deployment_failed", NULL);
        set_str(o, "status", "failed");
        set_str(o, "error", env->failed->reason);
        break;
    case KD_BODY(ROLLBACK_STARTED):
        o = line(env, "rollback_started", NULL);
        set_str(o, "rollback_deploy_id", env->rollback_started->rollback_deploy_id);
        set_str(o, "reason", env->rollback_started->reason);
        break;
    case KD_BODY(STATUS_CHANGED):
        o = line(env, "status_changed", NULL);
        set_str(o, "status", kd_status_name_of(env->status_changed->status));
        set_str(o, "reason", env->status_changed->reason);
        set_str(o, "requested_by", env->status_changed->requested_by);
        break;
    case KD_BODY(REQUEST_REFUSED):
        o = line(env, "request_refused", NULL);
        set_str(o, "request", env->request_refused->request);
        set_str(o, "reason", env->request_refused->reason);
        set_str(o, "requested_by", env->request_refused->requested_by);
        break;
    default:
        break;
    }
    return o;
}

/* Steps, traffic and their results. */
static json_t *step_line(const kd_envelope_t *env, const char *rollback_of)
{
    json_t *o = NULL;

    switch (env->body_case) {
    case KD_BODY(STEP):
        o = line(env, "step", rollback_of);
        set_str(o, "host", env->step->host);
        set_str(o, "step", kd_event_name(env->step->event));
        set_str(o, "status", "started");
        json_object_set_new(o, "attempt", json_integer(env->step->attempt));
        break;
    case KD_BODY(TRAFFIC):
        o = line(env, "traffic", rollback_of);
        set_str(o, "host", env->traffic->host[0] ? env->traffic->host : env->traffic->service);
        set_str(o, "step", kd_event_name(env->traffic->event));
        set_str(o, "status", "started");
        set_str(o, "server_group", env->traffic->server_group);
        set_str(o, "to_group", env->traffic->to_group);
        break;
    case KD_BODY(STEP_RESULT):
        o = line(env, "step_result", rollback_of);
        set_str(o, "host", env->step_result->host);
        set_str(o, "step", kd_event_name(env->step_result->event));
        set_str(o, "status", step_status_name(env->step_result->status));
        json_object_set_new(o, "exit_code", json_integer(env->step_result->exit_code));
        json_object_set_new(o, "started_ms", json_integer(env->step_result->started_ms));
        json_object_set_new(o, "duration_ms", json_integer(env->step_result->duration_ms));
        set_str(o, "error", env->step_result->error);
        set_str(o, "output_tail", env->step_result->output_tail);
        if (env->step_result->replayed)
            json_object_set_new(o, "replayed", json_true());
        break;
    case KD_BODY(TRAFFIC_RESULT):
        o = line(env, "traffic_result", rollback_of);
        set_str(o, "host", env->traffic_result->host[0] ? env->traffic_result->host
                                                        : env->traffic_result->service);
        set_str(o, "step", kd_event_name(env->traffic_result->event));
        set_str(o, "status", step_status_name(env->traffic_result->status));
        set_str(o, "error", env->traffic_result->error);
        json_object_set_new(o, "duration_ms", json_integer(env->traffic_result->duration_ms));
        break;
    default:
        break;
    }
    return o;
}

/* Reads topics to their end, calling fn on each envelope of a tracked
 * deployment. */
static kd_status_t read_topics(const kd_bus_conf_t *conf, replay_t *r, const kd_topic_t *topics,
                               size_t ntopics, void (*fn)(replay_t *, const kd_message_t *,
                                                          const kd_envelope_t *, int),
                               char *err, size_t errsz)
{
    kd_consumer_opts_t o = {.topics = topics, .topic_count = ntopics, .read_all = true};
    kd_consumer_t *c = NULL;
    kd_status_t st = kd_consumer_new(conf, &o, &c, err, errsz);
    /* The end is every partition's end; one that cannot be read would keep
     * this waiting for ever. Past the deadline, what was read is shown. */
    int64_t deadline = kd_mono_ms() + 60000;

    while (st == KD_OK && !kd_consumer_at_end(c) && kd_mono_ms() < deadline) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;
        int idx;

        if ((st = kd_consumer_poll(c, 100, &m, err, errsz)) != KD_OK || !m)
            continue;
        /* The header says whose it is: the others are not decoded. The header
         * is not signed, so the decoded body's id decides. */
        if (tracked(r, m->deploy_id) >= 0 && kd_message_decode(c, m, &env, NULL, 0) == KD_OK &&
            (idx = tracked(r, env->deploy_id)) >= 0)
            fn(r, m, env, idx);
        kd_envelope_free(env);
        kd_message_free(m);
    }
    kd_consumer_free(c);
    return st;
}

/* First pass, deployments topic: the rollbacks that followed, and what
 * each tracked deployment undoes. Rollbacks come after what they undo, so
 * one pass in each partition's order finds the whole chain. */
static void learn(replay_t *r, const kd_message_t *m, const kd_envelope_t *env, int idx)
{
    (void)m;
    if (env->body_case == KD_BODY(ACCEPTED))
        snprintf(r->rollback_of[idx], sizeof r->rollback_of[idx], "%s", env->accepted->rollback_of);
    if (env->body_case == KD_BODY(ROLLBACK_STARTED) && r->id_count < MAX_IDS &&
        tracked(r, env->rollback_started->rollback_deploy_id) < 0)
        snprintf(r->ids[r->id_count++], sizeof r->ids[0], "%s",
                 env->rollback_started->rollback_deploy_id);
}

/* Second pass, every topic: the timeline. */
static void collect(replay_t *r, const kd_message_t *m, const kd_envelope_t *env, int idx)
{
    json_t *o = m->topic == KD_TOPIC_STEPS || m->topic == KD_TOPIC_TRAFFIC ||
                        m->topic == KD_TOPIC_RESULTS
                    ? step_line(env, r->rollback_of[idx]) : deployment_line(env);

    if (o && !json_object_get(o, "rollback_of") && r->rollback_of[idx][0])
        json_object_set_new(o, "rollback_of", json_string(r->rollback_of[idx]));
    if (o)
        json_array_append_new(r->lines, o);
}

static kd_status_t replay_topics(const kd_bus_conf_t *conf, replay_t *r, char *err, size_t errsz)
{
    kd_topic_t all[] = {KD_TOPIC_REQUESTS, KD_TOPIC_DEPLOYMENTS, KD_TOPIC_STEPS,
                        KD_TOPIC_TRAFFIC, KD_TOPIC_RESULTS};
    kd_topic_t deployments = KD_TOPIC_DEPLOYMENTS;
    size_t known;
    kd_status_t st;

    /* A rollback of a rollback's find needs another pass: until no new id.
     * Ids first, timeline after: collect keeps only the ids known then. */
    do {
        known = r->id_count;
        if ((st = read_topics(conf, r, &deployments, 1, learn, err, errsz)) != KD_OK)
            return st;
    } while (r->id_count != known);
    return read_topics(conf, r, all, 5, collect, err, errsz);
}

/* By time, then by event id: events of one millisecond come out in the
 * same order at every replay, whatever order the partitions were read in. */
static int by_ts(const void *a, const void *b)
{
    const json_t *p = *(json_t *const *)a, *q = *(json_t *const *)b;
    json_int_t x = json_integer_value(json_object_get(p, "ts"));
    json_int_t y = json_integer_value(json_object_get(q, "ts"));
    const char *i = json_string_value(json_object_get(p, "event_id"));
    const char *j = json_string_value(json_object_get(q, "event_id"));

    if (x != y)
        return x < y ? -1 : 1;
    return strcmp(i ? i : "", j ? j : "");
}

static void print_text(json_t *o)
{
    char ts[32];
    time_t t = (time_t)(json_integer_value(json_object_get(o, "ts")) / 1000);
    struct tm tm;
    const char *keys[] = {"host", "step", "status", "request", "error", "reason",
                          "rollback_deploy_id"};
    const char *status = json_string_value(json_object_get(o, "status"));
    json_t *exit_code = json_object_get(o, "exit_code");

    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%s.%03lld %.8s %-20s", ts, json_integer_value(json_object_get(o, "ts")) % 1000,
           json_string_value(json_object_get(o, "deploy_id")),
           json_string_value(json_object_get(o, "kind")));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_get(o, keys[i]))
            printf(" %s=%s", keys[i], json_string_value(json_object_get(o, keys[i])));
    if (json_object_get(o, "requested_by"))
        printf(" by=%s", json_string_value(json_object_get(o, "requested_by")));
    /* A step's exit code says something only when it failed, and only if a
     * script ran (0 then means the step failed before or around it). */
    if (exit_code && status && strcmp(status, "failed") == 0 &&
        json_integer_value(exit_code) != 0) {
        if (json_integer_value(exit_code) < 0)
            printf(" exit=killed");
        else
            printf(" exit=%lld", json_integer_value(exit_code));
    }
    printf("\n");
}

static void print_all(replay_t *r)
{
    size_t n = json_array_size(r->lines);
    json_t **items = calloc(n + 1, sizeof *items);

    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(r->lines, i);
    qsort(items, n, sizeof *items, by_ts);
    for (size_t i = 0; i < n; i++) {
        if (r->json) {
            char *text = json_dumps(items[i], JSON_COMPACT);

            printf("%s\n", text);
            free(text);
        } else {
            print_text(items[i]);
        }
    }
    free(items);
}

/* The options; -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, kd_cli_common_t *cli, replay_t *r)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char usage[] =
        "usage: kdeploy replay ID [--json]\n"
        "Rebuilds a deployment's timeline from the topics alone, with the rollback that\n"
        "followed it. ID may be the start of an id. --json: one JSON object per line\n"
        "(deploy_id, ts, kind, host, step, status, rollback_of, exit_code, output_tail,\n"
        "error, reason, requested_by, ...).\n";
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(cli, opt, optarg))
            continue;
        if (opt == 'j') {
            r->json = true;
        } else if (opt == 'h') {
            printf("%s" KD_CLI_COMMON_HELP KD_EXIT_HELP, usage);
            return KD_EXIT_OK;
        } else {
            kd_cli_bad_option("kdeploy", argc, argv, longopts);
            fprintf(stderr, "%s", usage);
            return KD_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "%s", usage);
        return KD_EXIT_USAGE;
    }
    return -1;
}

static int replay(const kd_bus_conf_t *conf, const char *given, replay_t *r)
{
    char err[4096];
    kd_status_t st = kd_lookup_id(conf, given, r->ids[0], sizeof r->ids[0], err, sizeof err);

    if (st != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return st == KD_ENOTFOUND || st == KD_ECONFLICT ? KD_EXIT_NOT_FOUND : KD_EXIT_NO_ANSWER;
    }
    r->id_count = 1;
    if (replay_topics(conf, r, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return KD_EXIT_NO_ANSWER;
    }
    print_all(r);
    return KD_EXIT_OK;
}

int kd_cmd_replay(int argc, char **argv)
{
    kd_cli_common_t cli = {0};
    replay_t r = {.lines = json_array()};
    kd_bus_conf_t *conf = NULL;
    char err[1024];
    kd_status_t st;
    int rc;

    if ((rc = parse_args(argc, argv, &cli, &r)) < 0) {
        if ((st = kd_cli_setup(&cli, "kdeploy", &conf, NULL, err, sizeof err)) != KD_OK) {
            fprintf(stderr, "kdeploy: %s\n", err);
            rc = st == KD_EKAFKA ? KD_EXIT_NO_ANSWER : KD_EXIT_USAGE;
        } else {
            if (!cli.log_level && !cli.verbose)
                kd_log_setup("kdeploy", KD_LOG_WARN, cli.log_json);
            rc = replay(conf, argv[optind], &r);
        }
    }
    json_decref(r.lines);
    kd_bus_conf_free(conf);
    return rc;
}
