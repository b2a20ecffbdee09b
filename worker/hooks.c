#include "hooks.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Without a pidfd the child's exit is noticed by polling in slices this long;
 * the abort flag cannot wake poll() at all, so it is checked as often. */
#define NO_PIDFD_SLICE_MS 20
#define ABORT_SLICE_MS 50
/* At most this much output is read per wakeup, so a flood of output cannot
 * starve the timeout. */
#define DRAIN_MAX (1u << 20)
#define MAX_GROUPS 65536
/* The child's own stack until it execs: it makes only system calls. */
#define CHILD_STACK_BYTES (64u * 1024)

/* ---- the hook environment ---------------------------------------------- */

#define KD_HOOK_LABELS_MAX 32

struct kd_hook_env {
    char **entries;  /* "NAME=VALUE", owned; entries[count] is NULL */
    size_t count;
    size_t cap;      /* slots allocated, the terminating NULL included */
};

kd_hook_env_t *kd_hook_env_new(void)
{
    kd_hook_env_t *env = calloc(1, sizeof *env);

    if (!env)
        return NULL;
    env->cap = 16;
    env->entries = calloc(env->cap, sizeof *env->entries);
    if (!env->entries) {
        free(env);
        return NULL;
    }
    return env;
}

void kd_hook_env_free(kd_hook_env_t *env)
{
    if (!env)
        return;
    for (size_t i = 0; i < env->count; i++)
        free(env->entries[i]);
    free(env->entries);
    free(env);
}

/* Takes entry ("NAME=VALUE", name namelen bytes long), replacing an entry of
 * the same name or appending. Frees entry on failure. */
static kd_status_t env_store(kd_hook_env_t *env, char *entry, size_t namelen)
{
    for (size_t i = 0; i < env->count; i++) {
        if (strncmp(env->entries[i], entry, namelen + 1) == 0) {
            free(env->entries[i]);
            env->entries[i] = entry;
            return KD_OK;
        }
    }
    if (env->count + 1 >= env->cap) {
        size_t cap = env->cap * 2;
        char **grown = realloc(env->entries, cap * sizeof *grown);

        if (!grown) {
            free(entry);
            return KD_ENOMEM;
        }
        env->entries = grown;
        env->cap = cap;
    }
    env->entries[env->count++] = entry;
    env->entries[env->count] = NULL;
    return KD_OK;
}

static bool env_name_ok(const char *name, size_t len)
{
    return len > 0 && memchr(name, '=', len) == NULL;
}

kd_status_t kd_hook_env_set(kd_hook_env_t *env, const char *name, const char *value)
{
    size_t nl, vl;
    char *entry;

    if (!env || !name || !value)
        return KD_EINVAL;
    nl = strlen(name);
    vl = strlen(value);
    if (!env_name_ok(name, nl))
        return KD_EINVAL;
    entry = malloc(nl + vl + 2);
    if (!entry)
        return KD_ENOMEM;
    memcpy(entry, name, nl);
    entry[nl] = '=';
    memcpy(entry + nl + 1, value, vl + 1);
    return env_store(env, entry, nl);
}

kd_status_t kd_hook_env_put(kd_hook_env_t *env, const char *entry)
{
    const char *eq;
    char *copy;

    if (!env || !entry)
        return KD_EINVAL;
    eq = strchr(entry, '=');
    if (!eq || eq == entry)
        return KD_EINVAL;
    copy = strdup(entry);
    if (!copy)
        return KD_ENOMEM;
    return env_store(env, copy, (size_t)(eq - entry));
}

kd_status_t kd_hook_env_put_list(kd_hook_env_t *env, const char *const *entries, char *err,
                                 size_t errsz)
{
    for (size_t i = 0; entries && entries[i]; i++) {
        kd_status_t st = kd_hook_env_put(env, entries[i]);

        if (st == KD_EINVAL)
            return kd_err(err, errsz, st, "environment entry '%s' is not NAME=VALUE",
                          entries[i]);
        if (st != KD_OK)
            return kd_err(err, errsz, st, "setting hook environment: %s", kd_status_str(st));
    }
    return KD_OK;
}

kd_status_t kd_hook_env_set_appspec(kd_hook_env_t *env, const kd_appspec_env_t *vars,
                                    size_t count, char *err, size_t errsz)
{
    for (size_t i = 0; i < count; i++) {
        kd_status_t st = kd_hook_env_set(env, vars[i].name, vars[i].value ? vars[i].value : "");

        if (st == KD_EINVAL)
            return kd_err(err, errsz, st, "appspec env name '%s' is not a variable name",
                          vars[i].name ? vars[i].name : "(null)");
        if (st != KD_OK)
            return kd_err(err, errsz, st, "setting hook environment: %s", kd_status_str(st));
    }
    return KD_OK;
}

/* The host's labels, both as one list (KDEPLOY_HOST_LABELS=role=web,zone=a,
 * for a hook to log or pass on) and one variable each (KDEPLOY_LABEL_ROLE=web;
 * the key upper-cased, every character other than a letter or digit an
 * underscore), for a hook to test. Labels were checked at start: keys and
 * values hold no ',' or '='. */
static kd_status_t set_labels(kd_hook_env_t *env, const char *const *labels)
{
    /* At most 32 labels of 63+1+63 characters each, and their commas. */
    char all[KD_HOOK_LABELS_MAX * (2 * 63 + 2) + 1] = "", name[16 + 63 + 1];
    size_t used = 0;
    kd_status_t st;

    for (size_t i = 0; labels && labels[i] && i < KD_HOOK_LABELS_MAX; i++) {
        const char *eq = strchr(labels[i], '=');
        size_t klen = eq ? (size_t)(eq - labels[i]) : 0;
        int n;

        if (!eq || klen > 63)
            continue;
        n = snprintf(all + used, sizeof all - used, "%s%s", used ? "," : "", labels[i]);
        if (n > 0 && (size_t)n < sizeof all - used)
            used += (size_t)n;
        memcpy(name, "KDEPLOY_LABEL_", 14);
        for (size_t k = 0; k < klen; k++) {
            unsigned char ch = (unsigned char)labels[i][k];

            name[14 + k] = isalnum(ch) ? (char)toupper(ch) : '_';
        }
        name[14 + klen] = '\0';
        if ((st = kd_hook_env_set(env, name, eq + 1)) != KD_OK)
            return st;
    }
    return kd_hook_env_set(env, "KDEPLOY_HOST_LABELS", all);
}

kd_status_t kd_hook_env_set_deployment(kd_hook_env_t *env, const kd_hook_deployment_t *d,
                                       char *err, size_t errsz)
{
    const char *op = d->operation ? d->operation : "UPDATE";
    const char *app_id = d->application_id ? d->application_id : d->application_name;
    const char *group_id = d->group_id ? d->group_id : d->group_name;
    const struct {
        const char *name;
        const char *value;
    } vars[] = {
        { "LIFECYCLE_EVENT", d->event },
        { "DEPLOYMENT_ID", d->deployment_id },
        { "APPLICATION_NAME", d->application_name },
        { "DEPLOYMENT_GROUP_NAME", d->group_name },
        { "DEPLOYMENT_GROUP_ID", group_id },
        { "JDCLOUD_CODEDEPLOY_LIFECYCLE_EVENT", d->event },
        { "JDCLOUD_CODEDEPLOY_DEPLOY_ID", d->deployment_id },
        { "JDCLOUD_CODEDEPLOY_APP_ID", app_id },
        { "JDCLOUD_CODEDEPLOY_APP_NAME", d->application_name },
        { "JDCLOUD_CODEDEPLOY_GROUP_ID", group_id },
        { "JDCLOUD_CODEDEPLOY_GROUP_NAME", d->group_name },
        { "JDCLOUD_CODEDEPLOY_OPERATION", op },
        /* Where `files` put the revision: hooks find the installed app here
         * (an appspec's /opt/app is $KDEPLOY_INSTALL_PREFIX/opt/app). */
        { "KDEPLOY_HOST_ID", d->host_id },
        { "KDEPLOY_INSTALL_PREFIX", d->install_prefix },
    };

    if (strcmp(op, "UPDATE") != 0 && strcmp(op, "ROLLBACK") != 0)
        return kd_err(err, errsz, KD_EINVAL, "operation '%s' is not UPDATE or ROLLBACK", op);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        kd_status_t st = kd_hook_env_set(env, vars[i].name, vars[i].value ? vars[i].value : "");

        if (st != KD_OK)
            return kd_err(err, errsz, st, "setting hook environment: %s", kd_status_str(st));
    }
    if (set_labels(env, d->labels) != KD_OK)
        return kd_err(err, errsz, KD_ENOMEM, "setting hook environment: out of memory");
    return KD_OK;
}

kd_status_t kd_hook_env_build(const kd_hook_deployment_t *d, const kd_appspec_env_t *vars,
                              size_t count, const char *const *host_env, kd_hook_env_t **out,
                              char *err, size_t errsz)
{
    kd_hook_env_t *env = kd_hook_env_new();
    kd_status_t st;

    if (!env)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    st = kd_hook_env_set_deployment(env, d, err, errsz);
    if (st == KD_OK && kd_hook_env_set(env, "PATH", KD_HOOK_DEFAULT_PATH) != KD_OK)
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (st == KD_OK)
        st = kd_hook_env_set_appspec(env, vars, count, err, errsz);
    if (st == KD_OK)
        st = kd_hook_env_put_list(env, host_env, err, errsz);
    if (st != KD_OK) {
        kd_hook_env_free(env);
        return st;
    }
    *out = env;
    return KD_OK;
}

const char *kd_hook_env_get(const kd_hook_env_t *env, const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < env->count; i++) {
        if (strncmp(env->entries[i], name, nl) == 0 && env->entries[i][nl] == '=')
            return env->entries[i] + nl + 1;
    }
    return NULL;
}

size_t kd_hook_env_count(const kd_hook_env_t *env)
{
    return env->count;
}

const char *const *kd_hook_env_envp(const kd_hook_env_t *env)
{
    return (const char *const *)env->entries;
}

/* ---- the output tail --------------------------------------------------- */

/* A ring of the last KD_HOOK_TAIL_MAX bytes: only the end of the output is
 * ever held in memory. */
struct tail {
    char buf[KD_HOOK_TAIL_MAX];
    size_t next;     /* where the next byte goes */
    uint64_t total;  /* bytes pushed so far */
};

static void tail_push(struct tail *t, const char *p, size_t n)
{
    size_t size = sizeof t->buf;

    if (n >= size) {
        memcpy(t->buf, p + n - size, size);
        t->next = 0;
    } else {
        size_t first = n < size - t->next ? n : size - t->next;

        memcpy(t->buf + t->next, p, first);
        memcpy(t->buf, p + first, n - first);
        t->next = (t->next + n) % size;
    }
    t->total += n;
}

/* Copies the tail in order into dst (KD_HOOK_TAIL_MAX bytes); returns its length. */
static size_t tail_copy(const struct tail *t, char *dst)
{
    size_t size = sizeof t->buf, older;

    if (t->total < size) {
        memcpy(dst, t->buf, (size_t)t->total);
        return (size_t)t->total;
    }
    older = size - t->next;
    memcpy(dst, t->buf + t->next, older);
    memcpy(dst + older, t->buf, t->next);
    return size;
}

/* ---- starting the child ------------------------------------------------ */

/* Everything the child needs, prepared before the clone. The child shares
 * the worker's memory until it execs (clone with CLONE_VM, as posix_spawn
 * does): no copy of the worker's page tables, and no copy-on-write faults
 * in the worker's threads while the child starts. So the child only reads
 * this and makes raw system calls: no libc state, no allocation, no
 * sanitizer interceptors. Its own file table, cwd, credentials and
 * signal handlers are its own (no CLONE_FILES, CLONE_FS, CLONE_SIGHAND). */
struct launch {
    const char *const *argv;
    const char *const *envp;
    const char *cwd;
    const char *runas;
    bool switch_user;
    uid_t uid;
    gid_t gid;
    gid_t *groups;
    size_t ngroups;
    int out_fd;     /* the pipe's write end: the child's stdout and stderr */
    int status_fd;  /* CLOEXEC: closed unread by a successful execve */
    int gate_fd;    /* -1, or a pipe's read end: one byte lets the child exec */
    int gate_wfd;   /* its write end, which the child closes first */
    int max_fd;     /* descriptors to close without close_range: 3..max_fd-1 */
};

enum child_stage {
    STAGE_SETPGID,
    STAGE_STDIO,
    STAGE_CHDIR,
    STAGE_SETGROUPS,
    STAGE_SETGID,
    STAGE_SETUID,
    STAGE_EXEC
};

/* What a child that failed before exec writes to the status pipe. */
struct child_report {
    int stage;
    int errnum;
};

/* The child's code runs on a stack of its own that the sanitizers do not
 * know: they must not instrument it. */
#define CHILD_CODE __attribute__((no_sanitize("address", "undefined")))

/* syscall() reports failures in errno, which the child shares with the
 * thread that cloned it (the same thread pointer): the child reads it at
 * once, and the parent only reads errno after calls of its own. */
CHILD_CODE static long child_sys(long nr, long a, long b, long c, long d)
{
    return syscall(nr, a, b, c, d);
}

CHILD_CODE __attribute__((noreturn)) static void child_fail(int fd, int stage, int errnum)
{
    struct child_report rep = { stage, errnum };

    (void)child_sys(SYS_write, fd, (long)&rep, (long)sizeof rep, 0);
    for (;;)
        (void)child_sys(SYS_exit_group, 127, 0, 0, 0);
}

/* The kernel's struct sigaction, to reset dispositions without libc. */
struct child_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

/* Every handler back to the default (the worker's handlers live in memory
 * the child shares), then every signal unblocked: the hook starts clean. */
CHILD_CODE static void child_reset_signals(void)
{
    struct child_sigaction dfl = { SIG_DFL, 0, NULL, 0 };
    uint64_t none = 0;

    for (int sig = 1; sig <= 64; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP)  /* fails harmlessly for reserved numbers */
            (void)child_sys(SYS_rt_sigaction, sig, (long)&dfl, 0, (long)sizeof dfl.mask);
    }
    (void)child_sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, (long)sizeof none);
}

/* Leaves only 0, 1, 2 and the status pipe open across exec. */
CHILD_CODE static void child_close_fds(int keep, int max_fd)
{
#ifdef SYS_close_range
    if (child_sys(SYS_close_range, 3, (long)~0U, (long)CLOSE_RANGE_CLOEXEC, 0) == 0)
        return;
    if ((keep == 3 || child_sys(SYS_close_range, 3, keep - 1, 0, 0) == 0) &&
        child_sys(SYS_close_range, keep + 1, (long)~0U, 0, 0) == 0)
        return;
#endif
    /* Older kernels: every descriptor the table may hold. */
    for (int fd = 3; fd < max_fd; fd++) {
        if (fd != keep)
            (void)child_sys(SYS_close, fd, 0, 0, 0);
    }
}

CHILD_CODE static int child_dup(int from, int to)
{
    if (from == to)
        return 0;
#ifdef SYS_dup2
    return child_sys(SYS_dup2, from, to, 0, 0) < 0 ? -1 : 0;
#else
    return child_sys(SYS_dup3, from, to, 0, 0) < 0 ? -1 : 0;
#endif
}

CHILD_CODE __attribute__((noreturn)) static void child_exec(const struct launch *l)
{
    long nul;

    if (child_sys(SYS_setpgid, 0, 0, 0, 0) != 0)
        child_fail(l->status_fd, STAGE_SETPGID, errno);
    /* Nothing runs before the parent has recorded the group; if it dies
     * first, the gate reads EOF and the child goes away unstarted. */
    if (l->gate_fd >= 0) {
        char go;
        long n;

        (void)child_sys(SYS_close, l->gate_wfd, 0, 0, 0);
        while ((n = child_sys(SYS_read, l->gate_fd, (long)&go, 1, 0)) < 0 && errno == EINTR)
            ;
        if (n != 1)
            child_fail(l->status_fd, STAGE_SETPGID, ECANCELED);
    }
    child_reset_signals();
    nul = child_sys(SYS_openat, AT_FDCWD, (long)"/dev/null", O_RDONLY, 0);
    if (nul < 0 || child_dup((int)nul, 0) < 0 || child_dup(l->out_fd, 1) < 0 ||
        child_dup(l->out_fd, 2) < 0)
        child_fail(l->status_fd, STAGE_STDIO, errno);
    if (child_sys(SYS_chdir, (long)l->cwd, 0, 0, 0) != 0)
        child_fail(l->status_fd, STAGE_CHDIR, errno);
    if (l->switch_user) {
        if (child_sys(SYS_setgroups, (long)l->ngroups, (long)l->groups, 0, 0) != 0)
            child_fail(l->status_fd, STAGE_SETGROUPS, errno);
        if (child_sys(SYS_setgid, l->gid, 0, 0, 0) != 0)
            child_fail(l->status_fd, STAGE_SETGID, errno);
        if (child_sys(SYS_setuid, l->uid, 0, 0, 0) != 0)
            child_fail(l->status_fd, STAGE_SETUID, errno);
    }
    child_close_fds(l->status_fd, l->max_fd);
    (void)child_sys(SYS_execve, (long)l->argv[0], (long)l->argv, (long)l->envp, 0);
    child_fail(l->status_fd, STAGE_EXEC, errno);
}

CHILD_CODE static int child_main(void *arg)
{
    child_exec(arg);
}

/* Moves a descriptor above 0..2 so dup2 onto the child's stdio cannot clobber
 * it (a worker started with closed stdio gets low numbers from pipe2). */
static int fd_above_stdio(int fd)
{
    int moved;

    if (fd > 2)
        return fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return moved;
}

static kd_status_t make_pipe(int p[2], const char *what, char *err, size_t errsz)
{
    if (pipe2(p, O_CLOEXEC) != 0)
        return kd_err(err, errsz, KD_EIO, "%s pipe: %s", what, strerror(errno));
    p[0] = fd_above_stdio(p[0]);
    p[1] = fd_above_stdio(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        int e = errno;

        if (p[0] >= 0)
            close(p[0]);
        if (p[1] >= 0)
            close(p[1]);
        p[0] = p[1] = -1;
        return kd_err(err, errsz, KD_EIO, "%s pipe: %s", what, strerror(e));
    }
    return KD_OK;
}

static void close_pair(int p[2])
{
    for (int i = 0; i < 2; i++) {
        if (p[i] >= 0)
            close(p[i]);
        p[i] = -1;
    }
}

static void reap_blocking(pid_t pid, int *status)
{
    int ignored;

    while (waitpid(pid, status ? status : &ignored, 0) < 0 && errno == EINTR)
        ;
}

/* Turns a child's report of a failure before exec into an error. */
static kd_status_t report_error(const struct child_report *rep, const struct launch *l,
                                char *err, size_t errsz)
{
    static const char *const what[] = {
        [STAGE_SETPGID] = "setpgid", [STAGE_STDIO] = "redirecting stdio",
        [STAGE_CHDIR] = "chdir", [STAGE_SETGROUPS] = "setgroups for",
        [STAGE_SETGID] = "setgid for", [STAGE_SETUID] = "setuid for", [STAGE_EXEC] = "exec",
    };
    const char *subject = "hook";
    const char *hint = "";
    kd_status_t st = KD_EFAILED;

    if (rep->stage < STAGE_SETPGID || rep->stage > STAGE_EXEC)
        return kd_err(err, errsz, KD_EIO, "the hook process failed before exec");
    if (rep->stage == STAGE_CHDIR || rep->stage == STAGE_EXEC) {
        subject = rep->stage == STAGE_CHDIR ? l->cwd : l->argv[0];
        if (rep->errnum == ENOENT)
            st = KD_ENOTFOUND;
    } else if (rep->stage >= STAGE_SETGROUPS) {
        subject = l->runas;
    }
    if (rep->stage == STAGE_EXEC && rep->errnum == ENOENT && access(l->argv[0], F_OK) == 0)
        hint = " (the file exists: is its #! interpreter missing?)";
    return kd_err(err, errsz, st, "%s %s: %s%s", what[rep->stage], subject,
                  strerror(rep->errnum), hint);
}

/* Waits until the child has exec'd (its status pipe closes unread) or
 * reported a failure, in which case it is reaped and the error returned. */
static kd_status_t await_exec(int fd, pid_t pid, const struct launch *l, char *err,
                              size_t errsz)
{
    struct child_report rep;
    ssize_t n;

    do {
        n = read(fd, &rep, sizeof rep);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return KD_OK;
    reap_blocking(pid, NULL);
    if (n != (ssize_t)sizeof rep)
        return kd_err(err, errsz, KD_EIO, "the hook process failed before exec");
    return report_error(&rep, l, err, errsz);
}

/* Lets the gated child go once on_start has recorded its group. */
static kd_status_t open_gate(const kd_hook_spec_t *spec, int gate[2], pid_t child, char *err,
                             size_t errsz)
{
    kd_status_t st;
    ssize_t n;

    if (gate[1] < 0)
        return KD_OK;
    /* The child may not have run setpgid yet: the group must exist now. */
    (void)setpgid(child, child);
    if ((st = spec->on_start(spec->start_opaque, child, err, errsz)) != KD_OK)
        return st; /* the gate closes unopened: the child exits */
    while ((n = write(gate[1], "g", 1)) < 0 && errno == EINTR)
        ;
    if (n != 1)
        return kd_err(err, errsz, KD_EIO, "starting the hook: %s", strerror(errno));
    return KD_OK;
}

/* How many descriptors the child may have to close (sysconf is not for the
 * child: it may call into libc's state). */
static int open_max(void)
{
    long max = sysconf(_SC_OPEN_MAX);

    return max < 0 || max > (1L << 20) ? 1 << 20 : (int)max;
}

/* The child's stack: mapped fresh for each hook, with a guard page below. */
static void *child_stack_map(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *stack = mmap(NULL, CHILD_STACK_BYTES, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

    if (stack == MAP_FAILED)
        return NULL;
    if (page > 0 && (size_t)page < CHILD_STACK_BYTES)
        (void)mprotect(stack, (size_t)page, PROT_NONE);
    return stack;
}

/* Starts the hook (clone, exec). On success *pid runs in its own process group
 * (pgid == pid) and *out_fd is the non-blocking read end of its output. */
static kd_status_t spawn(const kd_hook_spec_t *spec, struct launch *l, pid_t *pid, int *out_fd,
                         char *err, size_t errsz)
{
    int outp[2] = { -1, -1 }, statp[2] = { -1, -1 }, gate[2] = { -1, -1 };
    sigset_t all, old;
    void *stack = NULL;
    pid_t child;
    int clone_errno;
    kd_status_t st;

    st = make_pipe(outp, "output", err, errsz);
    if (st == KD_OK)
        st = make_pipe(statp, "status", err, errsz);
    if (st == KD_OK && spec->on_start)
        st = make_pipe(gate, "gate", err, errsz);
    if (st == KD_OK && !(stack = child_stack_map()))
        st = kd_err(err, errsz, KD_ENOMEM, "no stack for the hook process: %s",
                    strerror(errno));
    if (st != KD_OK)
        goto out;
    l->out_fd = outp[1];
    l->status_fd = statp[1];
    l->gate_fd = gate[0];
    l->gate_wfd = gate[1];
    l->max_fd = open_max();
    /* No handler of the worker may run in the child before it resets them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* The memory is shared until the exec: stack and *l stay untouched
     * until await_exec sees the exec (or the child is reaped). */
    child = clone(child_main, (char *)stack + CHILD_STACK_BYTES, CLONE_VM | SIGCHLD, l);
    clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(outp[1]);
    close(statp[1]);
    outp[1] = statp[1] = -1;
    if (child < 0) {
        st = kd_err(err, errsz, KD_EIO, "starting the hook process: %s", strerror(clone_errno));
        goto out;
    }
    if ((st = open_gate(spec, gate, child, err, errsz)) != KD_OK) {
        close_pair(gate);
        reap_blocking(child, NULL);
        goto out;
    }
    close_pair(gate);
    st = await_exec(statp[0], child, l, err, errsz);
    if (st != KD_OK)
        goto out;
    if (fcntl(outp[0], F_SETFL, O_NONBLOCK) != 0) {
        st = kd_err(err, errsz, KD_EIO, "output pipe: %s", strerror(errno));
        kill(-child, SIGKILL);
        reap_blocking(child, NULL);
        goto out;
    }
    *pid = child;
    *out_fd = outp[0];
    outp[0] = -1;
out:
    /* Every way here has the child exec'd, reaped or never started. */
    if (stack)
        munmap(stack, CHILD_STACK_BYTES);
    close_pair(gate);
    close_pair(statp);
    close_pair(outp);
    return st;
}

/* ---- running as another user ------------------------------------------- */

static kd_status_t lookup_user(const char *name, struct passwd *pw, char **buf, char *err,
                               size_t errsz)
{
    long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t size = hint > 0 ? (size_t)hint : 1024;

    for (;;) {
        struct passwd *found = NULL;
        char *grown = realloc(*buf, size);
        int rc;

        if (!grown)
            return kd_err(err, errsz, KD_ENOMEM, "out of memory");
        *buf = grown;
        rc = getpwnam_r(name, pw, *buf, size, &found);
        if (rc == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        if (rc == 0 && found)
            return KD_OK;
        if (rc == 0 || rc == ENOENT || rc == ESRCH)
            return kd_err(err, errsz, KD_ENOTFOUND, "runas user '%s' does not exist", name);
        return kd_err(err, errsz, KD_EIO, "looking up user '%s': %s", name, strerror(rc));
    }
}

/* Fills l->groups with the supplementary groups of user (as initgroups). */
static kd_status_t lookup_groups(struct launch *l, const char *user, char *err, size_t errsz)
{
    int n = 16;

    for (;;) {
        gid_t *grown = realloc(l->groups, (size_t)n * sizeof *grown);
        int want = n;

        if (!grown)
            return kd_err(err, errsz, KD_ENOMEM, "out of memory");
        l->groups = grown;
        if (getgrouplist(user, l->gid, l->groups, &want) >= 0) {
            l->ngroups = (size_t)want;
            return KD_OK;
        }
        if (n >= MAX_GROUPS)
            return kd_err(err, errsz, KD_EFAILED, "user '%s' is in too many groups", user);
        n = want > n && want <= MAX_GROUPS ? want : n * 2;
    }
}

/* Resolves spec->runas into l and builds *env: spec's environment with the
 * user's HOME, USER and LOGNAME. */
static kd_status_t prepare_runas(const kd_hook_spec_t *spec, struct launch *l,
                                 kd_hook_env_t **env, char *err, size_t errsz)
{
    struct passwd pw;
    char *buf = NULL;
    kd_status_t st;

    st = lookup_user(spec->runas, &pw, &buf, err, errsz);
    if (st != KD_OK)
        goto out;
    l->uid = pw.pw_uid;
    l->gid = pw.pw_gid;
    /* Only root can switch; another user may run hooks as itself. */
    l->switch_user = geteuid() == 0 || pw.pw_uid != geteuid();
    st = lookup_groups(l, pw.pw_name, err, errsz);
    if (st != KD_OK)
        goto out;
    *env = kd_hook_env_new();
    if (!*env) {
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
        goto out;
    }
    st = kd_hook_env_put_list(*env, spec->envp, err, errsz);
    if (st == KD_OK && (kd_hook_env_set(*env, "HOME", pw.pw_dir) != KD_OK ||
                        kd_hook_env_set(*env, "USER", pw.pw_name) != KD_OK ||
                        kd_hook_env_set(*env, "LOGNAME", pw.pw_name) != KD_OK))
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (st == KD_OK)
        l->envp = kd_hook_env_envp(*env);
out:
    free(buf);
    return st;
}

static kd_status_t check_spec(const kd_hook_spec_t *spec, char *err, size_t errsz)
{
    if (!spec || !spec->argv || !spec->argv[0])
        return kd_err(err, errsz, KD_EINVAL, "hook without a program");
    if (spec->argv[0][0] != '/')
        return kd_err(err, errsz, KD_EINVAL, "hook program '%s' is not an absolute path",
                      spec->argv[0]);
    if (spec->cwd && spec->cwd[0] != '/')
        return kd_err(err, errsz, KD_EINVAL, "hook directory '%s' is not an absolute path",
                      spec->cwd);
    if (spec->runas && !spec->runas[0])
        return kd_err(err, errsz, KD_EINVAL, "empty runas user name");
    return KD_OK;
}

/* ---- waiting for it ---------------------------------------------------- */

struct hook_run {
    const kd_hook_spec_t *spec;
    kd_hook_outcome_t *out;
    pid_t pid;          /* also the process group */
    int pidfd;          /* -1: none (closed once reaped, or not supported) */
    int out_fd;         /* -1 once the output reached EOF or was given up */
    int log_fd;         /* -1 once writing to it failed */
    bool reaped;
    int kill_stage;     /* 0: none; 1: SIGTERM sent; 2: SIGKILL sent */
    int64_t t0, reaped_at, kill_at, next_progress;
    int64_t timeout, kill_grace, output_grace, interval;
    struct tail tail;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0U);  /* CLOEXEC by default */
#else
    (void)pid;
    return -1;
#endif
}

static bool abort_set(const struct hook_run *r)
{
    return r->spec->abort && *r->spec->abort;
}

static void log_write(struct hook_run *r, const char *p, size_t n)
{
    while (r->log_fd >= 0 && n > 0) {
        ssize_t w = write(r->log_fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r->out->log_failed = true;
            r->log_fd = -1;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Reads what output is there; closes the pipe at EOF. */
static void drain_output(struct hook_run *r)
{
    char chunk[16384];
    size_t total = 0;

    while (r->out_fd >= 0 && total < DRAIN_MAX) {
        ssize_t n = read(r->out_fd, chunk, sizeof chunk);

        if (n > 0) {
            log_write(r, chunk, (size_t)n);
            tail_push(&r->tail, chunk, (size_t)n);
            total += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return;
        } else {
            close(r->out_fd);
            r->out_fd = -1;
        }
    }
}

static void record_status(kd_hook_outcome_t *out, int status)
{
    if (WIFEXITED(status)) {
        out->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out->exit_code = -1;
        out->term_signal = WTERMSIG(status);
    }
}

static void try_reap(struct hook_run *r)
{
    int status = 0;
    pid_t got;

    do {
        got = waitpid(r->pid, &status, WNOHANG);
    } while (got < 0 && errno == EINTR);
    if (got == 0)
        return;
    r->reaped = true;
    r->reaped_at = now_ms();
    if (got > 0)
        record_status(r->out, status);  /* else ECHILD: reaped elsewhere, status unknown */
    /* A stopped hook's leftovers go with it; after a normal exit they are
     * the application's daemons and stay. */
    if (r->kill_stage > 0)
        (void)kill(-r->pid, SIGKILL);
    if (r->pidfd >= 0) {
        close(r->pidfd);
        r->pidfd = -1;
    }
}

static void stop_group(struct hook_run *r, int64_t now)
{
    (void)kill(-r->pid, SIGTERM);
    (void)kill(-r->pid, SIGCONT);  /* a stopped process cannot act on SIGTERM */
    r->kill_stage = 1;
    r->kill_at = now + r->kill_grace;
}

static void report_progress(struct hook_run *r, int64_t now)
{
    char snap[KD_HOOK_TAIL_MAX];
    size_t len = tail_copy(&r->tail, snap);

    r->spec->progress(r->spec->opaque, now - r->t0, snap, len);
    r->next_progress = now + r->interval;
}

/* Acts on the timeout, the abort flag, the kill grace and the progress
 * interval while the script runs. */
static void check_deadlines(struct hook_run *r, int64_t now)
{
    if (r->kill_stage == 0 && r->timeout > 0 && now - r->t0 >= r->timeout) {
        r->out->timed_out = true;
        stop_group(r, now);
    } else if (r->kill_stage == 0 && abort_set(r)) {
        r->out->aborted = true;
        stop_group(r, now);
    } else if (r->kill_stage == 1 && now >= r->kill_at) {
        (void)kill(-r->pid, SIGKILL);
        r->kill_stage = 2;
    }
    if (r->spec->progress && now >= r->next_progress)
        report_progress(r, now);
}

static bool finished(const struct hook_run *r, int64_t now)
{
    return r->reaped &&
           (r->out_fd < 0 || now - r->reaped_at >= r->output_grace || abort_set(r));
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* How long poll may sleep before something is due; -1: until an fd wakes it. */
static int next_wait(const struct hook_run *r, int64_t now)
{
    int64_t wait = INT64_MAX;

    if (!r->reaped) {
        if (r->kill_stage == 0 && r->timeout > 0)
            wait = min64(wait, r->t0 + r->timeout - now);
        if (r->kill_stage == 1)
            wait = min64(wait, r->kill_at - now);
        if (r->spec->progress)
            wait = min64(wait, r->next_progress - now);
        /* Once the output is closed the exit is near: look again sooner. */
        if (r->pidfd < 0)
            wait = min64(wait, r->out_fd < 0 ? 2 : NO_PIDFD_SLICE_MS);
    } else {
        wait = min64(wait, r->reaped_at + r->output_grace - now);
    }
    if (r->spec->abort)
        wait = min64(wait, ABORT_SLICE_MS);
    if (wait == INT64_MAX)
        return -1;
    return wait < 0 ? 0 : (int)min64(wait, INT_MAX);
}

static kd_status_t run_loop(struct hook_run *r, char *err, size_t errsz)
{
    for (;;) {
        int64_t now = now_ms();
        struct pollfd pfd[2];
        nfds_t n = 0;

        if (!r->reaped)
            check_deadlines(r, now);
        if (finished(r, now))
            return KD_OK;
        if (r->out_fd >= 0)
            pfd[n++] = (struct pollfd){ .fd = r->out_fd, .events = POLLIN };
        if (r->pidfd >= 0)
            pfd[n++] = (struct pollfd){ .fd = r->pidfd, .events = POLLIN };
        if (poll(pfd, n, next_wait(r, now)) < 0 && errno != EINTR && errno != EAGAIN)
            return kd_err(err, errsz, KD_EIO, "poll: %s", strerror(errno));
        if (r->out_fd >= 0 && pfd[0].revents)
            drain_output(r);
        if (!r->reaped)
            try_reap(r);
    }
}

/* Leaves nothing behind: on an error the group is killed and the script
 * reaped; the output pipe is closed and the tail copied out. */
static void run_finish(struct hook_run *r, kd_status_t st)
{
    if (!r->reaped) {
        int status = 0;

        (void)kill(-r->pid, SIGKILL);
        reap_blocking(r->pid, &status);
        record_status(r->out, status);
        r->reaped = true;
    }
    if (r->out_fd >= 0) {
        if (st == KD_OK)
            drain_output(r);  /* whatever arrived since the last wakeup */
        if (r->out_fd >= 0)
            close(r->out_fd);
        r->out_fd = -1;
    }
    if (r->pidfd >= 0)
        close(r->pidfd);
    r->pidfd = -1;
    r->out->tail_len = tail_copy(&r->tail, r->out->tail);
    r->out->tail[r->out->tail_len] = '\0';
    r->out->output_bytes = r->tail.total;
}

static void run_init(struct hook_run *r, const kd_hook_spec_t *spec, kd_hook_outcome_t *out,
                     int64_t t0)
{
    memset(r, 0, sizeof *r);
    r->spec = spec;
    r->out = out;
    r->pidfd = -1;
    r->out_fd = -1;
    r->log_fd = spec->log_fd;
    r->t0 = t0;
    r->timeout = spec->timeout_ms;
    r->kill_grace = spec->kill_grace_ms > 0 ? spec->kill_grace_ms : KD_HOOK_KILL_GRACE_MS;
    r->output_grace =
        spec->output_grace_ms > 0 ? spec->output_grace_ms : KD_HOOK_OUTPUT_GRACE_MS;
    r->interval = spec->progress_interval_ms > 0 ? spec->progress_interval_ms
                                                 : KD_HOOK_PROGRESS_INTERVAL_MS;
    r->next_progress = t0 + r->interval;
}

void kd_hook_spec_init(kd_hook_spec_t *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->log_fd = -1;
}

kd_status_t kd_hook_run(const kd_hook_spec_t *spec, kd_hook_outcome_t *out, char *err,
                        size_t errsz)
{
    static const char *const no_env[] = { NULL };
    struct launch l = { 0 };
    struct hook_run r;
    kd_hook_env_t *env = NULL;
    int64_t t0 = now_ms();
    kd_status_t st;

    memset(out, 0, sizeof *out);
    out->exit_code = -1;
    st = check_spec(spec, err, errsz);
    if (st != KD_OK)
        return st;
    if (spec->abort && *spec->abort)
        return kd_err(err, errsz, KD_ESTOPPED, "%s: stopped before it started", spec->argv[0]);
    l.argv = spec->argv;
    l.envp = spec->envp ? spec->envp : no_env;
    l.cwd = spec->cwd ? spec->cwd : "/";
    l.runas = spec->runas;
    if (spec->runas) {
        st = prepare_runas(spec, &l, &env, err, errsz);
        if (st != KD_OK)
            goto out;
    }
    run_init(&r, spec, out, t0);
    st = spawn(spec, &l, &r.pid, &r.out_fd, err, errsz);
    if (st != KD_OK)
        goto out;
    out->pid = r.pid;
    r.pidfd = open_pidfd(r.pid);
    st = run_loop(&r, err, errsz);
    run_finish(&r, st);
out:
    free(l.groups);
    kd_hook_env_free(env);
    out->duration_ms = now_ms() - t0;
    return st;
}
