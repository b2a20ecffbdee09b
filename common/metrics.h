/* Prometheus metrics: a small registry of counters, gauges and histograms
 * with labels, rendered in the Prometheus text format (0.0.4) and served
 * on /metrics by libmicrohttpd (kd_metrics_serve).
 *
 * Every call is thread-safe (one lock per registry: updates are a few
 * dozen per step, so contention is nil). Every update accepts a NULL
 * metric and then does nothing, so code instrumented for metrics runs
 * unchanged in a process started without --metrics-listen:
 *
 *   kd_metric_t *steps = kd_metrics_counter(reg, "kdeploy_worker_steps_total",
 *                                           "Steps performed.", "event,status");
 *   kd_metric_inc(steps, KD_LV("Install", "succeeded"));
 *
 * Label values may come from the outside world (host names, step names):
 * they are escaped when rendered, and a metric keeps at most
 * KD_METRICS_MAX_SERIES label combinations; updates of further ones are
 * dropped (counted in kdeploy_metrics_dropped_total), so hostile input
 * cannot grow the registry without bound. */
#ifndef KD_METRICS_H
#define KD_METRICS_H

#include <stdint.h>
#include <stddef.h>

#include "buf.h"
#include "status.h"

typedef struct kd_metrics kd_metrics_t;         /* a registry */
typedef struct kd_metric kd_metric_t;           /* one metric family */
typedef struct kd_metrics_server kd_metrics_server_t;

#define KD_METRICS_MAX_LABELS 8
#define KD_METRICS_MAX_SERIES 2000

/* Label values, in the order the metric's labels were declared. */
#define KD_LV(...) ((const char *const[]){__VA_ARGS__})

/* Upper bounds (seconds) for durations from milliseconds to ten minutes:
 * the default buckets of kd_metrics_histogram. */
extern const double kd_metrics_duration_buckets[];
extern const size_t kd_metrics_duration_bucket_count;

/* A new, empty registry; NULL when out of memory. */
kd_metrics_t *kd_metrics_new(void);
/* Frees the registry and its metrics; accepts NULL. Stop its server first. */
void kd_metrics_free(kd_metrics_t *reg);

/* Registers a metric family. name is a Prometheus metric name ("[a-zA-Z_:]
 * [a-zA-Z0-9_:]*"), help one line of text, labels a comma-separated list of
 * label names ("event,status") or NULL/"" for none, at most
 * KD_METRICS_MAX_LABELS. Registering a name again returns the same family
 * if kind and labels agree. Returns NULL for a NULL registry, a bad name,
 * a clash with another kind or labels, or no memory: updates of a NULL
 * metric do nothing, so check the result where it matters (tests). The
 * registry owns the metric. */
kd_metric_t *kd_metrics_counter(kd_metrics_t *reg, const char *name, const char *help,
                                const char *labels);
kd_metric_t *kd_metrics_gauge(kd_metrics_t *reg, const char *name, const char *help,
                              const char *labels);
/* A histogram; buckets are the upper bounds in increasing order (the +Inf
 * bucket is implied), or NULL for kd_metrics_duration_buckets. At most 64. */
kd_metric_t *kd_metrics_histogram(kd_metrics_t *reg, const char *name, const char *help,
                                  const char *labels, const double *buckets, size_t count);

/* Updates. values holds one string per declared label (NULL for a metric
 * without labels); a NULL value reads as "". */
void kd_metric_inc(kd_metric_t *m, const char *const *values);               /* counter, gauge: +1 */
void kd_metric_add(kd_metric_t *m, const char *const *values, double v);     /* counter (v >= 0), gauge */
void kd_metric_set(kd_metric_t *m, const char *const *values, double v);     /* gauge */
void kd_metric_observe(kd_metric_t *m, const char *const *values, double v); /* histogram */
/* Forgets one label combination (a gauge of a host that went away). */
void kd_metric_remove(kd_metric_t *m, const char *const *values);

/* The current value of a counter or gauge series, or the observation count
 * of a histogram series; 0 for a series never updated. For tests and for
 * a process that reads back what it counts. */
double kd_metric_value(kd_metric_t *m, const char *const *values);

/* Calls fn(opaque, reg) at the start of every render, outside the lock, so
 * it can set gauges that are cheaper to read when asked (consumer lag,
 * queue lengths). One callback per registry; NULL removes it. */
void kd_metrics_on_scrape(kd_metrics_t *reg, void (*fn)(void *opaque, kd_metrics_t *reg),
                          void *opaque);

/* Appends every metric in the text exposition format to out, families in
 * registration order, series in first-update order. */
kd_status_t kd_metrics_render(kd_metrics_t *reg, kd_buf_t *out);

/* Serves GET /metrics (and / with a link to it) on listen, "ADDR:PORT"
 * ("127.0.0.1:9464", "[::1]:9464", ":9464" for every IPv4 address; port 0
 * picks a free one), from a thread of its own. The registry must outlive
 * the server. */
kd_status_t kd_metrics_serve(kd_metrics_t *reg, const char *listen, kd_metrics_server_t **out,
                             char *err, size_t errsz);
/* The port the server listens on (useful after port 0). */
unsigned kd_metrics_server_port(const kd_metrics_server_t *srv);
/* Stops serving and frees; accepts NULL. */
void kd_metrics_server_stop(kd_metrics_server_t *srv);

/* Splits "ADDR:PORT" for any listener of kdeploy's (metrics, dashboard):
 * fills a socket address (sa, *salen) for a numeric address or a host
 * name; "" as ADDR means every IPv4 address. */
struct sockaddr_storage;
kd_status_t kd_listen_parse(const char *listen, struct sockaddr_storage *sa, unsigned *salen,
                            char *err, size_t errsz);

#endif
