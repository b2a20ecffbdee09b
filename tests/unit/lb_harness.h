/* What lbctl's tests share: child processes that never outlive the test
 * (each dies with it, and lbh_stop_all() ends and reaps them), a tiny HTTP
 * server, a real HAProxy, and queries of its runtime API. Included by one
 * test file each: everything here is static. */
#ifndef KD_TEST_LB_HARNESS_H
#define KD_TEST_LB_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "haproxy.h"
#include "ids.h"
#include "testutil.h"

#define LBH_HAPROXY "/usr/sbin/haproxy"
#define LBH_MAX_CHILDREN 32

static pid_t lbh_children[LBH_MAX_CHILDREN];
static int lbh_child_count;

static inline void lbh_track(pid_t pid)
{
    if (pid > 0 && lbh_child_count < LBH_MAX_CHILDREN)
        lbh_children[lbh_child_count++] = pid;
}

/* tu_spawn, and the child is ended with the others at the end. */
static inline pid_t lbh_track_spawn(char *const argv[], const char *log_path)
{
    pid_t pid = tu_spawn(argv, log_path);

    lbh_track(pid);
    return pid;
}

/* Ends pid's process group (TERM, then KILL after 5 s) and reaps pid. */
static inline void lbh_stop(pid_t pid)
{
    int status;

    if (pid <= 0)
        return;
    kill(-pid, SIGTERM);
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) != 0)
            goto reaped;
        tu_sleep_ms(50);
    }
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
reaped:
    kill(-pid, SIGKILL); /* whatever it left behind in its group */
    for (int i = 0; i < lbh_child_count; i++)
        if (lbh_children[i] == pid)
            lbh_children[i] = 0;
}

static inline void lbh_stop_all(void)
{
    for (int i = lbh_child_count - 1; i >= 0; i--)
        lbh_stop(lbh_children[i]);
    lbh_child_count = 0;
}

/* ---- sockets ---- */

/* A socket listening on 127.0.0.1 at a free port (into *port), or -1. */
static inline int lbh_listen(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A port nothing listens on right now. */
static inline int lbh_free_port(void)
{
    int port = 0, fd = lbh_listen(&port);

    if (fd >= 0)
        close(fd);
    return port;
}

static inline int lbh_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- a tiny HTTP server ---- */

/* Answers one request: 200 with its name as the body; GET /.../slow
 * answers after 1.5 s. */
static inline void lbh_http_answer(int c, const char *name)
{
    char req[4096], resp[256];
    size_t len = 0;
    ssize_t n;

    while (len + 1 < sizeof req && (n = read(c, req + len, sizeof req - 1 - len)) > 0) {
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    if (len == 0)
        return; /* a health check's bare connection */
    req[len] = '\0';
    if (strstr(req, "/slow "))
        tu_sleep_ms(1500);
    n = snprintf(resp, sizeof resp,
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(name), name);
    if (write(c, resp, (size_t)n) < 0)
        return;
}

static inline void lbh_http_loop(int lfd, const char *name)
{
    signal(SIGCHLD, SIG_IGN); /* connection children reap themselves */
    for (;;) {
        int c = accept(lfd, NULL, NULL);

        if (c < 0)
            continue;
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            close(lfd);
            lbh_http_answer(c, name);
            close(c);
            _exit(0);
        }
        close(c);
    }
}

/* Starts an HTTP server answering name on a free port (into *port). */
static inline pid_t lbh_http_server(const char *name, int *port)
{
    int lfd = lbh_listen(port);
    pid_t pid;

    if (lfd < 0)
        return -1;
    if ((pid = fork()) == 0) {
        tu_child_setup();
        lbh_http_loop(lfd, name);
        _exit(0);
    }
    close(lfd);
    lbh_track(pid);
    return pid;
}

/* GET path through 127.0.0.1:port; the body into body. Returns the HTTP
 * status, or -1. */
static inline int lbh_http_get(int port, const char *path, char *body, size_t bodysz)
{
    char req[512], resp[8192];
    size_t len = 0;
    ssize_t n;
    int fd = lbh_connect(port), code = -1;
    const char *b;

    body[0] = '\0';
    if (fd < 0)
        return -1;
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
                 path);
    if (write(fd, req, (size_t)n) == n)
        while (len + 1 < sizeof resp && (n = read(fd, resp + len, sizeof resp - 1 - len)) > 0)
            len += (size_t)n;
    close(fd);
    resp[len] = '\0';
    if (strncmp(resp, "HTTP/1.1 ", 9) == 0)
        code = (int)strtol(resp + 9, NULL, 10);
    if ((b = strstr(resp, "\r\n\r\n")))
        snprintf(body, bodysz, "%s", b + 4);
    return code;
}

/* ---- HAProxy ---- */

static inline int lbh_cli(const char *sock, const char *cmd, kd_buf_t *out)
{
    char err[256];

    kd_buf_reset(out);
    return kd_haproxy_cli(sock, cmd, out, 5000, err, sizeof err) == KD_OK ? 0 : -1;
}

/* Starts HAProxy on cfg_path; waits until sock answers. Returns its pid
 * or -1. */
static inline pid_t lbh_haproxy(const char *cfg_path, const char *sock, const char *log_path)
{
    char *argv[] = {LBH_HAPROXY, "-f", (char *)cfg_path, "-db", NULL};
    kd_buf_t out = KD_BUF_INIT(1 << 20);
    pid_t pid = lbh_track_spawn(argv, log_path);

    for (int i = 0; pid > 0 && i < 200; i++) {
        if (lbh_cli(sock, "show info", &out) == 0 && out.len > 0) {
            kd_buf_free(&out);
            return pid;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            break;
        tu_sleep_ms(50);
    }
    kd_buf_free(&out);
    return -1;
}

/* The n-th space-separated field of line (which ends at '\n' or NUL) into
 * out; false if it has fewer. */
static inline bool lbh_word(const char *line, int n, char *out, size_t outsz)
{
    const char *p = line;

    for (int i = 0;; i++) {
        size_t len = strcspn(p, " \n");

        if (i == n) {
            snprintf(out, outsz, "%.*s", (int)len, p);
            return true;
        }
        if (p[len] != ' ')
            return false;
        p += len + 1;
    }
}

/* The server's srv_admin_state in `show servers state` (1: maintenance
 * forced, 8: drain forced, 0: ready), or -1. */
static inline long lbh_admin_state(const char *sock, const char *group, const char *host)
{
    kd_buf_t out = KD_BUF_INIT(1 << 20);
    char cmd[256], w[256];
    const char *l, *nl;
    long state = -1;

    snprintf(cmd, sizeof cmd, "show servers state %s", group);
    if (lbh_cli(sock, cmd, &out) != 0)
        kd_buf_reset(&out);
    for (l = kd_buf_str(&out); l && *l; l = (nl = strchr(l, '\n')) ? nl + 1 : NULL)
        if (*l != '#' && lbh_word(l, 1, w, sizeof w) && strcmp(w, group) == 0 &&
            lbh_word(l, 3, w, sizeof w) && strcmp(w, host) == 0 && lbh_word(l, 6, w, sizeof w))
            state = strtol(w, NULL, 10);
    kd_buf_free(&out);
    return state;
}

/* The n-th comma-separated field of line (ending at '\n' or NUL) into
 * out; false if it has fewer. */
static inline bool lbh_csv(const char *line, int n, char *out, size_t outsz)
{
    const char *p = line;

    for (int i = 0;; i++) {
        size_t len = strcspn(p, ",\n");

        if (i == n) {
            snprintf(out, outsz, "%.*s", (int)len, p);
            return true;
        }
        if (p[len] != ',')
            return false;
        p += len + 1;
    }
}

/* One column of the server's `show stat` line into out ("" if absent). */
static inline void lbh_stat(const char *sock, const char *group, const char *host,
                            const char *column, char *out, size_t outsz)
{
    kd_buf_t res = KD_BUF_INIT(1 << 20);
    char cmd[256], f[256];
    const char *hdr, *l;
    int col = -1;

    out[0] = '\0';
    snprintf(cmd, sizeof cmd, "show stat %s 4 -1", group);
    if (lbh_cli(sock, cmd, &res) != 0 || strncmp(kd_buf_str(&res), "# ", 2) != 0)
        goto out;
    hdr = kd_buf_str(&res) + 2;
    for (int i = 0; col < 0 && lbh_csv(hdr, i, f, sizeof f); i++)
        if (strcmp(f, column) == 0)
            col = i;
    for (l = strchr(hdr, '\n'); col >= 0 && l && l[1]; l = strchr(l + 1, '\n'))
        if (lbh_csv(l + 1, 1, f, sizeof f) && strcmp(f, host) == 0) {
            lbh_csv(l + 1, col, out, outsz);
            break;
        }
out:
    kd_buf_free(&res);
}

#endif
