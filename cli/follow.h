/* Following deployments from the operator's side: reading the deployments
 * topic into a model, waiting for an outcome, printing what happens. */
#ifndef KD_FOLLOW_H
#define KD_FOLLOW_H

#include <stdbool.h>
#include <stdio.h>

#include "bus.h"
#include "model.h"
#include "outcome.h"

/* Reads the whole deployments topic into m, and into notes (may be NULL). */
kd_status_t kd_follow_load(const kd_bus_conf_t *conf, kd_model_t *m, kd_notes_t *notes,
                           char *err, size_t errsz);

typedef enum {
    KD_WAIT_ENDED,     /* the deployment finished (see its status) */
    KD_WAIT_PAUSED,    /* it is paused (when waiting for that) */
    KD_WAIT_REJECTED,  /* the planner refused the request */
    KD_WAIT_TIMEOUT
} kd_wait_outcome_t;

typedef struct kd_wait {
    const char *deploy_id;
    bool until_paused;      /* stop waiting once it is paused */
    bool follow_rollback;   /* after a failure with a rollback, wait for that too */
    int timeout_s;          /* 0: no limit */
    FILE *out;              /* progress lines; NULL: quiet */
    bool live;              /* out is a terminal: keep a progress view redrawn in place */
    bool json;              /* events as JSON lines on out */
    /* filled in: */
    kd_wait_outcome_t outcome;
    char reason[1024];              /* why it was rejected, or why it failed */
    char rollback_id[64];           /* the rollback that followed, if any */
    Kdeploy__V1__DeploymentStatus status;           /* final status of deploy_id */
    Kdeploy__V1__DeploymentStatus rollback_status;  /* and of its rollback */
    int64_t failed_ms;      /* when it failed (monotonic), while a rollback may follow */
    char summary[256];      /* deploy_id's outcome in words, once it ended */
    char rollback_summary[256];  /* and its rollback's */
    bool is_rollback;       /* deploy_id is itself a rollback */
} kd_wait_t;

/* Follows w->deploy_id on the deployments and results topics (from their
 * beginning) until it ends, is rejected or the timeout passes. Plain mode
 * prints each event as a line; live mode keeps a progress bar and a line
 * per host in flight, redrawn in place. Both print failures with the
 * output tail of the failing hook, and the final summary. */
kd_status_t kd_follow_wait(const kd_bus_conf_t *conf, kd_wait_t *w, char *err, size_t errsz);

/* Prints a deployment and its hosts (human text); notes may be NULL. */
void kd_follow_print_status(FILE *f, const kd_notes_t *notes, const kd_deploy_t *d);
/* Prints a deployment as one JSON object; with_hosts: and each host. */
void kd_follow_print_json(FILE *f, const kd_notes_t *notes, const kd_deploy_t *d,
                          bool with_hosts);

#endif
