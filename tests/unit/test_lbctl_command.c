/* lbctl's command driver (an operator's executable run with argv, its exit
 * status the outcome, killed at its timeout) and how the traffic loop
 * turns a driver's outcome into a TrafficResult. Scripts are written into
 * a scratch directory. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"
#include "driver.h"
#include "event.h"
#include "fsutil.h"
#include "ids.h"
#include "traffic.h"

static char g_dir[PATH_MAX], g_args[PATH_MAX];
static char g_err[4096];
static const kd_lb_driver_t *drv = &kd_lb_command_driver;
static volatile sig_atomic_t g_stop;

/* Writes an executable /bin/sh script; returns its path (rotating). */
static const char *script(const char *name, const char *body)
{
    static char bufs[4][PATH_MAX];
    static unsigned next;
    char *path = bufs[next++ % 4];
    FILE *f;

    tu_pathf(path, "%s/%s", g_dir, name);
    if (!(f = fopen(path, "w"))) {
        CHECK(0);
        return path;
    }
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
    return path;
}

/* Opens the driver on a script; NULL on failure. */
static void *open_on(const char *path, unsigned timeout_s)
{
    kd_lb_conf_t lc = {.command = path, .command_timeout_s = timeout_s, .stop = &g_stop};
    void *state = NULL;

    CHECK_MSG(drv->open(&lc, &state, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    return state;
}

/* A script that records its arguments, one per line, with their count. */
static const char *recorder(void)
{
    static char body[PATH_MAX + 128];

    snprintf(body, sizeof body, "{ echo \"$#\"; for a in \"$@\"; do echo \"[$a]\"; done; } > %s",
             g_args);
    return script("record", body);
}

static void test_actions_run_with_argv(void)
{
    void *s = open_on(recorder(), 0);
    char *args;

    CHECK(drv->block(s, "blue", "web-01", 0, g_err, sizeof g_err) == KD_OK);
    CHECK_STREQ((args = tu_read_text(g_args)), "3\n[block]\n[blue]\n[web-01]\n");
    free(args);
    CHECK(drv->allow(s, "blue", "web-01", 0, g_err, sizeof g_err) == KD_OK);
    CHECK_STREQ((args = tu_read_text(g_args)), "3\n[allow]\n[blue]\n[web-01]\n");
    free(args);
    CHECK(drv->swap(s, "shop-svc", "blue", "green", 0, g_err, sizeof g_err) == KD_OK);
    CHECK_STREQ((args = tu_read_text(g_args)), "4\n[swap]\n[shop-svc]\n[blue]\n[green]\n");
    free(args);
    CHECK(drv->swap(s, "shop-svc", "", "green", 0, g_err, sizeof g_err) == KD_OK);
    CHECK_STREQ((args = tu_read_text(g_args)), "4\n[swap]\n[shop-svc]\n[]\n[green]\n");
    free(args);
    drv->close(s);
}

static void test_unsafe_names_never_reach_the_command(void)
{
    void *s = open_on(recorder(), 0);

    unlink(g_args);
    CHECK(drv->block(s, "blue", "web-01; rm -rf /", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(drv->allow(s, "$(reboot)", "web-01", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(drv->swap(s, "shop-svc", "blue", "-rf", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(drv->swap(s, "shop-svc", "a b", "green", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(drv->swap(s, "", "blue", "green", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK_CONTAINS(g_err, "refused");
    CHECK(access(g_args, F_OK) != 0);
    drv->close(s);
}

static void test_failure_reports_status_and_output(void)
{
    void *s = open_on(script("fail", "echo starting\necho 'backend blue unknown' >&2\nexit 3"), 0);

    CHECK(drv->block(s, "blue", "web-01", 0, g_err, sizeof g_err) == KD_EFAILED);
    CHECK_CONTAINS(g_err, "exited with status 3");
    CHECK_CONTAINS(g_err, "starting\nbackend blue unknown");
    drv->close(s);
}

static void test_timeout_kills_the_command(void)
{
    void *s = open_on(script("slow", "echo waiting\nsleep 30"), 1);
    int64_t t0 = kd_mono_ms();

    CHECK(drv->allow(s, "blue", "web-01", 0, g_err, sizeof g_err) == KD_ETIMEDOUT);
    CHECK(kd_mono_ms() - t0 < 5000);
    CHECK_CONTAINS(g_err, "timed out after 1 s");
    CHECK_CONTAINS(g_err, "waiting");
    /* The command's own bound wins over the default. */
    t0 = kd_mono_ms();
    CHECK(drv->allow(s, "blue", "web-01", 2, g_err, sizeof g_err) == KD_ETIMEDOUT);
    CHECK(kd_mono_ms() - t0 >= 1900);
    drv->close(s);
}

static void test_background_child_does_not_hold_the_result(void)
{
    char body[PATH_MAX + 64], pidfile[PATH_MAX], *pid;
    void *s;
    int64_t t0;

    tu_pathf(pidfile, "%s/daemon.pid", g_dir);
    snprintf(body, sizeof body, "sleep 20 &\necho $! > %s\necho done", pidfile);
    s = open_on(script("daemon", body), 10);
    t0 = kd_mono_ms();
    CHECK_MSG(drv->block(s, "blue", "web-01", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    CHECK(kd_mono_ms() - t0 < 3000);
    if ((pid = tu_read_text(pidfile)) && strtol(pid, NULL, 10) > 0)
        kill((pid_t)strtol(pid, NULL, 10), SIGKILL); /* the daemon is the test's to end */
    free(pid);
    drv->close(s);
}

static void *stop_soon(void *arg)
{
    struct timespec ts = {0, 300 * 1000000L};

    (void)arg;
    nanosleep(&ts, NULL);
    g_stop = 1;
    return NULL;
}

static void test_stopping_kills_the_command(void)
{
    void *s = open_on(script("long", "sleep 30"), 60);
    pthread_t th;
    int64_t t0 = kd_mono_ms();

    CHECK(pthread_create(&th, NULL, stop_soon, NULL) == 0);
    CHECK(drv->block(s, "blue", "web-01", 0, g_err, sizeof g_err) == KD_ESTOPPED);
    CHECK(kd_mono_ms() - t0 < 5000);
    pthread_join(th, NULL);
    g_stop = 0;
    drv->close(s);
}

static void test_open_checks_the_command(void)
{
    kd_lb_conf_t lc = {0};
    void *s = NULL;
    char missing[PATH_MAX];

    CHECK(drv->open(&lc, &s, g_err, sizeof g_err) == KD_EINVAL);
    tu_pathf(missing, "%s/missing", g_dir);
    lc.command = missing;
    CHECK(drv->open(&lc, &s, g_err, sizeof g_err) == KD_EINVAL);
    CHECK(kd_lb_driver_find("command") == drv);
}

/* ---- results ---- */

static void test_results_carry_the_outcome(void)
{
    Kdeploy__V1__TrafficCommand cmd = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;
    Kdeploy__V1__TrafficResult r = KDEPLOY__V1__TRAFFIC_RESULT__INIT;
    kd_traffic_t t = {.driver = drv, .stop = &g_stop};
    char why[1024];

    cmd.traffic_id = "d/web-01/BlockTraffic/1";
    cmd.action = KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK;
    cmd.event = KD_EVENT(BlockTraffic);
    cmd.server_group = "blue";
    cmd.host = "web-01";
    t.driver_state = open_on(recorder(), 0);
    CHECK(kd_traffic_apply(&t, &cmd, &r, why, sizeof why) == KD_OK);
    CHECK(r.status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED);
    CHECK_STREQ(r.traffic_id, cmd.traffic_id);
    CHECK_STREQ(r.server_group, "blue");
    CHECK_STREQ(r.host, "web-01");
    CHECK_STREQ(r.driver, "command");
    CHECK_STREQ(r.error, "");
    CHECK(r.event == KD_EVENT(BlockTraffic) && !r.replayed);
    drv->close(t.driver_state);

    t.driver_state = open_on(script("bad", "echo nope\nexit 1"), 0);
    CHECK(kd_traffic_apply(&t, &cmd, &r, why, sizeof why) == KD_OK);
    CHECK(r.status == KDEPLOY__V1__STEP_STATUS__STEP_FAILED);
    CHECK_CONTAINS(r.error, "nope");
    cmd.action = KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ACTION_UNSPECIFIED;
    CHECK(kd_traffic_apply(&t, &cmd, &r, why, sizeof why) == KD_OK);
    CHECK(r.status == KDEPLOY__V1__STEP_STATUS__STEP_FAILED);
    CHECK_CONTAINS(r.error, "unknown traffic action");
    drv->close(t.driver_state);

    cmd.action = KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW;
    cmd.timeout_s = 1;
    t.driver_state = open_on(script("hang", "sleep 30"), 0);
    CHECK(kd_traffic_apply(&t, &cmd, &r, why, sizeof why) == KD_OK);
    CHECK(r.status == KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT);
    drv->close(t.driver_state);
}

static void test_name_check(void)
{
    char long_name[KD_LB_NAME_MAX + 2];

    CHECK(kd_lb_name_valid("web-01.example_com"));
    CHECK(!kd_lb_name_valid(""));
    CHECK(!kd_lb_name_valid(NULL));
    CHECK(!kd_lb_name_valid("a/b"));
    CHECK(!kd_lb_name_valid("a\nb"));
    CHECK(!kd_lb_name_valid("caf\xc3\xa9"));
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK(!kd_lb_name_valid(long_name));
    long_name[KD_LB_NAME_MAX] = '\0';
    CHECK(kd_lb_name_valid(long_name));
    CHECK(kd_lb_name_check("server", "a\x01z", g_err, sizeof g_err) == KD_EREFUSED);
    CHECK_CONTAINS(g_err, "'a?z'");
}

int main(void)
{
    const char *tmp = getenv("KD_TEST_TMP");
    char err[256];

    snprintf(g_dir, sizeof g_dir, "%s/lbctl-command-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    tu_pathf(g_args, "%s/args", g_dir);
    RUN(test_actions_run_with_argv);
    RUN(test_unsafe_names_never_reach_the_command);
    RUN(test_failure_reports_status_and_output);
    RUN(test_timeout_kills_the_command);
    RUN(test_background_child_does_not_hold_the_result);
    RUN(test_stopping_kills_the_command);
    RUN(test_open_checks_the_command);
    RUN(test_results_carry_the_outcome);
    RUN(test_name_check);
    kd_remove_tree(g_dir, err, sizeof err);
    return check_summary();
}
