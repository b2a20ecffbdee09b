/* The planner's decisions, as a pure core: given the model and an input (a
 * request, a tick of the clock, a deployment to move on after a result was
 * applied), it returns what to publish — and touches neither Kafka nor the
 * model. The daemon around it (daemon.c) publishes the decisions, applies
 * the deployments-topic ones to the model, then asks the core again about
 * the deployments they touched, until nothing is left to decide:
 *
 *     input -> decide -> publish -> apply -> decide -> ... -> nothing
 *
 * Each round's decisions are consistent with the model as it was before
 * the round, so none of them needs another of the same round applied
 * first. Every decision changes the model once applied (a host leaves the
 * ready list, a deployment ends), which is what makes the loop end. */
#ifndef KD_CORE_H
#define KD_CORE_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "ids.h"
#include "model.h"

/* How far the caller has read the hosts topic, for a create that names
 * hosts no worker has announced. */
typedef enum {
    KD_HOSTS_UNCHECKED = 0, /* not followed (tests, tools): hosts are not checked */
    KD_HOSTS_MAYBE_BEHIND,  /* followed, perhaps not to its end: such a create waits */
    KD_HOSTS_READ           /* read to its end: such a create is rejected */
} kd_hosts_read_t;

/* What the core needs from the world, passed in so that tests choose it. */
typedef struct kd_core_ctx {
    int64_t now_ms;           /* wall clock, epoch ms: event times and timeouts */
    const char *self;         /* the envelopes' producer */
    /* When this planner took over its partitions, or the brokers answered
     * again after an outage: running hosts and steps in flight get full
     * timeouts from that moment (their heartbeats went to the planner
     * before, or nowhere). */
    int64_t since_ms;
    /* True if this planner drives deploy_id (owns its partition). */
    bool (*owns)(void *arg, const char *deploy_id);
    /* A new deployment id for an automatic rollback of deploy_id, on a
     * partition this planner owns, so the rollback's results come back
     * here. */
    void (*new_id)(void *arg, const char *deploy_id, char out[KD_UUID_LEN]);
    void *arg;
    kd_hosts_read_t hosts_read;
} kd_core_ctx_t;

/* ---- decisions ---- */

typedef struct kd_decision {
    kd_topic_t topic;      /* deployments, steps or traffic */
    char *key;             /* the message key */
    kd_envelope_t *env;    /* owned: nothing in it points into the model */
    uint8_t *bytes;        /* env's encoding (owned): what is published */
    size_t len;
} kd_decision_t;

typedef struct kd_decisions {
    kd_decision_t *items;
    size_t count, cap;
    bool failed;           /* out of memory while adding: the round is void */
    /* A create named hosts not announced yet while hosts_read was
     * KD_HOSTS_MAYBE_BEHIND: nothing was decided; ask again once the hosts
     * topic is read to its end (with KD_HOSTS_READ). */
    bool wait_for_hosts;
} kd_decisions_t;

void kd_decisions_init(kd_decisions_t *out);
/* Frees every decision and empties the list (it can be reused). */
void kd_decisions_clear(kd_decisions_t *out);

/* ---- entry points ---- */

/* A request from the requests topic: create, stop, pause, resume or
 * rollback. Its answer (accepted, rejected, the status asked for, or a
 * request_refused for a stop, pause or resume not carried out) names the
 * request's event id in in_reply_to. A request answered before (its
 * answer is in the model) is not answered again. */
void kd_core_request(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                     kd_decisions_t *out);
/* A rejection of request req with reason (the planner could not carry it
 * out for a reason outside the request's own checks). */
void kd_core_reject(const kd_core_ctx_t *c, const kd_envelope_t *req, const char *reason,
                    kd_decisions_t *out);
/* Moves deploy_id forward as far as the model allows now: decisions for
 * answered hosts, the next batch, the swap, the end and a rollback. Safe
 * to call any time; nothing to do is no decision. */
void kd_core_drive(const kd_model_t *m, const kd_core_ctx_t *c, const char *deploy_id,
                   kd_decisions_t *out);
/* Time: silent steps, host, swap and deployment timeouts, for every
 * deployment this planner owns. */
void kd_core_tick(const kd_model_t *m, const kd_core_ctx_t *c, kd_decisions_t *out);
/* After a start or a rebalance: the commands in flight of the deployments
 * this planner now owns, sent again with their step ids (workers' journals
 * answer a repeat without running it again), then what each can do next. */
void kd_core_takeover(const kd_model_t *m, const kd_core_ctx_t *c, kd_decisions_t *out);

/* ---- rounds ---- */

/* Publishes one round of decisions (deployments-topic records first, all
 * acknowledged, then the commands); KD_OK only if all went out. */
typedef kd_status_t (*kd_publish_fn)(void *arg, const kd_decisions_t *round, char *err,
                                     size_t errsz);
/* Refreshes the context before each round (the clock moves). */
typedef void (*kd_ctx_fn)(void *arg, kd_core_ctx_t *c);

/* The loop around the core: publishes dec, applies its records to m, then
 * drives the deployments they touched, round after round, until nothing is
 * left to decide. The daemon and the unit tests run the same loop. On
 * success dec is empty; when a round could not be published, that round is
 * left in dec, unapplied, and the publisher's status returned, so that the
 * caller can try it again (or clear it). */
kd_status_t kd_core_execute(kd_model_t *m, kd_decisions_t *dec, kd_ctx_fn ctx, kd_publish_fn publish,
                            void *arg, char *err, size_t errsz);

/* "<deploy>/<host>/<event>/<attempt>": a step's or traffic command's id,
 * malloc'd (NULL on ENOMEM). */
char *kd_core_step_id(const char *deploy_id, const char *host, kd_event_t ev, uint32_t attempt);

#endif
