#include "notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "event.h"
#include "ids.h"
#include "log.h"

#define MAX_TARGETS 32
#define REMEMBERED 512       /* deployments whose names later texts use */
#define SECRET_MAX 4096

typedef enum {
    EV_ACCEPTED = 1 << 0,
    EV_SUCCEEDED = 1 << 1,
    EV_FAILED = 1 << 2,
    EV_ROLLED_BACK = 1 << 3,
    EV_HOST_FAILED = 1 << 4,
    EV_STOPPED = 1 << 5,
    EV_ALL = (1 << 6) - 1
} ev_bit_t;

static const struct {
    const char *name;
    ev_bit_t bit;
} event_names[] = {
    {"accepted", EV_ACCEPTED}, {"succeeded", EV_SUCCEEDED}, {"failed", EV_FAILED},
    {"rolled_back", EV_ROLLED_BACK}, {"host_failed", EV_HOST_FAILED}, {"stopped", EV_STOPPED},
    {"all", EV_ALL},
};

typedef struct target {
    char *url;
    char *secret;   /* NULL: unsigned */
    unsigned events;
} target_t;

/* One POST of one event to one receiver, until delivered or given up. */
typedef struct job {
    const target_t *target;
    char *body;
    char event[16];
    char delivery[KD_UUID_LEN];
    unsigned attempt;       /* tries made */
    int64_t due_ms;         /* monotonic */
    struct job *next;
} job_t;

/* What the texts say about a deployment. */
typedef struct known {
    char id[64], app[128], group[128], label[64], rollback_of[64];
} known_t;

struct kd_notify {
    kd_notify_opts_t o;
    target_t targets[MAX_TARGETS];
    size_t target_count;
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* new job, or stop */
    pthread_cond_t idle;      /* pending went to 0 */
    pthread_t thread;
    bool started;
    atomic_int stop;          /* read by the POST's progress callback */
    job_t *queue;             /* sorted by due_ms */
    size_t queued_now;
    bool in_flight;
    kd_notify_stats_t stats;
    known_t known[REMEMBERED];
    size_t known_next;
    kd_metric_t *m_deliveries, *m_queue;
};

/* ---- configuration ---- */

static kd_status_t read_secret(const char *path, char **out, char *err, size_t errsz)
{
    kd_buf_t b = KD_BUF_INIT(SECRET_MAX);
    char chunk[512];
    size_t n;
    kd_status_t st = KD_OK;
    FILE *f = fopen(path, "r");

    if (!f)
        return kd_err(err, errsz, KD_EIO, "secret_file %s: %s", path, strerror(errno));
    while (st == KD_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        st = kd_buf_append(&b, chunk, n);
    fclose(f);
    /* A trailing newline is the editor's, not the secret's. */
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    if (st != KD_OK || b.len == 0) {
        kd_buf_free(&b);
        return kd_err(err, errsz, KD_EINVAL, "secret_file %s: %s", path,
                      st != KD_OK ? "too large" : "empty");
    }
    *out = kd_buf_steal(&b);
    return KD_OK;
}

static int event_bit(const char *name)
{
    for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++)
        if (strcmp(event_names[i].name, name) == 0)
            return (int)event_names[i].bit;
    return -1;
}

/* One "notify.<i>.<field>" entry. */
static kd_status_t apply_field(target_t *t, const char *field, const char *value, char *why,
                               size_t whysz)
{
    int bit;

    if (strcmp(field, "url") == 0) {
        if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
            return kd_err(why, whysz, KD_EINVAL, "url must be http:// or https://");
        free(t->url);
        return (t->url = strdup(value)) ? KD_OK : KD_ENOMEM;
    }
    if (strcmp(field, "secret") == 0 || strcmp(field, "secret_file") == 0) {
        free(t->secret);
        t->secret = NULL;
        if (field[6] == '_')
            return read_secret(value, &t->secret, why, whysz);
        if (!*value)
            return kd_err(why, whysz, KD_EINVAL, "empty secret");
        return (t->secret = strdup(value)) ? KD_OK : KD_ENOMEM;
    }
    if (strcmp(field, "events") == 0) {
        if ((bit = event_bit(value)) < 0)
            return kd_err(why, whysz, KD_EINVAL, "unknown event '%s' (accepted, succeeded, "
                          "failed, rolled_back, host_failed or all)", value);
        t->events |= (unsigned)bit;
        return KD_OK;
    }
    return kd_err(why, whysz, KD_EINVAL, "unknown key (url, secret, secret_file, events)");
}

static kd_status_t load_targets(kd_notify_t *n, const kd_config_t *cfg, char *err, size_t errsz)
{
    size_t count;
    const kd_config_entry_t *e = kd_config_entries(cfg, &count);

    for (size_t i = 0; i < count; i++) {
        char *end, why[512];
        unsigned long idx;
        kd_status_t st;

        if (strncmp(e[i].key, "notify", 6) != 0 || (e[i].key[6] && e[i].key[6] != '.'))
            continue;
        idx = strtoul(e[i].key + 7, &end, 10);
        if (!e[i].key[6] || end == e[i].key + 7 || *end != '.')
            return kd_err(err, errsz, KD_EINVAL, "%s:%d: notify: expected a list of "
                          "{url, secret, events}", kd_config_name(cfg), e[i].line);
        if (idx >= MAX_TARGETS)
            return kd_err(err, errsz, KD_EINVAL, "%s:%d: notify: at most %d receivers",
                          kd_config_name(cfg), e[i].line, MAX_TARGETS);
        if (idx >= n->target_count)
            n->target_count = idx + 1;
        if ((st = apply_field(&n->targets[idx], end + 1, e[i].value, why, sizeof why)) != KD_OK)
            return kd_err(err, errsz, st, "%s:%d: %s: %s", kd_config_name(cfg), e[i].line,
                          e[i].key, st == KD_ENOMEM ? "out of memory" : why);
    }
    for (size_t i = 0; i < n->target_count; i++) {
        if (!n->targets[i].url)
            return kd_err(err, errsz, KD_EINVAL, "%s: notify item %zu has no url",
                          kd_config_name(cfg), i + 1);
        if (!n->targets[i].events)
            n->targets[i].events = EV_ALL;
    }
    return KD_OK;
}

/* ---- what the events say ---- */

static known_t *known_find(kd_notify_t *n, const char *id)
{
    for (size_t i = 0; i < REMEMBERED; i++)
        if (n->known[i].id[0] && strcmp(n->known[i].id, id) == 0)
            return &n->known[i];
    return NULL;
}

static void remember(kd_notify_t *n, const kd_envelope_t *env)
{
    const Kdeploy__V1__DeploymentAccepted *a = env->accepted;
    const Kdeploy__V1__DeploymentSpec *s = a->spec;
    known_t *k;

    if (!(k = known_find(n, env->deploy_id))) {
        k = &n->known[n->known_next];  /* the oldest goes */
        n->known_next = (n->known_next + 1) % REMEMBERED;
    }
    snprintf(k->id, sizeof k->id, "%s", env->deploy_id);
    snprintf(k->app, sizeof k->app, "%s", s && s->application ? s->application : "");
    snprintf(k->group, sizeof k->group, "%s", s && s->group ? s->group : "");
    snprintf(k->label, sizeof k->label, "%s",
             s && s->revision && s->revision->label ? s->revision->label : "");
    snprintf(k->rollback_of, sizeof k->rollback_of, "%s", a->rollback_of ? a->rollback_of : "");
}

static const char *status_word(Kdeploy__V1__StepStatus st)
{
    switch (st) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED: return "succeeded";
    case KDEPLOY__V1__STEP_STATUS__STEP_FAILED: return "failed";
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED: return "skipped";
    case KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT: return "timed_out";
    default: return "unknown";
    }
}

/* Which webhook event an envelope is, if any. */
static ev_bit_t classify(const kd_envelope_t *env)
{
    switch (env->body_case) {
    case KD_BODY(ACCEPTED): return EV_ACCEPTED;
    case KD_BODY(SUCCEEDED): return EV_SUCCEEDED;
    case KD_BODY(FAILED): return EV_FAILED;
    case KD_BODY(HOST_FINISHED):
        return env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_FAILED ||
                       env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT
                   ? EV_HOST_FAILED : 0;
    case KD_BODY(STATUS_CHANGED):
        switch (env->status_changed->status) {
        case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED:
        case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_FAILED: return EV_ROLLED_BACK;
        /* The end of a stop, not its start ("stopping"): what an operator
         * is paged for is where the deployment was left. */
        case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED: return EV_STOPPED;
        default: return 0;
        }
    default: return 0;
    }
}

static const char *bit_name(ev_bit_t bit)
{
    for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++)
        if (event_names[i].bit == bit)
            return event_names[i].name;
    return "?";
}

static json_t *str_array(char **items, size_t count)
{
    json_t *a = json_array();

    for (size_t i = 0; i < count; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

/* "shop/web 2.4" or "deployment 1a2b3c4d" when it was never seen. */
static void subject(const known_t *k, const char *id, char *out, size_t outsz)
{
    if (k && k->app[0])
        snprintf(out, outsz, "%s/%s%s%s", k->app, k->group, k->label[0] ? " " : "", k->label);
    else
        snprintf(out, outsz, "deployment %.8s", id);
}

/* The event's own fields, and the sentence a chat channel shows. */
static void describe(json_t *o, const kd_envelope_t *env, ev_bit_t ev, const char *who,
                     kd_buf_t *text)
{
    switch (ev) {
    case EV_ACCEPTED:
    {
        /* Large deployments send their hosts in slices after this event:
         * the payload gives the count (and the names when they are inline). */
        size_t n = env->accepted->n_hosts ? env->accepted->n_hosts : env->accepted->hosts_total;

        json_object_set_new(o, "hosts", str_array(env->accepted->hosts, env->accepted->n_hosts));
        json_object_set_new(o, "hosts_total", json_integer((json_int_t)n));
        json_object_set_new(o, "requested_by", json_string(env->accepted->requested_by));
        kd_buf_printf(text, "%s%s accepted for %zu host(s)", who,
                      *env->accepted->rollback_of ? " (a rollback)" : "", n);
    }
        break;
    case EV_SUCCEEDED:
        json_object_set_new(o, "hosts_succeeded", json_integer(env->succeeded->hosts_succeeded));
        json_object_set_new(o, "duration_ms", json_integer(env->succeeded->duration_ms));
        kd_buf_printf(text, "%s succeeded on %u host(s) in %.1f s", who,
                      env->succeeded->hosts_succeeded, env->succeeded->duration_ms / 1000.0);
        break;
    case EV_FAILED:
        json_object_set_new(o, "reason", json_string(env->failed->reason));
        json_object_set_new(o, "failed_hosts", str_array(env->failed->failed_hosts,
                                                         env->failed->n_failed_hosts));
        json_object_set_new(o, "duration_ms", json_integer(env->failed->duration_ms));
        kd_buf_printf(text, "%s FAILED: %s", who, env->failed->reason);
        break;
    case EV_HOST_FAILED:
        json_object_set_new(o, "host", json_string(env->host_finished->host));
        json_object_set_new(o, "status", json_string(status_word(env->host_finished->status)));
        json_object_set_new(o, "failed_step",
                            json_string(kd_event_name(env->host_finished->failed_step)));
        json_object_set_new(o, "error", json_string(env->host_finished->error));
        kd_buf_printf(text, "%s: host %s failed at %s: %s", who, env->host_finished->host,
                      kd_event_name(env->host_finished->failed_step), env->host_finished->error);
        break;
    case EV_STOPPED:
        json_object_set_new(o, "reason", json_string(env->status_changed->reason));
        json_object_set_new(o, "requested_by", json_string(env->status_changed->requested_by));
        kd_buf_printf(text, "%s was stopped", who);
        if (*env->status_changed->reason)
            kd_buf_printf(text, ": %s", env->status_changed->reason);
        break;
    case EV_ROLLED_BACK: {
        bool ok = env->status_changed->status ==
                  KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED;

        json_object_set_new(o, "status", json_string(ok ? "rollback_succeeded" : "rollback_failed"));
        json_object_set_new(o, "reason", json_string(env->status_changed->reason));
        kd_buf_printf(text, "%s %s", who, ok ? "was rolled back" : "could NOT be rolled back");
        if (*env->status_changed->reason)
            kd_buf_printf(text, ": %s", env->status_changed->reason);
        break;
    }
    default:
        break;
    }
}

/* Slack reads &, < and > as markup: they are escaped in the text. */
static json_t *slack_text(const char *s)
{
    kd_buf_t b = KD_BUF_INIT(64 * 1024);
    json_t *j;

    kd_buf_appends(&b, "kdeploy: ");
    for (; *s; s++) {
        if (*s == '&')
            kd_buf_appends(&b, "&amp;");
        else if (*s == '<')
            kd_buf_appends(&b, "&lt;");
        else if (*s == '>')
            kd_buf_appends(&b, "&gt;");
        else
            kd_buf_append(&b, s, 1);
    }
    j = json_string(kd_buf_str(&b));
    kd_buf_free(&b);
    return j;
}

/* The JSON body for env (a malloc'd string), or NULL. Called locked. */
static char *payload(kd_notify_t *n, const kd_envelope_t *env, ev_bit_t ev)
{
    const known_t *k = known_find(n, env->deploy_id);
    kd_buf_t text = KD_BUF_INIT(32 * 1024);
    char who[320], *body;
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "event", bit_name(ev), "deploy_id",
                          env->deploy_id, "ts_ms", (json_int_t)env->ts_ms, "event_id",
                          env->event_id);

    if (!o)
        return NULL;
    subject(k, env->deploy_id, who, sizeof who);
    if (k) {
        json_object_set_new(o, "application", json_string(k->app));
        json_object_set_new(o, "group", json_string(k->group));
        json_object_set_new(o, "revision_label", json_string(k->label));
        if (k->rollback_of[0])
            json_object_set_new(o, "rollback_of", json_string(k->rollback_of));
    }
    describe(o, env, ev, who, &text);
    kd_buf_printf(&text, " (deployment %s)", env->deploy_id);
    json_object_set_new(o, "text", slack_text(kd_buf_str(&text)));
    kd_buf_free(&text);
    body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return body;
}

/* ---- the queue (called locked) ---- */

static void enqueue(kd_notify_t *n, job_t *j)
{
    job_t **p = &n->queue;

    while (*p && (*p)->due_ms <= j->due_ms)
        p = &(*p)->next;
    j->next = *p;
    *p = j;
    n->queued_now++;
    kd_metric_set(n->m_queue, NULL, (double)n->queued_now);
}

static void job_free(job_t *j)
{
    if (j) {
        free(j->body);
        free(j);
    }
}

static void count(kd_notify_t *n, const char *result, unsigned long *field)
{
    (*field)++;
    kd_metric_inc(n->m_deliveries, KD_LV(result));
}

static void queue_event(kd_notify_t *n, const kd_envelope_t *env, ev_bit_t ev)
{
    char *body = NULL;

    for (size_t i = 0; i < n->target_count; i++) {
        job_t *j;

        if (!(n->targets[i].events & ev))
            continue;
        if (!body && !(body = payload(n, env, ev)))
            return;
        /* Bounded: a receiver down for hours must not eat the planner's memory. */
        if (n->queued_now + (n->in_flight ? 1 : 0) >= n->o.queue_max) {
            /* One line per hundred: a dead receiver must not flood the log. */
            if (n->stats.dropped % 100 == 0)
                kd_warn("webhook %s: %s of %s dropped: %zu deliveries already waiting "
                        "(%lu dropped so far)", n->targets[i].url, bit_name(ev), env->deploy_id,
                        n->queued_now, n->stats.dropped + 1);
            count(n, "dropped", &n->stats.dropped);
            continue;
        }
        if (!(j = calloc(1, sizeof *j)) || !(j->body = strdup(body))) {
            free(j);
            count(n, "dropped", &n->stats.dropped);
            continue;
        }
        j->target = &n->targets[i];
        snprintf(j->event, sizeof j->event, "%s", bit_name(ev));
        kd_uuid_new(j->delivery);
        j->due_ms = kd_mono_ms();
        enqueue(n, j);
        n->stats.queued++;
    }
    free(body);
    pthread_cond_signal(&n->wake);
}

void kd_notify_learn(kd_notify_t *n, const kd_envelope_t *env)
{
    if (!n || !env || env->body_case != KD_BODY(ACCEPTED) || !env->deploy_id)
        return;
    pthread_mutex_lock(&n->lock);
    remember(n, env);
    pthread_mutex_unlock(&n->lock);
}

void kd_notify_event(kd_notify_t *n, const kd_envelope_t *env)
{
    ev_bit_t ev;

    if (!n || !env || !env->deploy_id || !(ev = classify(env)))
        return;
    pthread_mutex_lock(&n->lock);
    if (ev == EV_ACCEPTED)
        remember(n, env);
    if (n->target_count)
        queue_event(n, env, ev);
    pthread_mutex_unlock(&n->lock);
}

/* ---- delivery ---- */

void kd_notify_sign(const char *secret, const void *body, size_t len, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;

    HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &maclen);
    for (unsigned i = 0; i < maclen && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    hex[64] = '\0';
}

static size_t discard(char *data, size_t size, size_t nmemb, void *opaque)
{
    (void)data;
    (void)opaque;
    return size * nmemb;
}

/* Cuts an in-flight POST short when the notifier stops. */
static int abort_check(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return ((kd_notify_t *)opaque)->stop ? 1 : 0;
}

/* One try. Returns 1 delivered, 0 worth another try, -1 refused. */
static int post(kd_notify_t *n, CURL *curl, const job_t *j, char *why, size_t whysz)
{
    struct curl_slist *h = NULL;
    char line[256], hex[65];
    long code = 0;
    CURLcode rc;

    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: kdeploy/" KD_VERSION);
    snprintf(line, sizeof line, "X-Kdeploy-Event: %s", j->event);
    h = curl_slist_append(h, line);
    snprintf(line, sizeof line, "X-Kdeploy-Delivery: %s", j->delivery);
    h = curl_slist_append(h, line);
    if (j->target->secret) {
        kd_notify_sign(j->target->secret, j->body, strlen(j->body), hex);
        snprintf(line, sizeof line, "X-Kdeploy-Signature-256: sha256=%s", hex);
        h = curl_slist_append(h, line);
    }
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, j->target->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)n->o.timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)n->o.timeout_ms);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, abort_check);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, n);
    rc = curl_easy_perform(curl);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(why, whysz, "%s", curl_easy_strerror(rc));
        return 0;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    snprintf(why, whysz, "HTTP %ld", code);
    if (code >= 200 && code < 300)
        return 1;
    return code == 408 || code == 429 || code >= 500 ? 0 : -1;
}

static int64_t backoff(const kd_notify_t *n, unsigned attempt)
{
    int64_t wait = n->o.backoff_ms;

    for (unsigned i = 1; i < attempt && wait < n->o.max_backoff_ms; i++)
        wait *= 2;
    return wait < n->o.max_backoff_ms ? wait : n->o.max_backoff_ms;
}

/* After a try (called locked): done, or back in the queue for later. */
static void settle(kd_notify_t *n, job_t *j, int outcome, const char *why)
{
    if (outcome > 0) {
        count(n, "delivered", &n->stats.delivered);
    } else if (outcome == 0 && j->attempt < n->o.max_attempts && !n->stop) {
        count(n, "retried", &n->stats.retried);
        kd_info("webhook %s: %s of %s: %s; trying again in %lld ms", j->target->url, j->event,
                j->delivery, why, (long long)backoff(n, j->attempt));
        j->due_ms = kd_mono_ms() + backoff(n, j->attempt);
        enqueue(n, j);
        return;
    } else {
        count(n, "failed", &n->stats.failed);
        kd_warn("webhook %s: %s of delivery %s given up after %u tries: %s", j->target->url,
                j->event, j->delivery, j->attempt, why);
    }
    job_free(j);
}

static void wait_until(kd_notify_t *n, int64_t due_ms)
{
    struct timespec ts;
    int64_t wait = due_ms - kd_mono_ms();

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += wait / 1000;
    ts.tv_nsec += (wait % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&n->wake, &n->lock, &ts);
}

static void *deliver_loop(void *arg)
{
    kd_notify_t *n = arg;
    CURL *curl = curl_easy_init();

    pthread_mutex_lock(&n->lock);
    while (!n->stop && curl) {
        job_t *j = n->queue;
        char why[256];
        int outcome;

        if (!j) {
            pthread_cond_broadcast(&n->idle);
            pthread_cond_wait(&n->wake, &n->lock);
            continue;
        }
        if (j->due_ms > kd_mono_ms()) {
            wait_until(n, j->due_ms);
            continue;
        }
        n->queue = j->next;
        n->queued_now--;
        n->in_flight = true;
        kd_metric_set(n->m_queue, NULL, (double)n->queued_now);
        pthread_mutex_unlock(&n->lock);
        j->attempt++;
        outcome = post(n, curl, j, why, sizeof why);
        pthread_mutex_lock(&n->lock);
        n->in_flight = false;
        settle(n, j, outcome, why);
    }
    pthread_mutex_unlock(&n->lock);
    curl_easy_cleanup(curl);
    return NULL;
}

/* ---- life cycle ---- */

static void defaults(kd_notify_opts_t *o)
{
    if (!o->max_attempts)
        o->max_attempts = 6;
    if (!o->backoff_ms)
        o->backoff_ms = 1000;
    if (!o->max_backoff_ms)
        o->max_backoff_ms = 60000;
    if (!o->timeout_ms)
        o->timeout_ms = 10000;
    if (!o->queue_max)
        o->queue_max = 1000;
}

static void define_metrics(kd_notify_t *n)
{
    static const char *const results[] = {"delivered", "retried", "failed", "dropped"};

    n->m_deliveries = kd_metrics_counter(n->o.metrics, "kdeploy_notify_deliveries_total",
                                         "Webhook tries by result: delivered, retried (failed, "
                                         "tried again later), failed (given up), dropped "
                                         "(queue full).", "result");
    n->m_queue = kd_metrics_gauge(n->o.metrics, "kdeploy_notify_queue",
                                  "Webhook deliveries waiting.", NULL);
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        kd_metric_add(n->m_deliveries, KD_LV(results[i]), 0);
    kd_metric_set(n->m_queue, NULL, 0);
}

kd_status_t kd_notify_new(const kd_config_t *cfg, const kd_notify_opts_t *opts,
                          kd_notify_t **out, char *err, size_t errsz)
{
    kd_notify_t *n = calloc(1, sizeof *n);
    pthread_condattr_t ca;
    kd_status_t st;

    if (!n)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (opts)
        n->o = *opts;
    defaults(&n->o);
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &ca);
    pthread_cond_init(&n->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (cfg && (st = load_targets(n, cfg, err, errsz)) != KD_OK) {
        kd_notify_free(n);
        return st;
    }
    define_metrics(n);
    if (n->target_count) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (pthread_create(&n->thread, NULL, deliver_loop, n) != 0) {
            kd_notify_free(n);
            return kd_err(err, errsz, KD_ENOMEM, "cannot start the webhook thread");
        }
        n->started = true;
    }
    *out = n;
    return KD_OK;
}

void kd_notify_stats(kd_notify_t *n, kd_notify_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    *out = n->stats;
    out->pending = n->queued_now + (n->in_flight ? 1 : 0);
    pthread_mutex_unlock(&n->lock);
}

kd_status_t kd_notify_flush(kd_notify_t *n, int timeout_ms)
{
    int64_t deadline = kd_mono_ms() + timeout_ms;
    kd_status_t st = KD_OK;

    if (!n)
        return KD_OK;
    pthread_mutex_lock(&n->lock);
    while ((n->queue || n->in_flight) && n->started) {
        struct timespec ts;

        if (kd_mono_ms() >= deadline) {
            st = KD_ETIMEDOUT;
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&n->idle, &n->lock, &ts);
    }
    pthread_mutex_unlock(&n->lock);
    return st;
}

void kd_notify_free(kd_notify_t *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stop = 1;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
    if (n->started)
        pthread_join(n->thread, NULL);
    while (n->queue) {
        job_t *j = n->queue;

        n->queue = j->next;
        job_free(j);
    }
    for (size_t i = 0; i < MAX_TARGETS; i++) {
        free(n->targets[i].url);
        free(n->targets[i].secret);
    }
    pthread_cond_destroy(&n->wake);
    pthread_cond_destroy(&n->idle);
    pthread_mutex_destroy(&n->lock);
    free(n);
}
