/* The metrics registry: the text format exactly, escaping of hostile
 * label values, the series cap, concurrent updates from threads, and the
 * /metrics endpoint served by libmicrohttpd. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "check.h"
#include "metrics.h"

static char *render(kd_metrics_t *reg)
{
    kd_buf_t out = KD_BUF_INIT(0);

    CHECK(kd_metrics_render(reg, &out) == KD_OK);
    return kd_buf_steal(&out);
}

static void test_counter_and_gauge_text(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_metric_t *c = kd_metrics_counter(reg, "kd_steps_total", "Steps run.", "event,status");
    kd_metric_t *g = kd_metrics_gauge(reg, "kd_in_flight", "Hosts in flight.", NULL);
    char *text;

    CHECK(c && g);
    kd_metric_inc(c, KD_LV("Install", "succeeded"));
    kd_metric_add(c, KD_LV("Install", "succeeded"), 2);
    kd_metric_inc(c, KD_LV("ValidateService", "failed"));
    kd_metric_add(c, KD_LV("Install", "succeeded"), -5); /* a counter never goes down */
    kd_metric_set(g, NULL, 3);
    kd_metric_add(g, NULL, -1);
    text = render(reg);
    CHECK_CONTAINS(text, "# HELP kd_steps_total Steps run.\n# TYPE kd_steps_total counter\n"
                         "kd_steps_total{event=\"Install\",status=\"succeeded\"} 3\n"
                         "kd_steps_total{event=\"ValidateService\",status=\"failed\"} 1\n");
    CHECK_CONTAINS(text, "# TYPE kd_in_flight gauge\nkd_in_flight 2\n");
    CHECK_CONTAINS(text, "kdeploy_metrics_dropped_total 0\n");
    CHECK(kd_metric_value(c, KD_LV("Install", "succeeded")) == 3);
    CHECK(kd_metric_value(c, KD_LV("Install", "never")) == 0);
    free(text);
    kd_metric_remove(c, KD_LV("Install", "succeeded"));
    text = render(reg);
    CHECK(strstr(text, "Install") == NULL);
    free(text);
    kd_metrics_free(reg);
}

static void test_histogram_text(void)
{
    static const double b[] = {0.1, 1, 10};
    kd_metrics_t *reg = kd_metrics_new();
    kd_metric_t *h = kd_metrics_histogram(reg, "kd_step_seconds", "Step durations.", "event", b, 3);
    char *text;

    CHECK(h != NULL);
    kd_metric_observe(h, KD_LV("Install"), 0.05);
    kd_metric_observe(h, KD_LV("Install"), 1);   /* a bound is inclusive */
    kd_metric_observe(h, KD_LV("Install"), 2.5);
    kd_metric_observe(h, KD_LV("Install"), 99);
    kd_metric_inc(h, KD_LV("Install"));           /* not a histogram operation: ignored */
    text = render(reg);
    CHECK_CONTAINS(text, "# TYPE kd_step_seconds histogram\n"
                         "kd_step_seconds_bucket{event=\"Install\",le=\"0.10000000000000001\"} 1\n"
                         "kd_step_seconds_bucket{event=\"Install\",le=\"1\"} 2\n"
                         "kd_step_seconds_bucket{event=\"Install\",le=\"10\"} 3\n"
                         "kd_step_seconds_bucket{event=\"Install\",le=\"+Inf\"} 4\n"
                         "kd_step_seconds_sum{event=\"Install\"} 102.55\n"
                         "kd_step_seconds_count{event=\"Install\"} 4\n");
    CHECK(kd_metric_value(h, KD_LV("Install")) == 4);
    free(text);
    kd_metrics_free(reg);
}

static void test_hostile_label_values_are_escaped(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_metric_t *c = kd_metrics_counter(reg, "kd_hosts_total", "Help with \\ and\nnewline.", "host");
    char *text;

    kd_metric_inc(c, KD_LV("web\"01\"} 1\nkd_fake 9\\"));
    kd_metric_inc(c, KD_LV(NULL));
    text = render(reg);
    CHECK_CONTAINS(text, "# HELP kd_hosts_total Help with \\\\ and\\nnewline.\n");
    CHECK_CONTAINS(text, "kd_hosts_total{host=\"web\\\"01\\\"} 1\\nkd_fake 9\\\\\"} 1\n");
    CHECK_CONTAINS(text, "kd_hosts_total{host=\"\"} 1\n");
    CHECK(strstr(text, "\nkd_fake") == NULL);
    free(text);
    kd_metrics_free(reg);
}

static void test_series_are_capped(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_metric_t *c = kd_metrics_counter(reg, "kd_by_host_total", "Per host.", "host");
    kd_metric_t *dropped = kd_metrics_counter(reg, "kdeploy_metrics_dropped_total", "x", NULL);
    char host[32];

    CHECK(dropped != NULL); /* the registry's own, returned again */
    for (int i = 0; i < KD_METRICS_MAX_SERIES + 10; i++) {
        snprintf(host, sizeof host, "h%d", i);
        kd_metric_inc(c, KD_LV(host));
    }
    CHECK(kd_metric_value(c, KD_LV("h0")) == 1);
    snprintf(host, sizeof host, "h%d", KD_METRICS_MAX_SERIES + 5);
    CHECK(kd_metric_value(c, KD_LV(host)) == 0);
    CHECK(kd_metric_value(dropped, NULL) == 10);
    kd_metrics_free(reg);
}

static void test_bad_definitions_are_refused(void)
{
    static const double unsorted[] = {1, 0.5};
    kd_metrics_t *reg = kd_metrics_new();

    CHECK(kd_metrics_counter(reg, "9starts_with_digit", "", NULL) == NULL);
    CHECK(kd_metrics_counter(reg, "has space", "", NULL) == NULL);
    CHECK(kd_metrics_counter(reg, "ok_total", "", "bad-label") == NULL);
    CHECK(kd_metrics_counter(reg, "ok_total", "", "a,a") == NULL);
    CHECK(kd_metrics_counter(reg, "ok_total", "", "__reserved") == NULL);
    CHECK(kd_metrics_histogram(reg, "h_seconds", "", "le", NULL, 0) == NULL);
    CHECK(kd_metrics_histogram(reg, "h_seconds", "", NULL, unsorted, 2) == NULL);
    CHECK(kd_metrics_counter(reg, "ok_total", "", "a") != NULL);
    CHECK(kd_metrics_counter(reg, "ok_total", "", "a") == kd_metrics_counter(reg, "ok_total", "", "a"));
    CHECK(kd_metrics_gauge(reg, "ok_total", "", "a") == NULL);   /* another kind */
    CHECK(kd_metrics_counter(reg, "ok_total", "", "b") == NULL); /* other labels */
    CHECK(kd_metrics_counter(NULL, "ok_total", "", NULL) == NULL);
    kd_metric_inc(NULL, NULL); /* a process without metrics: no-ops */
    kd_metric_observe(NULL, NULL, 1);
    kd_metrics_free(reg);
}

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    kd_metric_t **m = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        kd_metric_inc(m[0], KD_LV(i % 2 ? "odd" : "even"));
        kd_metric_observe(m[1], NULL, 0.5);
    }
    return NULL;
}

static void test_concurrent_updates_are_all_counted(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_metric_t *m[2] = {kd_metrics_counter(reg, "kd_n_total", "n", "parity"),
                         kd_metrics_histogram(reg, "kd_d_seconds", "d", NULL, NULL, 0)};
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, m);
    for (int i = 0; i < 50; i++)
        free(render(reg)); /* scrapes while they count */
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(kd_metric_value(m[0], KD_LV("odd")) == THREADS * PER_THREAD / 2);
    CHECK(kd_metric_value(m[0], KD_LV("even")) == THREADS * PER_THREAD / 2);
    CHECK(kd_metric_value(m[1], NULL) == THREADS * PER_THREAD);
    kd_metrics_free(reg);
}

static size_t collect(char *data, size_t size, size_t n, void *opaque)
{
    return kd_buf_append(opaque, data, size * n) == KD_OK ? size * n : 0;
}

static long http_get(const char *url, kd_buf_t *body, char *ctype, size_t ctypesz)
{
    CURL *curl = curl_easy_init();
    long code = 0;
    char *ct = NULL;

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(curl) == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(ctype, ctypesz, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(curl);
    return code;
}

static void on_scrape(void *opaque, kd_metrics_t *reg)
{
    (void)reg;
    kd_metric_set(opaque, NULL, 42);
}

static void test_served_on_metrics(void)
{
    kd_metrics_t *reg = kd_metrics_new();
    kd_metric_t *lag = kd_metrics_gauge(reg, "kd_lag", "Lag.", NULL);
    kd_metrics_server_t *srv = NULL;
    kd_buf_t body = KD_BUF_INIT(0);
    char err[256], url[128], ctype[128] = "";

    kd_metrics_on_scrape(reg, on_scrape, lag);
    CHECK(kd_metrics_serve(reg, "127.0.0.1:0", &srv, err, sizeof err) == KD_OK);
    CHECK(kd_metrics_server_port(srv) > 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", kd_metrics_server_port(srv));
    CHECK(http_get(url, &body, ctype, sizeof ctype) == 200);
    CHECK_CONTAINS(kd_buf_str(&body), "kd_lag 42\n");
    CHECK_CONTAINS(ctype, "text/plain; version=0.0.4");
    kd_buf_reset(&body);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/other", kd_metrics_server_port(srv));
    CHECK(http_get(url, &body, ctype, sizeof ctype) == 404);
    kd_metrics_server_stop(srv);
    kd_buf_free(&body);
    kd_metrics_free(reg);
}

static void test_listen_addresses(void)
{
    struct sockaddr_storage sa;
    unsigned len;
    char err[256];

    CHECK(kd_listen_parse("127.0.0.1:9464", &sa, &len, err, sizeof err) == KD_OK);
    CHECK(kd_listen_parse("[::1]:9464", &sa, &len, err, sizeof err) == KD_OK);
    CHECK(kd_listen_parse(":9464", &sa, &len, err, sizeof err) == KD_OK);
    CHECK(kd_listen_parse("127.0.0.1", &sa, &len, err, sizeof err) == KD_EINVAL);
    CHECK(kd_listen_parse("127.0.0.1:", &sa, &len, err, sizeof err) == KD_EINVAL);
    CHECK(kd_listen_parse("127.0.0.1:70000", &sa, &len, err, sizeof err) == KD_EINVAL);
    CHECK(kd_listen_parse("127.0.0.1:-1", &sa, &len, err, sizeof err) == KD_EINVAL);
    CHECK(kd_listen_parse("127.0.0.1:80x", &sa, &len, err, sizeof err) == KD_EINVAL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_counter_and_gauge_text);
    RUN(test_histogram_text);
    RUN(test_hostile_label_values_are_escaped);
    RUN(test_series_are_capped);
    RUN(test_bad_definitions_are_refused);
    RUN(test_concurrent_updates_are_all_counted);
    RUN(test_served_on_metrics);
    RUN(test_listen_addresses);
    curl_global_cleanup();
    return check_summary();
}
