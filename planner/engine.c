/* Following deployments: results move hosts along their workflow, batches
 * start when the previous one is done, failures past the threshold halt
 * the deployment (hosts in flight finish their current step), and the end
 * is published as succeeded or failed — then, if asked, rolled back. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "partition.h"
#include "planner.h"
#include "spec.h"

#define STEP_OK(s) ((s) == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED || \
                    (s) == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED)

bool kd_planner_owns(const kd_planner_t *p, const char *deploy_id)
{
    int32_t part;

    if (p->partition_count <= 0)
        return false;
    part = kd_partition_for_key(deploy_id, strlen(deploy_id), p->partition_count);
    return part < KD_PLANNER_MAX_PARTITIONS && p->owned[part];
}

static uint32_t threshold(const kd_deploy_t *d)
{
    return d->spec->failure_threshold ? d->spec->failure_threshold : 1;
}

static int64_t host_timeout_ms(const kd_planner_t *p, const kd_deploy_t *d)
{
    (void)p;
    return (int64_t)(d->spec->host_timeout_s ? d->spec->host_timeout_s : 300) * 1000;
}

static bool past_deadline(const kd_deploy_t *d)
{
    int64_t limit = (int64_t)(d->spec->deployment_timeout_s ? d->spec->deployment_timeout_s : 3600);

    return kd_now_ms() - d->accepted_ms > limit * 1000;
}

static bool failing(const kd_deploy_t *d)
{
    return d->halted || d->failed >= threshold(d) || past_deadline(d);
}

static size_t count_phase(const kd_deploy_t *d, kd_host_phase_t phase, bool in_flight_only)
{
    size_t n = 0;

    for (size_t i = 0; i < d->host_count; i++)
        if (d->hosts[i].phase == phase && (!in_flight_only || d->hosts[i].in_flight))
            n++;
    return n;
}

/* ---- the end ---- */

static kd_status_t finish_succeeded(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    Kdeploy__V1__DeploymentSucceeded s = KDEPLOY__V1__DEPLOYMENT_SUCCEEDED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;
    kd_status_t st;

    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    s.hosts_succeeded = (uint32_t)count_phase(d, KD_HOST_SUCCEEDED, false);
    s.duration_ms = env.ts_ms - d->accepted_ms;
    s.live_group = d->wf->swap_after ? d->target_group : "";
    env.body_case = KD_BODY(SUCCEEDED);
    env.succeeded = &s;
    kd_info("%s: succeeded (%u hosts)", d->id, s.hosts_succeeded);
    if ((st = kd_emit(p, d->id, &env, err, errsz)) != KD_OK || !d->rollback_of[0])
        return st;
    return kd_emit_status(p, d->rollback_of, KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED,
                          d->id, "", err, errsz);
}

static void failure_reason(const kd_deploy_t *d, char *out, size_t outsz)
{
    if (d->status == KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED)
        snprintf(out, outsz, "stopped");
    else if (d->failed >= threshold(d))
        snprintf(out, outsz, "%zu host(s) failed (threshold %u)", d->failed, threshold(d));
    else if (past_deadline(d))
        snprintf(out, outsz, "deployment timed out after %u s",
                 d->spec->deployment_timeout_s ? d->spec->deployment_timeout_s : 3600);
    else if (d->swap == KD_SWAP_FAILED)
        snprintf(out, outsz, "the traffic swap failed");
    else
        snprintf(out, outsz, "%zu host(s) failed", d->failed);
}

static kd_status_t finish_failed(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    Kdeploy__V1__DeploymentFailed f = KDEPLOY__V1__DEPLOYMENT_FAILED__INIT;
    char id[KD_UUID_LEN], reason[256], rollback_id[KD_UUID_LEN];
    char *failed[d->host_count + 1];
    kd_envelope_t env;
    kd_status_t st;

    failure_reason(d, reason, sizeof reason);
    for (size_t i = 0; i < d->host_count; i++)
        if (d->hosts[i].phase == KD_HOST_FAILED)
            failed[f.n_failed_hosts++] = d->hosts[i].name;
    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    f.reason = reason;
    f.failed_hosts = failed;
    f.duration_ms = env.ts_ms - d->accepted_ms;
    env.body_case = KD_BODY(FAILED);
    env.failed = &f;
    kd_warn("%s: failed: %s", d->id, reason);
    if ((st = kd_emit(p, d->id, &env, err, errsz)) != KD_OK)
        return st;
    if (d->rollback_of[0])
        return kd_emit_status(p, d->rollback_of,
                              KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_FAILED, d->id,
                              "", err, errsz);
    /* A blue-green deployment that failed never moved traffic: nothing to
     * undo. Rolling ones are rolled back on the hosts they touched. */
    if (!d->spec->auto_rollback || d->wf->swap_after ||
        d->status == KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED)
        return KD_OK;
    /* An id on a partition this planner owns: the rollback's results come
     * back here, where its steps were decided. */
    do
        kd_uuid_new(rollback_id);
    while (!kd_planner_owns(p, rollback_id));
    return kd_rollback_start(p, d, rollback_id, "kdeploy-planner (auto rollback)", reason, err,
                             errsz);
}

/* Hosts that were between steps when the deployment halted. */
static kd_status_t halt_waiting_hosts(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < d->host_count && st == KD_OK; i++)
        if (d->hosts[i].phase == KD_HOST_RUNNING && !d->hosts[i].in_flight)
            st = kd_emit_host_finished(p, d, &d->hosts[i], KDEPLOY__V1__STEP_STATUS__STEP_FAILED,
                                       "halted: the deployment stopped before this host finished",
                                       err, errsz);
    return st;
}

/* ---- starting hosts ---- */

static kd_status_t start_host(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, uint32_t batch,
                              const char *restore, char *err, size_t errsz)
{
    Kdeploy__V1__HostStarted hs = KDEPLOY__V1__HOST_STARTED__INIT;
    const char *prev = kd_model_installed(p->model, d->spec->application, d->spec->group, h->name);
    char id[KD_UUID_LEN];
    kd_envelope_t env;
    kd_status_t st;

    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    hs.host = h->name;
    hs.batch = batch;
    hs.previous_deploy_id = (char *)(prev ? prev : "");
    hs.restore_deploy_id = (char *)(restore ? restore : "");
    env.body_case = KD_BODY(HOST_STARTED);
    env.host_started = &hs;
    if ((st = kd_emit(p, d->id, &env, err, errsz)) != KD_OK)
        return st;
    if (d->rollback_of[0] && !d->wf->swap_after && (!restore || !*restore))
        return kd_emit_host_finished(p, d, h, KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED,
                                     "first deployment on this host: nothing to roll back to",
                                     err, errsz);
    return kd_dispatch_step(p, d, h, 0, 1, err, errsz);
}

/* For a rolling rollback: what each host ran before the undone deployment. */
static const char *restore_of(kd_planner_t *p, const kd_deploy_t *d, const char *host)
{
    kd_deploy_t *undone;
    kd_dhost_t *uh;

    if (!d->rollback_of[0] || d->wf->swap_after)
        return NULL;
    undone = kd_model_find(p->model, d->rollback_of);
    uh = undone ? kd_deploy_host(undone, host) : NULL;
    return uh ? uh->previous_id : NULL;
}

static kd_status_t start_batch(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    Kdeploy__V1__BatchStarted bs = KDEPLOY__V1__BATCH_STARTED__INIT;
    uint32_t batch = (uint32_t)(d->batch + 1);
    size_t first = d->started, size = kd_spec_batch_size(d->spec, batch, d->host_count);
    size_t end = first + size > d->host_count ? d->host_count : first + size;
    char *names[end - first + 1];
    char id[KD_UUID_LEN];
    kd_envelope_t env;
    kd_status_t st;

    for (size_t i = first; i < end; i++)
        names[bs.n_hosts++] = d->hosts[i].name;
    bs.batch = batch;
    bs.hosts = names;
    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    env.body_case = KD_BODY(BATCH_STARTED);
    env.batch_started = &bs;
    kd_info("%s: batch %u: %zu host(s) from %s", d->id, batch, end - first, d->hosts[first].name);
    if ((st = kd_emit(p, d->id, &env, err, errsz)) != KD_OK)
        return st;
    for (size_t i = first; i < end && st == KD_OK; i++)
        st = start_host(p, d, &d->hosts[i], batch, restore_of(p, d, d->hosts[i].name), err, errsz);
    return st;
}

/* ---- driving ---- */

static kd_status_t advance_hosts(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < d->started && st == KD_OK; i++) {
        kd_dhost_t *h = &d->hosts[i];

        if (h->phase == KD_HOST_RUNNING && !h->in_flight && h->step + 1 < (int)d->wf->count)
            st = kd_dispatch_step(p, d, h, h->step + 1, 1, err, errsz);
    }
    return st;
}

static kd_status_t finish_swap_phase(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    /* A failed deploy to the idle group never touches traffic. */
    if (d->failed > 0 || d->swap == KD_SWAP_FAILED)
        return finish_failed(p, d, err, errsz);
    switch (d->swap) {
    case KD_SWAP_NONE: return kd_dispatch_swap(p, d, 1, false, err, errsz);
    case KD_SWAP_DONE: return finish_succeeded(p, d, err, errsz);
    default: return KD_OK;
    }
}

kd_status_t kd_engine_drive(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz)
{
    kd_status_t st;

    if (kd_deploy_finished(d))
        return KD_OK;
    if (failing(d)) {
        if (count_phase(d, KD_HOST_RUNNING, true) > 0 || d->swap == KD_SWAP_IN_FLIGHT)
            return KD_OK; /* hosts in flight finish their current step first */
        if ((st = halt_waiting_hosts(p, d, err, errsz)) != KD_OK)
            return st;
        return finish_failed(p, d, err, errsz);
    }
    if (d->paused)
        return KD_OK;
    if ((st = advance_hosts(p, d, err, errsz)) != KD_OK)
        return st;
    while (count_phase(d, KD_HOST_RUNNING, false) == 0 && d->started < d->host_count &&
           !failing(d))
        if ((st = start_batch(p, d, err, errsz)) != KD_OK)
            return st;
    if (failing(d))
        return kd_engine_drive(p, d, err, errsz);
    if (d->started < d->host_count || count_phase(d, KD_HOST_RUNNING, false) > 0)
        return KD_OK;
    if (d->wf->swap_after)
        return finish_swap_phase(p, d, err, errsz);
    return d->failed ? finish_failed(p, d, err, errsz) : finish_succeeded(p, d, err, errsz);
}

/* ---- results ---- */

static kd_status_t host_outcome(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h,
                                Kdeploy__V1__StepStatus status, const char *error, char *err,
                                size_t errsz)
{
    char why[1024];

    h->in_flight = false;
    if (STEP_OK(status)) {
        if (h->step + 1 >= (int)d->wf->count)
            return kd_emit_host_finished(p, d, h, KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, "",
                                         err, errsz);
        return KD_OK;
    }
    snprintf(why, sizeof why, "%s %s: %s", kd_event_name(d->wf->steps[h->step]),
             status == KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT ? "timed out" : "failed",
             error && *error ? error : "no reason given");
    return kd_emit_host_finished(p, d, h, KDEPLOY__V1__STEP_STATUS__STEP_FAILED, why, err, errsz);
}

/* The host whose in-flight step a result answers, or NULL for a stale or
 * repeated result. */
static kd_dhost_t *awaiting(kd_deploy_t *d, const char *host, const char *step_id)
{
    kd_dhost_t *h = host ? kd_deploy_host(d, host) : NULL;
    char expected[512];

    if (!h || !h->in_flight || h->phase != KD_HOST_RUNNING || h->step < 0)
        return NULL;
    kd_step_id(d, h->name, d->wf->steps[h->step], h->attempt, expected, sizeof expected);
    return step_id && strcmp(step_id, expected) == 0 ? h : NULL;
}

static kd_status_t swap_result(kd_planner_t *p, kd_deploy_t *d,
                               const Kdeploy__V1__TrafficResult *t, char *err, size_t errsz)
{
    char expected[512];

    kd_step_id(d, d->spec->load_balancer->service, KD_EVENT(SwapTraffic), d->swap_attempt,
               expected, sizeof expected);
    if (d->swap != KD_SWAP_IN_FLIGHT || strcmp(t->traffic_id, expected) != 0)
        return KD_OK;
    d->swap = STEP_OK(t->status) ? KD_SWAP_DONE : KD_SWAP_FAILED;
    if (d->swap == KD_SWAP_FAILED)
        kd_warn("%s: swap failed: %s", d->id, t->error);
    return kd_engine_drive(p, d, err, errsz);
}

kd_status_t kd_engine_result(kd_planner_t *p, const kd_envelope_t *env, char *err,
                             size_t errsz)
{
    kd_deploy_t *d = kd_model_find(p->model, env->deploy_id);
    kd_dhost_t *h;
    kd_status_t st = KD_OK;

    if (!d || kd_deploy_finished(d))
        return KD_OK;
    switch (env->body_case) {
    case KD_BODY(STEP_RESULT):
        if ((h = awaiting(d, env->step_result->host, env->step_result->step_id)))
            st = host_outcome(p, d, h, env->step_result->status, env->step_result->error, err,
                              errsz);
        break;
    case KD_BODY(PROGRESS):
        if ((h = awaiting(d, env->progress->host, env->progress->step_id)))
            h->seen_ms = kd_now_ms();
        return KD_OK;
    case KD_BODY(TRAFFIC_RESULT):
        if (env->traffic_result->event == KD_EVENT(SwapTraffic))
            return swap_result(p, d, env->traffic_result, err, errsz);
        if ((h = awaiting(d, env->traffic_result->host, env->traffic_result->traffic_id)))
            st = host_outcome(p, d, h, env->traffic_result->status, env->traffic_result->error,
                              err, errsz);
        break;
    default:
        return KD_OK;
    }
    if (st != KD_OK)
        return st;
    return kd_engine_drive(p, d, err, errsz);
}

/* ---- time ---- */

static kd_status_t tick_host(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, int64_t now,
                             char *err, size_t errsz)
{
    int64_t limit = p->step_timeout_ms ? p->step_timeout_ms : host_timeout_ms(p, d);
    char why[256];

    if (h->phase != KD_HOST_RUNNING)
        return KD_OK;
    if (h->in_flight && now - h->seen_ms > limit)
        snprintf(why, sizeof why, "%s: no result or heartbeat from %s within %lld s",
                 kd_event_name(d->wf->steps[h->step]), h->name, (long long)(limit / 1000));
    else if (now - h->started_ms > host_timeout_ms(p, d))
        snprintf(why, sizeof why, "host timed out after %lld s",
                 (long long)(host_timeout_ms(p, d) / 1000));
    else
        return KD_OK;
    h->in_flight = false;
    return kd_emit_host_finished(p, d, h, KDEPLOY__V1__STEP_STATUS__STEP_FAILED, why, err, errsz);
}

kd_status_t kd_engine_tick(kd_planner_t *p, char *err, size_t errsz)
{
    int64_t now = kd_now_ms();
    kd_status_t st = KD_OK;

    for (kd_deploy_t *d = kd_model_first(p->model); d && st == KD_OK; d = d->next) {
        if (kd_deploy_finished(d) || !kd_planner_owns(p, d->id))
            continue;
        for (size_t i = 0; i < d->started && st == KD_OK; i++)
            st = tick_host(p, d, &d->hosts[i], now, err, errsz);
        if (st == KD_OK && d->swap == KD_SWAP_IN_FLIGHT &&
            now - d->swap_sent_ms > host_timeout_ms(p, d))
            d->swap = KD_SWAP_FAILED;
        if (st == KD_OK)
            st = kd_engine_drive(p, d, err, errsz);
    }
    return st;
}

kd_status_t kd_engine_redrive(kd_planner_t *p, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;

    for (kd_deploy_t *d = kd_model_first(p->model); d && st == KD_OK; d = d->next) {
        if (kd_deploy_finished(d) || !kd_planner_owns(p, d->id))
            continue;
        for (size_t i = 0; i < d->started && st == KD_OK; i++) {
            kd_dhost_t *h = &d->hosts[i];

            if (h->phase == KD_HOST_RUNNING && h->in_flight) {
                h->seen_ms = kd_now_ms();
                st = kd_dispatch_resend(p, d, h, err, errsz);
            }
        }
        if (st == KD_OK && d->swap == KD_SWAP_IN_FLIGHT) {
            d->swap_sent_ms = kd_now_ms();
            st = kd_dispatch_swap(p, d, d->swap_attempt, true, err, errsz);
        }
        if (st == KD_OK)
            st = kd_engine_drive(p, d, err, errsz);
    }
    return st;
}
