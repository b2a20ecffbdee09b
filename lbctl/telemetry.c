#include "telemetry.h"

#include <stdlib.h>

struct kd_lb_metrics {
    kd_metrics_t *reg;
    kd_metrics_server_t *server;
    kd_metric_t *changes, *seconds, *replays, *skipped;
};

static const char *action_word(Kdeploy__V1__TrafficAction a)
{
    switch (a) {
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK: return "block";
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW: return "allow";
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP: return "swap";
    default: return "unknown";
    }
}

static const char *status_word(Kdeploy__V1__StepStatus st)
{
    switch (st) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED: return "succeeded";
    case KDEPLOY__V1__STEP_STATUS__STEP_FAILED: return "failed";
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED: return "skipped";
    case KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT: return "timed_out";
    default: return "unknown";
    }
}

static void define(kd_lb_metrics_t *lm, const char *driver)
{
    kd_metric_t *info = kd_metrics_gauge(lm->reg, "kdeploy_build_info",
                                         "The running kdeploy's version.", "component,version");

    lm->changes = kd_metrics_counter(lm->reg, "kdeploy_lbctl_changes_total",
                                     "Traffic changes applied, by action, status and driver.",
                                     "action,status,driver");
    lm->seconds = kd_metrics_histogram(lm->reg, "kdeploy_lbctl_change_duration_seconds",
                                       "Time a traffic change took (drain and health waits "
                                       "included), by action.", "action", NULL, 0);
    lm->replays = kd_metrics_counter(lm->reg, "kdeploy_lbctl_journal_replays_total",
                                     "Repeated commands answered from the journal.", NULL);
    lm->skipped = kd_metrics_counter(lm->reg, "kdeploy_lbctl_messages_skipped_total",
                                     "Malformed, foreign or unverified messages skipped.", NULL);
    kd_metric_set(info, KD_LV("lbctl", KD_VERSION), 1);
    kd_metric_add(lm->replays, NULL, 0);
    kd_metric_add(lm->skipped, NULL, 0);
    for (int a = 1; a <= 3; a++) /* every action shows, at 0, before the first change */
        kd_metric_add(lm->changes, KD_LV(action_word(a), "succeeded", driver), 0);
}

kd_status_t kd_lb_metrics_start(const char *listen, const char *driver, kd_lb_metrics_t **out,
                                char *err, size_t errsz)
{
    kd_lb_metrics_t *lm = calloc(1, sizeof *lm);
    kd_status_t st;

    if (!lm || !(lm->reg = kd_metrics_new())) {
        free(lm);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    define(lm, driver);
    if ((st = kd_metrics_serve(lm->reg, listen, &lm->server, err, errsz)) != KD_OK) {
        kd_lb_metrics_free(lm);
        return st;
    }
    *out = lm;
    return KD_OK;
}

void kd_lb_metrics_free(kd_lb_metrics_t *lm)
{
    if (!lm)
        return;
    kd_metrics_server_stop(lm->server);
    kd_metrics_free(lm->reg);
    free(lm);
}

void kd_lb_metrics_change(kd_lb_metrics_t *lm, const Kdeploy__V1__TrafficResult *r)
{
    if (!lm)
        return;
    kd_metric_inc(lm->changes, KD_LV(action_word(r->action), status_word(r->status), r->driver));
    kd_metric_observe(lm->seconds, KD_LV(action_word(r->action)), (double)r->duration_ms / 1000.0);
}

void kd_lb_metrics_replay(kd_lb_metrics_t *lm)
{
    if (lm)
        kd_metric_inc(lm->replays, NULL);
}

void kd_lb_metrics_skipped(kd_lb_metrics_t *lm)
{
    if (lm)
        kd_metric_inc(lm->skipped, NULL);
}
