#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct kd_model {
    kd_deploy_t *head;       /* newest first */
    kd_strmap_t *installed;  /* "app/group/host" -> deploy id whose revision runs there */
    kd_strmap_t *live;       /* "app/group" -> blue-green server group serving */
};

kd_model_t *kd_model_new(void)
{
    kd_model_t *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->installed = kd_strmap_new();
    m->live = kd_strmap_new();
    if (!m->installed || !m->live) {
        kd_model_free(m);
        return NULL;
    }
    return m;
}

static void free_deploy(kd_deploy_t *d)
{
    for (size_t i = 0; i < d->host_count; i++) {
        free(d->hosts[i].name);
        free(d->hosts[i].previous_id);
        free(d->hosts[i].restore_id);
        free(d->hosts[i].error);
    }
    free(d->hosts);
    if (d->spec)
        kdeploy__v1__deployment_spec__free_unpacked(d->spec, NULL);
    free(d->id);
    free(d->rollback_of);
    free(d->rolled_back_by);
    free(d->requested_by);
    free(d->target_group);
    free(d->swap_from);
    free(d);
}

void kd_model_free(kd_model_t *m)
{
    if (!m)
        return;
    while (m->head) {
        kd_deploy_t *next = m->head->next;

        free_deploy(m->head);
        m->head = next;
    }
    kd_strmap_free(m->installed);
    kd_strmap_free(m->live);
    free(m);
}

kd_deploy_t *kd_model_find(const kd_model_t *m, const char *deploy_id)
{
    for (kd_deploy_t *d = m->head; d; d = d->next)
        if (strcmp(d->id, deploy_id) == 0)
            return d;
    return NULL;
}

kd_deploy_t *kd_model_first(const kd_model_t *m)
{
    return m->head;
}

bool kd_deploy_finished(const kd_deploy_t *d)
{
    return d->finished_ms != 0;
}

kd_deploy_t *kd_model_active(const kd_model_t *m, const char *app, const char *group,
                             const char *except_id)
{
    for (kd_deploy_t *d = m->head; d; d = d->next)
        if (!kd_deploy_finished(d) && strcmp(d->spec->application, app) == 0 &&
            strcmp(d->spec->group, group) == 0 && (!except_id || strcmp(d->id, except_id) != 0))
            return d;
    return NULL;
}

static void host_key(char *out, size_t outsz, const char *app, const char *group, const char *host)
{
    snprintf(out, outsz, "%s/%s/%s", app, group, host ? host : "");
}

const char *kd_model_installed(const kd_model_t *m, const char *app, const char *group,
                               const char *host)
{
    char key[512];

    host_key(key, sizeof key, app, group, host);
    return kd_strmap_get(m->installed, key);
}

const char *kd_model_live_group(const kd_model_t *m, const char *app, const char *group)
{
    char key[512];

    host_key(key, sizeof key, app, group, NULL);
    return kd_strmap_get(m->live, key);
}

kd_dhost_t *kd_deploy_host(kd_deploy_t *d, const char *name)
{
    for (size_t i = 0; i < d->host_count; i++)
        if (strcmp(d->hosts[i].name, name) == 0)
            return &d->hosts[i];
    return NULL;
}

const char *kd_status_name_of(Kdeploy__V1__DeploymentStatus st)
{
    static const char *const names[] = {
        "unknown", "pending", "deploying", "succeeded", "failed", "rolling back",
        "rollback succeeded", "rollback failed", "stopped", "paused",
    };

    return (size_t)st < sizeof names / sizeof names[0] ? names[st] : "unknown";
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* A copy of the spec the deployment owns, through the wire format. */
static Kdeploy__V1__DeploymentSpec *copy_spec(const Kdeploy__V1__DeploymentSpec *spec)
{
    size_t len = kdeploy__v1__deployment_spec__get_packed_size(spec);
    uint8_t *buf = malloc(len ? len : 1);
    Kdeploy__V1__DeploymentSpec *copy;

    if (!buf)
        return NULL;
    kdeploy__v1__deployment_spec__pack(spec, buf);
    copy = kdeploy__v1__deployment_spec__unpack(NULL, len, buf);
    free(buf);
    return copy;
}

static void apply_accepted(kd_model_t *m, const kd_envelope_t *env)
{
    const Kdeploy__V1__DeploymentAccepted *a = env->accepted;
    kd_deploy_t *d;

    if (!a->spec || !a->spec->application || kd_model_find(m, env->deploy_id))
        return;
    if (!(d = calloc(1, sizeof *d)))
        return;
    d->id = strdup(env->deploy_id);
    d->spec = copy_spec(a->spec);
    d->rollback_of = dup_or_empty(a->rollback_of);
    d->rolled_back_by = strdup("");
    d->requested_by = dup_or_empty(a->requested_by);
    d->hosts = calloc(a->n_hosts ? a->n_hosts : 1, sizeof *d->hosts);
    d->target_group = dup_or_empty(a->target_group);
    d->swap_from = dup_or_empty(a->swap_from_group);
    if (!d->id || !d->spec || !d->rollback_of || !d->rolled_back_by || !d->requested_by ||
        !d->hosts || !d->target_group || !d->swap_from) {
        free_deploy(d);
        return;
    }
    d->status = a->status ? a->status : KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_DEPLOYING;
    d->wf = kd_workflow_for(d->spec, d->rollback_of[0] != '\0');
    d->batch = -1;
    d->accepted_ms = env->ts_ms;
    for (size_t i = 0; i < a->n_hosts; i++) {
        d->hosts[i].name = strdup(a->hosts[i]);
        d->hosts[i].step = -1;
        d->host_count++;
    }
    d->next = m->head;
    m->head = d;
}

static void apply_host_started(kd_deploy_t *d, const Kdeploy__V1__HostStarted *hs, int64_t ts)
{
    kd_dhost_t *h = kd_deploy_host(d, hs->host);

    if (!h || h->phase != KD_HOST_PENDING)
        return;
    h->phase = KD_HOST_RUNNING;
    h->started_ms = ts;
    h->batch = hs->batch;
    free(h->previous_id);
    free(h->restore_id);
    h->previous_id = dup_or_empty(hs->previous_deploy_id);
    h->restore_id = dup_or_empty(hs->restore_deploy_id);
    if ((size_t)(h - d->hosts) + 1 > d->started)
        d->started = (size_t)(h - d->hosts) + 1;
}

static void apply_dispatched(kd_deploy_t *d, const Kdeploy__V1__StepDispatched *sd, int64_t ts)
{
    kd_dhost_t *h;
    int idx = -1;

    if (sd->event == KD_EVENT(SwapTraffic)) {
        d->swap = KD_SWAP_IN_FLIGHT;
        d->swap_attempt = sd->attempt;
        d->swap_sent_ms = ts;
        return;
    }
    if (!(h = kd_deploy_host(d, sd->host)))
        return;
    for (size_t i = 0; i < d->wf->count; i++)
        if (d->wf->steps[i] == sd->event && (int)i >= h->step) {
            idx = (int)i;
            break;
        }
    if (idx < 0)
        return;
    h->step = idx;
    h->attempt = sd->attempt;
    h->in_flight = true;
    h->sent_ms = h->seen_ms = ts;
}

static void set_installed(kd_model_t *m, const kd_deploy_t *d, const kd_dhost_t *h)
{
    char key[512];
    const char *id = d->rollback_of[0] ? h->restore_id : d->id;

    /* A blue-green rollback only checks and swaps back: nothing changes. */
    if (d->rollback_of[0] && d->wf->swap_after)
        return;
    if (!id || !*id)
        return;
    host_key(key, sizeof key, d->spec->application, d->spec->group, h->name);
    kd_strmap_set(m->installed, key, id);
}

static void apply_host_finished(kd_model_t *m, kd_deploy_t *d,
                                const Kdeploy__V1__HostFinished *hf)
{
    kd_dhost_t *h = kd_deploy_host(d, hf->host);

    if (!h || h->phase == KD_HOST_SUCCEEDED || h->phase == KD_HOST_FAILED ||
        h->phase == KD_HOST_SKIPPED)
        return;
    h->in_flight = false;
    switch (hf->status) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED:
        h->phase = KD_HOST_SUCCEEDED;
        set_installed(m, d, h);
        break;
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED:
        h->phase = KD_HOST_SKIPPED;
        break;
    default:
        h->phase = KD_HOST_FAILED;
        h->failed_step = hf->failed_step;
        free(h->error);
        h->error = dup_or_empty(hf->error);
        d->failed++;
    }
    if ((size_t)(h - d->hosts) + 1 > d->started)
        d->started = (size_t)(h - d->hosts) + 1;
}

static void apply_succeeded(kd_model_t *m, kd_deploy_t *d, const Kdeploy__V1__DeploymentSucceeded *s,
                            int64_t ts)
{
    char key[512];

    d->status = d->rollback_of[0] ? KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED
                                  : KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_SUCCEEDED;
    d->finished_ms = ts;
    if (s->live_group && *s->live_group) {
        d->swap = KD_SWAP_DONE;
        host_key(key, sizeof key, d->spec->application, d->spec->group, NULL);
        kd_strmap_set(m->live, key, s->live_group);
    }
}

static void apply_status(kd_deploy_t *d, Kdeploy__V1__DeploymentStatus st, int64_t ts)
{
    switch (st) {
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_PAUSED:
        d->paused = true;
        break;
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_DEPLOYING:
        d->paused = false;
        break;
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED:
        d->halted = true;
        d->finished_ms = ts;
        break;
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLING_BACK:
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED:
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_FAILED:
        break; /* a status of the undone deployment, set by its rollback */
    default:
        return;
    }
    d->status = st;
}

/* Events of one deployment, by kind. */
static void apply_to(kd_model_t *m, kd_deploy_t *d, const kd_envelope_t *env)
{
    switch (env->body_case) {
    case KD_BODY(BATCH_STARTED):
        if ((int)env->batch_started->batch > d->batch)
            d->batch = (int)env->batch_started->batch;
        break;
    case KD_BODY(HOST_STARTED):
        apply_host_started(d, env->host_started, env->ts_ms);
        break;
    case KD_BODY(STEP_DISPATCHED):
        apply_dispatched(d, env->step_dispatched, env->ts_ms);
        break;
    case KD_BODY(HOST_FINISHED):
        apply_host_finished(m, d, env->host_finished);
        break;
    case KD_BODY(SUCCEEDED):
        apply_succeeded(m, d, env->succeeded, env->ts_ms);
        break;
    case KD_BODY(FAILED):
        d->halted = true;
        d->finished_ms = env->ts_ms;
        d->status = d->rollback_of[0] ? KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_FAILED
                                      : KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_FAILED;
        if (d->swap == KD_SWAP_IN_FLIGHT)
            d->swap = KD_SWAP_FAILED;
        break;
    case KD_BODY(ROLLBACK_STARTED):
        free(d->rolled_back_by);
        d->rolled_back_by = dup_or_empty(env->rollback_started->rollback_deploy_id);
        d->status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLING_BACK;
        break;
    case KD_BODY(STATUS_CHANGED):
        apply_status(d, env->status_changed->status, env->ts_ms);
        break;
    default:
        break;
    }
}

void kd_model_apply(kd_model_t *m, const kd_envelope_t *env)
{
    kd_deploy_t *d;

    if (env->body_case == KD_BODY(ACCEPTED)) {
        apply_accepted(m, env);
        return;
    }
    if (!env->deploy_id || !(d = kd_model_find(m, env->deploy_id)))
        return;
    apply_to(m, d, env);
}
