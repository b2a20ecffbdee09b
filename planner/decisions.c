/* The decision list, and the deployments-topic events every part of the
 * core decides. A decision owns its encoding and a deep copy of its
 * envelope decoded from it: the core builds envelopes on the stack from
 * the model's and the request's strings, and the daemon may apply earlier
 * decisions (changing the model) before it publishes later ones. */
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "log.h"
#include "spec.h"

void kd_decisions_init(kd_decisions_t *out)
{
    memset(out, 0, sizeof *out);
}

void kd_decisions_clear(kd_decisions_t *out)
{
    for (size_t i = 0; i < out->count; i++) {
        free(out->items[i].key);
        kd_envelope_free(out->items[i].env);
        free(out->items[i].bytes);
    }
    free(out->items);
    kd_decisions_init(out);
}

void kd_core_env(const kd_core_ctx_t *c, kd_envelope_t *env, char id[KD_UUID_LEN],
                 const char *deploy_id)
{
    kd_envelope_init(env, id, deploy_id, c->self);
    env->ts_ms = c->now_ms;
}

void kd_decide(kd_decisions_t *out, kd_topic_t topic, const char *key, const kd_envelope_t *env)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    kd_decision_t *dec;

    if (out->failed)
        return;
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 16;
        kd_decision_t *items = realloc(out->items, cap * sizeof *items);

        if (!items) {
            out->failed = true;
            return;
        }
        out->items = items;
        out->cap = cap;
    }
    dec = &out->items[out->count];
    dec->topic = topic;
    dec->key = strdup(key ? key : "");
    dec->env = NULL;
    /* The copy is decoded from the encoding, which is kept: it is what the
     * daemon publishes, so nothing is encoded twice. */
    if (!dec->key || kd_envelope_encode(env, &bytes, &len, NULL, 0) != KD_OK ||
        kd_envelope_decode(bytes, len, &dec->env, NULL, 0) != KD_OK) {
        free(dec->key);
        free(bytes);
        out->failed = true;
    } else {
        dec->bytes = bytes;
        dec->len = len;
        out->count++;
    }
}

static bool is_answer(const kd_decision_t *x, const char *deploy_id)
{
    switch (x->env->body_case) {
    case KD_BODY(ACCEPTED):
    case KD_BODY(REJECTED):
    case KD_BODY(STATUS_CHANGED):
    case KD_BODY(REQUEST_REFUSED):
        return x->topic == KD_TOPIC_DEPLOYMENTS && strcmp(x->env->deploy_id, deploy_id) == 0;
    default:
        return false;
    }
}

/* The decision again with in_reply_to set: its encoding changes, and the
 * copy is decoded from the new one, as kd_decide does. */
static kd_status_t reply_to(kd_decision_t *x, const char *event_id)
{
    kd_envelope_t env = *x->env, *copy = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;

    env.in_reply_to = (char *)event_id;
    if (kd_envelope_encode(&env, &bytes, &len, NULL, 0) != KD_OK ||
        kd_envelope_decode(bytes, len, &copy, NULL, 0) != KD_OK) {
        free(bytes);
        return KD_ENOMEM;
    }
    kd_envelope_free(x->env);
    free(x->bytes);
    x->env = copy;
    x->bytes = bytes;
    x->len = len;
    return KD_OK;
}

void kd_decisions_answer(kd_decisions_t *out, size_t from, const kd_envelope_t *req)
{
    /* An id nobody could have been given back is not echoed. */
    if (out->failed || !req->event_id || !*req->event_id ||
        strlen(req->event_id) > KD_REQUEST_ID_MAX)
        return;
    for (size_t i = from; i < out->count; i++)
        if (is_answer(&out->items[i], req->deploy_id)) {
            if (reply_to(&out->items[i], req->event_id) != KD_OK)
                out->failed = true;
            return;
        }
}

void kd_decide_status(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                      Kdeploy__V1__DeploymentStatus status, const char *reason,
                      const char *requested_by)
{
    Kdeploy__V1__DeploymentStatusChanged sc = KDEPLOY__V1__DEPLOYMENT_STATUS_CHANGED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_core_env(c, &env, id, deploy_id);
    sc.status = status;
    sc.reason = (char *)(reason ? reason : "");
    sc.requested_by = (char *)(requested_by ? requested_by : "");
    env.body_case = KD_BODY(STATUS_CHANGED);
    env.status_changed = &sc;
    kd_info("%s: %s%s%s", deploy_id, kd_status_name_of(status), reason && *reason ? ": " : "",
            reason ? reason : "");
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, deploy_id, &env);
}

static void host_finished(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                          const kd_dhost_t *h, Kdeploy__V1__StepStatus status, const char *error,
                          bool silent)
{
    Kdeploy__V1__HostFinished hf = KDEPLOY__V1__HOST_FINISHED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_core_env(c, &env, id, d->id);
    hf.host = h->name;
    hf.status = status;
    hf.failed_step = status == STEP(FAILED) && h->step >= 0 ? d->wf->steps[h->step]
                                                            : KD_EVENT_NONE;
    hf.error = (char *)(error ? error : "");
    hf.duration_ms = h->started_ms ? env.ts_ms - h->started_ms : 0;
    hf.silent = silent;
    env.body_case = KD_BODY(HOST_FINISHED);
    env.host_finished = &hf;
    /* A fleet's worth of "succeeded" lines says nothing: only the
     * exceptions are logged at info. */
    if (status == STEP(SUCCEEDED))
        kd_debug("%s: host %s succeeded", d->id, h->name);
    else
        kd_info("%s: host %s %s%s%s", d->id, h->name, status == STEP(SKIPPED) ? "skipped" : "failed",
                error && *error ? ": " : "", error ? error : "");
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
}

void kd_decide_host_finished(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                             const kd_dhost_t *h, Kdeploy__V1__StepStatus status,
                             const char *error)
{
    host_finished(out, c, d, h, status, error, false);
}

void kd_decide_host_silent(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                           const kd_dhost_t *h, const char *error)
{
    host_finished(out, c, d, h, STEP(FAILED), error, true);
}

void kd_decide_rejected(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                        const char *requested_by, const char *reason)
{
    Kdeploy__V1__DeploymentRejected r = KDEPLOY__V1__DEPLOYMENT_REJECTED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_warn("%s: rejected: %s", deploy_id, reason);
    kd_core_env(c, &env, id, deploy_id);
    r.reason = (char *)reason;
    r.requested_by = (char *)(requested_by ? requested_by : "");
    env.body_case = KD_BODY(REJECTED);
    env.rejected = &r;
    /* The model ignores it (never accepted): it is for the one who asked. */
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, deploy_id, &env);
}

void kd_spec_shell(kd_spec_shell_t *sh, const Kdeploy__V1__DeploymentSpec *spec)
{
    sh->spec = *spec;
    sh->spec.hosts = NULL;
    sh->spec.n_hosts = 0;
    if (spec->blue_green && spec->blue_green->blue && spec->blue_green->green) {
        sh->bg = *spec->blue_green;
        sh->blue = *spec->blue_green->blue;
        sh->green = *spec->blue_green->green;
        sh->blue.hosts = sh->green.hosts = NULL;
        sh->blue.n_hosts = sh->green.n_hosts = 0;
        sh->bg.blue = &sh->blue;
        sh->bg.green = &sh->green;
        sh->spec.blue_green = &sh->bg;
    }
}

/* A slice stays far below the broker's 1 MB message limit even with
 * 253-character host ids. */
#define SLICE_BYTES (256 * 1024)
#define SLICE_HOSTS 20000

void kd_decide_hosts(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                     char *const *names, size_t n, bool standby)
{
    kd_decide_hosts_from(out, c, deploy_id, names, n, 0, standby);
}

void kd_decide_hosts_from(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                          char *const *names, size_t n, size_t from, bool standby)
{
    for (size_t first = from; first < n;) {
        Kdeploy__V1__DeploymentHosts dh = KDEPLOY__V1__DEPLOYMENT_HOSTS__INIT;
        char id[KD_UUID_LEN];
        kd_envelope_t env;
        size_t end = first, bytes = 0;

        while (end < n && end - first < SLICE_HOSTS && bytes + strlen(names[end]) + 3 <= SLICE_BYTES)
            bytes += strlen(names[end++]) + 3;
        kd_core_env(c, &env, id, deploy_id);
        dh.first = (uint32_t)first;
        dh.hosts = (char **)names + first;
        dh.n_hosts = end - first;
        dh.standby = standby;
        env.body_case = KD_BODY(DEPLOYMENT_HOSTS);
        env.deployment_hosts = &dh;
        kd_decide(out, KD_TOPIC_DEPLOYMENTS, deploy_id, &env);
        first = end;
    }
}

uint32_t kd_core_threshold(const kd_deploy_t *d)
{
    return kd_spec_failure_threshold_for(d->spec, d->host_count);
}

int64_t kd_core_host_timeout_ms(const kd_deploy_t *d)
{
    return (int64_t)kd_spec_host_timeout_s(d->spec) * 1000;
}

int64_t kd_core_deployment_timeout_ms(const kd_deploy_t *d)
{
    return (int64_t)kd_spec_deployment_timeout_s(d->spec) * 1000;
}
