/* Deployment metrics, counted from the events of the deployments and
 * results topics: what the planner exports (and `kdeploy dashboard` too,
 * from the topics alone). One call per event:
 *
 *   kd_deploy_metrics_t *dm = kd_deploy_metrics_new(reg);
 *   ...
 *   kd_deploy_metrics_event(dm, env, replaying);   // beside kd_model_apply()
 *
 * Counters and histograms move only for live events (replaying false):
 * history read back at start is not counted twice. Gauges whose truth is
 * a model's (hosts in flight, active deployments, consumer lag) are set by
 * the owner of that model, best from a kd_metrics_on_scrape callback.
 *
 * Families (labels in braces):
 *   kdeploy_deployments_accepted_total{operation}     update | rollback
 *   kdeploy_deployments_rejected_total
 *   kdeploy_deployments_finished_total{status}        succeeded | failed | stopped |
 *                                                     rollback_succeeded | rollback_failed
 *   kdeploy_deployment_duration_seconds{status}       histogram, succeeded | failed
 *   kdeploy_steps_total{event,status}                 step and traffic results
 *   kdeploy_step_duration_seconds{event}              histogram
 *   kdeploy_host_failures_total{event}                hosts failed, by the step that failed
 *   kdeploy_rollbacks_total                           rollbacks started
 * and, from their first setting by the caller:
 *   kdeploy_hosts_in_flight, kdeploy_deployments_active   kd_deploy_metrics_in_flight
 *   kdeploy_consumer_lag_messages{topic}                  kd_deploy_metrics_lag
 *   kdeploy_publish_errors_total{topic}                   kd_deploy_metrics_publish_error
 * (setters are not thread-safe among themselves: call them from one thread). */
#ifndef KD_DEPLOY_METRICS_H
#define KD_DEPLOY_METRICS_H

#include <stdbool.h>

#include "bus.h"
#include "envelope.h"
#include "metrics.h"

typedef struct kd_deploy_metrics kd_deploy_metrics_t;

/* Registers the families in reg; NULL if reg is NULL or out of memory.
 * The registry must outlive the handle. */
kd_deploy_metrics_t *kd_deploy_metrics_new(kd_metrics_t *reg);
void kd_deploy_metrics_free(kd_deploy_metrics_t *dm);

/* Counts one event of the deployments or results topic; anything else is
 * ignored. Accepts a NULL handle. */
void kd_deploy_metrics_event(kd_deploy_metrics_t *dm, const kd_envelope_t *env, bool replaying);

/* A publish to topic failed. */
void kd_deploy_metrics_publish_error(kd_deploy_metrics_t *dm, kd_topic_t topic);
/* The caller's gauges. */
void kd_deploy_metrics_in_flight(kd_deploy_metrics_t *dm, unsigned hosts, unsigned deployments);
void kd_deploy_metrics_lag(kd_deploy_metrics_t *dm, kd_topic_t topic, int64_t messages);

#endif
