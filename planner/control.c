/* Operator controls: pause, resume and stop. Neither pause nor stop leaves
 * a host between ApplicationStop and a finished ApplicationStart: both
 * hold the hosts that have not started, and let the hosts in flight finish
 * their whole workflow (through ValidateService, and AfterAllowTraffic
 * behind a load balancer). A paused deployment waits for resume; a
 * stopping one ends stopped once no host runs, and is then rolled back if
 * the stop asked for it. Blue-green never swaps while paused or stopping.
 *
 * Every request gets one answer: the status it asks for, or a
 * RequestRefused saying why not (the deployment is unknown or has ended,
 * or is already in the state asked for). */
#include <stdio.h>
#include <string.h>

#include "core_int.h"
#include "log.h"

#define REQUESTED_BY_MAX 256
#define REASON_MAX 1024

static const char *request_name(kd_body_t kind)
{
    return kind == KD_BODY(STOP) ? "stop" : kind == KD_BODY(PAUSE) ? "pause" : "resume";
}

static const char *requested_by(const kd_envelope_t *req)
{
    const char *by = req->body_case == KD_BODY(STOP)    ? req->stop->requested_by
                     : req->body_case == KD_BODY(PAUSE) ? req->pause->requested_by
                                                        : req->resume->requested_by;

    return by ? by : "";
}

static void refuse(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_envelope_t *req,
                   const char *reason)
{
    Kdeploy__V1__RequestRefused r = KDEPLOY__V1__REQUEST_REFUSED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_info("%s: %s refused: %s", req->deploy_id, request_name(req->body_case), reason);
    kd_core_env(c, &env, id, req->deploy_id);
    r.reason = (char *)reason;
    r.request = (char *)request_name(req->body_case);
    r.requested_by = (char *)requested_by(req);
    env.body_case = KD_BODY(REQUEST_REFUSED);
    env.request_refused = &r;
    /* The model ignores it: the deployment is as it was. */
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, req->deploy_id, &env);
}

/* Why req cannot be carried out on d now (written into why), or false. */
static bool refusal(const kd_deploy_t *d, const kd_envelope_t *req, char *why, size_t whysz)
{
    kd_body_t kind = req->body_case;

    if (!d)
        snprintf(why, whysz, "no such deployment");
    else if (kd_deploy_finished(d))
        snprintf(why, whysz, "the deployment has already ended (%s)", kd_status_name_of(d->status));
    else if (d->stopping)
        snprintf(why, whysz, kind == KD_BODY(STOP) ? "the deployment is already stopping"
                                                    : "the deployment is stopping");
    else if (kind == KD_BODY(PAUSE) && d->paused)
        snprintf(why, whysz, "the deployment is already paused");
    else if (kind == KD_BODY(RESUME) && !d->paused)
        snprintf(why, whysz, "the deployment is not paused");
    else if (kind != KD_BODY(RESUME) && d->swap == KD_SWAP_IN_FLIGHT)
        /* Every host is done and the swap was sent: nothing is left to
         * hold back. */
        snprintf(why, whysz, "the traffic swap is already under way: wait for the deployment to "
                 "end%s", kind == KD_BODY(STOP) ? ", then roll it back if need be" : "");
    else if (kind == KD_BODY(STOP) && req->stop->rollback && d->rollback_of[0])
        snprintf(why, whysz, "a rollback is not rolled back: stop it without rollback");
    else if (strlen(requested_by(req)) > REQUESTED_BY_MAX ||
             (kind == KD_BODY(STOP) && req->stop->reason &&
              strlen(req->stop->reason) > REASON_MAX))
        snprintf(why, whysz, "requested_by or reason is too long");
    else
        return false;
    return true;
}

static void decide_stopping(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                            const Kdeploy__V1__StopDeployment *stop)
{
    Kdeploy__V1__DeploymentStatusChanged sc = KDEPLOY__V1__DEPLOYMENT_STATUS_CHANGED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_core_env(c, &env, id, d->id);
    sc.status = STATUS(STOPPING);
    sc.reason = (char *)(stop->reason ? stop->reason : "");
    sc.requested_by = (char *)(stop->requested_by ? stop->requested_by : "");
    sc.rollback = stop->rollback;
    env.body_case = KD_BODY(STATUS_CHANGED);
    env.status_changed = &sc;
    kd_info("%s: stopping%s, asked by %s: %zu host(s) in flight finish first", d->id,
            stop->rollback ? " (then rolling back)" : "", sc.requested_by, d->running);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
}

void kd_core_control(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                     kd_decisions_t *out)
{
    const kd_deploy_t *d = kd_model_find(m, req->deploy_id);
    char why[512];

    if (refusal(d, req, why, sizeof why)) {
        refuse(out, c, req, why);
        return;
    }
    switch (req->body_case) {
    case KD_BODY(STOP):
        decide_stopping(out, c, d, req->stop);
        break;
    case KD_BODY(PAUSE):
        kd_decide_status(out, c, d->id, STATUS(PAUSED), "", requested_by(req));
        break;
    default:
        kd_decide_status(out, c, d->id, STATUS(DEPLOYING), "", requested_by(req));
        break;
    }
}

/* ---- the end of a stop ---- */

/* Why d, stopped now, is not rolled back although the stop asked for it,
 * or NULL if it is. */
static const char *no_rollback(const kd_model_t *m, const kd_deploy_t *d, const char *rollback_id)
{
    kd_host_counts_t n;

    kd_deploy_counts(d, &n);
    if (!d->wf->swap_after && n.pending == n.total)
        return "no host had started: nothing to roll back";
    return kd_rollback_refusal(m, d, rollback_id, true);
}

void kd_decide_stopped(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                       const kd_deploy_t *d)
{
    const char *skip = NULL;
    char reason[REASON_MAX + 512], rollback_id[KD_UUID_LEN] = "";
    kd_host_counts_t n;
    int len;

    kd_deploy_counts(d, &n);
    if (d->stop_rollback) {
        c->new_id(c->arg, d->id, rollback_id);
        skip = no_rollback(m, d, rollback_id);
    }
    len = snprintf(reason, sizeof reason, "stopped%s%s%s%s: %zu host(s) done, %zu failed, "
                   "%zu not started", d->stop_by[0] ? " by " : "", d->stop_by,
                   d->stop_reason[0] ? ": " : "", d->stop_reason, n.succeeded + n.skipped,
                   n.failed, n.pending);
    if (skip && len > 0 && (size_t)len < sizeof reason)
        snprintf(reason + len, sizeof reason - (size_t)len, "; not rolled back: %s", skip);
    kd_decide_status(out, c, d->id, STATUS(STOPPED), reason, d->stop_by);
    if (d->rollback_of[0]) {
        /* A rollback stopped half way has not restored its deployment. */
        kd_decide_status(out, c, d->rollback_of, STATUS(ROLLBACK_FAILED), d->id, d->stop_by);
        return;
    }
    if (d->stop_rollback && !skip)
        kd_decide_rollback(out, c, m, d, rollback_id, d->stop_by[0] ? d->stop_by : "kdeploy-planner",
                           "stopped with rollback", true);
}
