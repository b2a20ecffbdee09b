#include "telemetry.h"

#include <stdlib.h>
#include <sys/stat.h>

struct kd_worker_metrics {
    kd_metrics_t *reg;
    kd_metrics_server_t *server;
    kd_metric_t *steps, *step_seconds, *hook_seconds, *in_progress;
    kd_metric_t *downloads, *download_bytes, *download_seconds, *replays;
};

/* The words kdeploy uses for step statuses everywhere (replay, dashboard). */
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

static void define(kd_worker_metrics_t *wm, unsigned host_count)
{
    kd_metrics_t *reg = wm->reg;
    kd_metric_t *info, *hosts;

    /* No host label: one process may serve thousands of simulated hosts. */
    wm->steps = kd_metrics_counter(reg, "kdeploy_worker_steps_total",
                                   "Lifecycle steps performed, by event and status.",
                                   "event,status");
    wm->step_seconds = kd_metrics_histogram(reg, "kdeploy_worker_step_duration_seconds",
                                            "Time to perform a step, by event.", "event", NULL, 0);
    wm->hook_seconds = kd_metrics_histogram(reg, "kdeploy_worker_hook_duration_seconds",
                                            "Time the hooks of a lifecycle event ran (steps "
                                            "that may run hooks), by event and status.",
                                            "event,status", NULL, 0);
    wm->in_progress = kd_metrics_gauge(reg, "kdeploy_worker_steps_in_progress",
                                       "Steps running now.", NULL);
    wm->downloads = kd_metrics_counter(reg, "kdeploy_worker_downloads_total",
                                       "Bundle downloads, by result.", "result");
    wm->download_bytes = kd_metrics_counter(reg, "kdeploy_worker_download_bytes_total",
                                            "Bytes of bundles downloaded and verified.", NULL);
    wm->download_seconds = kd_metrics_histogram(reg, "kdeploy_worker_download_duration_seconds",
                                                "Time to download and verify a bundle.",
                                                "result", NULL, 0);
    wm->replays = kd_metrics_counter(reg, "kdeploy_worker_journal_replays_total",
                                     "Repeated step deliveries answered from the journal: "
                                     "result (published again) or restarted (cut short by "
                                     "a crash, reported failed).", "kind");
    info = kd_metrics_gauge(reg, "kdeploy_build_info", "The running kdeploy's version.",
                            "component,version");
    hosts = kd_metrics_gauge(reg, "kdeploy_worker_hosts", "Hosts this process serves.", NULL);
    kd_metric_set(info, KD_LV("worker", KD_VERSION), 1);
    kd_metric_set(hosts, NULL, host_count);
    kd_metric_add(wm->in_progress, NULL, 0);
    kd_metric_add(wm->download_bytes, NULL, 0);
    kd_metric_add(wm->replays, KD_LV("result"), 0);
    kd_metric_add(wm->replays, KD_LV("restarted"), 0);
}

kd_status_t kd_worker_metrics_start(const char *listen, unsigned host_count,
                                    kd_worker_metrics_t **out, char *err, size_t errsz)
{
    kd_worker_metrics_t *wm = calloc(1, sizeof *wm);
    kd_status_t st;

    if (!wm || !(wm->reg = kd_metrics_new())) {
        free(wm);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    define(wm, host_count);
    if ((st = kd_metrics_serve(wm->reg, listen, &wm->server, err, errsz)) != KD_OK) {
        kd_worker_metrics_free(wm);
        return st;
    }
    *out = wm;
    return KD_OK;
}

void kd_worker_metrics_free(kd_worker_metrics_t *wm)
{
    if (!wm)
        return;
    kd_metrics_server_stop(wm->server);
    kd_metrics_free(wm->reg);
    free(wm);
}

void kd_worker_metrics_step_started(kd_worker_metrics_t *wm)
{
    if (wm)
        kd_metric_inc(wm->in_progress, NULL);
}

void kd_worker_metrics_step(kd_worker_metrics_t *wm, kd_event_t event,
                            Kdeploy__V1__StepStatus status, int64_t duration_ms)
{
    const char *ev = kd_event_name(event), *st = status_word(status);

    if (!wm)
        return;
    kd_metric_add(wm->in_progress, NULL, -1);
    kd_metric_inc(wm->steps, KD_LV(ev, st));
    kd_metric_observe(wm->step_seconds, KD_LV(ev), (double)duration_ms / 1000.0);
    if (kd_event_allows_hooks(event))
        kd_metric_observe(wm->hook_seconds, KD_LV(ev, st), (double)duration_ms / 1000.0);
}

void kd_worker_metrics_download(kd_worker_metrics_t *wm, const char *archive,
                                int64_t duration_ms)
{
    const char *result = archive ? "succeeded" : "failed";
    struct stat sb;

    if (!wm)
        return;
    kd_metric_inc(wm->downloads, KD_LV(result));
    kd_metric_observe(wm->download_seconds, KD_LV(result), (double)duration_ms / 1000.0);
    if (archive && stat(archive, &sb) == 0)
        kd_metric_add(wm->download_bytes, NULL, (double)sb.st_size);
}

void kd_worker_metrics_replay(kd_worker_metrics_t *wm, int restarted)
{
    if (wm)
        kd_metric_inc(wm->replays, KD_LV(restarted ? "restarted" : "result"));
}
