#include "orphans.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define POLL_MS 50
#define KILL_WAIT_MS 10000 /* after SIGKILL, a group normally vanishes at once */

/* Reads /proc/PID/stat into buf; returns the text after the command's
 * closing parenthesis (the command may hold spaces and parentheses). */
static const char *read_stat(pid_t pid, char *buf, size_t bufsz)
{
    char path[64];
    ssize_t n;
    int fd;
    char *close_paren;

    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return NULL;
    n = read(fd, buf, bufsz - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' ? close_paren + 2 : NULL;
}

/* The n-th space-separated field of rest (field 3 of the stat line is
 * rest's field 0). */
static const char *field(const char *rest, int n)
{
    while (n-- > 0 && rest) {
        rest = strchr(rest, ' ');
        rest = rest ? rest + 1 : NULL;
    }
    return rest;
}

unsigned long long kd_proc_start_time(pid_t pid)
{
    char buf[1024];
    const char *rest = read_stat(pid, buf, sizeof buf);
    const char *f = rest ? field(rest, 22 - 3) : NULL;

    return f ? strtoull(f, NULL, 10) : 0;
}

/* Whether a live (not zombie) process of group pgid is left. */
static bool group_alive(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool alive = false;

    if (!d)
        return kill(-pgid, 0) == 0;
    while (!alive && (e = readdir(d)) != NULL) {
        char buf[1024];
        const char *rest, *pg;
        char *end;
        long pid = strtol(e->d_name, &end, 10);

        if (*end || pid <= 0 || !(rest = read_stat((pid_t)pid, buf, sizeof buf)))
            continue;
        pg = field(rest, 5 - 3);
        alive = rest[0] != 'Z' && pg && strtol(pg, NULL, 10) == (long)pgid;
    }
    closedir(d);
    return alive;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits up to ms for the group to be gone. */
static bool wait_gone(pid_t pgid, long ms)
{
    for (long waited = 0;; waited += POLL_MS) {
        if (!group_alive(pgid))
            return true;
        if (waited >= ms)
            return false;
        sleep_ms(POLL_MS);
    }
}

typedef struct end_ctx {
    kd_journal_t *j;
    const char *host;
    long grace_ms;
    char *err;
    size_t errsz;
} end_ctx_t;

static kd_status_t end_one(void *opaque, const char *step_id, long pgid,
                           unsigned long long start)
{
    end_ctx_t *c = opaque;
    unsigned long long now_start = kd_proc_start_time((pid_t)pgid);

    /* A leader alive with another start time is another process that got
     * the pid: the hook's group is gone (a group's id stays reserved while
     * any member lives). */
    if (now_start && now_start != start) {
        kd_info("%s: the hook of %s is gone (its pid is now another process)", c->host, step_id);
    } else if (group_alive((pid_t)pgid)) {
        kd_warn("%s: the hook of %s (process group %ld) outlived the previous worker: ending it",
                c->host, step_id, pgid);
        (void)kill((pid_t)-pgid, SIGTERM);
        (void)kill((pid_t)-pgid, SIGCONT);
        if (!wait_gone((pid_t)pgid, c->grace_ms)) {
            (void)kill((pid_t)-pgid, SIGKILL);
            if (!wait_gone((pid_t)pgid, KILL_WAIT_MS))
                return kd_err(c->err, c->errsz, KD_EFAILED,
                              "the hook of %s (process group %ld) cannot be ended", step_id,
                              pgid);
        }
    }
    return kd_journal_clear_running(c->j, step_id, c->err, c->errsz);
}

kd_status_t kd_orphans_end(kd_journal_t *j, const char *host, long grace_ms, char *err,
                           size_t errsz)
{
    end_ctx_t c = {j, host, grace_ms, err, errsz};

    return kd_journal_each_running(j, end_one, &c, err, errsz);
}
