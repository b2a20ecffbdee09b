/* The haproxy driver: block, allow and swap over HAProxy's runtime API.
 *
 * block: `set server G/H state drain`, wait until the server has no
 *        current or queued sessions (or the drain timeout), then
 *        `state maint`.
 * allow: `state ready`, then wait until the server's health check says UP
 *        (a server without a check is ready at once).
 * swap:  the frontend picks its backend with
 *        `use_backend %[str(<service>),map(<file>)]`; the service's entry
 *        in that map is compared with the expected group and set to the new
 *        one, in HAProxy and in the map file on disk.
 * A runtime command that cannot reach HAProxy or gets an error answer is
 * tried again with a doubling delay, a bounded number of times. */
#include "haproxy.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "driver.h"
#include "fsutil.h"
#include "ids.h"

/* A bound on any answer (`show stat` of a large configuration is the
 * biggest): a broken peer cannot make lbctl buffer without end. */
#define HAP_REPLY_MAX (64u * 1024 * 1024)
#define HAP_CMD_MAX 1024 /* names are at most KD_LB_NAME_MAX: commands fit */
#define HAP_POLL_MS 100
#define HAP_RETRIES 5
#define HAP_RETRY_DELAY_MS 200

typedef struct hap {
    kd_lb_conf_t conf;
} hap_t;

/* ---- the socket ---- */

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - kd_mono_ms();

    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

static kd_status_t wait_fd(int fd, short events, int64_t deadline, char *err, size_t errsz)
{
    struct pollfd pfd = {fd, events, 0};

    for (;;) {
        int n = poll(&pfd, 1, remaining_ms(deadline));

        if (n > 0)
            return KD_OK;
        if (n == 0)
            return kd_err(err, errsz, KD_ETIMEDOUT, "HAProxy did not answer in time");
        if (errno != EINTR)
            return kd_err(err, errsz, KD_EIO, "poll: %s", strerror(errno));
    }
}

static kd_status_t hap_connect(const char *path, int *out, char *err, size_t errsz)
{
    struct sockaddr_un sa;
    size_t len = strlen(path);
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (len == 0 || len >= sizeof sa.sun_path)
        return kd_err(err, errsz, KD_EINVAL, "bad HAProxy socket path '%s'", path);
    memcpy(sa.sun_path, path, len + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return kd_err(err, errsz, KD_EIO, "socket: %s", strerror(errno));
    if (connect(fd, (const struct sockaddr *)&sa, sizeof sa) != 0) {
        int saved = errno;

        close(fd);
        return kd_err(err, errsz, KD_EIO, "cannot connect to HAProxy at %s: %s", path,
                      strerror(saved));
    }
    *out = fd;
    return KD_OK;
}

static kd_status_t send_all(int fd, const char *data, size_t len, int64_t deadline, char *err,
                            size_t errsz)
{
    while (len > 0) {
        kd_status_t st = wait_fd(fd, POLLOUT, deadline, err, errsz);
        ssize_t n;

        if (st != KD_OK)
            return st;
        /* MSG_NOSIGNAL: HAProxy closing early must not kill lbctl. */
        n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return kd_err(err, errsz, KD_EIO, "writing to HAProxy: %s", strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return KD_OK;
}

static kd_status_t read_to_eof(int fd, kd_buf_t *reply, int64_t deadline, char *err,
                               size_t errsz)
{
    char chunk[8192];

    for (;;) {
        kd_status_t st = wait_fd(fd, POLLIN, deadline, err, errsz);
        ssize_t n;

        if (st != KD_OK)
            return st;
        n = recv(fd, chunk, sizeof chunk, 0);
        if (n == 0)
            return KD_OK;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return kd_err(err, errsz, KD_EIO, "reading from HAProxy: %s", strerror(errno));
        if (kd_buf_append(reply, chunk, (size_t)n) != KD_OK)
            return kd_err(err, errsz, KD_ETOOLARGE, "HAProxy's answer is too large");
    }
}

kd_status_t kd_haproxy_cli(const char *path, const char *cmd, kd_buf_t *reply, int timeout_ms,
                           char *err, size_t errsz)
{
    int64_t deadline = kd_mono_ms() + timeout_ms;
    kd_buf_t line = KD_BUF_INIT(HAP_CMD_MAX * 4);
    kd_status_t st;
    int fd = -1;

    /* A newline would end this command and start another of the sender's
     * choosing. */
    if (strchr(cmd, '\n'))
        return kd_err(err, errsz, KD_EREFUSED, "refused: a runtime command holding a newline");
    if ((st = kd_buf_printf(&line, "%s\n", cmd)) != KD_OK) {
        st = kd_err(err, errsz, st, "runtime command too long");
        goto out;
    }
    /* One connection per command: outside interactive mode HAProxy answers
     * one command and closes, so the end of the stream ends the answer. */
    if ((st = hap_connect(path, &fd, err, errsz)) != KD_OK)
        goto out;
    if ((st = send_all(fd, line.data, line.len, deadline, err, errsz)) != KD_OK)
        goto out;
    st = read_to_eof(fd, reply, deadline, err, errsz);
out:
    if (fd >= 0)
        close(fd);
    kd_buf_free(&line);
    return st;
}

/* ---- answers ---- */

/* HAProxy reports a failed command in words on a connection that worked:
 * an answer is accepted only when it has the shape the command expects. */
typedef bool (*reply_ok_fn)(const char *reply);

static bool reply_empty(const char *r)
{
    for (; *r; r++)
        if (!isspace((unsigned char)*r))
            return false;
    return true;
}

static bool reply_stat(const char *r)
{
    return strncmp(r, "# pxname,", 9) == 0;
}

/* The state file format's version line, then its header. */
static bool reply_servers_state(const char *r)
{
    return strncmp(r, "1\n#", 3) == 0;
}

static bool reply_maps(const char *r)
{
    return strncmp(r, "# id", 4) == 0;
}

/* `show map #ID`: one "0xADDR key value" line per entry. */
static bool reply_entries(const char *r)
{
    for (const char *line = r; *line;) {
        const char *nl = strchr(line, '\n');

        if (*line != '\n' && strncmp(line, "0x", 2) != 0)
            return false;
        if (!nl)
            break;
        line = nl + 1;
    }
    return true;
}

/* The first line of an error answer, printable and short, for messages. */
static void answer_line(const char *reply, char *out, size_t outsz)
{
    size_t n = 0;

    while (*reply == '\n' || *reply == '\r' || *reply == ' ')
        reply++;
    for (; reply[n] && reply[n] != '\n' && n < 200 && n + 1 < outsz; n++)
        out[n] = (reply[n] >= 0x20 && reply[n] < 0x7f) ? reply[n] : '?';
    snprintf(out + n, outsz - n, "%s", n ? "" : "(an empty answer)");
}

/* Runs cmd until HAProxy gives an answer ok() accepts, trying up to the
 * configured number of times with a doubling delay. */
static kd_status_t hap_call(const hap_t *h, const char *cmd, reply_ok_fn ok, kd_buf_t *reply,
                            char *err, size_t errsz)
{
    unsigned delay = h->conf.retry_delay_ms;
    char why[512] = "", said[256];
    kd_status_t st = KD_EIO;

    for (unsigned attempt = 1; attempt <= h->conf.retries; attempt++) {
        kd_buf_reset(reply);
        st = kd_haproxy_cli(h->conf.haproxy_socket, cmd, reply, KD_HAPROXY_IO_TIMEOUT_MS, why,
                            sizeof why);
        if (st == KD_OK && ok(kd_buf_str(reply)))
            return KD_OK;
        if (st == KD_OK) {
            answer_line(kd_buf_str(reply), said, sizeof said);
            st = kd_err(why, sizeof why, KD_EFAILED, "HAProxy answered: %s", said);
        }
        if (attempt < h->conf.retries && !kd_lb_sleep(delay, h->conf.stop))
            return kd_err(err, errsz, KD_ESTOPPED, "stopped while retrying '%s'", cmd);
        delay *= 2;
    }
    return kd_err(err, errsz, st, "'%s' failed after %u tries: %s", cmd, h->conf.retries, why);
}

static kd_status_t cmdf(char *cmd, size_t cmdsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static kd_status_t cmdf(char *cmd, size_t cmdsz, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, cmdsz, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cmdsz ? KD_EINVAL : KD_OK;
}

/* A runtime command whose success is an empty answer. */
static kd_status_t hap_set(const hap_t *h, const char *cmd, char *err, size_t errsz)
{
    kd_buf_t reply = KD_BUF_INIT(64 * 1024);
    kd_status_t st = hap_call(h, cmd, reply_empty, &reply, err, errsz);

    kd_buf_free(&reply);
    return st;
}

/* ---- text ---- */

typedef struct span {
    const char *p;
    size_t n;
} span_t;

static bool next_line(const char **cur, span_t *line)
{
    const char *s = *cur, *nl;

    if (!*s)
        return false;
    nl = strchr(s, '\n');
    line->p = s;
    line->n = nl ? (size_t)(nl - s) : strlen(s);
    *cur = nl ? nl + 1 : s + line->n;
    return true;
}

static bool span_eq(span_t s, const char *lit)
{
    return strlen(lit) == s.n && memcmp(s.p, lit, s.n) == 0;
}

/* The index-th field of a CSV line; a quoted field comes without quotes. */
static bool csv_field(span_t line, size_t index, span_t *out)
{
    size_t i = 0;

    for (size_t f = 0;; f++) {
        size_t start = i, end;

        if (i < line.n && line.p[i] == '"') {
            for (start = ++i; i < line.n && !(line.p[i] == '"' && (i + 1 >= line.n ||
                                                                  line.p[i + 1] != '"'));
                 i += line.p[i] == '"' ? 2 : 1)
                ;
            end = i;
            while (i < line.n && line.p[i] != ',')
                i++;
        } else {
            while (i < line.n && line.p[i] != ',')
                i++;
            end = i;
        }
        if (f == index) {
            *out = (span_t){line.p + start, end - start};
            return true;
        }
        if (i >= line.n)
            return false;
        i++;
    }
}

static long csv_index(span_t header, const char *name)
{
    span_t f;

    if (header.n >= 2 && header.p[0] == '#' && header.p[1] == ' ') {
        header.p += 2;
        header.n -= 2;
    }
    for (size_t i = 0; csv_field(header, i, &f); i++)
        if (span_eq(f, name))
            return (long)i;
    return -1;
}

static bool span_long(span_t s, long *out)
{
    char num[32];
    char *end;

    if (s.n == 0) {
        *out = 0;
        return true;
    }
    if (s.n >= sizeof num)
        return false;
    memcpy(num, s.p, s.n);
    num[s.n] = '\0';
    errno = 0;
    *out = strtol(num, &end, 10);
    return errno == 0 && *end == '\0';
}

static void span_copy(span_t s, char *out, size_t outsz)
{
    size_t n = 0;

    for (; n < s.n && n + 1 < outsz; n++)
        out[n] = (s.p[n] >= 0x20 && s.p[n] < 0x7f) ? s.p[n] : '?';
    out[n] = '\0';
}

/* ---- servers ---- */

enum { COL_SVNAME, COL_QCUR, COL_SCUR, COL_STATUS, COL_CHECK, COL_LASTCHK, COL_COUNT };

static const char *const col_names[COL_COUNT] = {
    "svname", "qcur", "scur", "status", "check_status", "last_chk",
};

/* One server's line of `show stat`. status and check are display copies,
 * cut short when longer. */
typedef struct hap_server {
    long scur, qcur;
    bool up; /* serving: its check says UP, or it has no check */
    char status[64];
    char check[192];
} hap_server_t;

/* UP (not "UP 1/3", on its way down), or a server without a check. */
static bool status_up(span_t s)
{
    if (span_eq(s, "no check"))
        return true;
    if (s.n < 2 || memcmp(s.p, "UP", 2) != 0 || (s.n > 2 && s.p[2] != ' '))
        return false;
    return memchr(s.p, '/', s.n) == NULL;
}

static kd_status_t server_fill(span_t line, const long *col, hap_server_t *out, char *err,
                               size_t errsz)
{
    span_t f[COL_COUNT];

    for (int i = 0; i < COL_COUNT; i++)
        if (!csv_field(line, (size_t)col[i], &f[i]))
            f[i] = (span_t){"", 0};
    if (!span_long(f[COL_SCUR], &out->scur) || !span_long(f[COL_QCUR], &out->qcur))
        return kd_err(err, errsz, KD_EPROTO, "unexpected session counts from HAProxy");
    out->up = status_up(f[COL_STATUS]);
    span_copy(f[COL_STATUS], out->status, sizeof out->status);
    snprintf(out->check, sizeof out->check, "%.*s%s%.*s", (int)f[COL_CHECK].n, f[COL_CHECK].p,
             f[COL_LASTCHK].n ? " " : "", (int)f[COL_LASTCHK].n, f[COL_LASTCHK].p);
    for (char *c = out->check; *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            *c = '?';
    return KD_OK;
}

/* Calls each(ctx, name, server) for the servers of a group in `show stat`,
 * until it returns false. */
typedef bool (*server_fn)(void *ctx, span_t name, const hap_server_t *sv);

static kd_status_t stat_servers(const hap_t *h, const char *group, server_fn each, void *ctx,
                                char *err, size_t errsz)
{
    char cmd[HAP_CMD_MAX];
    kd_buf_t reply = KD_BUF_INIT(HAP_REPLY_MAX);
    long col[COL_COUNT];
    const char *cur;
    span_t line, name;
    kd_status_t st;

    cmdf(cmd, sizeof cmd, "show stat %s 4 -1", group); /* type 4: servers; -1: all of them */
    if ((st = hap_call(h, cmd, reply_stat, &reply, err, errsz)) != KD_OK)
        goto out;
    cur = kd_buf_str(&reply);
    next_line(&cur, &line);
    for (int i = 0; i < COL_COUNT; i++)
        if ((col[i] = csv_index(line, col_names[i])) < 0) {
            st = kd_err(err, errsz, KD_EPROTO, "HAProxy's stats have no '%s' column",
                        col_names[i]);
            goto out;
        }
    while (st == KD_OK && next_line(&cur, &line)) {
        hap_server_t sv;

        if (!csv_field(line, (size_t)col[COL_SVNAME], &name) ||
            (st = server_fill(line, col, &sv, err, errsz)) != KD_OK)
            continue;
        if (!each(ctx, name, &sv))
            break;
    }
out:
    kd_buf_free(&reply);
    return st;
}

typedef struct one_server {
    const char *host;
    hap_server_t *out;
    bool found;
} one_server_t;

static bool match_server(void *ctx, span_t name, const hap_server_t *sv)
{
    one_server_t *o = ctx;

    if (!span_eq(name, o->host))
        return true;
    *o->out = *sv;
    o->found = true;
    return false;
}

/* Reads one server's sessions and health from `show stat`. */
static kd_status_t server_stat(const hap_t *h, const char *group, const char *host,
                               hap_server_t *out, char *err, size_t errsz)
{
    one_server_t o = {host, out, false};
    kd_status_t st = stat_servers(h, group, match_server, &o, err, errsz);

    if (st == KD_OK && !o.found)
        return kd_err(err, errsz, KD_ENOTFOUND, "HAProxy has no server %s/%s", group, host);
    return st;
}

static kd_status_t set_state(const hap_t *h, const char *group, const char *host,
                             const char *state, char *err, size_t errsz)
{
    char cmd[HAP_CMD_MAX];

    cmdf(cmd, sizeof cmd, "set server %s/%s state %s", group, host, state);
    return hap_set(h, cmd, err, errsz);
}

/* Waits until the draining server has no sessions left, or the timeout:
 * then the sessions still open go on, and no new one comes. */
static kd_status_t drain_wait(const hap_t *h, const char *group, const char *host,
                              unsigned timeout_s, char *err, size_t errsz)
{
    int64_t deadline = kd_mono_ms() + (int64_t)timeout_s * 1000;
    hap_server_t sv;
    kd_status_t st;

    for (;;) {
        if ((st = server_stat(h, group, host, &sv, err, errsz)) != KD_OK)
            return st;
        if ((sv.scur <= 0 && sv.qcur <= 0) || kd_mono_ms() >= deadline)
            return KD_OK;
        if (!kd_lb_sleep(HAP_POLL_MS, h->conf.stop))
            return kd_err(err, errsz, KD_ESTOPPED, "stopped while draining %s/%s", group, host);
    }
}

static kd_status_t health_wait(const hap_t *h, const char *group, const char *host,
                               unsigned timeout_s, char *err, size_t errsz)
{
    int64_t deadline = kd_mono_ms() + (int64_t)timeout_s * 1000;
    hap_server_t sv;
    kd_status_t st;

    for (;;) {
        if ((st = server_stat(h, group, host, &sv, err, errsz)) != KD_OK)
            return st;
        if (sv.up)
            return KD_OK;
        if (kd_mono_ms() >= deadline)
            return kd_err(err, errsz, KD_EFAILED,
                          "server %s/%s is ready but not healthy after %u s: %s%s%s", group,
                          host, timeout_s, sv.status, sv.check[0] ? ", last check " : "",
                          sv.check);
        if (!kd_lb_sleep(HAP_POLL_MS, h->conf.stop))
            return kd_err(err, errsz, KD_ESTOPPED, "stopped while waiting for %s/%s", group,
                          host);
    }
}

/* A group's servers in service: how many are up, and the first one that
 * is not (servers in maintenance are left out: they take no traffic). */
typedef struct group_health {
    int up, total;
    char down_name[64];
    hap_server_t down;
} group_health_t;

static bool count_server(void *ctx, span_t name, const hap_server_t *sv)
{
    group_health_t *gh = ctx;

    if (strncmp(sv->status, "MAINT", 5) == 0)
        return true;
    gh->total++;
    if (sv->up) {
        gh->up++;
    } else if (!gh->down_name[0]) {
        span_copy(name, gh->down_name, sizeof gh->down_name);
        gh->down = *sv;
    }
    return true;
}

static kd_status_t group_stat(const hap_t *h, const char *group, group_health_t *gh, char *err,
                              size_t errsz)
{
    memset(gh, 0, sizeof *gh);
    return stat_servers(h, group, count_server, gh, err, errsz);
}

/* Before a swap: every server of the group taking traffic passes its
 * health check, so the first request the group gets is answered. */
static kd_status_t group_health_wait(const hap_t *h, const char *group, unsigned timeout_s,
                                     char *err, size_t errsz)
{
    int64_t deadline = kd_mono_ms() + (int64_t)timeout_s * 1000;
    group_health_t gh;
    kd_status_t st;

    for (;;) {
        if ((st = group_stat(h, group, &gh, err, errsz)) != KD_OK)
            return st;
        if (gh.total > 0 && gh.up == gh.total)
            return KD_OK;
        if (kd_mono_ms() >= deadline)
            return kd_err(err, errsz, KD_EFAILED,
                          "group %s is not healthy after %u s: %d of %d servers up%s%s%s%s",
                          group, timeout_s, gh.up, gh.total, gh.down_name[0] ? ", " : "",
                          gh.down_name, gh.down_name[0] ? " " : "", gh.down.status);
        if (!kd_lb_sleep(HAP_POLL_MS, h->conf.stop))
            return kd_err(err, errsz, KD_ESTOPPED, "stopped while waiting for group %s", group);
    }
}

/* Writes `show servers state` to the configured state file, which
 * HAProxy reads at a reload (load-server-state-from-file), so that a
 * reload keeps the servers lbctl blocked blocked. */
static kd_status_t save_server_state(const hap_t *h, char *err, size_t errsz)
{
    const char *path = h->conf.server_state_file;
    kd_buf_t reply = KD_BUF_INIT(HAP_REPLY_MAX);
    char why[512];
    kd_status_t st;

    if (!path || !*path)
        return KD_OK;
    st = hap_call(h, "show servers state", reply_servers_state, &reply, why, sizeof why);
    while (st == KD_OK && reply.len > 1 && reply.data[reply.len - 2] == '\n')
        reply.data[--reply.len] = '\0'; /* the answer's closing blank line */
    if (st == KD_OK)
        st = kd_write_file_atomic(path, reply.data, reply.len, 0644, why, sizeof why);
    if (st != KD_OK)
        kd_err(err, errsz, st, "server state file %s not written: %s", path, why);
    kd_buf_free(&reply);
    return st;
}

static kd_status_t check_server(const char *group, const char *host, char *err, size_t errsz)
{
    kd_status_t st = kd_lb_name_check("server group", group, err, errsz);

    return st != KD_OK ? st : kd_lb_name_check("server", host, err, errsz);
}

static kd_status_t hap_block(void *state, const char *group, const char *host,
                             unsigned timeout_s, char *err, size_t errsz)
{
    const hap_t *h = state;
    kd_status_t st;

    /* drain first: no new sessions, those open may end. Then maint: drain
     * still takes sessions that persistence sends to the server. */
    if ((st = check_server(group, host, err, errsz)) != KD_OK ||
        (st = set_state(h, group, host, "drain", err, errsz)) != KD_OK ||
        (st = drain_wait(h, group, host, timeout_s ? timeout_s : h->conf.drain_timeout_s, err,
                         errsz)) != KD_OK ||
        (st = set_state(h, group, host, "maint", err, errsz)) != KD_OK)
        return st;
    return save_server_state(h, err, errsz);
}

static kd_status_t hap_allow(void *state, const char *group, const char *host,
                             unsigned timeout_s, char *err, size_t errsz)
{
    const hap_t *h = state;
    kd_status_t st, saved;

    if ((st = check_server(group, host, err, errsz)) != KD_OK ||
        (st = set_state(h, group, host, "ready", err, errsz)) != KD_OK)
        return st;
    st = health_wait(h, group, host, timeout_s ? timeout_s : h->conf.health_timeout_s, err,
                     errsz);
    if (st == KD_ESTOPPED)
        return st;
    /* The file follows HAProxy's state even when the server stays down. */
    saved = save_server_state(h, st == KD_OK ? err : NULL, st == KD_OK ? errsz : 0);
    return st != KD_OK ? st : saved;
}

/* ---- maps ---- */

/* A map holding (or about to hold) the service's entry. */
typedef struct hap_map {
    long id;     /* HAProxy's map id: commands use "#id" */
    char *file;  /* the map's file, as HAProxy names it */
    char *value; /* the service's value now; NULL: no entry yet */
} hap_map_t;

static void map_clear(hap_map_t *m)
{
    free(m->file);
    free(m->value);
    *m = (hap_map_t){0};
}

static bool map_allowed(const hap_t *h, const char *file)
{
    if (h->conf.map_file_count == 0)
        return true;
    for (size_t i = 0; i < h->conf.map_file_count; i++)
        if (strcmp(h->conf.map_files[i], file) == 0)
            return true;
    return false;
}

/* Parses "ID (FILE) ..." of `show map`; false for other lines. */
static bool parse_map_line(span_t line, long *id, span_t *file)
{
    char num[32];
    const char *open, *close;
    size_t n = 0;

    while (n < line.n && n + 1 < sizeof num && isdigit((unsigned char)line.p[n]))
        n++;
    if (n == 0 || n + 2 >= line.n || line.p[n] != ' ' || line.p[n + 1] != '(')
        return false;
    memcpy(num, line.p, n);
    num[n] = '\0';
    *id = strtol(num, NULL, 10);
    open = line.p + n + 2;
    if (!(close = memchr(open, ')', line.n - n - 2)) || close == open)
        return false;
    *file = (span_t){open, (size_t)(close - open)};
    return true;
}

/* The value of key in `show map #id`, malloc'd, or NULL (*value) if absent. */
static kd_status_t map_value(const hap_t *h, long id, const char *key, char **value, char *err,
                             size_t errsz)
{
    char cmd[HAP_CMD_MAX];
    kd_buf_t reply = KD_BUF_INIT(HAP_REPLY_MAX);
    const char *cur;
    span_t line;
    kd_status_t st;

    *value = NULL;
    cmdf(cmd, sizeof cmd, "show map #%ld", id);
    if ((st = hap_call(h, cmd, reply_entries, &reply, err, errsz)) != KD_OK)
        goto out;
    for (cur = kd_buf_str(&reply); next_line(&cur, &line);) {
        const char *k = memchr(line.p, ' ', line.n), *v;

        if (!k++ || !(v = memchr(k, ' ', line.n - (size_t)(k - line.p))))
            continue;
        if ((size_t)(v - k) == strlen(key) && memcmp(k, key, strlen(key)) == 0) {
            v++;
            if (!(*value = strndup(v, line.n - (size_t)(v - line.p))))
                st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
            break;
        }
    }
out:
    kd_buf_free(&reply);
    return st;
}

static kd_status_t map_take(hap_map_t *m, long id, span_t file, char *value, char *err,
                            size_t errsz)
{
    map_clear(m);
    m->id = id;
    m->value = value;
    if (!(m->file = strndup(file.p, file.n)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    return KD_OK;
}

/* Finds the first map (of those lbctl may change) holding service, into
 * found; first receives the first such map in any case, count their number. */
static kd_status_t find_service(const hap_t *h, const char *service, hap_map_t *found,
                                hap_map_t *first, size_t *count, char *err, size_t errsz)
{
    kd_buf_t reply = KD_BUF_INIT(HAP_REPLY_MAX);
    const char *cur;
    span_t line, file;
    kd_status_t st;
    long id;

    *count = 0;
    if ((st = hap_call(h, "show map", reply_maps, &reply, err, errsz)) != KD_OK)
        goto out;
    for (cur = kd_buf_str(&reply); st == KD_OK && !found->file && next_line(&cur, &line);) {
        char *value = NULL, *name;
        bool allowed;

        if (!parse_map_line(line, &id, &file) || !(name = strndup(file.p, file.n)))
            continue;
        allowed = map_allowed(h, name);
        free(name);
        if (!allowed || (++*count == 1 && (st = map_take(first, id, file, NULL, err, errsz)) !=
                                              KD_OK))
            continue;
        if ((st = map_value(h, id, service, &value, err, errsz)) == KD_OK && value)
            st = map_take(found, id, file, value, err, errsz);
    }
out:
    kd_buf_free(&reply);
    return st;
}

/* The map whose entry for service the swap changes: the one holding it,
 * or for a first swap (no from) the only map there is to add it to. */
static kd_status_t locate_service(const hap_t *h, const char *service, const char *from,
                                  hap_map_t *m, char *err, size_t errsz)
{
    hap_map_t first = {0};
    size_t count = 0;
    kd_status_t st = find_service(h, service, m, &first, &count, err, errsz);

    if (st != KD_OK || m->file)
        goto out;
    if (count == 0)
        st = kd_err(err, errsz, KD_ENOTFOUND, "HAProxy has no map%s",
                    h->conf.map_file_count ? " among the configured map files" : "");
    else if (*from)
        st = kd_err(err, errsz, KD_ENOTFOUND, "service %s is in none of HAProxy's maps",
                    service);
    else if (count > 1 && h->conf.map_file_count == 0)
        st = kd_err(err, errsz, KD_ENOTFOUND,
                    "service %s is in no map, and %zu maps could take it: set haproxy.map_file",
                    service, count);
    else {
        *m = first;
        first = (hap_map_t){0};
    }
out:
    map_clear(&first);
    return st;
}

static void line_key(span_t line, span_t *key)
{
    size_t i = 0, start;

    while (i < line.n && (line.p[i] == ' ' || line.p[i] == '\t'))
        i++;
    start = i;
    if (i < line.n && line.p[i] == '#')
        i = start = line.n;
    while (i < line.n && line.p[i] != ' ' && line.p[i] != '\t' && line.p[i] != '\r')
        i++;
    *key = (span_t){line.p + start, i - start};
}

/* The map file's text with every line of key set to value (appended when
 * there is none); comments and other entries kept as they are. */
static kd_status_t rewrite_map(const char *text, const char *key, const char *value,
                               kd_buf_t *out)
{
    const char *cur = text;
    bool found = false;
    kd_status_t st = KD_OK;
    span_t line, k;

    while (st == KD_OK && next_line(&cur, &line)) {
        line_key(line, &k);
        if (span_eq(k, key)) {
            found = true;
            st = kd_buf_printf(out, "%s %s\n", key, value);
        } else {
            st = kd_buf_printf(out, "%.*s\n", (int)line.n, line.p);
        }
    }
    if (st == KD_OK && !found)
        st = kd_buf_printf(out, "%s %s\n", key, value);
    return st;
}

static kd_status_t map_file_check(const char *file, char *err, size_t errsz)
{
    char dir[PATH_MAX];
    char *slash;

    if (file[0] != '/')
        return kd_err(err, errsz, KD_EREFUSED,
                      "map %s is not an absolute path: the change could not be kept on disk",
                      file);
    if (kd_pathf(dir, sizeof dir, "%s", file) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "map path too long: %s", file);
    slash = strrchr(dir, '/');
    slash[slash == dir ? 1 : 0] = '\0';
    if (access(file, R_OK | W_OK) != 0 || access(dir, W_OK) != 0)
        return kd_err(err, errsz, KD_EIO, "map file %s cannot be rewritten: %s", file,
                      strerror(errno));
    return KD_OK;
}

/* Makes the map file on disk say key -> value, atomically, so that an
 * HAProxy reload keeps what the runtime API changed. */
static kd_status_t sync_map_file(const char *file, const char *key, const char *value,
                                 char *err, size_t errsz)
{
    kd_buf_t old = KD_BUF_INIT(HAP_REPLY_MAX), text = KD_BUF_INIT(HAP_REPLY_MAX);
    struct stat sb;
    kd_status_t st;

    if ((st = map_file_check(file, err, errsz)) != KD_OK)
        return st;
    if (stat(file, &sb) != 0)
        return kd_err(err, errsz, KD_EIO, "map file %s: %s", file, strerror(errno));
    if ((st = kd_read_file(file, &old, err, errsz)) != KD_OK)
        goto out;
    if ((st = rewrite_map(kd_buf_str(&old), key, value, &text)) != KD_OK) {
        st = kd_err(err, errsz, st, "map file %s: %s", file, kd_status_str(st));
        goto out;
    }
    /* Same text: not rewritten, so a repeated swap changes nothing on disk. */
    if (text.len == old.len && memcmp(kd_buf_str(&text), kd_buf_str(&old), old.len) == 0)
        goto out;
    st = kd_write_file_atomic(file, text.data, text.len, sb.st_mode & 07777, err, errsz);
    /* The new file keeps the old one's owner where lbctl may set it; a
     * failure leaves it lbctl's, still readable by HAProxy (same mode). */
    if (st == KD_OK && chown(file, sb.st_uid, sb.st_gid) != 0)
        errno = 0;
out:
    kd_buf_free(&text);
    kd_buf_free(&old);
    return st;
}

/* Undoes a runtime change whose map file could not follow. */
static void undo_swap(const hap_t *h, const hap_map_t *m, const char *service, char *err,
                      size_t errsz)
{
    char cmd[HAP_CMD_MAX], why[256];
    size_t used = strlen(err);

    /* The old value came from HAProxy's answer: checked before it goes into
     * a command. */
    if (m->value && kd_lb_name_valid(m->value))
        cmdf(cmd, sizeof cmd, "set map #%ld %s %s", m->id, service, m->value);
    else if (!m->value)
        cmdf(cmd, sizeof cmd, "del map #%ld %s", m->id, service);
    else
        return;
    if (hap_set(h, cmd, why, sizeof why) == KD_OK)
        snprintf(err + used, errsz - used, " (HAProxy's map was set back)");
    else
        snprintf(err + used, errsz - used, " (setting HAProxy's map back failed too: %s)", why);
}

static kd_status_t apply_swap(const hap_t *h, const hap_map_t *m, const char *service,
                              const char *to, char *err, size_t errsz)
{
    char cmd[HAP_CMD_MAX];
    kd_status_t st;

    /* Checked before HAProxy is changed: a change the file cannot keep would
     * be undone by the next reload. */
    if ((st = map_file_check(m->file, err, errsz)) != KD_OK)
        return st;
    /* `set map` changes only an existing key; a first swap adds it. */
    cmdf(cmd, sizeof cmd, "%s map #%ld %s %s", m->value ? "set" : "add", m->id, service, to);
    if ((st = hap_set(h, cmd, err, errsz)) != KD_OK)
        return st;
    /* HAProxy and the file must agree, or a reload would quietly swap back. */
    if ((st = sync_map_file(m->file, service, to, err, errsz)) != KD_OK && err && errsz)
        undo_swap(h, m, service, err, errsz);
    return st;
}

static kd_status_t check_swap(const char *service, const char *from, const char *to, char *err,
                              size_t errsz)
{
    kd_status_t st = kd_lb_name_check("service", service, err, errsz);

    if (st == KD_OK && *from)
        st = kd_lb_name_check("from group", from, err, errsz);
    if (st == KD_OK)
        st = kd_lb_name_check("to group", to, err, errsz);
    return st;
}

static kd_status_t hap_swap(void *state, const char *service, const char *from, const char *to,
                            unsigned timeout_s, char *err, size_t errsz)
{
    const hap_t *h = state;
    hap_map_t m = {0};
    char shown[80];
    kd_status_t st;

    if (!from)
        from = "";
    if ((st = check_swap(service, from, to, err, errsz)) != KD_OK ||
        (st = locate_service(h, service, from, &m, err, errsz)) != KD_OK)
        goto out;
    if (m.value && strcmp(m.value, to) == 0) {
        st = sync_map_file(m.file, service, to, err, errsz); /* done before: idempotent */
        goto out;
    }
    /* Compare and set: a late or repeated command does not undo a swap that
     * another deployment made since. */
    if (*from && strcmp(m.value, from) != 0) {
        span_copy((span_t){m.value, strlen(m.value)}, shown, sizeof shown);
        st = kd_err(err, errsz, KD_ECONFLICT,
                    "conflict: service %s points at '%s', not at '%s' (map %s)", service, shown,
                    from, m.file);
        goto out;
    }
    if ((st = group_health_wait(h, to, timeout_s ? timeout_s : h->conf.health_timeout_s, err,
                                errsz)) != KD_OK)
        goto out;
    st = apply_swap(h, &m, service, to, err, errsz);
out:
    map_clear(&m);
    return st;
}

/* ---- the driver ---- */

static kd_status_t hap_open(const kd_lb_conf_t *conf, void **state, char *err, size_t errsz)
{
    hap_t *h;

    if (!conf->haproxy_socket || !*conf->haproxy_socket)
        return kd_err(err, errsz, KD_EINVAL, "the haproxy driver needs the runtime API socket "
                                             "(--haproxy-socket, haproxy.socket)");
    if (strlen(conf->haproxy_socket) >= sizeof ((struct sockaddr_un *)0)->sun_path)
        return kd_err(err, errsz, KD_EINVAL, "HAProxy socket path too long: %s",
                      conf->haproxy_socket);
    if (!(h = calloc(1, sizeof *h)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    h->conf = *conf;
    if (!h->conf.drain_timeout_s)
        h->conf.drain_timeout_s = KD_LB_DEFAULT_DRAIN_S;
    if (!h->conf.health_timeout_s)
        h->conf.health_timeout_s = KD_LB_DEFAULT_HEALTH_S;
    if (!h->conf.retries)
        h->conf.retries = HAP_RETRIES;
    if (!h->conf.retry_delay_ms)
        h->conf.retry_delay_ms = HAP_RETRY_DELAY_MS;
    *state = h;
    return KD_OK;
}

static void hap_close(void *state)
{
    free(state);
}

const kd_lb_driver_t kd_lb_haproxy_driver = {
    .name = "haproxy",
    .open = hap_open,
    .block = hap_block,
    .allow = hap_allow,
    .swap = hap_swap,
    .close = hap_close,
};
