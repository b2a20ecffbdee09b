/* Webhooks against a local receiver (libmicrohttpd, in this process): the
 * payloads and their HMAC signatures, retries with the same delivery id,
 * refusals not retried, config errors naming file:line, and a receiver
 * that hangs while hundreds of events are handed over: every call returns
 * while the POST is still held. */
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "event.h"
#include "ids.h"
#include "notify.h"
#include "testutil.h"

#define MAX_SEEN 64

typedef struct seen {
    char event[32], delivery[64], signature[128];
    char *body;
} seen_t;

typedef struct receiver {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    seen_t seen[MAX_SEEN];
    int count;
    int fail_first;        /* answer 503 to this many requests */
    unsigned code;         /* answer this (0: 200) */
    bool hang;             /* hold every request until released */
    bool holding, released;
} receiver_t;

typedef struct upload {
    kd_buf_t body;
} upload_t;

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t outsz)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

    snprintf(out, outsz, "%s", v ? v : "");
}

static unsigned record(receiver_t *r, struct MHD_Connection *c, upload_t *u)
{
    unsigned code = r->code ? r->code : 200;

    pthread_mutex_lock(&r->lock);
    if (r->count < MAX_SEEN) {
        seen_t *s = &r->seen[r->count];

        copy_header(c, "X-Kdeploy-Event", s->event, sizeof s->event);
        copy_header(c, "X-Kdeploy-Delivery", s->delivery, sizeof s->delivery);
        copy_header(c, "X-Kdeploy-Signature-256", s->signature, sizeof s->signature);
        s->body = strdup(kd_buf_str(&u->body));
    }
    if (r->count++ < r->fail_first)
        code = 503;
    if (r->hang) {
        /* Held until the test releases it (or 30 s, so a broken test ends). */
        int64_t until = kd_mono_ms() + 30000;

        r->holding = true;
        pthread_cond_broadcast(&r->cond);
        while (!r->released && kd_mono_ms() < until) {
            pthread_mutex_unlock(&r->lock);
            tu_sleep_ms(10);
            pthread_mutex_lock(&r->lock);
        }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return code;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **req)
{
    receiver_t *r = cls;
    upload_t *u = *req;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned code;

    (void)url, (void)method, (void)version;
    if (!u) {
        u = calloc(1, sizeof *u);
        kd_buf_init(&u->body, 1024 * 1024);
        *req = u;
        return MHD_YES;
    }
    if (*size) {
        kd_buf_append(&u->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    code = record(r, c, u);
    resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    ret = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void done(void *cls, struct MHD_Connection *c, void **req, enum MHD_RequestTerminationCode t)
{
    upload_t *u = *req;

    (void)cls, (void)c, (void)t;
    if (u) {
        kd_buf_free(&u->body);
        free(u);
    }
    *req = NULL;
}

static void receiver_start(receiver_t *r)
{
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                            0, NULL, NULL, handle, r, MHD_OPTION_NOTIFY_COMPLETED, done, r,
                            MHD_OPTION_END);
    CHECK(r->d != NULL);
    r->port = r->d ? MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT)->port : 0;
}

static void receiver_stop(receiver_t *r)
{
    pthread_mutex_lock(&r->lock);
    r->released = true;
    pthread_mutex_unlock(&r->lock);
    if (r->d)
        MHD_stop_daemon(r->d);
    for (int i = 0; i < r->count && i < MAX_SEEN; i++)
        free(r->seen[i].body);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
}

static kd_notify_t *notifier(const char *yaml, const kd_notify_opts_t *o)
{
    kd_config_t *cfg = NULL;
    kd_notify_t *n = NULL;
    char err[512] = "";

    CHECK(kd_config_parse("planner.yml", yaml, strlen(yaml), &cfg, err, sizeof err) == KD_OK);
    CHECK_MSG(cfg && kd_notify_new(cfg, o, &n, err, sizeof err) == KD_OK, "%s", err);
    kd_config_free(cfg);
    return n;
}

/* ---- envelopes as the planner publishes them ---- */

static char *hosts3[] = {"web-01", "web-02", "web-03"};

static void env_base(kd_envelope_t *env, const char *id, kd_body_t body)
{
    static char event_id[KD_UUID_LEN];

    kd_envelope_init(env, event_id, id, "planner@test:1");
    env->body_case = body;
}

static void feed_deployment(kd_notify_t *n, const char *id)
{
    Kdeploy__V1__Revision rev = KDEPLOY__V1__REVISION__INIT;
    Kdeploy__V1__DeploymentSpec spec = KDEPLOY__V1__DEPLOYMENT_SPEC__INIT;
    Kdeploy__V1__DeploymentAccepted acc = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    Kdeploy__V1__HostFinished hf = KDEPLOY__V1__HOST_FINISHED__INIT;
    Kdeploy__V1__DeploymentFailed failed = KDEPLOY__V1__DEPLOYMENT_FAILED__INIT;
    Kdeploy__V1__DeploymentStatusChanged sc = KDEPLOY__V1__DEPLOYMENT_STATUS_CHANGED__INIT;
    Kdeploy__V1__StepDispatched sd = KDEPLOY__V1__STEP_DISPATCHED__INIT;
    kd_envelope_t env;

    rev.label = "2.4";
    spec.application = "shop";
    spec.group = "web";
    spec.revision = &rev;
    acc.spec = &spec;
    acc.hosts = hosts3;
    acc.n_hosts = 3;
    acc.requested_by = "ops@laptop";
    env_base(&env, id, KD_BODY(ACCEPTED));
    env.accepted = &acc;
    kd_notify_event(n, &env);

    env_base(&env, id, KD_BODY(STEP_DISPATCHED));  /* not a webhook event */
    env.step_dispatched = &sd;
    kd_notify_event(n, &env);

    hf.host = "web-02";
    hf.status = KDEPLOY__V1__STEP_STATUS__STEP_FAILED;
    hf.failed_step = KD_EVENT(ValidateService);
    hf.error = "exit code 3 <script>";
    env_base(&env, id, KD_BODY(HOST_FINISHED));
    env.host_finished = &hf;
    kd_notify_event(n, &env);

    failed.reason = "1 host failed (threshold 1)";
    failed.failed_hosts = &hosts3[1];
    failed.n_failed_hosts = 1;
    env_base(&env, id, KD_BODY(FAILED));
    env.failed = &failed;
    kd_notify_event(n, &env);

    sc.status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED;
    env_base(&env, id, KD_BODY(STATUS_CHANGED));
    env.status_changed = &sc;
    kd_notify_event(n, &env);
}

static void test_signature_known_vector(void)
{
    char hex[65];

    /* RFC 4231, test case 2. */
    kd_notify_sign("Jefe", "what do ya want for nothing?", 28, hex);
    CHECK_STREQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_config_errors_name_the_line(void)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"notify:\n  - url: ftp://x/\n", "planner.yml:2: notify.0.url: url must be http"},
        {"notify:\n  - url: http://x/\n    events: [failed, exploded]\n",
         "planner.yml:3: notify.0.events: unknown event 'exploded'"},
        {"notify:\n  - url: http://x/\n    colour: red\n", "planner.yml:3: notify.0.colour: unknown key"},
        {"notify:\n  - secret: s\n", "notify item 1 has no url"},
        {"notify:\n  - url: http://x/\n    secret_file: /nonexistent/s\n",
         "planner.yml:3: notify.0.secret_file: secret_file /nonexistent/s"},
        {"notify: http://x/\n", "planner.yml:1: notify: expected a list"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kd_config_t *cfg = NULL;
        kd_notify_t *n = NULL;
        char err[512] = "";

        CHECK(kd_config_parse("planner.yml", cases[i].yaml, strlen(cases[i].yaml), &cfg, err,
                              sizeof err) == KD_OK);
        CHECK(kd_notify_new(cfg, NULL, &n, err, sizeof err) != KD_OK);
        CHECK(n == NULL);
        CHECK_CONTAINS(err, cases[i].want);
        kd_config_free(cfg);
    }
}

static void check_signed(const seen_t *s, const char *secret)
{
    char hex[65], want[80];

    kd_notify_sign(secret, s->body, strlen(s->body), hex);
    snprintf(want, sizeof want, "sha256=%s", hex);
    CHECK_STREQ(s->signature, want);
}

static void test_events_delivered_and_signed(void)
{
    receiver_t r = {0};
    char yaml[512];
    kd_notify_t *n;
    kd_notify_stats_t st;
    json_t *j;

    receiver_start(&r);
    snprintf(yaml, sizeof yaml,
             "notify:\n"
             "  - url: http://127.0.0.1:%u/all\n"
             "    secret: s3cret\n"
             "  - url: http://127.0.0.1:%u/failures\n"
             "    events: [failed]\n", r.port, r.port);
    n = notifier(yaml, NULL);
    feed_deployment(n, "11111111-2222-3333-4444-555555555555");
    CHECK(kd_notify_flush(n, 20000) == KD_OK);
    kd_notify_stats(n, &st);
    CHECK(st.queued == 5 && st.delivered == 5 && st.failed == 0 && st.pending == 0);
    CHECK(r.count == 5);
    for (int i = 0; i < r.count; i++) {
        const seen_t *s = &r.seen[i];

        CHECK(s->delivery[0] != '\0');
        if (strcmp(s->event, "failed") == 0 && !s->signature[0])
            continue; /* the second receiver: no secret, no signature */
        check_signed(s, "s3cret");
    }
    /* The first receiver gets them in order; one is the host failure. */
    CHECK_STREQ(r.seen[0].event, "accepted");
    j = json_loads(r.seen[1].body, 0, NULL);
    CHECK_STREQ(json_string_value(json_object_get(j, "event")), "host_failed");
    CHECK_STREQ(json_string_value(json_object_get(j, "application")), "shop");
    CHECK_STREQ(json_string_value(json_object_get(j, "host")), "web-02");
    CHECK_STREQ(json_string_value(json_object_get(j, "failed_step")), "ValidateService");
    CHECK_STREQ(json_string_value(json_object_get(j, "text")),
                "kdeploy: shop/web 2.4: host web-02 failed at ValidateService: exit code 3 "
                "&lt;script&gt; (deployment 11111111-2222-3333-4444-555555555555)");
    json_decref(j);
    for (int i = 0, rolled = 0; i < r.count; i++) {
        if (strcmp(r.seen[i].event, "rolled_back") != 0)
            continue;
        CHECK(++rolled == 1);
        CHECK_CONTAINS(r.seen[i].body, "shop/web 2.4 was rolled back");
    }
    kd_notify_free(n);
    receiver_stop(&r);
}

/* A stop is told when it ends ("stopped"), not when it starts. */
static void test_stopped_is_told_once(void)
{
    Kdeploy__V1__DeploymentStatusChanged sc = KDEPLOY__V1__DEPLOYMENT_STATUS_CHANGED__INIT;
    receiver_t r = {0};
    char yaml[256];
    kd_notify_t *n;
    kd_envelope_t env;

    receiver_start(&r);
    snprintf(yaml, sizeof yaml, "notify:\n  - url: http://127.0.0.1:%u/\n"
             "    events: [stopped]\n", r.port);
    n = notifier(yaml, NULL);
    feed_deployment(n, "stop-0001"); /* none of these is a stop */
    sc.requested_by = "ops@laptop";
    sc.reason = "2 hosts done, 1 not started";
    sc.status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPING;
    env_base(&env, "stop-0001", KD_BODY(STATUS_CHANGED));
    env.status_changed = &sc;
    kd_notify_event(n, &env);
    sc.status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED;
    kd_notify_event(n, &env);
    CHECK(kd_notify_flush(n, 20000) == KD_OK);
    CHECK(r.count == 1);
    if (r.count == 1) {
        CHECK_STREQ(r.seen[0].event, "stopped");
        CHECK_CONTAINS(r.seen[0].body, "shop/web 2.4 was stopped: 2 hosts done, 1 not started");
        CHECK_CONTAINS(r.seen[0].body, "\"requested_by\":\"ops@laptop\"");
    }
    kd_notify_free(n);
    receiver_stop(&r);
}

static void test_retried_with_backoff_then_delivered(void)
{
    receiver_t r = {.fail_first = 2};
    kd_notify_opts_t o = {.backoff_ms = 50, .max_attempts = 5};
    char yaml[256];
    kd_notify_t *n;
    kd_notify_stats_t st;

    receiver_start(&r);
    snprintf(yaml, sizeof yaml, "notify:\n  - url: http://127.0.0.1:%u/\n    secret: k\n"
             "    events: [failed]\n", r.port);
    n = notifier(yaml, &o);
    feed_deployment(n, "retry-0001");
    CHECK(kd_notify_flush(n, 20000) == KD_OK);
    kd_notify_stats(n, &st);
    CHECK(r.count == 3);
    CHECK(st.delivered == 1 && st.retried == 2 && st.failed == 0);
    /* Every try is the same delivery: same id, same body, same signature. */
    for (int i = 1; i < r.count; i++) {
        CHECK_STREQ(r.seen[i].delivery, r.seen[0].delivery);
        CHECK_STREQ(r.seen[i].body, r.seen[0].body);
        check_signed(&r.seen[i], "k");
    }
    kd_notify_free(n);
    receiver_stop(&r);
}

static void test_refusal_is_not_retried_and_tries_are_bounded(void)
{
    receiver_t refusing = {.code = 400}, down = {.code = 500};
    kd_notify_opts_t o = {.backoff_ms = 20, .max_attempts = 3};
    char yaml[256];
    kd_notify_t *n;
    kd_notify_stats_t st;

    receiver_start(&refusing);
    receiver_start(&down);
    snprintf(yaml, sizeof yaml, "notify:\n  - {url: 'http://127.0.0.1:%u/', events: [failed]}\n"
             "  - {url: 'http://127.0.0.1:%u/', events: [failed]}\n", refusing.port, down.port);
    n = notifier(yaml, &o);
    feed_deployment(n, "refused-0001");
    CHECK(kd_notify_flush(n, 20000) == KD_OK);
    kd_notify_stats(n, &st);
    CHECK(refusing.count == 1);
    CHECK(down.count == 3);
    CHECK(st.failed == 2 && st.retried == 2 && st.delivered == 0);
    kd_notify_free(n);
    receiver_stop(&refusing);
    receiver_stop(&down);
}

static void test_hung_receiver_never_holds_the_caller(void)
{
    receiver_t r = {.hang = true};
    kd_metrics_t *reg = kd_metrics_new();
    kd_notify_opts_t o = {.queue_max = 50, .timeout_ms = 60000, .metrics = reg};
    char yaml[256], id[64];
    kd_notify_t *n;
    kd_notify_stats_t st;
    int64_t started;
    bool still_held;

    receiver_start(&r);
    snprintf(yaml, sizeof yaml, "notify:\n  - url: http://127.0.0.1:%u/\n", r.port);
    n = notifier(yaml, &o);
    feed_deployment(n, "hang-0000");
    pthread_mutex_lock(&r.lock);
    while (!r.holding)
        pthread_cond_wait(&r.cond, &r.lock);
    pthread_mutex_unlock(&r.lock);
    /* The delivery thread is inside a POST that will not end: the planner
     * goes on handing events over, and every call returns. */
    started = kd_mono_ms();
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof id, "hang-%04d", i + 1);
        feed_deployment(n, id);
    }
    pthread_mutex_lock(&r.lock);
    still_held = r.holding && !r.released && r.count == 1;
    pthread_mutex_unlock(&r.lock);
    fprintf(stderr, "1600 events handed over in %lld ms while the receiver held its request\n",
            (long long)(kd_mono_ms() - started));
    CHECK(still_held);
    kd_notify_stats(n, &st);
    CHECK(st.pending == 50);                     /* the queue's bound */
    CHECK(st.queued + st.dropped == 4 + 400 * 4);
    CHECK(kd_metric_value(kd_metrics_counter(reg, "kdeploy_notify_deliveries_total", "", "result"),
                          KD_LV("dropped")) == (double)st.dropped);
    CHECK(kd_notify_flush(n, 100) == KD_ETIMEDOUT);
    /* Stopping cuts the held POST short instead of waiting a minute for it. */
    kd_notify_free(n);
    receiver_stop(&r);
    kd_metrics_free(reg);
}

static void test_dead_receiver_is_retried_in_the_background(void)
{
    kd_notify_opts_t o = {.backoff_ms = 10, .max_attempts = 3, .timeout_ms = 2000};
    char yaml[256];
    kd_notify_t *n;
    kd_notify_stats_t st;
    int port;

    /* A port nobody listens on: bind, note, close. */
    {
        receiver_t r = {0};

        receiver_start(&r);
        port = (int)r.port;
        receiver_stop(&r);
    }
    snprintf(yaml, sizeof yaml, "notify:\n  - url: http://127.0.0.1:%d/\n    events: [failed]\n",
             port);
    n = notifier(yaml, &o);
    feed_deployment(n, "dead-0001");
    CHECK(kd_notify_flush(n, 20000) == KD_OK);
    kd_notify_stats(n, &st);
    CHECK(st.failed == 1 && st.retried == 2 && st.delivered == 0);
    kd_notify_free(n);
}

static void test_no_receivers_sends_nothing(void)
{
    kd_notify_t *n = NULL;
    kd_notify_stats_t st;
    char err[256];

    CHECK(kd_notify_new(NULL, NULL, &n, err, sizeof err) == KD_OK);
    feed_deployment(n, "none-0001");
    kd_notify_stats(n, &st);
    CHECK(st.queued == 0 && st.pending == 0);
    kd_notify_free(n);
    kd_notify_event(NULL, NULL);
}

int main(void)
{
    RUN(test_signature_known_vector);
    RUN(test_config_errors_name_the_line);
    RUN(test_events_delivered_and_signed);
    RUN(test_stopped_is_told_once);
    RUN(test_retried_with_backoff_then_delivered);
    RUN(test_refusal_is_not_retried_and_tries_are_bounded);
    RUN(test_hung_receiver_never_holds_the_caller);
    RUN(test_dead_receiver_is_retried_in_the_background);
    RUN(test_no_receivers_sends_nothing);
    return check_summary();
}
