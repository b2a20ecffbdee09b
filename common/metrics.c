#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 64

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* One label combination of a family. */
typedef struct series {
    char **values;        /* one per label */
    double value;         /* counter, gauge */
    uint64_t *counts;     /* histogram: per bucket, not cumulative; +Inf last */
    double sum;
    uint64_t count;
    struct series *next;
} series_t;

struct kd_metric {
    kind_t kind;
    char *name, *help;
    char *labels[KD_METRICS_MAX_LABELS];
    size_t label_count;
    double bounds[MAX_BUCKETS];
    size_t bound_count;
    series_t *head, *tail;
    size_t series_count;
    kd_metrics_t *reg;
    struct kd_metric *next;
};

struct kd_metrics {
    pthread_mutex_t lock;
    kd_metric_t *head, *tail;
    kd_metric_t *dropped;  /* kdeploy_metrics_dropped_total */
    void (*on_scrape)(void *, kd_metrics_t *);
    void *opaque;
};

const double kd_metrics_duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                              1, 2.5, 5, 10, 30, 60, 120, 300, 600};
const size_t kd_metrics_duration_bucket_count =
    sizeof kd_metrics_duration_buckets / sizeof kd_metrics_duration_buckets[0];

static void series_free(series_t *s, size_t nlabels)
{
    if (!s)
        return;
    for (size_t i = 0; i < nlabels && s->values; i++)
        free(s->values[i]);
    free(s->values);
    free(s->counts);
    free(s);
}

static void metric_free(kd_metric_t *m)
{
    series_t *s = m->head;

    while (s) {
        series_t *next = s->next;

        series_free(s, m->label_count);
        s = next;
    }
    for (size_t i = 0; i < m->label_count; i++)
        free(m->labels[i]);
    free(m->name);
    free(m->help);
    free(m);
}

void kd_metrics_free(kd_metrics_t *reg)
{
    kd_metric_t *m;

    if (!reg)
        return;
    m = reg->head;
    while (m) {
        kd_metric_t *next = m->next;

        metric_free(m);
        m = next;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

kd_metrics_t *kd_metrics_new(void)
{
    kd_metrics_t *reg = calloc(1, sizeof *reg);

    if (!reg)
        return NULL;
    pthread_mutex_init(&reg->lock, NULL);
    reg->dropped = kd_metrics_counter(reg, "kdeploy_metrics_dropped_total",
                                      "Metric updates dropped: a metric had too many label "
                                      "combinations.", NULL);
    if (!reg->dropped) {
        kd_metrics_free(reg);
        return NULL;
    }
    kd_metric_add(reg->dropped, NULL, 0); /* its one series exists from the start */
    return reg;
}

/* ---- registration ---- */

static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return false;
    }
    return true;
}

/* Splits "a,b" into m->labels; false for a bad or reserved name. */
static bool parse_labels(kd_metric_t *m, const char *labels)
{
    const char *p = labels ? labels : "";

    while (*p) {
        size_t n = strcspn(p, ",");
        char *name;

        if (m->label_count == KD_METRICS_MAX_LABELS || !(name = strndup(p, n)))
            return false;
        m->labels[m->label_count++] = name;
        if (!valid_name(name, false) || strncmp(name, "__", 2) == 0 ||
            (m->kind == KIND_HISTOGRAM && strcmp(name, "le") == 0))
            return false;
        for (size_t i = 0; i + 1 < m->label_count; i++)
            if (strcmp(m->labels[i], name) == 0)
                return false;
        p += n;
        if (*p == ',')
            p++;
    }
    return true;
}

static bool same_shape(const kd_metric_t *a, const kd_metric_t *b)
{
    if (a->kind != b->kind || a->label_count != b->label_count ||
        a->bound_count != b->bound_count)
        return false;
    for (size_t i = 0; i < a->label_count; i++)
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return false;
    return true;
}

/* Adds m to reg, or returns the family already there under its name. */
static kd_metric_t *attach(kd_metrics_t *reg, kd_metric_t *m)
{
    kd_metric_t *found = NULL;

    pthread_mutex_lock(&reg->lock);
    for (kd_metric_t *o = reg->head; o && !found; o = o->next)
        if (strcmp(o->name, m->name) == 0)
            found = o;
    if (!found) {
        m->reg = reg;
        if (reg->tail)
            reg->tail->next = m;
        else
            reg->head = m;
        reg->tail = m;
    }
    pthread_mutex_unlock(&reg->lock);
    if (!found)
        return m;
    found = same_shape(found, m) ? found : NULL;
    metric_free(m);
    return found;
}

static kd_metric_t *define(kd_metrics_t *reg, kind_t kind, const char *name, const char *help,
                           const char *labels, const double *buckets, size_t count)
{
    kd_metric_t *m;

    if (!reg || !valid_name(name, true) || count > MAX_BUCKETS)
        return NULL;
    if (!(m = calloc(1, sizeof *m)))
        return NULL;
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    if (!m->name || !m->help || !parse_labels(m, labels)) {
        metric_free(m);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
            metric_free(m);
            return NULL;
        }
        m->bounds[m->bound_count++] = buckets[i];
    }
    return attach(reg, m);
}

kd_metric_t *kd_metrics_counter(kd_metrics_t *reg, const char *name, const char *help,
                                const char *labels)
{
    return define(reg, KIND_COUNTER, name, help, labels, NULL, 0);
}

kd_metric_t *kd_metrics_gauge(kd_metrics_t *reg, const char *name, const char *help,
                              const char *labels)
{
    return define(reg, KIND_GAUGE, name, help, labels, NULL, 0);
}

kd_metric_t *kd_metrics_histogram(kd_metrics_t *reg, const char *name, const char *help,
                                  const char *labels, const double *buckets, size_t count)
{
    if (!buckets) {
        buckets = kd_metrics_duration_buckets;
        count = kd_metrics_duration_bucket_count;
    }
    return define(reg, KIND_HISTOGRAM, name, help, labels, buckets, count);
}

/* ---- updates (under the registry's lock) ---- */

static bool matches(const kd_metric_t *m, const series_t *s, const char *const *values)
{
    for (size_t i = 0; i < m->label_count; i++)
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0)
            return false;
    return true;
}

static series_t *series_new(kd_metric_t *m, const char *const *values)
{
    series_t *s = calloc(1, sizeof *s);
    bool ok = s != NULL;

    if (ok && m->label_count)
        ok = (s->values = calloc(m->label_count, sizeof *s->values)) != NULL;
    for (size_t i = 0; ok && i < m->label_count; i++)
        ok = (s->values[i] = strdup(values[i] ? values[i] : "")) != NULL;
    if (ok && m->kind == KIND_HISTOGRAM)
        ok = (s->counts = calloc(m->bound_count + 1, sizeof *s->counts)) != NULL;
    if (!ok) {
        series_free(s, m->label_count);
        return NULL;
    }
    return s;
}

/* The series for values, created on first use; NULL past the cap. */
static series_t *series_get(kd_metric_t *m, const char *const *values, bool create)
{
    series_t *s;

    for (s = m->head; s; s = s->next)
        if (matches(m, s, values))
            return s;
    if (!create || m->series_count >= KD_METRICS_MAX_SERIES || !(s = series_new(m, values))) {
        if (create && m != m->reg->dropped && m->reg->dropped->head)
            m->reg->dropped->head->value++;
        return NULL;
    }
    if (m->tail)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    m->series_count++;
    return s;
}

typedef enum { OP_ADD, OP_SET, OP_OBSERVE } op_t;

static void update(kd_metric_t *m, const char *const *values, op_t op, double v)
{
    series_t *s;

    if (!m || isnan(v))
        return;
    if ((op == OP_OBSERVE) != (m->kind == KIND_HISTOGRAM) ||
        (m->kind == KIND_COUNTER && (op == OP_SET || v < 0)))
        return;
    pthread_mutex_lock(&m->reg->lock);
    if ((s = series_get(m, values, true))) {
        if (op == OP_ADD)
            s->value += v;
        else if (op == OP_SET)
            s->value = v;
        else {
            size_t b = 0;

            while (b < m->bound_count && v > m->bounds[b])
                b++;
            s->counts[b]++;
            s->count++;
            s->sum += v;
        }
    }
    pthread_mutex_unlock(&m->reg->lock);
}

void kd_metric_inc(kd_metric_t *m, const char *const *values)
{
    update(m, values, OP_ADD, 1);
}

void kd_metric_add(kd_metric_t *m, const char *const *values, double v)
{
    update(m, values, OP_ADD, v);
}

void kd_metric_set(kd_metric_t *m, const char *const *values, double v)
{
    update(m, values, OP_SET, v);
}

void kd_metric_observe(kd_metric_t *m, const char *const *values, double v)
{
    update(m, values, OP_OBSERVE, v);
}

void kd_metric_remove(kd_metric_t *m, const char *const *values)
{
    series_t *prev = NULL;

    if (!m)
        return;
    pthread_mutex_lock(&m->reg->lock);
    for (series_t *s = m->head; s; prev = s, s = s->next) {
        if (!matches(m, s, values))
            continue;
        if (prev)
            prev->next = s->next;
        else
            m->head = s->next;
        if (m->tail == s)
            m->tail = prev;
        m->series_count--;
        series_free(s, m->label_count);
        break;
    }
    pthread_mutex_unlock(&m->reg->lock);
}

double kd_metric_value(kd_metric_t *m, const char *const *values)
{
    series_t *s;
    double v = 0;

    if (!m)
        return 0;
    pthread_mutex_lock(&m->reg->lock);
    if ((s = series_get(m, values, false)))
        v = m->kind == KIND_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&m->reg->lock);
    return v;
}

void kd_metrics_on_scrape(kd_metrics_t *reg, void (*fn)(void *opaque, kd_metrics_t *reg),
                          void *opaque)
{
    if (!reg)
        return;
    pthread_mutex_lock(&reg->lock);
    reg->on_scrape = fn;
    reg->opaque = opaque;
    pthread_mutex_unlock(&reg->lock);
}

/* ---- the text exposition format ---- */

/* Escapes what the format requires: backslash and newline everywhere, the
 * double quote in label values. */
static kd_status_t append_escaped(kd_buf_t *out, const char *s, bool quote)
{
    kd_status_t st = KD_OK;

    for (; *s && st == KD_OK; s++) {
        if (*s == '\\')
            st = kd_buf_appends(out, "\\\\");
        else if (*s == '\n')
            st = kd_buf_appends(out, "\\n");
        else if (quote && *s == '"')
            st = kd_buf_appends(out, "\\\"");
        else
            st = kd_buf_append(out, s, 1);
    }
    return st;
}

static kd_status_t append_number(kd_buf_t *out, double v)
{
    if (isinf(v))
        return kd_buf_appends(out, v > 0 ? "+Inf" : "-Inf");
    return kd_buf_printf(out, "%.17g", v);
}

/* name{a="x",b="y"[,le="0.5"]} */
static kd_status_t append_series_name(kd_buf_t *out, const kd_metric_t *m, const series_t *s,
                                      const char *suffix, const char *le)
{
    kd_status_t st = kd_buf_printf(out, "%s%s", m->name, suffix);

    if (st != KD_OK || (m->label_count == 0 && !le))
        return st;
    st = kd_buf_appends(out, "{");
    for (size_t i = 0; st == KD_OK && i < m->label_count; i++) {
        st = kd_buf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
        if (st == KD_OK)
            st = append_escaped(out, s->values[i], true);
        if (st == KD_OK)
            st = kd_buf_appends(out, "\"");
    }
    if (st == KD_OK && le)
        st = kd_buf_printf(out, "%sle=\"%s\"", m->label_count ? "," : "", le);
    return st == KD_OK ? kd_buf_appends(out, "}") : st;
}

static kd_status_t render_histogram(kd_buf_t *out, const kd_metric_t *m, const series_t *s)
{
    uint64_t cumulative = 0;
    kd_status_t st = KD_OK;

    for (size_t b = 0; st == KD_OK && b <= m->bound_count; b++) {
        char le[64];

        if (b < m->bound_count)
            snprintf(le, sizeof le, "%.17g", m->bounds[b]);
        else
            snprintf(le, sizeof le, "+Inf");
        cumulative += s->counts[b];
        st = append_series_name(out, m, s, "_bucket", le);
        if (st == KD_OK)
            st = kd_buf_printf(out, " %llu\n", (unsigned long long)cumulative);
    }
    if (st == KD_OK)
        st = append_series_name(out, m, s, "_sum", NULL);
    if (st == KD_OK)
        st = kd_buf_appends(out, " ");
    if (st == KD_OK)
        st = append_number(out, s->sum);
    if (st == KD_OK)
        st = kd_buf_appends(out, "\n");
    if (st == KD_OK)
        st = append_series_name(out, m, s, "_count", NULL);
    if (st == KD_OK)
        st = kd_buf_printf(out, " %llu\n", (unsigned long long)s->count);
    return st;
}

static kd_status_t render_metric(kd_buf_t *out, const kd_metric_t *m)
{
    kd_status_t st = kd_buf_printf(out, "# HELP %s ", m->name);

    if (st == KD_OK)
        st = append_escaped(out, m->help, false);
    if (st == KD_OK)
        st = kd_buf_printf(out, "\n# TYPE %s %s\n", m->name, kind_names[m->kind]);
    for (const series_t *s = m->head; st == KD_OK && s; s = s->next) {
        if (m->kind == KIND_HISTOGRAM) {
            st = render_histogram(out, m, s);
            continue;
        }
        st = append_series_name(out, m, s, "", NULL);
        if (st == KD_OK)
            st = kd_buf_appends(out, " ");
        if (st == KD_OK)
            st = append_number(out, s->value);
        if (st == KD_OK)
            st = kd_buf_appends(out, "\n");
    }
    return st;
}

kd_status_t kd_metrics_render(kd_metrics_t *reg, kd_buf_t *out)
{
    void (*fn)(void *, kd_metrics_t *);
    void *opaque;
    kd_status_t st = KD_OK;

    pthread_mutex_lock(&reg->lock);
    fn = reg->on_scrape;
    opaque = reg->opaque;
    pthread_mutex_unlock(&reg->lock);
    if (fn)
        fn(opaque, reg);
    pthread_mutex_lock(&reg->lock);
    for (const kd_metric_t *m = reg->head; st == KD_OK && m; m = m->next)
        st = render_metric(out, m);
    pthread_mutex_unlock(&reg->lock);
    return st;
}
