/* `kdeploy dashboard`: serves a web page that follows the deployments live.
 * The page (cli/dashboard/, embedded) gets every event of the deployments
 * and results topics as server-sent events from /events, from the
 * beginning of the kept history, then as they happen, and builds its
 * view in the browser. An EventSource that reconnects sends Last-Event-ID
 * and resumes where it stopped. HTTP is libmicrohttpd's. */
#include "cmd_dashboard.h"

#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "dashboard_assets.h"
#include "dashboard_feed.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "signals.h"

#define DASH_DEFAULT_LISTEN "127.0.0.1:8080"
#define DASH_MAX_CLIENTS 64
#define DASH_CHUNK (16 * 1024)   /* bytes of events per write, about */
#define DASH_KEEPALIVE_MS 10000  /* a comment line keeps proxies from closing */
#define DASH_WAIT_MS 500         /* how often a waiting stream looks at stop */

static volatile sig_atomic_t dash_stop;

typedef struct stream {
    kd_feed_t *feed;
    uint64_t next;
    kd_buf_t pending;
    size_t off;
    int64_t last_write;
} stream_t;

/* Content reader of /events: runs on the connection's own thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_t *s = cls;
    size_t n;

    (void)pos;
    while (s->off == s->pending.len) {
        int got;

        if (dash_stop)
            return MHD_CONTENT_READER_END_OF_STREAM;
        kd_buf_reset(&s->pending);
        s->off = 0;
        got = kd_feed_read(s->feed, &s->next, &s->pending, DASH_CHUNK, DASH_WAIT_MS);
        if (got < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (got == 0 && kd_mono_ms() - s->last_write >= DASH_KEEPALIVE_MS)
            kd_buf_appends(&s->pending, ": keepalive\n\n");
    }
    n = s->pending.len - s->off < max ? s->pending.len - s->off : max;
    memcpy(buf, s->pending.data + s->off, n);
    s->off += n;
    s->last_write = kd_mono_ms();
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_t *s = cls;

    kd_buf_free(&s->pending);
    free(s);
}

static void secure_headers(struct MHD_Response *r)
{
    /* The page shows hook output from the hosts: nothing may run but ours. */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result serve_events(struct MHD_Connection *conn, kd_feed_t *feed)
{
    const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    stream_t *s = calloc(1, sizeof *s);
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (!s)
        return MHD_NO;
    s->feed = feed;
    s->next = 1;
    kd_buf_init(&s->pending, 0);
    kd_buf_appends(&s->pending, "retry: 2000\n\n");
    if (last && *last) {
        char *dot;
        long long epoch = strtoll(last, &dot, 10);

        /* Our own id resumes after it; another process's (a restarted
         * dashboard) starts over, and the page forgets what it had. */
        if (*dot == '.' && epoch == kd_feed_epoch(feed))
            s->next = strtoull(dot + 1, NULL, 10) + 1;
        else
            kd_buf_appends(&s->pending, "data: {\"type\":\"reset\"}\n\n");
    }
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, DASH_CHUNK, stream_read, s,
                                          stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result serve_static(struct MHD_Connection *conn, unsigned code,
                                    const char *type, const void *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    secure_headers(r);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    static const char not_found[] = "not found\n", only_get[] = "only GET\n";

    (void)version, (void)upload, (void)upload_size, (void)req;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return serve_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", only_get,
                            sizeof only_get - 1);
    if (strcmp(url, "/events") == 0)
        return serve_events(conn, cls);
    if (strcmp(url, "/healthz") == 0)
        return serve_static(conn, MHD_HTTP_OK, "text/plain", "ok\n", 3);
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (size_t i = 0; i < kd_dashboard_asset_count; i++)
        if (strcmp(url, kd_dashboard_assets[i].path) == 0)
            return serve_static(conn, MHD_HTTP_OK, kd_dashboard_assets[i].content_type,
                                kd_dashboard_assets[i].data, kd_dashboard_assets[i].len);
    return serve_static(conn, MHD_HTTP_NOT_FOUND, "text/plain", not_found, sizeof not_found - 1);
}

static struct MHD_Daemon *start_http(const char *listen, kd_feed_t *feed, unsigned *port,
                                     char *err, size_t errsz)
{
    struct sockaddr_storage sa;
    unsigned salen;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;

    if (kd_listen_parse(listen, &sa, &salen, err, errsz) != KD_OK)
        return NULL;
    /* A thread per connection: an event stream waits for news, and may. */
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                             MHD_USE_POLL | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                         0, NULL, NULL, handle, feed, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)DASH_MAX_CLIENTS,
                         MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
    if (!d) {
        kd_err(err, errsz, KD_EIO, "cannot listen on %s (in use?)", listen);
        return NULL;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return d;
}

static int parse_args(int argc, char **argv, kd_cli_common_t *cli, const char **listen,
                      size_t *history_mb, const char **metrics_listen)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"listen", required_argument, NULL, 'l'},
        {"history-mb", required_argument, NULL, 'm'},
        {"metrics-listen", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char usage[] =
        "usage: kdeploy dashboard [--listen ADDR:PORT] [--history-mb N] [--metrics-listen A:P]\n"
        "Serves a live web page of the deployments: their status, every host's steps on a\n"
        "timeline, failures with their output, rollbacks, filters.\n\n"
        "  --listen ADDR:PORT    where to serve (default " DASH_DEFAULT_LISTEN "); the page\n"
        "                        has no login: keep it on loopback or behind a proxy\n"
        "  --history-mb N        events kept in memory for new viewers (default 64)\n"
        "  --metrics-listen A:P  also serve deployment metrics counted from the topics\n"
        "                        (Prometheus, http://A:P/metrics)\n";
    int opt;
    char *end;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(cli, opt, optarg))
            continue;
        if (opt == 'l') {
            *listen = optarg;
        } else if (opt == 'M') {
            *metrics_listen = optarg;
        } else if (opt == 'm') {
            *history_mb = strtoul(optarg, &end, 10);
            if (*end || *history_mb == 0 || *history_mb > 65536 || optarg[0] == '-') {
                fprintf(stderr, "kdeploy: --history-mb %s: expected 1 to 65536\n", optarg);
                return 2;
            }
        } else {
            printf("%s" KD_CLI_COMMON_HELP, usage);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    return -1;
}

int kd_cmd_dashboard(int argc, char **argv)
{
    kd_cli_common_t cli = {0};
    const char *listen = DASH_DEFAULT_LISTEN, *metrics_listen = NULL;
    size_t history_mb = 64;
    kd_metrics_t *reg = NULL;
    kd_metrics_server_t *msrv = NULL;
    kd_deploy_metrics_t *dm = NULL;
    kd_bus_conf_t *conf = NULL;
    kd_feed_t *feed = NULL;
    struct MHD_Daemon *http = NULL;
    unsigned port = 0;
    char err[1024] = "out of memory"; /* until a call says more */
    int rc;

    if ((rc = parse_args(argc, argv, &cli, &listen, &history_mb, &metrics_listen)) >= 0)
        return rc;
    if (kd_cli_setup(&cli, "dashboard", &conf, NULL, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return 2;
    }
    rc = 1;
    kd_signals_install(&dash_stop);
    if (metrics_listen && (!(reg = kd_metrics_new()) || !(dm = kd_deploy_metrics_new(reg)) ||
                           kd_metrics_serve(reg, metrics_listen, &msrv, err, sizeof err) != KD_OK)) {
        fprintf(stderr, "kdeploy: dashboard: --metrics-listen %s: %s\n", metrics_listen, err);
    } else if (kd_feed_start(conf, history_mb * 1024 * 1024, dm, &feed, err, sizeof err) != KD_OK ||
        !(http = start_http(listen, feed, &port, err, sizeof err))) {
        fprintf(stderr, "kdeploy: dashboard: %s\n", err);
    } else {
        kd_info("dashboard on http://%.*s:%u/ (topics on %s)",
                (int)(strrchr(listen, ':') - listen), listen, port, kd_bus_conf_brokers(conf));
        while (!dash_stop)
            usleep(100 * 1000);
        kd_info("stopped");
        rc = 0;
    }
    /* The feed stops first: that wakes every stream, so their threads end
     * and the server can be stopped; the feed's memory goes last. */
    dash_stop = 1;
    kd_feed_stop(feed);
    if (http)
        MHD_stop_daemon(http);
    kd_feed_free(feed);
    kd_metrics_server_stop(msrv);
    kd_deploy_metrics_free(dm);
    kd_metrics_free(reg);
    kd_bus_conf_free(conf);
    return rc;
}
