/* Shared by the core's files (core.c, commands.c, requests.c, rollback.c,
 * decisions.c): building decisions. Not for the daemon. */
#ifndef KD_CORE_INT_H
#define KD_CORE_INT_H

#include "core.h"
#include "model_int.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name
#define STEP(name) KDEPLOY__V1__STEP_STATUS__STEP_##name
#define STEP_OK(s) ((s) == STEP(SUCCEEDED) || (s) == STEP(SKIPPED))

/* Starts an envelope of a new event of deploy_id at the context's time. */
void kd_core_env(const kd_core_ctx_t *c, kd_envelope_t *env, char id[KD_UUID_LEN],
                 const char *deploy_id);
/* Adds a copy of env (nothing in the copy points at env's strings). */
void kd_decide(kd_decisions_t *out, kd_topic_t topic, const char *key, const kd_envelope_t *env);

/* deployments-topic events */
void kd_decide_status(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                      Kdeploy__V1__DeploymentStatus status, const char *reason,
                      const char *requested_by);
void kd_decide_host_finished(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                             const kd_dhost_t *h, Kdeploy__V1__StepStatus status,
                             const char *error);
/* A failure because the host's worker went silent. */
void kd_decide_host_silent(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                           const kd_dhost_t *h, const char *error);
void kd_decide_rejected(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                        const char *requested_by, const char *reason);

/* A spec without its host lists, sharing everything else with the spec it
 * was made from: what accepted events carry, so they stay small whatever
 * the fleet (the lists follow in slices). */
typedef struct kd_spec_shell {
    Kdeploy__V1__DeploymentSpec spec;
    Kdeploy__V1__BlueGreen bg;
    Kdeploy__V1__BlueGreenGroup blue, green;
} kd_spec_shell_t;

void kd_spec_shell(kd_spec_shell_t *sh, const Kdeploy__V1__DeploymentSpec *spec);
/* deployment_hosts events carrying names in slices of bounded size. */
void kd_decide_hosts(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                     char *const *names, size_t n, bool standby);
/* The same, from names[from] on (slices that did not make it). */
void kd_decide_hosts_from(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                          char *const *names, size_t n, size_t from, bool standby);
/* At most this many names in an event that lists hosts for people to read
 * (batch started, rollback started, failed); counts give the rest. */
#define KD_LISTED_HOSTS 1000

/* commands.c: StepDispatched for the workflow's step `step` of h, then its
 * command (restore: a rolling rollback's revision for h, decided in the
 * same round as its HostStarted). */
void kd_decide_step(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                    const kd_deploy_t *d, const kd_dhost_t *h, const char *restore, int step,
                    uint32_t attempt);
/* The command of h's step in flight, sent again (no new record). */
void kd_decide_resend(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                      const kd_deploy_t *d, const kd_dhost_t *h);
/* The blue-green swap: recorded (unless a resend) and sent. */
void kd_decide_swap(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                    uint32_t attempt, bool resend);

/* rollback.c: why undone cannot be rolled back now (NULL if it can);
 * ending_now: undone fails in the same round, so it counts as finished. */
const char *kd_rollback_refusal(const kd_model_t *m, const kd_deploy_t *undone,
                                const char *rollback_id, bool ending_now);
/* RollbackStarted on undone, then the rollback's acceptance (or the
 * rollback request's rejection). */
/* The rest of an incomplete rollback's host slices (a planner stopped in
 * the middle of that round), from the deployment it undoes. */
void kd_decide_rollback_slices(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                               const kd_deploy_t *d);
void kd_decide_rollback(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                        const kd_deploy_t *undone, const char *rollback_id,
                        const char *requested_by, const char *reason, bool ending_now);

/* control.c: a stop, pause or resume request, answered by the status it
 * asks for or by a RequestRefused saying why not. */
void kd_core_control(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                     kd_decisions_t *out);
/* d is stopping and no host of it runs any more: it ends stopped, and is
 * rolled back in the same round if the stop asked for it. */
void kd_decide_stopped(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                       const kd_deploy_t *d);

/* Names req as the request answered by the first of out's decisions from
 * index `from` on that is an answer to it (accepted, rejected, a status
 * change or a refusal of req's own deploy id): its in_reply_to. */
void kd_decisions_answer(kd_decisions_t *out, size_t from, const kd_envelope_t *req);

/* Spec values with the wire's zeros read as their defaults. */
uint32_t kd_core_threshold(const kd_deploy_t *d);
int64_t kd_core_host_timeout_ms(const kd_deploy_t *d);
int64_t kd_core_deployment_timeout_ms(const kd_deploy_t *d);

#endif
