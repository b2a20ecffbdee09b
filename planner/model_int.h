/* The model's insides, for the planner's core (core*.c), which reads them
 * through const pointers to decide; only model.c writes them, when it
 * applies an event. Not for the operator's tool: it uses model.h. */
#ifndef KD_MODEL_INT_H
#define KD_MODEL_INT_H

#include "model.h"
#include "ptrmap.h"
#include "strmap.h"

typedef struct kd_dhost {
    char *name;
    kd_host_phase_t phase;
    int step;               /* index into the workflow of the last dispatched step; -1 */
    uint32_t attempt;
    bool in_flight;         /* dispatched, no result yet */
    /* The answer to the last step once it came (in_flight false): what the
     * core decides from, and why it failed. */
    Kdeploy__V1__StepStatus result;
    int64_t sent_ms;        /* when the in-flight step was dispatched */
    int64_t seen_ms;        /* its last sign of life (dispatch or heartbeat) */
    int64_t started_ms;
    uint32_t batch;
    char *previous_id;      /* what the host ran before this deployment ("" if nothing) */
    char *restore_id;       /* rollback: the deployment whose revision is restored */
    char *error;            /* why the last step or the host failed ("" if not) */
    kd_event_t failed_step;
    bool silent;            /* failed because its worker stopped answering */
    int64_t finished_ms;
    /* Hosts that wait for a decision (running, nothing in flight) are
     * linked, so a result costs O(1) and never a scan of the fleet. */
    bool ready;
    struct kd_dhost *ready_prev, *ready_next;
} kd_dhost_t;

typedef enum {
    KD_SWAP_NONE = 0,
    KD_SWAP_IN_FLIGHT,
    KD_SWAP_DONE,
    KD_SWAP_FAILED
} kd_swap_state_t;

struct kd_deploy {
    char *id;
    Kdeploy__V1__DeploymentSpec *spec;  /* owned */
    char *rollback_of;                  /* "" unless a rollback */
    char *rolled_back_by;               /* set once a rollback of this one started */
    char *requested_by;
    Kdeploy__V1__DeploymentStatus status;
    const kd_workflow_t *wf;
    kd_dhost_t *hosts;
    size_t host_count;
    kd_ptrmap_t *host_index;  /* name -> host */
    /* Large fleets: hosts arrive in slices after the accepted event; the
     * deployment waits until all have come. */
    size_t hosts_expected, hosts_received;
    char **standby;           /* blue-green: the other group, which a rollback checks */
    size_t standby_count, standby_expected;
    int batch;                /* current batch, -1 before the first */
    size_t batch_first;       /* index of the current batch's first host */
    size_t started;           /* hosts [0, started) have been started */
    /* Counters kept by apply, so decisions never count by scanning. */
    size_t running, in_flight, succeeded, failed, skipped;
    kd_dhost_t *ready_head, *ready_tail;
    bool halted;              /* failing or ended: no new host, no next step */
    /* Pause holds new hosts; stopping holds them too and ends the
     * deployment once no host runs. Hosts in flight finish their workflow
     * under both. */
    bool paused;
    bool stopping;
    bool stop_rollback;       /* once stopped, roll back the hosts it changed */
    char *stop_by;            /* who asked to stop ("" if nobody) */
    char *stop_reason;        /* and why, in their words */
    int64_t accepted_ms;
    int64_t finished_ms;      /* 0 while active */
    /* blue-green */
    char *target_group;       /* the server group being deployed to */
    char *swap_from;          /* the group serving before ("" on a first deployment) */
    kd_swap_state_t swap;
    uint32_t swap_attempt;
    int64_t swap_sent_ms;
    struct kd_deploy *next;
};

struct kd_model {
    kd_deploy_t *head;       /* newest first */
    size_t count;
    kd_ptrmap_t *by_id;      /* deploy id -> deployment */
    kd_strmap_t *installed;  /* "app/group/host" -> deploy id whose revision runs there */
    kd_strmap_t *live;       /* "app/group" -> blue-green server group serving */
    kd_ptrmap_t *seen;       /* host id -> its last "alive" announcement (hosts topic) */
    kd_strmap_t *answered;   /* event ids of the requests answered (in_reply_to) */
    struct seen_host *seen_list;  /* the same hosts, linked (owns them) */
};

/* All its hosts have arrived: it can be driven. */
bool kd_deploy_complete(const kd_deploy_t *d);
/* The host named name, or NULL. */
const kd_dhost_t *kd_deploy_host(const kd_deploy_t *d, const char *name);

#endif
