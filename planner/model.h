/* The picture of every deployment, built only by applying published events:
 * the deployments topic (the planner's own decisions, and other planners'),
 * and the results topic (what workers and lbctl answered). A restarted
 * planner reads the deployments topic from the start and stands where its
 * predecessor stood; steps that were in flight are sent again and the
 * workers' journals answer them. kd_model_apply() is the only mutator:
 * everything else here reads. The planner's core (core.h) decides from it;
 * the operator's tool shows it. */
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

typedef struct kd_model kd_model_t;
typedef struct kd_deploy kd_deploy_t;

kd_model_t *kd_model_new(void);
void kd_model_free(kd_model_t *m);

/* Applies one published event. Deployments are created by their `accepted`
 * event; events of deployments never accepted, stale or repeated results
 * and events of other topics are ignored. */
void kd_model_apply(kd_model_t *m, const kd_envelope_t *env);

const kd_deploy_t *kd_model_find(const kd_model_t *m, const char *deploy_id);
/* Every deployment, newest accepted first: first, then next until NULL. */
const kd_deploy_t *kd_model_first(const kd_model_t *m);
const kd_deploy_t *kd_model_next(const kd_deploy_t *d);
size_t kd_model_count(const kd_model_t *m);
/* The active (not finished) deployment of application/group other than
 * except_id (may be NULL), or NULL. */
const kd_deploy_t *kd_model_active(const kd_model_t *m, const char *app, const char *group,
                                   const char *except_id);
/* The deployment whose revision host runs now for application/group: the
 * last one that finished on it successfully (a rollback counts as the
 * revision it restored). NULL if none. */
const char *kd_model_installed(const kd_model_t *m, const char *app, const char *group,
                               const char *host);
/* When host's worker last announced itself alive on the hosts topic (its
 * clock), or 0 if never or if it said it stopped. */
int64_t kd_model_host_alive_ms(const kd_model_t *m, const char *host);
/* True once a worker has announced host on the hosts topic, alive or not. */
bool kd_model_host_known(const kd_model_t *m, const char *host);
/* How many hosts have been announced. */
size_t kd_model_host_count(const kd_model_t *m);
/* The announced hosts carrying every label of sel (n of them), sorted by
 * host id: *out is a malloc'd array the caller frees, of names the model
 * owns (valid until the next kd_model_apply). KD_OK or KD_ENOMEM. */
kd_status_t kd_model_select_hosts(const kd_model_t *m, const Kdeploy__V1__HostLabel *const *sel,
                                  size_t n, const char ***out, size_t *count);
/* The server group serving application/group's blue-green service, or NULL. */
const char *kd_model_live_group(const kd_model_t *m, const char *app, const char *group);
/* Request event ids are UUIDs; longer ones than this are neither named in
 * answers nor remembered. */
#define KD_REQUEST_ID_MAX 128
/* True if the request whose envelope had event_id was answered (an event
 * with in_reply_to = event_id was applied). */
bool kd_model_answered(const kd_model_t *m, const char *event_id);

/* ---- one deployment ---- */

const char *kd_deploy_id(const kd_deploy_t *d);
const Kdeploy__V1__DeploymentSpec *kd_deploy_spec(const kd_deploy_t *d);
const kd_workflow_t *kd_deploy_workflow(const kd_deploy_t *d);
Kdeploy__V1__DeploymentStatus kd_deploy_status(const kd_deploy_t *d);
bool kd_deploy_finished(const kd_deploy_t *d);
bool kd_deploy_paused(const kd_deploy_t *d);
/* A stop was asked: hosts in flight finish their workflow, then it ends
 * stopped (and, if asked, is rolled back). */
bool kd_deploy_stopping(const kd_deploy_t *d);
const char *kd_deploy_rollback_of(const kd_deploy_t *d);     /* "" unless a rollback */
const char *kd_deploy_rolled_back_by(const kd_deploy_t *d);  /* "" unless rolled back */
const char *kd_deploy_requested_by(const kd_deploy_t *d);
const char *kd_deploy_target_group(const kd_deploy_t *d);    /* blue-green, else "" */
const char *kd_deploy_swap_from(const kd_deploy_t *d);       /* blue-green, else "" */
int64_t kd_deploy_accepted_ms(const kd_deploy_t *d);
int64_t kd_deploy_finished_ms(const kd_deploy_t *d);         /* 0 while active */

typedef struct kd_host_counts {
    size_t total, pending, running, in_flight, succeeded, failed, skipped;
} kd_host_counts_t;

void kd_deploy_counts(const kd_deploy_t *d, kd_host_counts_t *out);
size_t kd_deploy_host_count(const kd_deploy_t *d);

/* A host of a deployment as the model sees it. Strings belong to the model
 * and live until the next kd_model_apply(). */
typedef struct kd_host_view {
    const char *name;
    kd_host_phase_t phase;
    kd_event_t step;      /* the last step sent to it, KD_EVENT_NONE before any */
    bool in_flight;       /* sent, not answered yet */
    uint32_t batch;
    int64_t started_ms;   /* 0 until started */
    int64_t sent_ms;      /* when its current step was sent */
    const char *error;    /* why it failed, "" otherwise */
} kd_host_view_t;

/* Host i (0 <= i < total) in the deployment's order. */
void kd_deploy_host_at(const kd_deploy_t *d, size_t i, kd_host_view_t *out);
/* Host by name; false if the deployment does not have it. */
bool kd_deploy_host_find(const kd_deploy_t *d, const char *name, kd_host_view_t *out);

const char *kd_status_name_of(Kdeploy__V1__DeploymentStatus st);
const char *kd_host_phase_name(kd_host_phase_t phase);

#endif
