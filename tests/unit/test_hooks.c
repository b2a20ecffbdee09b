/* Running one hook: exit codes, the output tail and log, timeouts that kill
 * the whole process group, daemons that keep stdout open, exec failures,
 * runas, the environment, progress and abort. Scripts are written into a
 * scratch directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"
#include "hooks.h"

static char g_dir[PATH_MAX];
static char g_err[1024];
static const char *g_threads_script;

/* Writes "#!/bin/sh\n" + body to g_dir/name with mode; returns the path
 * (rotating buffers). */
static const char *script(const char *name, const char *body, mode_t mode)
{
    static char bufs[4][PATH_MAX];
    static unsigned next;
    char *path = bufs[next++ % 4];
    FILE *f;

    tu_pathf(path, "%s/%s", g_dir, name);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return path;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, mode);
    return path;
}

/* Runs argv {path, NULL} with spec defaults plus the given timeout. */
static kd_status_t run_script(const char *path, int64_t timeout_ms, kd_hook_outcome_t *out)
{
    const char *argv[] = { path, NULL };
    kd_hook_spec_t spec;

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.cwd = g_dir;
    spec.timeout_ms = timeout_ms;
    g_err[0] = '\0';
    return kd_hook_run(&spec, out, g_err, sizeof g_err);
}

/* True if a process of group pgid is alive (zombies waiting for init to
 * reap them do not count). */
static bool group_has_live(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool live = false;

    while (d && !live && (e = readdir(d)) != NULL) {
        char path[64], buf[1024], *end, *p;
        long pid = strtol(e->d_name, &end, 10);
        FILE *f;
        size_t n;

        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        if (!(f = fopen(path, "r")))
            continue;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        /* "pid (comm) S ppid pgrp ..."; comm may hold anything. */
        if (!(p = strrchr(buf, ')')) || strlen(p) < 4)
            continue;
        char state = p[2];
        strtol(p + 3, &end, 10);               /* ppid */
        long pgrp = strtol(end, NULL, 10);
        if (pgrp == pgid && state != 'Z' && state != 'X')
            live = true;
    }
    if (d)
        closedir(d);
    return live;
}

/* Waits up to ms for group pgid to be gone. */
static bool group_gone(pid_t pgid, int ms)
{
    for (int waited = 0; waited <= ms; waited += 20) {
        if (kill(-pgid, 0) != 0 && errno == ESRCH)
            return true;
        if (!group_has_live(pgid))
            return true;
        usleep(20000);
    }
    return false;
}

static void test_success_captures_output(void)
{
    kd_hook_outcome_t out;
    const char *p = script("ok.sh", "echo hello\necho oops >&2\nexit 0", 0755);

    CHECK(run_script(p, 5000, &out) == KD_OK);
    CHECK(out.exit_code == 0);
    CHECK(out.term_signal == 0);
    CHECK(!out.timed_out && !out.aborted);
    CHECK(out.pid > 0);
    CHECK_STREQ(out.tail, "hello\noops\n");
    CHECK(out.tail_len == 11 && out.output_bytes == 11);
    CHECK_MSG(out.duration_ms < 1000, "took %lld ms", (long long)out.duration_ms);
}

static void test_nonzero_exit_and_signal(void)
{
    kd_hook_outcome_t out;
    const char *p = script("fail.sh", "echo failing\nexit 3", 0755);

    CHECK(run_script(p, 5000, &out) == KD_OK);
    CHECK(out.exit_code == 3);
    CHECK(out.term_signal == 0);
    CHECK_STREQ(out.tail, "failing\n");

    p = script("killed.sh", "kill -KILL $$", 0755);
    CHECK(run_script(p, 5000, &out) == KD_OK);
    CHECK(out.exit_code == -1);
    CHECK(out.term_signal == SIGKILL);
    CHECK(!out.timed_out);
}

/* 10000 bytes of numbered lines: the tail is exactly the last 4096 of them,
 * and the log gets every byte. */
static void test_tail_keeps_last_4k_and_log_gets_all(void)
{
    const char *p = script("big.sh",
                           "i=0\nwhile [ $i -lt 1000 ]; do printf '%04d:abcd\\n' $i; "
                           "i=$((i+1)); done\necho x >&2",
                           0755);
    const char *argv[] = { p, NULL };
    char expect[10003], logpath[PATH_MAX], logged[11000];
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;
    size_t len = 0;
    int fd;
    ssize_t n;

    for (int i = 0; i < 1000; i++)
        len += (size_t)snprintf(expect + len, sizeof expect - len, "%04d:abcd\n", i);
    len += (size_t)snprintf(expect + len, sizeof expect - len, "x\n");
    tu_pathf(logpath, "%s/big.log", g_dir);
    fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    CHECK(fd >= 0);
    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.log_fd = fd;
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    close(fd);
    CHECK(out.exit_code == 0);
    CHECK(out.output_bytes == len);
    CHECK(out.tail_len == KD_HOOK_TAIL_MAX);
    CHECK(memcmp(out.tail, expect + len - KD_HOOK_TAIL_MAX, KD_HOOK_TAIL_MAX) == 0);
    CHECK(out.tail[KD_HOOK_TAIL_MAX] == '\0');
    CHECK(!out.log_failed);

    fd = open(logpath, O_RDONLY);
    n = fd >= 0 ? read(fd, logged, sizeof logged) : -1;
    if (fd >= 0)
        close(fd);
    CHECK(n == (ssize_t)len && memcmp(logged, expect, len) == 0);
}

static void test_timeout_kills_whole_group(void)
{
    kd_hook_outcome_t out;
    const char *p = script("slow.sh", "sleep 100 &\nsleep 100 &\necho started\nsleep 100", 0755);

    CHECK(run_script(p, 300, &out) == KD_OK);
    CHECK(out.timed_out && !out.aborted);
    CHECK(out.exit_code == -1);
    CHECK(out.term_signal == SIGTERM);
    CHECK_MSG(out.duration_ms >= 300 && out.duration_ms < 1500, "took %lld ms",
              (long long)out.duration_ms);
    CHECK_STREQ(out.tail, "started\n");
    CHECK(group_gone(out.pid, 2000));
}

/* SIGTERM ignored by the script and its children: SIGKILL after the grace. */
static void test_timeout_escalates_to_sigkill(void)
{
    const char *p = script("stubborn.sh", "trap '' TERM\nsleep 100 &\nsleep 100", 0755);
    const char *argv[] = { p, NULL };
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.timeout_ms = 200;
    spec.kill_grace_ms = 300;
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    CHECK(out.timed_out);
    CHECK(out.term_signal == SIGKILL);
    CHECK_MSG(out.duration_ms >= 500 && out.duration_ms < 2000, "took %lld ms",
              (long long)out.duration_ms);
    CHECK(group_gone(out.pid, 2000));
}

/* A script that leaves a daemon holding its stdout returns once the output
 * grace is over, and the daemon is left running. */
static void test_daemon_keeping_stdout_does_not_hang(void)
{
    const char *p = script("daemon.sh", "(sleep 30 &)\necho started\nexit 0", 0755);
    const char *argv[] = { p, NULL };
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.timeout_ms = 10000;
    spec.output_grace_ms = 200;
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    CHECK(out.exit_code == 0 && !out.timed_out);
    CHECK_STREQ(out.tail, "started\n");
    CHECK_MSG(out.duration_ms >= 200 && out.duration_ms < 1500, "took %lld ms",
              (long long)out.duration_ms);
    CHECK(group_has_live(out.pid));
    kill(-out.pid, SIGKILL);
    CHECK(group_gone(out.pid, 2000));
}

static void test_exec_failures_are_clear(void)
{
    kd_hook_outcome_t out;
    char path[PATH_MAX];
    const char *argv[] = { "/bin/true", NULL };
    kd_hook_spec_t spec;

    tu_pathf(path, "%s/missing.sh", g_dir);
    CHECK(run_script(path, 1000, &out) == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "exec ");
    CHECK_CONTAINS(g_err, "missing.sh: No such file or directory");
    CHECK(out.exit_code == -1);

    CHECK(run_script(script("noexec.sh", "exit 0", 0644), 1000, &out) == KD_EFAILED);
    CHECK_CONTAINS(g_err, "noexec.sh: Permission denied");

    tu_pathf(path, "%s/badinterp.sh", g_dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("#!/nonexistent/shell\nexit 0\n", f);
        fclose(f);
        chmod(path, 0755);
    }
    CHECK(run_script(path, 1000, &out) == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "interpreter");

    CHECK(run_script("relative/run.sh", 1000, &out) == KD_EINVAL);
    CHECK_CONTAINS(g_err, "not an absolute path");

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.cwd = "/nonexistent-kd-dir";
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "chdir /nonexistent-kd-dir");
}

static void test_runas(void)
{
    const char *argv[] = { "/bin/sh", "-c", "id -u; id -g; echo \"$HOME $USER $LOGNAME $KEEP\"",
                           NULL };
    const char *envp[] = { "HOME=/root", "USER=root", "KEEP=kept", NULL };
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;
    struct passwd *pw;
    char expect[512];

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.envp = envp;
    spec.runas = "kd-no-such-user";
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "'kd-no-such-user' does not exist");

    pw = getpwnam("nobody");
    if (geteuid() != 0 || !pw) {
        fprintf(stderr, "skipping runas nobody: not root or no user nobody\n");
        return;
    }
    snprintf(expect, sizeof expect, "%u\n%u\n%s nobody nobody kept\n", (unsigned)pw->pw_uid,
             (unsigned)pw->pw_gid, pw->pw_dir);
    spec.runas = "nobody";
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    CHECK(out.exit_code == 0);
    CHECK_STREQ(out.tail, expect);
}

static void test_env_builder(void)
{
    kd_hook_env_t *env = kd_hook_env_new();
    const char *const *envp;

    CHECK(env != NULL);
    if (!env)
        return;
    CHECK(kd_hook_env_set(env, "A", "1") == KD_OK);
    CHECK(kd_hook_env_put(env, "B=x=y") == KD_OK);
    CHECK(kd_hook_env_set(env, "A", "2") == KD_OK);
    CHECK(kd_hook_env_set(env, "AB", "3") == KD_OK);
    CHECK(kd_hook_env_set(env, "", "v") == KD_EINVAL);
    CHECK(kd_hook_env_set(env, "C=D", "v") == KD_EINVAL);
    CHECK(kd_hook_env_put(env, "NOEQUALS") == KD_EINVAL);
    CHECK(kd_hook_env_put(env, "=v") == KD_EINVAL);
    CHECK(kd_hook_env_count(env) == 3);
    CHECK_STREQ(kd_hook_env_get(env, "A"), "2");
    CHECK_STREQ(kd_hook_env_get(env, "B"), "x=y");
    CHECK(kd_hook_env_get(env, "Z") == NULL);
    envp = kd_hook_env_envp(env);
    CHECK_STREQ(envp[0], "A=2");
    CHECK_STREQ(envp[1], "B=x=y");
    CHECK_STREQ(envp[2], "AB=3");
    CHECK(envp[3] == NULL);
    for (int i = 0; i < 40; i++) {  /* growth */
        char name[16];

        snprintf(name, sizeof name, "V%d", i);
        CHECK(kd_hook_env_set(env, name, "v") == KD_OK);
    }
    CHECK(kd_hook_env_count(env) == 43 && kd_hook_env_envp(env)[43] == NULL);
    const char *bad[] = { "OK=1", "BAD", NULL };
    CHECK(kd_hook_env_put_list(env, bad, g_err, sizeof g_err) == KD_EINVAL);
    CHECK_CONTAINS(g_err, "'BAD'");
    kd_hook_env_free(env);
    kd_hook_env_free(NULL);
}

/* The environment a hook sees: both products' names, PATH, the appspec's
 * env and the host's, later ones winning, nothing of the worker's own. */
static void test_env_reaches_hook(void)
{
    kd_hook_deployment_t d = { .event = "ApplicationStart", .deployment_id = "d-123",
                               .application_name = "shop", .group_name = "web",
                               .group_id = "g-9", .operation = "ROLLBACK",
                               .host_id = "web-01", .install_prefix = "/srv/p" };
    const char *labels[] = { "role=web", "topology.io/zone=eu-1a", NULL };
    kd_appspec_env_t vars[] = { { "FROM_APPSPEC", "a" }, { "SHARED", "appspec" },
                                { "PATH", "/opt/app/bin:/usr/bin:/bin" } };
    const char *host_env[] = { "FROM_HOST=h", "SHARED=host", NULL };
    const char *argv[] = { "/usr/bin/env", NULL };
    const char *expect[] = {
        "LIFECYCLE_EVENT=ApplicationStart", "DEPLOYMENT_ID=d-123", "APPLICATION_NAME=shop",
        "DEPLOYMENT_GROUP_NAME=web", "DEPLOYMENT_GROUP_ID=g-9",
        "JDCLOUD_CODEDEPLOY_APP_ID=shop", "JDCLOUD_CODEDEPLOY_APP_NAME=shop",
        "JDCLOUD_CODEDEPLOY_GROUP_ID=g-9", "JDCLOUD_CODEDEPLOY_GROUP_NAME=web",
        "JDCLOUD_CODEDEPLOY_DEPLOY_ID=d-123",
        "JDCLOUD_CODEDEPLOY_LIFECYCLE_EVENT=ApplicationStart",
        "JDCLOUD_CODEDEPLOY_OPERATION=ROLLBACK", "PATH=/opt/app/bin:/usr/bin:/bin",
        "FROM_APPSPEC=a", "FROM_HOST=h", "SHARED=host", "KDEPLOY_HOST_ID=web-01",
        "KDEPLOY_INSTALL_PREFIX=/srv/p",
        "KDEPLOY_HOST_LABELS=role=web,topology.io/zone=eu-1a", "KDEPLOY_LABEL_ROLE=web",
        "KDEPLOY_LABEL_TOPOLOGY_IO_ZONE=eu-1a",
    };
    kd_hook_env_t *env = NULL;
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;
    char lines[KD_HOOK_TAIL_MAX + 2], want[256];

    d.labels = labels;
    d.operation = "DEPLOY";
    CHECK(kd_hook_env_build(&d, vars, 3, host_env, &env, g_err, sizeof g_err) == KD_EINVAL);
    CHECK(env == NULL);
    CHECK_CONTAINS(g_err, "DEPLOY");
    d.operation = "ROLLBACK";
    CHECK(kd_hook_env_build(&d, vars, 3, host_env, &env, g_err, sizeof g_err) == KD_OK);
    if (!env)
        return;
    CHECK(kd_hook_env_count(env) == 21);
    setenv("KD_WORKER_ONLY", "leak", 1);
    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.envp = kd_hook_env_envp(env);
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    CHECK(out.exit_code == 0);
    snprintf(lines, sizeof lines, "\n%s", out.tail);
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        snprintf(want, sizeof want, "\n%s\n", expect[i]);
        CHECK_CONTAINS(lines, want);
    }
    CHECK(strstr(lines, "KD_WORKER_ONLY") == NULL);
    CHECK(strstr(lines, "SHARED=appspec") == NULL);
    kd_hook_env_free(env);

    /* Defaults: no operation is UPDATE, no ids are the names, PATH is sane. */
    kd_hook_deployment_t bare = { .event = "AfterInstall", .application_name = "shop" };
    CHECK(kd_hook_env_build(&bare, NULL, 0, NULL, &env, g_err, sizeof g_err) == KD_OK);
    if (!env)
        return;
    CHECK_STREQ(kd_hook_env_get(env, "JDCLOUD_CODEDEPLOY_OPERATION"), "UPDATE");
    CHECK_STREQ(kd_hook_env_get(env, "JDCLOUD_CODEDEPLOY_APP_ID"), "shop");
    CHECK_STREQ(kd_hook_env_get(env, "DEPLOYMENT_ID"), "");
    CHECK_STREQ(kd_hook_env_get(env, "PATH"), KD_HOOK_DEFAULT_PATH);
    /* No install prefix: an empty one, so "$KDEPLOY_INSTALL_PREFIX/opt/app" works. */
    CHECK_STREQ(kd_hook_env_get(env, "KDEPLOY_INSTALL_PREFIX"), "");
    /* No labels: an empty list, and no KDEPLOY_LABEL_ variable. */
    CHECK_STREQ(kd_hook_env_get(env, "KDEPLOY_HOST_LABELS"), "");
    kd_hook_env_free(env);
}

struct progress_seen {
    int calls;
    int64_t last_elapsed;
    bool monotonic;
    char tail[64];
};

static void on_progress(void *opaque, int64_t elapsed_ms, const char *tail, size_t tail_len)
{
    struct progress_seen *seen = opaque;

    seen->monotonic = seen->monotonic && elapsed_ms > seen->last_elapsed;
    seen->last_elapsed = elapsed_ms;
    seen->calls++;
    snprintf(seen->tail, sizeof seen->tail, "%.*s", (int)tail_len, tail);
}

static void test_progress_while_running(void)
{
    const char *p = script("progress.sh", "echo tick\nsleep 0.6", 0755);
    const char *argv[] = { p, NULL };
    struct progress_seen seen = { .monotonic = true };
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.progress = on_progress;
    spec.opaque = &seen;
    spec.progress_interval_ms = 100;
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    CHECK(out.exit_code == 0);
    CHECK_MSG(seen.calls >= 3 && seen.calls <= 7, "%d calls", seen.calls);
    CHECK(seen.monotonic);
    CHECK(seen.last_elapsed >= 100);
    CHECK_STREQ(seen.tail, "tick\n");
}

static volatile sig_atomic_t g_abort;

static void on_alarm(int sig)
{
    (void)sig;
    g_abort = 1;
}

/* A signal handler sets the flag while the hook runs. */
static void test_abort_flag_stops_hook(void)
{
    const char *p = script("long.sh", "sleep 100 &\nsleep 100", 0755);
    const char *argv[] = { p, NULL };
    struct sigaction sa = { .sa_handler = on_alarm };
    struct itimerval it = { .it_value = { 0, 200000 } };
    kd_hook_spec_t spec;
    kd_hook_outcome_t out;

    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.timeout_ms = 10000;
    spec.abort = &g_abort;
    g_abort = 0;
    sigaction(SIGALRM, &sa, NULL);
    setitimer(ITIMER_REAL, &it, NULL);
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_OK);
    CHECK(out.aborted && !out.timed_out);
    CHECK(out.term_signal == SIGTERM);
    CHECK_MSG(out.duration_ms >= 200 && out.duration_ms < 1500, "took %lld ms",
              (long long)out.duration_ms);
    CHECK(group_gone(out.pid, 2000));

    /* Already set: not started at all. */
    CHECK(kd_hook_run(&spec, &out, g_err, sizeof g_err) == KD_ESTOPPED);
    g_abort = 0;
    signal(SIGALRM, SIG_DFL);
}

/* The worker's ignored or blocked signals and open descriptors do not reach
 * the hook; stdin is /dev/null. */
static void test_child_starts_clean(void)
{
    char body[256];
    int fd = open("/dev/null", O_RDONLY);  /* deliberately not CLOEXEC */
    sigset_t block, old;
    kd_hook_outcome_t out;

    snprintf(body, sizeof body,
             "[ -e /proc/$$/fd/%d ] && echo leaked || echo closed\n"
             "readlink /proc/$$/fd/0\nkill -USR1 $$\necho survived",
             fd);
    signal(SIGUSR1, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    CHECK(run_script(script("clean.sh", body, 0755), 5000, &out) == KD_OK);
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGUSR1, SIG_DFL);
    close(fd);
    CHECK_STREQ(out.tail, "closed\n/dev/null\n");
    CHECK(out.term_signal == SIGUSR1);

    /* A blocked SIGTERM in the worker must not make the hook immune to it. */
    sigprocmask(SIG_BLOCK, &block, &old);
    CHECK(run_script(script("term.sh", "sleep 100", 0755), 200, &out) == KD_OK);
    sigprocmask(SIG_SETMASK, &old, NULL);
    CHECK(out.timed_out && out.term_signal == SIGTERM);
}

/* Hooks started from several threads at once: each child shares the
 * worker's memory until it execs, so each must see its own argv, env and
 * pipes, whatever the other threads do meanwhile. */
#define SPAWN_THREADS 4
#define SPAWN_EACH 8

typedef struct {
    int id;
    int ok;
} spawner_t;

static void *spawner(void *arg)
{
    spawner_t *t = arg;
    char want[40], env0[48], err[256];

    for (int i = 0; i < SPAWN_EACH; i++) {
        const char *envp[] = { env0, NULL };
        const char *argv[] = { g_threads_script, NULL };
        kd_hook_spec_t spec;
        kd_hook_outcome_t out;

        snprintf(env0, sizeof env0, "TOKEN=t%d-%d", t->id, i);
        snprintf(want, sizeof want, "t%d-%d\n", t->id, i);
        kd_hook_spec_init(&spec);
        spec.argv = argv;
        spec.envp = envp;
        spec.cwd = g_dir;
        spec.timeout_ms = 10000;
        if (kd_hook_run(&spec, &out, err, sizeof err) == KD_OK && out.exit_code == 0 &&
            strcmp(out.tail, want) == 0)
            t->ok++;
    }
    return NULL;
}

static void test_hooks_from_threads(void)
{
    pthread_t th[SPAWN_THREADS];
    spawner_t t[SPAWN_THREADS];
    int started = 0, ok = 0;

    g_threads_script = script("token.sh", "echo \"$TOKEN\"", 0755);
    for (int i = 0; i < SPAWN_THREADS; i++) {
        t[i].id = i;
        t[i].ok = 0;
        if (pthread_create(&th[i], NULL, spawner, &t[i]) == 0)
            started++;
        else
            break;
    }
    CHECK(started == SPAWN_THREADS);
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        ok += t[i].ok;
    }
    CHECK(ok == SPAWN_THREADS * SPAWN_EACH);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(void)
{
    const char *tmp = getenv("KD_TEST_TMP");

    snprintf(g_dir, sizeof g_dir, "%s/hooks-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_success_captures_output);
    RUN(test_nonzero_exit_and_signal);
    RUN(test_tail_keeps_last_4k_and_log_gets_all);
    RUN(test_timeout_kills_whole_group);
    RUN(test_timeout_escalates_to_sigkill);
    RUN(test_daemon_keeping_stdout_does_not_hang);
    RUN(test_exec_failures_are_clear);
    RUN(test_runas);
    RUN(test_env_builder);
    RUN(test_env_reaches_hook);
    RUN(test_progress_while_running);
    RUN(test_abort_flag_stops_hook);
    RUN(test_child_starts_clean);
    RUN(test_hooks_from_threads);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return check_summary();
}
