/* Webhooks: deployment events POSTed to the operators' receivers (Slack,
 * chat bots, ticketing), the way CodeDeploy's triggers notify.
 *
 * The planner's config names the receivers:
 *
 *   notify:
 *     - url: https://hooks.slack.com/services/T000/B000/XXXX
 *       events: [failed, rolled_back, host_failed]
 *     - url: https://ops.example/kdeploy-hook
 *       secret_file: /etc/kdeploy/webhook.secret   # or secret: "..."
 *
 * events (default: all) are accepted, succeeded, failed, rolled_back and
 * host_failed. Each event is one JSON object (see docs/observability.md)
 * with a Slack-compatible "text", signed when the receiver has a secret:
 * `X-Kdeploy-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
 *
 * Delivery runs on a thread of its own: kd_notify_event only queues, so a
 * slow or dead receiver never holds up the caller. Failed POSTs
 * (connection errors, timeouts, HTTP 408, 429 and 5xx) are retried with
 * exponential backoff; other answers end the delivery. */
#ifndef KD_NOTIFY_H
#define KD_NOTIFY_H

#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "metrics.h"
#include "status.h"

typedef struct kd_notify kd_notify_t;

/* Tuning; zero fields take the defaults. */
typedef struct kd_notify_opts {
    unsigned max_attempts;    /* tries per delivery; 0: 6 */
    unsigned backoff_ms;      /* wait before the second try, doubled each time; 0: 1000 */
    unsigned max_backoff_ms;  /* 0: 60000 */
    unsigned timeout_ms;      /* one POST, connecting included; 0: 10000 */
    size_t queue_max;         /* deliveries waiting; more are dropped; 0: 1000 */
    /* Counts deliveries in kdeploy_notify_deliveries_total{result} and
     * kdeploy_notify_queue (NULL: none). Must outlive the notifier. */
    kd_metrics_t *metrics;
} kd_notify_opts_t;

/* What became of deliveries so far. */
typedef struct kd_notify_stats {
    unsigned long queued;     /* deliveries accepted (one per event and receiver) */
    unsigned long delivered;  /* answered 2xx */
    unsigned long retried;    /* tries that failed and were scheduled again */
    unsigned long failed;     /* given up: out of tries, or refused (4xx) */
    unsigned long dropped;    /* not queued: the queue was full */
    size_t pending;           /* waiting or in flight */
} kd_notify_stats_t;

/* Reads the "notify" list of cfg (NULL or no list: a notifier that sends
 * nothing) and starts the delivery thread. Errors name file:line: a
 * missing or non-http(s) url, an unknown event or key, an unreadable
 * secret_file. opts may be NULL. With receivers, it initializes libcurl's
 * global state: call it before other threads use libcurl. */
kd_status_t kd_notify_new(const kd_config_t *cfg, const kd_notify_opts_t *opts,
                          kd_notify_t **out, char *err, size_t errsz);

/* Takes one deployments-topic envelope. Accepted, succeeded, failed,
 * host finished (failed or timed out) and status changed (rollback
 * succeeded or failed) become deliveries to every receiver that wants
 * them; anything else is ignored. Never blocks on the network; accepts a
 * NULL notifier. Call it once per event, after the event is published. */
void kd_notify_event(kd_notify_t *n, const kd_envelope_t *env);

/* Remembers what an envelope says about its deployment (application,
 * group, revision label, rollback_of) without sending anything, so later
 * events' texts can name it: for history read back at start. */
void kd_notify_learn(kd_notify_t *n, const kd_envelope_t *env);

/* Copies the counters; accepts a NULL notifier (all zero). */
void kd_notify_stats(kd_notify_t *n, kd_notify_stats_t *out);

/* Waits up to timeout_ms until nothing is pending. Returns KD_OK, or
 * KD_ETIMEDOUT with deliveries still pending. */
kd_status_t kd_notify_flush(kd_notify_t *n, int timeout_ms);

/* Stops the thread (an in-flight POST is cut short), drops what is still
 * pending, frees; accepts NULL. */
void kd_notify_free(kd_notify_t *n);

/* HMAC-SHA256 of body under secret, as 64 lower-case hex digits. */
void kd_notify_sign(const char *secret, const void *body, size_t len, char hex[65]);

#endif
