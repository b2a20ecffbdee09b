/* The planner: turns deployments into per-host step events, follows their
 * results, and decides what comes next. Its state is the model (model.h),
 * rebuilt from the deployments topic; every decision is published there
 * before it is acted on. */
#ifndef KD_PLANNER_H
#define KD_PLANNER_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "model.h"

#define KD_PLANNER_MAX_PARTITIONS 1024

typedef struct kd_planner {
    const kd_bus_conf_t *conf;
    kd_producer_t *producer;
    kd_model_t *model;
    int partition_count;                      /* of requests and results */
    bool owned[KD_PLANNER_MAX_PARTITIONS];    /* partitions this planner drives */
    bool rebalanced;                          /* owned changed: re-drive */
    int64_t step_timeout_ms;                  /* 0: each deployment's host timeout */
} kd_planner_t;

/* ---- emit.c: decisions ---- */

/* Publishes a deployments-topic event for d (or for deploy_id when d is
 * not known yet) and applies it to the model. body_case and the body
 * pointer must be set in env by the caller via the helpers below. */
kd_status_t kd_emit(kd_planner_t *p, const char *deploy_id, kd_envelope_t *env, char *err,
                    size_t errsz);
kd_status_t kd_emit_status(kd_planner_t *p, const char *deploy_id,
                           Kdeploy__V1__DeploymentStatus status, const char *reason,
                           const char *requested_by, char *err, size_t errsz);
kd_status_t kd_emit_host_finished(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h,
                                  Kdeploy__V1__StepStatus status, const char *error,
                                  char *err, size_t errsz);

/* Answers a request the planner will not take (a create, a rollback, a
 * control of an unknown or ended deployment) with the reason. */
kd_status_t kd_emit_rejected(kd_planner_t *p, const char *deploy_id, const char *requested_by,
                             const char *reason, char *err, size_t errsz);

/* ---- dispatch.c: step and traffic commands ---- */

/* Records and sends the workflow's step index `step` of host h. */
kd_status_t kd_dispatch_step(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, int step,
                             uint32_t attempt, char *err, size_t errsz);
/* Sends again the step h has in flight (after a restart or a rebalance). */
kd_status_t kd_dispatch_resend(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, char *err,
                               size_t errsz);
/* Records and sends the blue-green swap of d. */
kd_status_t kd_dispatch_swap(kd_planner_t *p, kd_deploy_t *d, uint32_t attempt, bool resend,
                             char *err, size_t errsz);
/* "<deploy>/<host>/<event>/<attempt>": the step id of h's current step. */
void kd_step_id(const kd_deploy_t *d, const char *host, kd_event_t ev, uint32_t attempt,
                char *out, size_t outsz);

/* ---- engine.c: following deployments ---- */

/* Moves d forward as far as it can go now: next steps, next batch, the
 * swap, the end. Safe to call any time. */
kd_status_t kd_engine_drive(kd_planner_t *p, kd_deploy_t *d, char *err, size_t errsz);
/* A step result, heartbeat or traffic result from the results topic. */
kd_status_t kd_engine_result(kd_planner_t *p, const kd_envelope_t *env, char *err,
                             size_t errsz);
/* Time-based decisions: silent workers, host and deployment timeouts. */
kd_status_t kd_engine_tick(kd_planner_t *p, char *err, size_t errsz);
/* After a restart or rebalance: sends again what is in flight for the
 * deployments this planner now owns, and drives them. */
kd_status_t kd_engine_redrive(kd_planner_t *p, char *err, size_t errsz);
/* True if this planner owns deploy_id's partition. */
bool kd_planner_owns(const kd_planner_t *p, const char *deploy_id);

/* ---- requests.c ---- */

/* A request from the requests topic: create, stop, pause, resume, rollback. */
kd_status_t kd_requests_handle(kd_planner_t *p, const kd_envelope_t *env, char *err,
                               size_t errsz);

/* ---- rollback.c ---- */

/* Starts rollback_id as the rollback of the deployment undone. */
kd_status_t kd_rollback_start(kd_planner_t *p, kd_deploy_t *undone, const char *rollback_id,
                              const char *requested_by, const char *reason, char *err,
                              size_t errsz);

#endif
