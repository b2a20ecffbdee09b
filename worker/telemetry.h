/* The worker's Prometheus metrics: steps and hook durations by lifecycle
 * event, bundle downloads (bytes and time), journal replays. Every call
 * accepts a NULL handle (a worker started without --metrics-listen). */
#ifndef KD_WORKER_TELEMETRY_H
#define KD_WORKER_TELEMETRY_H

#include <stdint.h>

#include "event.h"
#include "metrics.h"

typedef struct kd_worker_metrics kd_worker_metrics_t;

/* Registers the worker's metrics in a registry of its own and serves it
 * on listen ("ADDR:PORT", see kd_metrics_serve). */
kd_status_t kd_worker_metrics_start(const char *listen, unsigned host_count,
                                    kd_worker_metrics_t **out, char *err, size_t errsz);
/* Stops serving and frees; accepts NULL. */
void kd_worker_metrics_free(kd_worker_metrics_t *wm);

/* A step starts: counted in progress until kd_worker_metrics_step. */
void kd_worker_metrics_step_started(kd_worker_metrics_t *wm);
/* A step performed (not replayed), with its status and how long it took. */
void kd_worker_metrics_step(kd_worker_metrics_t *wm, kd_event_t event,
                            Kdeploy__V1__StepStatus status, int64_t duration_ms);
/* One bundle download: archive is the file written (its size is counted),
 * or NULL when the download failed. */
void kd_worker_metrics_download(kd_worker_metrics_t *wm, const char *archive,
                                int64_t duration_ms);
/* A repeated delivery answered from the journal: restarted says the step
 * had been cut short by a crash (reported failed), else its recorded
 * result was published again. */
void kd_worker_metrics_replay(kd_worker_metrics_t *wm, int restarted);

#endif
