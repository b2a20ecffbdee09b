#include "deploy_metrics.h"

#include <stdlib.h>

#include "event.h"

struct kd_deploy_metrics {
    kd_metrics_t *reg;
    kd_metric_t *accepted, *rejected, *finished, *duration, *steps, *step_seconds;
    kd_metric_t *host_failures, *rollbacks, *in_flight, *active, *lag, *publish_errors;
};

static const char *step_word(Kdeploy__V1__StepStatus st)
{
    switch (st) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED: return "succeeded";
    case KDEPLOY__V1__STEP_STATUS__STEP_FAILED: return "failed";
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED: return "skipped";
    case KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT: return "timed_out";
    default: return "unknown";
    }
}

/* The statuses a deployment ends in; NULL for the others. */
static const char *final_word(Kdeploy__V1__DeploymentStatus st)
{
    switch (st) {
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_STOPPED: return "stopped";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED: return "rollback_succeeded";
    case KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_FAILED: return "rollback_failed";
    default: return NULL;
    }
}

kd_deploy_metrics_t *kd_deploy_metrics_new(kd_metrics_t *reg)
{
    kd_deploy_metrics_t *dm;

    if (!reg || !(dm = calloc(1, sizeof *dm)))
        return NULL;
    dm->accepted = kd_metrics_counter(reg, "kdeploy_deployments_accepted_total",
                                      "Deployments accepted, by operation (update, rollback).",
                                      "operation");
    dm->rejected = kd_metrics_counter(reg, "kdeploy_deployments_rejected_total",
                                      "Deployment requests refused.", NULL);
    dm->finished = kd_metrics_counter(reg, "kdeploy_deployments_finished_total",
                                      "Deployments that ended, by final status.", "status");
    dm->duration = kd_metrics_histogram(reg, "kdeploy_deployment_duration_seconds",
                                        "From acceptance to success or failure.", "status",
                                        NULL, 0);
    dm->steps = kd_metrics_counter(reg, "kdeploy_steps_total",
                                   "Step and traffic results, by lifecycle event and status.",
                                   "event,status");
    dm->step_seconds = kd_metrics_histogram(reg, "kdeploy_step_duration_seconds",
                                            "Time a step took on its host, by lifecycle event.",
                                            "event", NULL, 0);
    dm->host_failures = kd_metrics_counter(reg, "kdeploy_host_failures_total",
                                           "Hosts that failed a deployment, by the failing step.",
                                           "event");
    dm->rollbacks = kd_metrics_counter(reg, "kdeploy_rollbacks_total",
                                       "Rollbacks started (automatic or asked for).", NULL);
    dm->reg = reg;
    /* Zero series exist from the start, so rate() and alerts see them. */
    kd_metric_add(dm->accepted, KD_LV("update"), 0);
    kd_metric_add(dm->accepted, KD_LV("rollback"), 0);
    kd_metric_add(dm->rejected, NULL, 0);
    kd_metric_add(dm->finished, KD_LV("succeeded"), 0);
    kd_metric_add(dm->finished, KD_LV("failed"), 0);
    kd_metric_add(dm->rollbacks, NULL, 0);
    return dm;
}

void kd_deploy_metrics_free(kd_deploy_metrics_t *dm)
{
    free(dm);
}

static void step_result(kd_deploy_metrics_t *dm, kd_event_t ev, Kdeploy__V1__StepStatus st,
                        int64_t ms)
{
    kd_metric_inc(dm->steps, KD_LV(kd_event_name(ev), step_word(st)));
    kd_metric_observe(dm->step_seconds, KD_LV(kd_event_name(ev)), (double)ms / 1000.0);
}

void kd_deploy_metrics_event(kd_deploy_metrics_t *dm, const kd_envelope_t *env, bool replaying)
{
    const char *word;

    if (!dm || !env || replaying)
        return;
    switch (env->body_case) {
    case KD_BODY(ACCEPTED):
        kd_metric_inc(dm->accepted, KD_LV(*env->accepted->rollback_of ? "rollback" : "update"));
        if (*env->accepted->rollback_of)
            kd_metric_inc(dm->rollbacks, NULL);
        break;
    case KD_BODY(REJECTED): kd_metric_inc(dm->rejected, NULL); break;
    case KD_BODY(SUCCEEDED):
        kd_metric_inc(dm->finished, KD_LV("succeeded"));
        kd_metric_observe(dm->duration, KD_LV("succeeded"),
                          (double)env->succeeded->duration_ms / 1000.0);
        break;
    case KD_BODY(FAILED):
        kd_metric_inc(dm->finished, KD_LV("failed"));
        kd_metric_observe(dm->duration, KD_LV("failed"), (double)env->failed->duration_ms / 1000.0);
        break;
    case KD_BODY(STATUS_CHANGED):
        if ((word = final_word(env->status_changed->status)))
            kd_metric_inc(dm->finished, KD_LV(word));
        break;
    case KD_BODY(HOST_FINISHED):
        if (env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_FAILED ||
            env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT)
            kd_metric_inc(dm->host_failures, KD_LV(kd_event_name(env->host_finished->failed_step)));
        break;
    case KD_BODY(STEP_RESULT):
        if (!env->step_result->replayed)
            step_result(dm, env->step_result->event, env->step_result->status,
                        env->step_result->duration_ms);
        break;
    case KD_BODY(TRAFFIC_RESULT):
        if (!env->traffic_result->replayed)
            step_result(dm, env->traffic_result->event, env->traffic_result->status,
                        env->traffic_result->duration_ms);
        break;
    default:
        break;
    }
}

/* The caller's families appear on first use: a process that cannot know
 * them (the dashboard has no planner's model) shows none rather than 0. */
void kd_deploy_metrics_publish_error(kd_deploy_metrics_t *dm, kd_topic_t topic)
{
    if (!dm)
        return;
    if (!dm->publish_errors)
        dm->publish_errors = kd_metrics_counter(dm->reg, "kdeploy_publish_errors_total",
                                                "Publishes that failed, by topic.", "topic");
    kd_metric_inc(dm->publish_errors, KD_LV(kd_topic_suffix(topic)));
}

void kd_deploy_metrics_in_flight(kd_deploy_metrics_t *dm, unsigned hosts, unsigned deployments)
{
    if (!dm)
        return;
    if (!dm->in_flight)
        dm->in_flight = kd_metrics_gauge(dm->reg, "kdeploy_hosts_in_flight",
                                         "Hosts started and not yet finished.", NULL);
    if (!dm->active)
        dm->active = kd_metrics_gauge(dm->reg, "kdeploy_deployments_active",
                                      "Deployments accepted and not yet ended.", NULL);
    kd_metric_set(dm->in_flight, NULL, hosts);
    kd_metric_set(dm->active, NULL, deployments);
}

void kd_deploy_metrics_lag(kd_deploy_metrics_t *dm, kd_topic_t topic, int64_t messages)
{
    if (!dm)
        return;
    if (!dm->lag)
        dm->lag = kd_metrics_gauge(dm->reg, "kdeploy_consumer_lag_messages",
                                   "Messages not yet read, by topic.", "topic");
    kd_metric_set(dm->lag, KD_LV(kd_topic_suffix(topic)), (double)messages);
}
