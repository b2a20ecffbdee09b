/* Every decision of the planner is an event on the deployments topic:
 * published (and acknowledged) first, then applied to the model. */
#include <string.h>

#include "ids.h"
#include "log.h"
#include "planner.h"

kd_status_t kd_emit(kd_planner_t *p, const char *deploy_id, kd_envelope_t *env, char *err,
                    size_t errsz)
{
    kd_status_t st = kd_producer_send(p->producer, KD_TOPIC_DEPLOYMENTS, deploy_id, env, true,
                                      err, errsz);

    if (st == KD_OK)
        kd_model_apply(p->model, env);
    return st;
}

kd_status_t kd_emit_status(kd_planner_t *p, const char *deploy_id,
                           Kdeploy__V1__DeploymentStatus status, const char *reason,
                           const char *requested_by, char *err, size_t errsz)
{
    Kdeploy__V1__DeploymentStatusChanged sc = KDEPLOY__V1__DEPLOYMENT_STATUS_CHANGED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_envelope_init(&env, id, deploy_id, kd_producer_self(p->producer));
    sc.status = status;
    sc.reason = (char *)(reason ? reason : "");
    sc.requested_by = (char *)(requested_by ? requested_by : "");
    env.body_case = KD_BODY(STATUS_CHANGED);
    env.status_changed = &sc;
    kd_info("%s: %s%s%s", deploy_id, kd_status_name_of(status), reason && *reason ? ": " : "",
            reason ? reason : "");
    return kd_emit(p, deploy_id, &env, err, errsz);
}

kd_status_t kd_emit_host_finished(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h,
                                  Kdeploy__V1__StepStatus status, const char *error,
                                  char *err, size_t errsz)
{
    Kdeploy__V1__HostFinished hf = KDEPLOY__V1__HOST_FINISHED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    hf.host = h->name;
    hf.status = status;
    hf.failed_step = status == KDEPLOY__V1__STEP_STATUS__STEP_FAILED && h->step >= 0
                         ? d->wf->steps[h->step] : KD_EVENT_NONE;
    hf.error = (char *)(error ? error : "");
    hf.duration_ms = h->started_ms ? env.ts_ms - h->started_ms : 0;
    env.body_case = KD_BODY(HOST_FINISHED);
    env.host_finished = &hf;
    kd_info("%s: host %s %s%s%s", d->id, h->name,
            status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED ? "succeeded"
            : status == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED ? "skipped" : "failed",
            error && *error ? ": " : "", error ? error : "");
    return kd_emit(p, d->id, &env, err, errsz);
}

kd_status_t kd_emit_rejected(kd_planner_t *p, const char *deploy_id, const char *requested_by,
                             const char *reason, char *err, size_t errsz)
{
    Kdeploy__V1__DeploymentRejected r = KDEPLOY__V1__DEPLOYMENT_REJECTED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_warn("%s: rejected: %s", deploy_id, reason);
    kd_envelope_init(&env, id, deploy_id, kd_producer_self(p->producer));
    r.reason = (char *)reason;
    r.requested_by = (char *)(requested_by ? requested_by : "");
    env.body_case = KD_BODY(REJECTED);
    env.rejected = &r;
    /* Never accepted: nothing for the model, only for the one who asked. */
    return kd_producer_send(p->producer, KD_TOPIC_DEPLOYMENTS, deploy_id, &env, true, err, errsz);
}
