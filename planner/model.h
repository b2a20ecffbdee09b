/* The planner's picture of every deployment, built only from the events of
 * the `deployments` topic: a restarted planner reads the topic from the
 * start and stands where its predecessor stood. The planner's own
 * decisions go through kd_model_apply() too, right after it publishes them,
 * so there is one way the picture changes. */
#ifndef KD_MODEL_H
#define KD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "workflow.h"

typedef enum {
    KD_HOST_PENDING = 0,  /* not started */
    KD_HOST_RUNNING,
    KD_HOST_SUCCEEDED,
    KD_HOST_FAILED,
    KD_HOST_SKIPPED       /* a rollback with nothing to restore on this host */
} kd_host_phase_t;

typedef struct kd_dhost {
    char *name;
    kd_host_phase_t phase;
    int step;               /* index into the workflow of the last dispatched step; -1 */
    uint32_t attempt;
    bool in_flight;         /* dispatched, no result yet */
    int64_t sent_ms;        /* when the in-flight step was dispatched */
    int64_t seen_ms;        /* its last sign of life (dispatch or heartbeat) */
    int64_t started_ms;
    uint32_t batch;
    char *previous_id;      /* what the host ran before this deployment ("" if nothing) */
    char *restore_id;       /* rollback: the deployment whose revision is restored */
    char *error;            /* why it failed */
    kd_event_t failed_step;
} kd_dhost_t;

typedef enum {
    KD_SWAP_NONE = 0,
    KD_SWAP_IN_FLIGHT,
    KD_SWAP_DONE,
    KD_SWAP_FAILED
} kd_swap_state_t;

typedef struct kd_deploy {
    char *id;
    Kdeploy__V1__DeploymentSpec *spec;  /* owned */
    char *rollback_of;                  /* "" unless a rollback */
    char *rolled_back_by;               /* set once a rollback of this one started */
    char *requested_by;
    Kdeploy__V1__DeploymentStatus status;
    const kd_workflow_t *wf;
    kd_dhost_t *hosts;
    size_t host_count;
    int batch;                /* current batch, -1 before the first */
    size_t started;           /* hosts [0, started) have been started */
    size_t failed;
    bool halted;              /* failing or stopping: no new host, no next step */
    bool paused;
    int64_t accepted_ms;
    int64_t finished_ms;      /* 0 while active */
    /* blue-green */
    char *target_group;       /* the server group being deployed to */
    char *swap_from;          /* the group serving before ("" on a first deployment) */
    kd_swap_state_t swap;
    uint32_t swap_attempt;
    int64_t swap_sent_ms;
    struct kd_deploy *next;
} kd_deploy_t;

typedef struct kd_model kd_model_t;

kd_model_t *kd_model_new(void);
void kd_model_free(kd_model_t *m);

/* Applies one deployments-topic event. Unknown deployments are created by
 * their `accepted` event; events of deployments never accepted are ignored. */
void kd_model_apply(kd_model_t *m, const kd_envelope_t *env);

kd_deploy_t *kd_model_find(const kd_model_t *m, const char *deploy_id);
/* Every deployment, newest accepted first. */
kd_deploy_t *kd_model_first(const kd_model_t *m);
/* The active (not finished) deployment of application/group, or NULL. */
kd_deploy_t *kd_model_active(const kd_model_t *m, const char *app, const char *group,
                             const char *except_id);
/* The deployment whose revision host runs now for application/group: the
 * last one that finished on it successfully (a rollback counts as the
 * revision it restored). NULL if none. */
const char *kd_model_installed(const kd_model_t *m, const char *app, const char *group,
                               const char *host);
/* The server group serving application/group's blue-green service, or NULL. */
const char *kd_model_live_group(const kd_model_t *m, const char *app, const char *group);

kd_dhost_t *kd_deploy_host(kd_deploy_t *d, const char *name);
bool kd_deploy_finished(const kd_deploy_t *d);
const char *kd_status_name_of(Kdeploy__V1__DeploymentStatus st);

#endif
