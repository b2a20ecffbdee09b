/* A planner without Kafka, for the core's unit tests: a model, a clock, and
 * the same round loop the daemon runs (kd_core_execute), whose "publish"
 * writes each decision as one line of a trace and keeps the commands sent,
 * so a test answers them as workers and lbctl would. Every published
 * deployments-topic event is also kept, so a test can rebuild a model from
 * them as a restarted planner does. */
#ifndef KD_CORE_SIM_H
#define KD_CORE_SIM_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core.h"
#include "spec.h"

typedef struct sim_cmd {
    char *deploy_id, *step_id, *host; /* host: the server for traffic, the service for a swap */
    kd_event_t event;
    bool traffic;
} sim_cmd_t;

typedef struct sim {
    kd_model_t *m;
    int64_t now, since;
    int next_rollback;
    bool owns_nothing;
    char **trace;
    size_t ntrace, captrace;
    sim_cmd_t *cmds;          /* sent and not answered yet */
    size_t ncmds, capcmds;
    kd_envelope_t **history;  /* every deployments-topic event published */
    size_t nhist, caphist;
    size_t max_bytes;         /* the largest message published */
    size_t published;
    bool keep_history;        /* false: large tests keep no copies */
    int fail_publishes;       /* this many publishes fail (the broker is down) */
    int next_request;
    char request_id[KD_UUID_LEN]; /* the last request's event id ("req-N") */
    int answers;              /* events published naming it in in_reply_to */
} sim_t;

/* Kafka's default message.max.bytes is 1,048,588; leave room for headers. */
#define SIM_MESSAGE_MAX 1000000

#define SIM_GROW(arr, n, cap)                                                 \
    do {                                                                      \
        if ((n) == (cap)) {                                                   \
            (cap) = (cap) ? (cap) * 2 : 64;                                   \
            (arr) = realloc((arr), (cap) * sizeof *(arr));                    \
            if (!(arr))                                                       \
                abort();                                                      \
        }                                                                     \
    } while (0)

static bool sim_owns(void *arg, const char *deploy_id)
{
    (void)deploy_id;
    return !((sim_t *)arg)->owns_nothing;
}

static void sim_new_id(void *arg, const char *deploy_id, char out[KD_UUID_LEN])
{
    (void)deploy_id;
    snprintf(out, KD_UUID_LEN, "rb-%d", ++((sim_t *)arg)->next_rollback);
}

static void sim_ctx(void *arg, kd_core_ctx_t *c)
{
    sim_t *s = arg;

    memset(c, 0, sizeof *c);
    c->now_ms = s->now;
    c->since_ms = s->since;
    c->self = "planner@test";
    c->owns = sim_owns;
    c->new_id = sim_new_id;
    c->arg = s;
}

static void sim_line(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_line(sim_t *s, const char *fmt, ...)
{
    va_list ap;
    char *line = NULL;

    va_start(ap, fmt);
    if (vasprintf(&line, fmt, ap) < 0)
        abort();
    va_end(ap);
    SIM_GROW(s->trace, s->ntrace, s->captrace);
    s->trace[s->ntrace++] = line;
    if (getenv("SIM_TRACE"))
        fprintf(stderr, "  | %s\n", line);
}

static void sim_join(char *out, size_t outsz, char **names, size_t n)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && len + 1 < outsz; i++)
        len += (size_t)snprintf(out + len, outsz - len, "%s%s", i ? "," : "", names[i]);
}

static void sim_record(sim_t *s, const kd_decision_t *x)
{
    const kd_envelope_t *e = x->env;
    const char *id = e->deploy_id;
    char list[4096];

    switch (e->body_case) {
    case KD_BODY(ACCEPTED):
        sim_join(list, sizeof list, e->accepted->hosts, e->accepted->n_hosts);
        sim_line(s, "accepted %s total=%u hosts=[%s] target=%s", id, e->accepted->hosts_total,
                 list, e->accepted->target_group);
        break;
    case KD_BODY(DEPLOYMENT_HOSTS):
        sim_join(list, sizeof list, e->deployment_hosts->hosts, e->deployment_hosts->n_hosts);
        sim_line(s, "hosts %s %u%s: [%s]", id, e->deployment_hosts->first,
                 e->deployment_hosts->standby ? " standby" : "", list);
        break;
    case KD_BODY(REJECTED):
        sim_line(s, "rejected %s: %s", id, e->rejected->reason);
        break;
    case KD_BODY(BATCH_STARTED):
        sim_join(list, sizeof list, e->batch_started->hosts, e->batch_started->n_hosts);
        sim_line(s, "batch %s %u: [%s]", id, e->batch_started->batch, list);
        break;
    case KD_BODY(HOST_STARTED):
        sim_line(s, "started %s %s previous=%s restore=%s", id, e->host_started->host,
                 e->host_started->previous_deploy_id, e->host_started->restore_deploy_id);
        break;
    case KD_BODY(STEP_DISPATCHED):
        sim_line(s, "dispatch %s %s %s", id, e->step_dispatched->host,
                 kd_event_name(e->step_dispatched->event));
        break;
    case KD_BODY(HOST_FINISHED):
        sim_line(s, "finished %s %s %s: %s", id, e->host_finished->host,
                 e->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED ? "succeeded"
                 : e->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED ? "skipped"
                                                                                      : "failed",
                 e->host_finished->error);
        break;
    case KD_BODY(SUCCEEDED):
        sim_join(list, sizeof list, e->succeeded->skipped_hosts, e->succeeded->n_skipped_hosts);
        sim_line(s, "succeeded %s live=%s skipped=[%s]", id, e->succeeded->live_group, list);
        break;
    case KD_BODY(FAILED):
        sim_join(list, sizeof list, e->failed->failed_hosts, e->failed->n_failed_hosts);
        sim_line(s, "failed %s: %s [%s]", id, e->failed->reason, list);
        break;
    case KD_BODY(ROLLBACK_STARTED):
        sim_join(list, sizeof list, e->rollback_started->hosts, e->rollback_started->n_hosts);
        sim_line(s, "rollback %s as %s hosts=[%s]", id, e->rollback_started->rollback_deploy_id,
                 list);
        break;
    case KD_BODY(STATUS_CHANGED):
        sim_line(s, "status %s %s%s%s%s", id, kd_status_name_of(e->status_changed->status),
                 e->status_changed->rollback ? " (rollback)" : "",
                 e->status_changed->reason[0] ? ": " : "", e->status_changed->reason);
        break;
    case KD_BODY(REQUEST_REFUSED):
        sim_line(s, "refused %s %s: %s", id, e->request_refused->request,
                 e->request_refused->reason);
        break;
    case KD_BODY(STEP):
        sim_line(s, "step %s %s %s rev=%s", id, e->step->host, kd_event_name(e->step->event),
                 e->step->revision_deploy_id);
        break;
    case KD_BODY(TRAFFIC):
        sim_line(s, "traffic %s %s %s", id,
                 e->traffic->event == KD_EVENT(SwapTraffic) ? e->traffic->service : e->traffic->host,
                 kd_event_name(e->traffic->event));
        break;
    default:
        sim_line(s, "other %s %s", id, kd_envelope_type(e));
    }
    /* An answer: " <- " and the request it names, after its line. */
    if (e->in_reply_to[0]) {
        char *line = NULL;

        if (asprintf(&line, "%s <- %s", s->trace[s->ntrace - 1], e->in_reply_to) < 0)
            abort();
        free(s->trace[s->ntrace - 1]);
        s->trace[s->ntrace - 1] = line;
        if (strcmp(e->in_reply_to, s->request_id) == 0)
            s->answers++;
    }
}

static void sim_keep_cmd(sim_t *s, const kd_envelope_t *e)
{
    sim_cmd_t *c;

    SIM_GROW(s->cmds, s->ncmds, s->capcmds);
    c = &s->cmds[s->ncmds++];
    c->deploy_id = strdup(e->deploy_id);
    if (e->body_case == KD_BODY(STEP)) {
        c->step_id = strdup(e->step->step_id);
        c->host = strdup(e->step->host);
        c->event = e->step->event;
        c->traffic = false;
    } else {
        c->step_id = strdup(e->traffic->traffic_id);
        c->host = strdup(e->traffic->event == KD_EVENT(SwapTraffic) ? e->traffic->service
                                                                     : e->traffic->host);
        c->event = e->traffic->event;
        c->traffic = true;
    }
}

static kd_status_t sim_publish(void *arg, const kd_decisions_t *round, char *err, size_t errsz)
{
    sim_t *s = arg;

    if (s->fail_publishes > 0) {
        s->fail_publishes--;
        return kd_err(err, errsz, KD_EKAFKA, "Local: Message timed out");
    }
    /* As the daemon: a round's records first, then its commands. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < round->count; i++) {
            kd_decision_t sent = round->items[i];
            bool record = sent.topic == KD_TOPIC_DEPLOYMENTS;

            if (record != (pass == 0))
                continue;
            if (sent.len > s->max_bytes)
                s->max_bytes = sent.len;
            if (sent.len > SIM_MESSAGE_MAX)
                CHECK_MSG(0, "a %s event of %zu bytes", kd_envelope_type(sent.env), sent.len);
            /* What the daemon publishes is the encoding: read from it. */
            sent.env = NULL;
            if (kd_envelope_decode(sent.bytes, sent.len, &sent.env, NULL, 0) != KD_OK)
                abort();
            s->published++;
            sim_record(s, &sent);
            if (record && s->keep_history) {
                SIM_GROW(s->history, s->nhist, s->caphist);
                s->history[s->nhist++] = sent.env;
                sent.env = NULL;
            } else if (!record) {
                sim_keep_cmd(s, sent.env);
            }
            kd_envelope_free(sent.env);
        }
    return KD_OK;
}

static void sim_init(sim_t *s)
{
    memset(s, 0, sizeof *s);
    s->m = kd_model_new();
    s->now = 1700000000000LL;
    s->keep_history = true;
}

static void sim_free_cmd(sim_cmd_t *c)
{
    free(c->deploy_id);
    free(c->step_id);
    free(c->host);
}

static void sim_free(sim_t *s)
{
    for (size_t i = 0; i < s->ntrace; i++)
        free(s->trace[i]);
    for (size_t i = 0; i < s->ncmds; i++)
        sim_free_cmd(&s->cmds[i]);
    for (size_t i = 0; i < s->nhist; i++)
        kd_envelope_free(s->history[i]);
    free(s->trace);
    free(s->cmds);
    free(s->history);
    kd_model_free(s->m);
}

static void sim_execute(sim_t *s, kd_decisions_t *dec)
{
    char err[256];

    CHECK(kd_core_execute(s->m, dec, sim_ctx, sim_publish, s, err, sizeof err) == KD_OK);
}

/* ---- inputs ---- */

static Kdeploy__V1__DeploymentSpec *sim_spec(const char *yaml)
{
    Kdeploy__V1__DeploymentSpec *spec = NULL;
    char err[2048];

    if (kd_spec_parse("test.yaml", yaml, strlen(yaml), &spec, err, sizeof err) != KD_OK) {
        fprintf(stderr, "bad test spec: %s\n", err);
        abort();
    }
    return spec;
}

/* A request with the event id it has: s->answers counts the events that
 * answer it. Never more than one. */
static void sim_request_as(sim_t *s, kd_envelope_t *req)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;

    snprintf(s->request_id, sizeof s->request_id, "%s", req->event_id);
    s->answers = 0;
    kd_decisions_init(&dec);
    sim_ctx(s, &c);
    req->ts_ms = s->now;
    kd_core_request(s->m, &c, req, &dec);
    sim_execute(s, &dec);
    CHECK_MSG(s->answers <= 1, "request %s answered %d times", s->request_id, s->answers);
}

/* The same with a new event id, "req-N" (N counts from 1). */
static void sim_request(sim_t *s, kd_envelope_t *req)
{
    char eid[KD_UUID_LEN];

    snprintf(eid, sizeof eid, "req-%d", ++s->next_request);
    req->event_id = eid;
    sim_request_as(s, req);
}

static void sim_create_spec(sim_t *s, const char *id, Kdeploy__V1__DeploymentSpec *spec)
{
    Kdeploy__V1__CreateDeployment cr = KDEPLOY__V1__CREATE_DEPLOYMENT__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];

    kd_envelope_init(&env, eid, id, "kdeploy@test");
    cr.spec = spec;
    cr.requested_by = "op@test";
    env.body_case = KD_BODY(CREATE);
    env.create = &cr;
    sim_request(s, &env);
}

static void sim_create(sim_t *s, const char *id, const char *yaml)
{
    Kdeploy__V1__DeploymentSpec *spec = sim_spec(yaml);

    sim_create_spec(s, id, spec);
    kd_spec_free(spec);
}

/* stop (with rollback if asked), pause, resume; event_id NULL: a new one,
 * else that one (a request seen again). */
static void sim_control_ex(sim_t *s, const char *id, kd_body_t kind, bool rollback,
                           const char *event_id)
{
    Kdeploy__V1__StopDeployment stop = KDEPLOY__V1__STOP_DEPLOYMENT__INIT;
    Kdeploy__V1__PauseDeployment pause = KDEPLOY__V1__PAUSE_DEPLOYMENT__INIT;
    Kdeploy__V1__ResumeDeployment resume = KDEPLOY__V1__RESUME_DEPLOYMENT__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];

    kd_envelope_init(&env, eid, id, "kdeploy@test");
    env.body_case = kind;
    stop.requested_by = pause.requested_by = resume.requested_by = "op@test";
    stop.reason = "test";
    stop.rollback = rollback;
    if (kind == KD_BODY(STOP))
        env.stop = &stop;
    else if (kind == KD_BODY(PAUSE))
        env.pause = &pause;
    else
        env.resume = &resume;
    if (event_id) {
        env.event_id = (char *)event_id;
        sim_request_as(s, &env);
    } else {
        sim_request(s, &env);
    }
}

static void sim_control(sim_t *s, const char *id, kd_body_t kind)
{
    sim_control_ex(s, id, kind, false, NULL);
}

static void sim_rollback(sim_t *s, const char *rollback_id, const char *undone)
{
    Kdeploy__V1__RollbackDeployment r = KDEPLOY__V1__ROLLBACK_DEPLOYMENT__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];

    kd_envelope_init(&env, eid, rollback_id, "kdeploy@test");
    r.rollback_of = (char *)undone;
    r.requested_by = "op@test";
    r.reason = "test";
    env.body_case = KD_BODY(ROLLBACK);
    env.rollback = &r;
    sim_request(s, &env);
}

/* A result arrives: applied, then the deployment is driven (as the daemon). */
static void sim_result(sim_t *s, kd_envelope_t *env)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;

    env->ts_ms = s->now;
    kd_model_apply(s->m, env);
    kd_decisions_init(&dec);
    sim_ctx(s, &c);
    kd_core_drive(s->m, &c, env->deploy_id, &dec);
    sim_execute(s, &dec);
}

static void sim_answer_cmd(sim_t *s, const sim_cmd_t *cmd, Kdeploy__V1__StepStatus status,
                           const char *error)
{
    Kdeploy__V1__StepResult r = KDEPLOY__V1__STEP_RESULT__INIT;
    Kdeploy__V1__TrafficResult t = KDEPLOY__V1__TRAFFIC_RESULT__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];

    kd_envelope_init(&env, eid, cmd->deploy_id, "worker@test");
    if (cmd->traffic) {
        t.traffic_id = cmd->step_id;
        t.event = cmd->event;
        t.status = status;
        t.host = cmd->event == KD_EVENT(SwapTraffic) ? "" : cmd->host;
        t.service = cmd->event == KD_EVENT(SwapTraffic) ? cmd->host : "";
        t.error = (char *)(error ? error : "");
        env.body_case = KD_BODY(TRAFFIC_RESULT);
        env.traffic_result = &t;
    } else {
        r.step_id = cmd->step_id;
        r.host = cmd->host;
        r.event = cmd->event;
        r.status = status;
        r.error = (char *)(error ? error : "");
        env.body_case = KD_BODY(STEP_RESULT);
        env.step_result = &r;
    }
    sim_result(s, &env);
}

/* Takes the oldest command out of the unanswered list; false if none. */
static bool sim_take(sim_t *s, sim_cmd_t *out)
{
    if (!s->ncmds)
        return false;
    *out = s->cmds[0];
    memmove(&s->cmds[0], &s->cmds[1], (s->ncmds - 1) * sizeof *s->cmds);
    s->ncmds--;
    return true;
}

/* Decides how a host answers a step: fails when it returns non-NULL. */
typedef const char *(*sim_fail_fn)(const char *deploy_id, const char *host, kd_event_t ev);

/* Answers every command, oldest first, until none is left (or limit). */
static void sim_answer_all(sim_t *s, sim_fail_fn fail, size_t limit)
{
    sim_cmd_t cmd;

    for (size_t n = 0; n < limit && sim_take(s, &cmd); n++) {
        const char *why = fail ? fail(cmd.deploy_id, cmd.host, cmd.event) : NULL;

        sim_answer_cmd(s, &cmd, why ? KDEPLOY__V1__STEP_STATUS__STEP_FAILED
                                    : KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, why);
        sim_free_cmd(&cmd);
    }
}

/* A worker announces itself on the hosts topic. */
static void sim_host_status(sim_t *s, const char *host, bool alive)
{
    Kdeploy__V1__HostStatus hs = KDEPLOY__V1__HOST_STATUS__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];

    kd_envelope_init(&env, eid, "", "worker@test");
    env.ts_ms = s->now;
    hs.host = (char *)host;
    hs.alive = alive;
    env.body_case = KD_BODY(HOST_STATUS);
    env.host_status = &hs;
    kd_model_apply(s->m, &env);
}

static void sim_tick(sim_t *s, int64_t advance_ms)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;

    s->now += advance_ms;
    kd_decisions_init(&dec);
    sim_ctx(s, &c);
    kd_core_tick(s->m, &c, &dec);
    sim_execute(s, &dec);
}

/* ---- reading the trace ---- */

static size_t sim_count(const sim_t *s, const char *needle)
{
    size_t n = 0;

    for (size_t i = 0; i < s->ntrace; i++)
        n += strstr(s->trace[i], needle) != NULL;
    return n;
}

/* Index of the first line at or after from holding needle, or -1. */
static long sim_find(const sim_t *s, const char *needle, size_t from)
{
    for (size_t i = from; i < s->ntrace; i++)
        if (strstr(s->trace[i], needle))
            return (long)i;
    return -1;
}

static Kdeploy__V1__DeploymentStatus sim_status(const sim_t *s, const char *id)
{
    const kd_deploy_t *d = kd_model_find(s->m, id);

    return d ? kd_deploy_status(d) : KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STATUS_UNSPECIFIED;
}

#endif
