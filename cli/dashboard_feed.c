#include "dashboard_feed.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "ids.h"
#include "log.h"

struct kd_feed {
    const kd_bus_conf_t *conf;
    size_t max_bytes;
    kd_deploy_metrics_t *dm;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t grew;
    bool stop, joined;
    /* The log: events first_seq .. first_seq + count - 1, oldest at head. */
    char **events;
    size_t head, count, cap, bytes;
    uint64_t first_seq;
    int64_t epoch;
};

static const char *step_status_word(Kdeploy__V1__StepStatus st)
{
    switch (st) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED: return "succeeded";
    case KDEPLOY__V1__STEP_STATUS__STEP_FAILED: return "failed";
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED: return "skipped";
    case KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT: return "timed_out";
    default: return "unknown";
    }
}

static const char *deploy_status_word(Kdeploy__V1__DeploymentStatus st)
{
    switch (st) {
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_PENDING: return "pending";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_DEPLOYING: return "deploying";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_SUCCEEDED: return "succeeded";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_FAILED: return "failed";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLING_BACK: return "rolling_back";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED: return "rollback_succeeded";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_FAILED: return "rollback_failed";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED: return "stopped";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_PAUSED: return "paused";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPING: return "stopping";
    default: return "unknown";
    }
}

static void set_s(json_t *o, const char *key, const char *v)
{
    if (v && *v)
        json_object_set_new(o, key, json_string(v));
}

static void set_i(json_t *o, const char *key, json_int_t v)
{
    json_object_set_new(o, key, json_integer(v));
}

static json_t *strings(char **items, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

static void accepted(json_t *o, const Kdeploy__V1__DeploymentAccepted *a)
{
    const Kdeploy__V1__DeploymentSpec *s = a->spec;

    if (s) {
        set_s(o, "application", s->application);
        set_s(o, "group", s->group);
        set_s(o, "strategy", s->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN ? "blue_green"
                                                                              : "rolling");
        if (s->revision) {
            set_s(o, "label", s->revision->label);
            set_s(o, "url", s->revision->url);
        }
    }
    json_object_set_new(o, "hosts", strings(a->hosts, a->n_hosts));
    set_s(o, "rollback_of", a->rollback_of);
    set_s(o, "requested_by", a->requested_by);
    set_s(o, "status", deploy_status_word(a->status));
}

/* Deployment-level events; false if the page does not use the body. */
static bool deployment_fields(json_t *o, const kd_envelope_t *env)
{
    switch (env->body_case) {
    case KD_BODY(ACCEPTED): accepted(o, env->accepted); return true;
    case KD_BODY(REJECTED): set_s(o, "reason", env->rejected->reason); return true;
    case KD_BODY(DEPLOYMENT_HOSTS):
        /* The host list, in slices after `accepted`; the standby group is
         * not deployed to, so not shown. */
        if (env->deployment_hosts->standby)
            return false;
        json_object_set_new(o, "hosts", strings(env->deployment_hosts->hosts,
                                                env->deployment_hosts->n_hosts));
        return true;
    case KD_BODY(HOST_STARTED): set_s(o, "host", env->host_started->host); return true;
    case KD_BODY(HOST_FINISHED):
        set_s(o, "host", env->host_finished->host);
        set_s(o, "status", step_status_word(env->host_finished->status));
        if (env->host_finished->failed_step)
            set_s(o, "failed_step", kd_event_name(env->host_finished->failed_step));
        set_s(o, "error", env->host_finished->error);
        set_i(o, "duration_ms", env->host_finished->duration_ms);
        return true;
    case KD_BODY(SUCCEEDED): set_i(o, "duration_ms", env->succeeded->duration_ms); return true;
    case KD_BODY(FAILED):
        set_s(o, "reason", env->failed->reason);
        json_object_set_new(o, "failed_hosts",
                            strings(env->failed->failed_hosts, env->failed->n_failed_hosts));
        return true;
    case KD_BODY(ROLLBACK_STARTED):
        set_s(o, "rollback_of", env->rollback_started->rollback_of);
        set_s(o, "rollback_id", env->rollback_started->rollback_deploy_id);
        set_s(o, "reason", env->rollback_started->reason);
        return true;
    case KD_BODY(STATUS_CHANGED):
        set_s(o, "status", deploy_status_word(env->status_changed->status));
        set_s(o, "reason", env->status_changed->reason);
        return true;
    case KD_BODY(STEP_DISPATCHED):
        set_s(o, "host", env->step_dispatched->host);
        set_s(o, "step", kd_event_name(env->step_dispatched->event));
        set_i(o, "attempt", env->step_dispatched->attempt);
        return true;
    default: return false;
    }
}

/* Results of steps and traffic changes, and heartbeats. */
static bool result_fields(json_t *o, const kd_envelope_t *env)
{
    const Kdeploy__V1__StepResult *r = env->step_result;
    const Kdeploy__V1__TrafficResult *t = env->traffic_result;

    switch (env->body_case) {
    case KD_BODY(STEP_RESULT):
        set_s(o, "host", r->host);
        set_s(o, "step", kd_event_name(r->event));
        set_s(o, "status", step_status_word(r->status));
        set_i(o, "started_ms", r->started_ms);
        set_i(o, "duration_ms", r->duration_ms);
        set_i(o, "exit_code", r->exit_code);
        set_s(o, "output_tail", r->output_tail);
        set_s(o, "error", r->error);
        if (r->replayed)
            json_object_set_new(o, "replayed", json_true());
        return true;
    case KD_BODY(PROGRESS):
        set_s(o, "host", env->progress->host);
        set_s(o, "step", kd_event_name(env->progress->event));
        set_i(o, "elapsed_ms", env->progress->elapsed_ms);
        set_s(o, "output_tail", env->progress->output_tail);
        return true;
    case KD_BODY(TRAFFIC_RESULT):
        set_s(o, "host", *t->host ? t->host : t->service);
        set_s(o, "step", kd_event_name(t->event));
        set_s(o, "status", step_status_word(t->status));
        set_i(o, "duration_ms", t->duration_ms);
        set_s(o, "error", t->error);
        return true;
    default: return false;
    }
}

char *kd_feed_event_json(const kd_envelope_t *env, uint64_t seq)
{
    json_t *o = json_pack("{s:I, s:I, s:s, s:s}", "seq", (json_int_t)seq, "ts",
                          (json_int_t)env->ts_ms, "id", env->deploy_id ? env->deploy_id : "",
                          "type", kd_envelope_type(env));
    char *text = NULL;

    if (o && (deployment_fields(o, env) || result_fields(o, env)))
        text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

/* ---- the log ---- */

static void drop_oldest(kd_feed_t *f)
{
    char *e = f->events[f->head];

    f->bytes -= strlen(e);
    free(e);
    f->events[f->head] = NULL;
    f->head = (f->head + 1) % f->cap;
    f->count--;
    f->first_seq++;
}

static bool grow(kd_feed_t *f)
{
    size_t cap = f->cap ? f->cap * 2 : 1024;
    char **ev = calloc(cap, sizeof *ev);

    if (!ev)
        return false;
    for (size_t i = 0; i < f->count; i++)
        ev[i] = f->events[(f->head + i) % f->cap];
    free(f->events);
    f->events = ev;
    f->cap = cap;
    f->head = 0;
    return true;
}

/* Takes text (a JSON line) into the log. Called locked. */
static void append(kd_feed_t *f, char *text)
{
    size_t len = strlen(text);

    while (f->count && f->bytes + len > f->max_bytes)
        drop_oldest(f);
    if (f->count == f->cap && !grow(f)) {
        free(text);
        return;
    }
    f->events[(f->head + f->count) % f->cap] = text;
    f->count++;
    f->bytes += len;
    pthread_cond_broadcast(&f->grew);
}

static uint64_t next_seq(const kd_feed_t *f)
{
    return f->first_seq + f->count;
}

static void add_envelope(kd_feed_t *f, const kd_envelope_t *env)
{
    char *text;

    pthread_mutex_lock(&f->lock);
    if ((text = kd_feed_event_json(env, next_seq(f))))
        append(f, text);
    pthread_mutex_unlock(&f->lock);
}

/* Marks the end of the history: the page shows "live" from there. */
static void add_synced(kd_feed_t *f)
{
    char *text;

    pthread_mutex_lock(&f->lock);
    if (asprintf(&text, "{\"seq\":%llu,\"ts\":%lld,\"type\":\"synced\"}",
                 (unsigned long long)next_seq(f), (long long)kd_now_ms()) >= 0)
        append(f, text);
    pthread_mutex_unlock(&f->lock);
}

static void *read_loop(void *arg)
{
    kd_feed_t *f = arg;
    kd_topic_t topics[] = {KD_TOPIC_DEPLOYMENTS, KD_TOPIC_RESULTS};
    kd_consumer_opts_t o = {.topics = topics, .topic_count = 2, .read_all = true};
    kd_consumer_t *c = NULL;
    char err[1024];
    bool synced = false;

    if (kd_consumer_new(f->conf, &o, &c, err, sizeof err) != KD_OK) {
        kd_error("dashboard: %s", err);
        return NULL;
    }
    for (;;) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;

        pthread_mutex_lock(&f->lock);
        if (f->stop) {
            pthread_mutex_unlock(&f->lock);
            break;
        }
        pthread_mutex_unlock(&f->lock);
        if (kd_consumer_poll(c, 200, &m, err, sizeof err) != KD_OK) {
            kd_error("dashboard: %s", err);
            break;
        }
        /* Hostile or foreign messages are skipped, never shown half-read. */
        if (m && kd_message_decode(c, m, &env, NULL, 0) == KD_OK) {
            add_envelope(f, env);
            kd_deploy_metrics_event(f->dm, env, !synced);
        }
        kd_envelope_free(env);
        kd_message_free(m);
        if (!synced && kd_consumer_at_end(c)) {
            synced = true;
            add_synced(f);
        }
    }
    kd_consumer_free(c);
    return NULL;
}

kd_status_t kd_feed_start(const kd_bus_conf_t *conf, size_t max_bytes, kd_deploy_metrics_t *dm,
                          kd_feed_t **out, char *err, size_t errsz)
{
    kd_feed_t *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    f->conf = conf;
    f->max_bytes = max_bytes;
    f->dm = dm;
    f->first_seq = 1;
    f->epoch = kd_now_ms();
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->grew, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&f->thread, NULL, read_loop, f) != 0) {
        pthread_cond_destroy(&f->grew);
        pthread_mutex_destroy(&f->lock);
        free(f);
        return kd_err(err, errsz, KD_ENOMEM, "cannot start the reader thread");
    }
    *out = f;
    return KD_OK;
}

void kd_feed_stop(kd_feed_t *f)
{
    bool join;

    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    join = !f->joined;
    f->joined = true;
    pthread_cond_broadcast(&f->grew);
    pthread_mutex_unlock(&f->lock);
    if (join)
        pthread_join(f->thread, NULL);
}

void kd_feed_free(kd_feed_t *f)
{
    if (!f)
        return;
    kd_feed_stop(f);
    while (f->count)
        drop_oldest(f);
    free(f->events);
    pthread_cond_destroy(&f->grew);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void wait_for_more(kd_feed_t *f, uint64_t next, int wait_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (!f->stop && next >= next_seq(f))
        if (pthread_cond_timedwait(&f->grew, &f->lock, &ts) != 0)
            break;
}

int64_t kd_feed_epoch(const kd_feed_t *f)
{
    return f->epoch;
}

int kd_feed_read(kd_feed_t *f, uint64_t *next, kd_buf_t *out, size_t max, int wait_ms)
{
    int n = 0;

    pthread_mutex_lock(&f->lock);
    wait_for_more(f, *next, wait_ms);
    if (f->stop) {
        pthread_mutex_unlock(&f->lock);
        return -1;
    }
    if (*next < f->first_seq)
        *next = f->first_seq;
    while (*next < next_seq(f) && (n == 0 || out->len < max)) {
        const char *e = f->events[(f->head + (*next - f->first_seq)) % f->cap];

        if (kd_buf_printf(out, "id: %lld.%llu\ndata: %s\n\n", (long long)f->epoch,
                          (unsigned long long)*next, e) != KD_OK)
            break;
        (*next)++;
        n++;
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}
