/* The lifecycle steps a worker performs, one function per step kind. */
#ifndef KD_STEPS_H
#define KD_STEPS_H

#include "host.h"
#include "kdeploy.pb-c.h"

/* A step's outcome: the fields of a StepResult, with owned strings. */
typedef struct kd_step_outcome {
    Kdeploy__V1__StepStatus status;
    int exit_code;
    char output_tail[4097];
    char error[2048];
    char revision_installed[160];  /* after Install */
} kd_step_outcome_t;

/* Performs one step for host: the hook, download or install it names.
 * deploy_id is the step's deployment. Never fails as a call: every failure
 * is described in out. on_progress (may be NULL) is called every few
 * seconds while a hook runs. */
void kd_step_perform(kd_host_t *host, const char *deploy_id,
                     const Kdeploy__V1__StepCommand *cmd, kd_step_outcome_t *out,
                     void (*on_progress)(void *opaque, int64_t elapsed_ms, const char *tail,
                                         size_t len),
                     void *opaque);

#endif
