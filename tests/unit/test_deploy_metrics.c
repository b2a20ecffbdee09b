/* Deployment metrics from topic events: what moves the counters, that
 * history read back (replaying) moves none, and that repeats answered
 * from a worker's journal are not counted as steps again. */
#include <string.h>

#include "check.h"
#include "deploy_metrics.h"
#include "event.h"
#include "ids.h"

static kd_envelope_t env_of(kd_body_t body)
{
    static char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_envelope_init(&env, id, "d-1", "test");
    env.body_case = body;
    return env;
}

static double get(kd_metrics_t *reg, const char *name, int kind, const char *labels,
                  const char *const *values)
{
    kd_metric_t *m = kind == 0 ? kd_metrics_counter(reg, name, "", labels)
                               : kd_metrics_histogram(reg, name, "", labels, NULL, 0);

    CHECK_MSG(m != NULL, "%s", name);
    return kd_metric_value(m, values);
}

static void feed(kd_deploy_metrics_t *dm, bool replaying)
{
    Kdeploy__V1__DeploymentAccepted acc = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    Kdeploy__V1__StepResult sr = KDEPLOY__V1__STEP_RESULT__INIT;
    Kdeploy__V1__HostFinished hf = KDEPLOY__V1__HOST_FINISHED__INIT;
    Kdeploy__V1__DeploymentFailed failed = KDEPLOY__V1__DEPLOYMENT_FAILED__INIT;
    Kdeploy__V1__DeploymentStatusChanged sc = KDEPLOY__V1__DEPLOYMENT_STATUS_CHANGED__INIT;
    kd_envelope_t e;

    e = env_of(KD_BODY(ACCEPTED));
    e.accepted = &acc;
    kd_deploy_metrics_event(dm, &e, replaying);
    acc.rollback_of = "d-0";
    kd_deploy_metrics_event(dm, &e, replaying);

    sr.event = KD_EVENT(ValidateService);
    sr.status = KDEPLOY__V1__STEP_STATUS__STEP_FAILED;
    sr.duration_ms = 1500;
    e = env_of(KD_BODY(STEP_RESULT));
    e.step_result = &sr;
    kd_deploy_metrics_event(dm, &e, replaying);
    sr.replayed = 1; /* the same result again, from the journal */
    kd_deploy_metrics_event(dm, &e, replaying);

    hf.status = KDEPLOY__V1__STEP_STATUS__STEP_FAILED;
    hf.failed_step = KD_EVENT(ValidateService);
    e = env_of(KD_BODY(HOST_FINISHED));
    e.host_finished = &hf;
    kd_deploy_metrics_event(dm, &e, replaying);

    failed.duration_ms = 12000;
    e = env_of(KD_BODY(FAILED));
    e.failed = &failed;
    kd_deploy_metrics_event(dm, &e, replaying);

    sc.status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_ROLLBACK_SUCCEEDED;
    e = env_of(KD_BODY(STATUS_CHANGED));
    e.status_changed = &sc;
    kd_deploy_metrics_event(dm, &e, replaying);
    sc.status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_PAUSED; /* not an end */
    kd_deploy_metrics_event(dm, &e, replaying);
}

static void test_live_events_counted(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_deploy_metrics_t *dm = kd_deploy_metrics_new(reg);

    feed(dm, false);
    CHECK(get(reg, "kdeploy_deployments_accepted_total", 0, "operation", KD_LV("update")) == 1);
    CHECK(get(reg, "kdeploy_deployments_accepted_total", 0, "operation", KD_LV("rollback")) == 1);
    CHECK(get(reg, "kdeploy_rollbacks_total", 0, NULL, NULL) == 1);
    CHECK(get(reg, "kdeploy_steps_total", 0, "event,status", KD_LV("ValidateService", "failed")) == 1);
    CHECK(get(reg, "kdeploy_step_duration_seconds", 1, "event", KD_LV("ValidateService")) == 1);
    CHECK(get(reg, "kdeploy_host_failures_total", 0, "event", KD_LV("ValidateService")) == 1);
    CHECK(get(reg, "kdeploy_deployments_finished_total", 0, "status", KD_LV("failed")) == 1);
    CHECK(get(reg, "kdeploy_deployments_finished_total", 0, "status", KD_LV("rollback_succeeded")) == 1);
    CHECK(get(reg, "kdeploy_deployments_finished_total", 0, "status", KD_LV("paused")) == 0);
    CHECK(get(reg, "kdeploy_deployment_duration_seconds", 1, "status", KD_LV("failed")) == 1);
    kd_deploy_metrics_free(dm);
    kd_metrics_free(reg);
}

static void test_history_not_counted_and_caller_gauges_appear_when_set(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_deploy_metrics_t *dm = kd_deploy_metrics_new(reg);
    kd_buf_t text = KD_BUF_INIT(0);

    feed(dm, true);
    CHECK(get(reg, "kdeploy_deployments_accepted_total", 0, "operation", KD_LV("update")) == 0);
    CHECK(get(reg, "kdeploy_steps_total", 0, "event,status", KD_LV("ValidateService", "failed")) == 0);
    kd_metrics_render(reg, &text);
    CHECK(strstr(kd_buf_str(&text), "kdeploy_hosts_in_flight") == NULL);
    CHECK_CONTAINS(kd_buf_str(&text), "kdeploy_deployments_finished_total{status=\"failed\"} 0\n");
    kd_buf_reset(&text);
    kd_deploy_metrics_in_flight(dm, 3, 1);
    kd_deploy_metrics_lag(dm, KD_TOPIC_RESULTS, 42);
    kd_deploy_metrics_publish_error(dm, KD_TOPIC_STEPS);
    kd_metrics_render(reg, &text);
    CHECK_CONTAINS(kd_buf_str(&text), "kdeploy_hosts_in_flight 3\n");
    CHECK_CONTAINS(kd_buf_str(&text), "kdeploy_deployments_active 1\n");
    CHECK_CONTAINS(kd_buf_str(&text), "kdeploy_consumer_lag_messages{topic=\"results\"} 42\n");
    CHECK_CONTAINS(kd_buf_str(&text), "kdeploy_publish_errors_total{topic=\"steps\"} 1\n");
    kd_buf_free(&text);
    kd_deploy_metrics_free(dm);
    kd_metrics_free(reg);
}

int main(void)
{
    RUN(test_live_events_counted);
    RUN(test_history_not_counted_and_caller_gauges_appear_when_set);
    return check_summary();
}
