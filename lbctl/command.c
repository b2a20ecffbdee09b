/* The command driver: an operator's executable makes each change, for load
 * balancers lbctl has no driver of its own for (a cloud API, nginx, F5).
 * It runs with argv, never through a shell:
 *   PATH block GROUP HOST
 *   PATH allow GROUP HOST
 *   PATH swap SERVICE FROM TO      (FROM is "" on a first swap)
 * Exit status 0 is success; anything else fails the change with the tail
 * of the command's output (stdout and stderr together). It is killed, with
 * its process group, at its timeout. */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ids.h"

#define CMD_TAIL 2048
#define CMD_POLL_MS 100
#define CMD_KILL_GRACE_MS 2000

typedef struct cmd_drv {
    const char *path;
    unsigned timeout_s;
    volatile sig_atomic_t *stop;
} cmd_drv_t;

/* The newest CMD_TAIL bytes of the command's output. */
typedef struct out_tail {
    char data[CMD_TAIL];
    size_t len;
} out_tail_t;

static void tail_add(out_tail_t *t, const char *p, size_t n)
{
    if (n >= CMD_TAIL) {
        memcpy(t->data, p + n - CMD_TAIL, CMD_TAIL);
        t->len = CMD_TAIL;
        return;
    }
    if (t->len + n > CMD_TAIL) {
        size_t drop = t->len + n - CMD_TAIL;

        memmove(t->data, t->data + drop, t->len - drop);
        t->len -= drop;
    }
    memcpy(t->data + t->len, p, n);
    t->len += n;
}

/* The tail as message text: control characters but newlines and tabs
 * replaced, trailing white space dropped. */
static void tail_text(const out_tail_t *t, char *out, size_t outsz)
{
    size_t end = t->len, start = 0, n = 0;

    while (end > 0 && (t->data[end - 1] == '\n' || t->data[end - 1] == ' ' ||
                       t->data[end - 1] == '\r'))
        end--;
    if (end >= outsz)
        start = end - (outsz - 1); /* the newest output matters most */
    for (size_t i = start; i < end; i++, n++) {
        char c = t->data[i];

        out[n] = ((unsigned char)c < 0x20 && c != '\n' && c != '\t') ? '?' : c;
    }
    out[n] = '\0';
}

/* Reads what the pipe holds now; returns -1 once it is closed (and closes
 * fd), else fd. */
static int read_pipe(int fd, out_tail_t *tail)
{
    char chunk[4096];

    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);

        if (n > 0) {
            tail_add(tail, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return fd;
        close(fd);
        return -1;
    }
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void exec_child(const char *path, char *const argv[], int out, int in)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL); /* ignored by lbctl, not by the command */
    setpgid(0, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(126);
    execv(path, argv);
    _exit(127);
}

static kd_status_t spawn(const char *path, char *const argv[], pid_t *pid, int *fd, char *err,
                         size_t errsz)
{
    int pfd[2], in;

    if (pipe2(pfd, O_CLOEXEC) != 0)
        return kd_err(err, errsz, KD_EIO, "pipe: %s", strerror(errno));
    if ((in = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return kd_err(err, errsz, KD_EIO, "/dev/null: %s", strerror(errno));
    }
    *pid = fork();
    if (*pid == 0)
        exec_child(path, argv, pfd[1], in);
    close(pfd[1]);
    close(in);
    if (*pid < 0) {
        close(pfd[0]);
        return kd_err(err, errsz, KD_EIO, "fork: %s", strerror(errno));
    }
    setpgid(*pid, *pid); /* also here: kill(-pid) must work at once */
    fcntl(pfd[0], F_SETFL, fcntl(pfd[0], F_GETFL) | O_NONBLOCK);
    *fd = pfd[0];
    return KD_OK;
}

/* Waits for the command, collecting its output, killing its process group
 * at the deadline or when lbctl stops. Returns KD_OK once it exited on its
 * own (status in *wstatus), KD_ETIMEDOUT or KD_ESTOPPED once it was killed. */
static kd_status_t supervise(const cmd_drv_t *c, pid_t pid, int fd, unsigned timeout_s,
                             out_tail_t *tail, int *wstatus)
{
    int64_t deadline = kd_mono_ms() + (int64_t)timeout_s * 1000, killed_at = 0;
    kd_status_t st = KD_OK;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};

        if (poll(&p, 1, CMD_POLL_MS) > 0)
            fd = read_pipe(fd, tail);
        if (waitpid(pid, wstatus, WNOHANG) == pid)
            break;
        if (st == KD_OK && (kd_mono_ms() >= deadline || (c->stop && *c->stop))) {
            st = kd_mono_ms() >= deadline ? KD_ETIMEDOUT : KD_ESTOPPED;
            killed_at = kd_mono_ms();
            kill(-pid, SIGTERM);
        } else if (killed_at && kd_mono_ms() - killed_at >= CMD_KILL_GRACE_MS) {
            kill(-pid, SIGKILL);
        }
    }
    /* What it wrote last; a background child keeping the pipe open is not
     * waited for. */
    if (fd >= 0 && read_pipe(fd, tail) >= 0)
        close(fd);
    return st;
}

static kd_status_t run(const cmd_drv_t *c, char *const argv[], unsigned timeout_s, char *err,
                       size_t errsz)
{
    out_tail_t *tail = calloc(1, sizeof *tail);
    char text[CMD_TAIL + 1], what[256];
    int wstatus = 0, fd = -1;
    pid_t pid = -1;
    kd_status_t st;

    if (!tail)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (!timeout_s)
        timeout_s = c->timeout_s;
    if ((st = spawn(c->path, argv, &pid, &fd, err, errsz)) != KD_OK)
        goto out;
    st = supervise(c, pid, fd, timeout_s, tail, &wstatus);
    tail_text(tail, text, sizeof text);
    if (st == KD_OK && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
        goto out;
    if (st == KD_ETIMEDOUT)
        snprintf(what, sizeof what, "timed out after %u s and was killed", timeout_s);
    else if (st == KD_ESTOPPED)
        snprintf(what, sizeof what, "was killed: lbctl is stopping");
    else if (WIFEXITED(wstatus))
        snprintf(what, sizeof what, "exited with status %d%s", WEXITSTATUS(wstatus),
                 WEXITSTATUS(wstatus) == 127 ? " (could it be run?)" : "");
    else
        snprintf(what, sizeof what, "was killed by signal %d", WTERMSIG(wstatus));
    st = kd_err(err, errsz, st == KD_OK ? KD_EFAILED : st, "%s %s %s%s%s", c->path, argv[1], what,
                text[0] ? ": " : "", text);
out:
    free(tail);
    return st;
}

static kd_status_t cmd_block_allow(void *state, const char *action, const char *group,
                                   const char *host, unsigned timeout_s, char *err, size_t errsz)
{
    const cmd_drv_t *c = state;
    char *argv[] = {(char *)c->path, (char *)action, (char *)group, (char *)host, NULL};
    kd_status_t st = kd_lb_name_check("server group", group, err, errsz);

    if (st == KD_OK)
        st = kd_lb_name_check("server", host, err, errsz);
    return st != KD_OK ? st : run(c, argv, timeout_s, err, errsz);
}

static kd_status_t cmd_block(void *state, const char *group, const char *host,
                             unsigned timeout_s, char *err, size_t errsz)
{
    return cmd_block_allow(state, "block", group, host, timeout_s, err, errsz);
}

static kd_status_t cmd_allow(void *state, const char *group, const char *host,
                             unsigned timeout_s, char *err, size_t errsz)
{
    return cmd_block_allow(state, "allow", group, host, timeout_s, err, errsz);
}

static kd_status_t cmd_swap(void *state, const char *service, const char *from, const char *to,
                            unsigned timeout_s, char *err, size_t errsz)
{
    const cmd_drv_t *c = state;
    char *argv[] = {(char *)c->path, "swap", (char *)service, (char *)(from ? from : ""),
                    (char *)to, NULL};
    kd_status_t st = kd_lb_name_check("service", service, err, errsz);

    if (st == KD_OK && from && *from)
        st = kd_lb_name_check("from group", from, err, errsz);
    if (st == KD_OK)
        st = kd_lb_name_check("to group", to, err, errsz);
    return st != KD_OK ? st : run(c, argv, timeout_s, err, errsz);
}

static kd_status_t cmd_open(const kd_lb_conf_t *conf, void **state, char *err, size_t errsz)
{
    cmd_drv_t *c;

    if (!conf->command || !*conf->command)
        return kd_err(err, errsz, KD_EINVAL,
                      "the command driver needs an executable (--command, command)");
    if (access(conf->command, X_OK) != 0)
        return kd_err(err, errsz, KD_EINVAL, "%s: not an executable: %s", conf->command,
                      strerror(errno));
    if (!(c = calloc(1, sizeof *c)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    c->path = conf->command;
    c->timeout_s = conf->command_timeout_s ? conf->command_timeout_s : KD_LB_DEFAULT_COMMAND_S;
    c->stop = conf->stop;
    *state = c;
    return KD_OK;
}

static void cmd_close(void *state)
{
    free(state);
}

const kd_lb_driver_t kd_lb_command_driver = {
    .name = "command",
    .open = cmd_open,
    .block = cmd_block,
    .allow = cmd_allow,
    .swap = cmd_swap,
    .close = cmd_close,
};
