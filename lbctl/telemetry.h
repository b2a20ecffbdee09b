/* lbctl's Prometheus metrics: traffic changes by action and status, how
 * long they took, journal replays and skipped messages. Every call accepts
 * a NULL handle (lbctl started without --metrics-listen). */
#ifndef KD_LB_TELEMETRY_H
#define KD_LB_TELEMETRY_H

#include <stdint.h>

#include "kdeploy.pb-c.h"
#include "metrics.h"

typedef struct kd_lb_metrics kd_lb_metrics_t;

/* Registers lbctl's metrics in a registry of its own and serves it on
 * listen ("ADDR:PORT", see kd_metrics_serve). */
kd_status_t kd_lb_metrics_start(const char *listen, const char *driver, kd_lb_metrics_t **out,
                                char *err, size_t errsz);
/* Stops serving and frees; accepts NULL. */
void kd_lb_metrics_free(kd_lb_metrics_t *lm);

/* A traffic change applied through the driver. */
void kd_lb_metrics_change(kd_lb_metrics_t *lm, const Kdeploy__V1__TrafficResult *r);
/* A repeated command answered from the journal. */
void kd_lb_metrics_replay(kd_lb_metrics_t *lm);
/* A malformed, foreign or unverified message skipped. */
void kd_lb_metrics_skipped(kd_lb_metrics_t *lm);

#endif
