/* Helpers every C test shares: scratch directories, small files, scripts,
 * and child processes that die with the test. Header-only like check.h, so
 * a test is still one source file. */
#ifndef KD_TEST_UTIL_H
#define KD_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* snprintf into a PATH_MAX buffer; a path that does not fit fails the test
 * (test paths are short, so it means a bug in the test). */
static void tu_pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static void tu_pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && n < PATH_MAX);
}

/* A new scratch directory "<KD_TEST_TMP>/<prefix>XXXXXX" into dir (PATH_MAX).
 * Falls back to /tmp when KD_TEST_TMP is unset, or too long for the unix
 * sockets some tests put there (sun_path holds 108 bytes). Returns 0 or -1. */
static inline int tu_scratch(char *dir, const char *prefix)
{
    const char *tmp = getenv("KD_TEST_TMP");

    if (!tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(dir, PATH_MAX, "%s/%sXXXXXX", tmp, prefix);
    return mkdtemp(dir) ? 0 : -1;
}

static inline void tu_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The whole file as a malloc'd string (callers free), or NULL. */
static inline char *tu_read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t len = 0, cap = 0, n;

    if (!f)
        return NULL;
    do {
        if (len + 4096 + 1 > cap) {
            char *bigger = realloc(s, cap = cap * 2 + 4096 + 1);

            if (!bigger) {
                free(s);
                fclose(f);
                return NULL;
            }
            s = bigger;
        }
        n = fread(s + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    fclose(f);
    s[len] = '\0';
    return s;
}

/* Writes an executable /bin/sh script with body at path. */
static inline void tu_write_script(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");

    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (!f)
        return;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
}

static inline void tu_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* In a new child: dies with the test, and leads its own process group so
 * that a test can signal it with everything it started. */
static inline void tu_child_setup(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setpgid(0, 0);
}

/* Starts argv[0] with argv, stdout and stderr appended to log_path;
 * returns its pid (or -1). */
static inline pid_t tu_spawn(char *const argv[], const char *log_path)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

        tu_child_setup();
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Sends sig to *pid, reaps it and clears *pid; returns its wait status
 * (or -1 when there was nothing to stop). */
static inline int tu_stop(pid_t *pid, int sig)
{
    int status = -1;

    if (*pid <= 0)
        return -1;
    kill(*pid, sig);
    while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
        ;
    *pid = 0;
    return status;
}

/* Starts `kdeploy broker` (KD_BIN_DIR, else build/bin) with partitions per
 * topic, its log and brokers file in dir, and waits up to 10 s for its
 * bootstrap list, written into brokers (bufsz). Returns its pid, or -1
 * (stopped) when it did not come up. */
static inline pid_t tu_start_broker(const char *dir, int partitions, char *brokers,
                                    size_t bufsz)
{
    char exe[PATH_MAX + 16], path[PATH_MAX + 16], log[PATH_MAX + 16], parts[16];
    const char *bin = getenv("KD_BIN_DIR");
    pid_t pid;

    snprintf(exe, sizeof exe, "%s/kdeploy", bin ? bin : "build/bin");
    snprintf(path, sizeof path, "%s/brokers", dir);
    snprintf(log, sizeof log, "%s/broker.log", dir);
    snprintf(parts, sizeof parts, "%d", partitions);
    pid = tu_spawn((char *[]){exe, "broker", "--brokers-file", path, "--partitions", parts,
                              NULL}, log);
    brokers[0] = 0;
    for (int i = 0; i < 200 && pid > 0 && !brokers[0]; i++) {
        FILE *f = fopen(path, "r");

        tu_sleep_ms(50);
        if (f && fgets(brokers, (int)bufsz, f))
            brokers[strcspn(brokers, "\n")] = 0;
        if (f)
            fclose(f);
    }
    if (!brokers[0])
        tu_stop(&pid, SIGTERM);
    return brokers[0] ? pid : -1;
}

#endif
