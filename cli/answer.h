/* Waiting for the planner's answer to one request: accepted, rejected or
 * refused, named by the request's event id (Envelope.in_reply_to). */
#ifndef KD_ANSWER_H
#define KD_ANSWER_H

#include <stdbool.h>

#include "bus.h"

typedef enum {
    KD_ANSWER_ACCEPTED,  /* accepted, or the status change asked for */
    KD_ANSWER_REFUSED,   /* rejected or refused: see reason */
    KD_ANSWER_NONE       /* nothing in time */
} kd_answer_kind_t;

typedef struct kd_answer {
    kd_answer_kind_t kind;
    char reason[1024];    /* why it was refused */
    char status[64];      /* accepted: the deployment's status then ("pending", "paused"...) */
} kd_answer_t;

typedef struct kd_answer_wait kd_answer_wait_t;

/* Starts listening for answers about deploy_id, before the request is
 * sent: the deployments topic's partition of deploy_id, from its end. */
kd_status_t kd_answer_open(const kd_bus_conf_t *conf, const char *deploy_id,
                           kd_answer_wait_t **out, char *err, size_t errsz);
/* Waits up to timeout_ms for the answer to request (the envelope sent:
 * its event id, deploy id and body). An answer names the request in
 * in_reply_to; a planner that predates in_reply_to is understood too: an
 * accepted or rejected event of a new deployment's id, or (stop, pause,
 * resume) a rejection or the status change asked for, published after the
 * request. */
kd_status_t kd_answer_wait(kd_answer_wait_t *w, const kd_envelope_t *request, int timeout_ms,
                           kd_answer_t *out, char *err, size_t errsz);
/* Accepts NULL. */
void kd_answer_close(kd_answer_wait_t *w);

#endif
