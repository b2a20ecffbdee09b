/* Hooks left running by a worker that died: the journal records a hook's
 * process group before the hook may exec, and a starting worker ends the
 * groups still recorded (and only those). */
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include "hooks.h"
#include "journal.h"
#include "orphans.h"
#include "testutil.h"

static char g_dir[PATH_MAX];

/* A stand-in for a hook left behind: a shell in its own process group
 * with a child of its own, both sleeping. */
static pid_t start_orphan(void)
{
    pid_t pid = fork();

    if (pid == 0) {
        tu_child_setup();
        execl("/bin/sh", "sh", "-c", "sleep 60 & sleep 60; wait", (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    tu_sleep_ms(100); /* let it start its child */
    return pid;
}

/* Processes of group pgid that are not zombies, from /proc. */
static int live_in_group(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)) != NULL) {
        char path[64], buf[512], *p;
        FILE *f;

        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
        fclose(f);
        /* "pid (comm) S ppid pgrp ..." */
        if ((p = strrchr(buf, ')')) && p[1] == ' ' && p[2] != 'Z') {
            char *end;

            strtol(p + 4, &end, 10); /* ppid */
            if (strtol(end, NULL, 10) == (long)pgid)
                n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

static bool gone(pid_t pid)
{
    int status;

    /* Our own child: reap it if it ended (ending it is the point). */
    return waitpid(pid, &status, WNOHANG) == pid || kill(pid, 0) != 0;
}

static kd_status_t count_running(void *opaque, const char *step_id, long pgid,
                                 unsigned long long start)
{
    (void)step_id;
    (void)pgid;
    (void)start;
    ++*(int *)opaque;
    return KD_OK;
}

static void test_recorded_group_is_ended(void)
{
    char jdir[PATH_MAX], err[512] = "";
    kd_journal_t *j = NULL;
    pid_t pid = start_orphan();
    int seen = 0;

    tu_pathf(jdir, "%s/journal-1", g_dir);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j)
        return;
    CHECK(kd_proc_start_time(pid) > 0);
    CHECK(kd_journal_set_running(j, "d/h/ApplicationStart/1", (long)pid, kd_proc_start_time(pid),
                                 err, sizeof err) == KD_OK);
    CHECK_MSG(kd_orphans_end(j, "h", 2000, err, sizeof err) == KD_OK, "%s", err);
    for (int i = 0; i < 50 && !gone(pid); i++)
        tu_sleep_ms(20);
    CHECK(gone(pid));
    CHECK(live_in_group(pid) == 0); /* its child too (a zombie at most) */
    /* The record is cleared: a second start finds nothing to end. */
    CHECK(kd_journal_each_running(j, count_running, &seen, err, sizeof err) == KD_OK);
    CHECK(seen == 0);
    kd_journal_close(j);
}

/* A recorded pid now used by a process with another start time is not
 * that hook: it is left alone. */
static void test_reused_pid_is_left_alone(void)
{
    char jdir[PATH_MAX], err[512] = "";
    kd_journal_t *j = NULL;
    pid_t pid = start_orphan();

    tu_pathf(jdir, "%s/journal-2", g_dir);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j)
        return;
    CHECK(kd_journal_set_running(j, "d/h/ApplicationStart/1", (long)pid,
                                 kd_proc_start_time(pid) + 1, err, sizeof err) == KD_OK);
    CHECK_MSG(kd_orphans_end(j, "h", 2000, err, sizeof err) == KD_OK, "%s", err);
    CHECK(kill(pid, 0) == 0);
    kill(-pid, SIGKILL);
    waitpid(pid, NULL, 0);
    kd_journal_close(j);
}

typedef struct gate_ctx {
    pid_t seen;
    kd_status_t answer;
} gate_ctx_t;

static kd_status_t on_start(void *opaque, pid_t pgid, char *err, size_t errsz)
{
    gate_ctx_t *g = opaque;

    g->seen = pgid;
    /* The group exists before the hook may run. */
    CHECK(getpgid(pgid) == pgid);
    return g->answer == KD_OK ? KD_OK : kd_err(err, errsz, g->answer, "cannot record");
}

/* The hook waits for on_start: when recording fails, the script never
 * runs. */
static void test_hook_waits_for_its_record(void)
{
    char marker[PATH_MAX], cmd[PATH_MAX + 32], err[512] = "";
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    gate_ctx_t g = {0, KD_OK};
    kd_hook_outcome_t *out = calloc(1, sizeof *out);
    kd_hook_spec_t spec;

    if (!out)
        return;
    tu_pathf(marker, "%s/ran", g_dir);
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.on_start = on_start;
    spec.start_opaque = &g;
    CHECK_MSG(kd_hook_run(&spec, out, err, sizeof err) == KD_OK, "%s", err);
    CHECK(g.seen == out->pid && out->exit_code == 0);
    CHECK(access(marker, F_OK) == 0);
    unlink(marker);
    g.answer = KD_EIO;
    CHECK(kd_hook_run(&spec, out, err, sizeof err) == KD_EIO);
    CHECK_CONTAINS(err, "cannot record");
    tu_sleep_ms(100);
    CHECK(access(marker, F_OK) != 0);
    free(out);
}

int main(void)
{
    if (tu_scratch(g_dir, "orphans-") != 0)
        return 1;
    RUN(test_recorded_group_is_ended);
    RUN(test_reused_pid_is_left_alone);
    RUN(test_hook_waits_for_its_record);
    return check_summary();
}
