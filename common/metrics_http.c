/* Serving a metrics registry over HTTP with libmicrohttpd: the parsing of
 * requests is the library's, never ours. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "metrics.h"

#define METRICS_MAX_BYTES (16 * 1024 * 1024)
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct kd_metrics_server {
    struct MHD_Daemon *daemon;
    kd_metrics_t *reg;
    unsigned port;
};

kd_status_t kd_listen_parse(const char *listen, struct sockaddr_storage *sa, unsigned *salen,
                            char *err, size_t errsz)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char host[256], *end;
    unsigned long port;
    int rc;

    if (!colon || !colon[1])
        return kd_err(err, errsz, KD_EINVAL, "listen address '%s': expected ADDR:PORT",
                      listen ? listen : "");
    port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535 || colon[1] == '-' || colon[1] == '+')
        return kd_err(err, errsz, KD_EINVAL, "listen address '%s': bad port", listen);
    if ((size_t)(colon - listen) >= sizeof host)
        return kd_err(err, errsz, KD_EINVAL, "listen address '%s': host name too long", listen);
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    /* "[::1]" is an IPv6 literal in brackets. */
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    if (!host[0])
        snprintf(host, sizeof host, "0.0.0.0");
    if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0)
        return kd_err(err, errsz, KD_EINVAL, "listen address '%s': %s", listen,
                      gai_strerror(rc));
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return KD_OK;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(len, body, free);
    enum MHD_Result ret;

    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    kd_metrics_server_t *srv = cls;
    kd_buf_t out = KD_BUF_INIT(METRICS_MAX_BYTES);
    size_t len;

    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                     strdup("only GET\n"), strlen("only GET\n"));
    if (strcmp(url, "/") == 0) {
        static const char page[] = "<html><body><a href=\"/metrics\">/metrics</a></body></html>\n";

        return reply(conn, MHD_HTTP_OK, "text/html", strdup(page), strlen(page));
    }
    if (strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found\n"),
                     strlen("not found\n"));
    if (kd_metrics_render(srv->reg, &out) != KD_OK) {
        kd_buf_free(&out);
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                     strdup("metrics too large\n"), strlen("metrics too large\n"));
    }
    len = out.len;
    return reply(conn, MHD_HTTP_OK, METRICS_CONTENT_TYPE, kd_buf_steal(&out), len);
}

kd_status_t kd_metrics_serve(kd_metrics_t *reg, const char *listen, kd_metrics_server_t **out,
                             char *err, size_t errsz)
{
    struct sockaddr_storage sa;
    unsigned salen;
    kd_metrics_server_t *srv;
    const union MHD_DaemonInfo *info;
    kd_status_t st;

    if ((st = kd_listen_parse(listen, &sa, &salen, err, errsz)) != KD_OK)
        return st;
    if (!(srv = calloc(1, sizeof *srv)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    srv->reg = reg;
    srv->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
        MHD_OPTION_END);
    if (!srv->daemon) {
        free(srv);
        return kd_err(err, errsz, KD_EIO, "cannot listen on %s (in use, or not an address "
                      "of this host?)", listen);
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    *out = srv;
    return KD_OK;
}

unsigned kd_metrics_server_port(const kd_metrics_server_t *srv)
{
    return srv ? srv->port : 0;
}

void kd_metrics_server_stop(kd_metrics_server_t *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
