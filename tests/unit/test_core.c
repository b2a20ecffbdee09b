/* The planner's decisions, without Kafka: every branch of the seed's
 * workflows (rolling with and without a load balancer, blue-green, and
 * each rollback), batches, thresholds, timeouts, pause and stop, refusals,
 * and a restart in the middle of a step. Each test drives the core through
 * core_sim.h and reads what it published. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core_sim.h"
#include "log.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name
#define SHA "sha256: 006C63357725B859A5318525811C41A6E3D772B10921291D6104D205F7B7BA9B\n"
#define MINUTE (60 * 1000LL)

static const char *ROLLING_STEPS = "DownloadBundle ApplicationStop BeforeInstall Install "
                                   "AfterInstall ApplicationStart ValidateService";
static const char *ROLLING_ROLLBACK_STEPS = "ApplicationStop BeforeInstall Install AfterInstall "
                                            "ApplicationStart ValidateService";
static const char *LB_STEPS = "DownloadBundle BeforeBlockTraffic BlockTraffic AfterBlockTraffic "
                              "ApplicationStop BeforeInstall Install AfterInstall "
                              "ApplicationStart ValidateService BeforeAllowTraffic "
                              "AllowTraffic AfterAllowTraffic";
static const char *LB_ROLLBACK_STEPS = "BeforeBlockTraffic BlockTraffic AfterBlockTraffic "
                                       "ApplicationStop BeforeInstall Install AfterInstall "
                                       "ApplicationStart ValidateService BeforeAllowTraffic "
                                       "AllowTraffic AfterAllowTraffic";

/* A rolling spec over hosts ("[a, b]") with extra lines. */
static char *rolling(const char *hosts, const char *extra)
{
    char *yaml = NULL;

    if (asprintf(&yaml, "application: shop\ngroup: web\nhosts: %s\nrevision:\n"
                        "  url: https://a.example/shop.tgz\n  " SHA "%s",
                 hosts, extra ? extra : "") < 0)
        abort();
    return yaml;
}

static void create_rolling(sim_t *s, const char *id, const char *hosts, const char *extra)
{
    char *yaml = rolling(hosts, extra);

    sim_create(s, id, yaml);
    free(yaml);
}

/* The lifecycle a host saw, in "step" (worker) and "traffic" (lbctl)
 * commands of deployment id, in the order they were sent. */
static void host_steps(const sim_t *s, const char *id, const char *host, char *out, size_t outsz)
{
    size_t len = 0;
    char step[256], traffic[256];

    snprintf(step, sizeof step, "step %s %s ", id, host);
    snprintf(traffic, sizeof traffic, "traffic %s %s ", id, host);
    out[0] = '\0';
    for (size_t i = 0; i < s->ntrace && len + 1 < outsz; i++) {
        const char *line = s->trace[i], *ev;

        if (strncmp(line, step, strlen(step)) == 0)
            ev = line + strlen(step);
        else if (strncmp(line, traffic, strlen(traffic)) == 0)
            ev = line + strlen(traffic);
        else
            continue;
        len += (size_t)snprintf(out + len, outsz - len, "%s%.*s", len ? " " : "",
                                (int)strcspn(ev, " "), ev);
    }
}

#define CHECK_STEPS(s, id, host, expected)                                    \
    do {                                                                      \
        char seq_[2048];                                                      \
        host_steps((s), (id), (host), seq_, sizeof seq_);                     \
        CHECK_MSG(strcmp(seq_, (expected)) == 0, "%s on %s: \"%s\" != \"%s\"", \
                  (id), (host), seq_, (expected));                            \
    } while (0)

/* ---- rolling ---- */

static void test_rolling_one_at_a_time(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[web-1, web-2, web-3]", NULL);
    /* The hosts follow the acceptance in slices, not inside it. */
    CHECK(sim_count(&s, "accepted d1 total=3 hosts=[]") == 1);
    CHECK(sim_count(&s, "hosts d1 0: [web-1,web-2,web-3]") == 1);
    CHECK(sim_count(&s, "batch d1 0: [web-1]") == 1);
    CHECK(sim_count(&s, "step d1 ") == 1); /* one host, one step at a time */
    sim_answer_all(&s, NULL, 1000);
    CHECK_STEPS(&s, "d1", "web-1", ROLLING_STEPS);
    CHECK_STEPS(&s, "d1", "web-3", ROLLING_STEPS);
    CHECK(sim_count(&s, "batch d1 1: [web-2]") == 1);
    CHECK(sim_count(&s, "batch d1 2: [web-3]") == 1);
    /* A batch starts only when the one before has finished. */
    CHECK(sim_find(&s, "finished d1 web-1 succeeded", 0) < sim_find(&s, "batch d1 1:", 0));
    CHECK(sim_count(&s, "succeeded d1") == 1);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    /* Every step recorded once, then sent once. */
    CHECK(sim_count(&s, "dispatch d1 ") == 21 && sim_count(&s, "step d1 ") == 21);
    CHECK(sim_find(&s, "dispatch d1 web-2 Install", 0) < sim_find(&s, "step d1 web-2 Install", 0));
    sim_free(&s);
}

static void check_batches(const char *concurrency, const char *hosts, const char *const *want,
                          size_t nwant)
{
    char extra[128], needle[128];
    sim_t s;

    sim_init(&s);
    snprintf(extra, sizeof extra, "concurrency: %s\n", concurrency);
    create_rolling(&s, "d1", hosts, extra);
    sim_answer_all(&s, NULL, 100000);
    for (size_t i = 0; i < nwant; i++) {
        snprintf(needle, sizeof needle, "batch d1 %zu: [%s]\n", i, want[i]);
        needle[strlen(needle) - 1] = '\0';
        CHECK_MSG(sim_count(&s, needle) == 1, "concurrency %s: no \"%s\"", concurrency, needle);
    }
    snprintf(needle, sizeof needle, "batch d1 %zu:", nwant);
    CHECK_MSG(sim_count(&s, needle) == 0, "concurrency %s: more than %zu batches", concurrency,
              nwant);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    sim_free(&s);
}

static void test_batches_by_count_percent_and_ramp(void)
{
    static const char *const by_count[] = {"a,b", "c,d", "e"};
    static const char *const by_percent[] = {"a,b", "c,d", "e,f", "g,h"};
    static const char *const by_ramp[] = {"a", "b,c,d,e", "f,g,h"};
    static const char *const over[] = {"a,b,c"};

    check_batches("2", "[a, b, c, d, e]", by_count, 3);
    check_batches("\"25%\"", "[a, b, c, d, e, f, g, h]", by_percent, 4);
    check_batches("[1, \"50%\"]", "[a, b, c, d, e, f, g, h]", by_ramp, 3);
    check_batches("10", "[a, b, c]", over, 1);
}

static const char *fail_web2_install(const char *id, const char *host, kd_event_t ev)
{
    return strcmp(id, "d2") == 0 && strcmp(host, "web-2") == 0 && ev == KD_EVENT(Install)
               ? "exit 3" : NULL;
}

/* v1 everywhere, then v2 fails on web-2: web-1 (in flight in the same
 * batch) finishes its step and is halted, the rest never start, and the
 * automatic rollback restores v1 on the hosts v2 touched, without
 * downloading. */
static void test_failure_halts_and_rolls_back(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[web-1, web-2, web-3, web-4]", "concurrency: 2\n");
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    s.now += MINUTE;
    create_rolling(&s, "d2", "[web-1, web-2, web-3, web-4]",
                   "concurrency: 2\nauto_rollback: true\n");
    sim_answer_all(&s, fail_web2_install, 100000);
    CHECK(sim_count(&s, "finished d2 web-2 failed: Install failed: exit 3") == 1);
    CHECK(sim_count(&s, "finished d2 web-1 failed: halted") == 1);
    /* web-1 was answered first, so its AfterInstall was in flight: it
     * finishes that, and gets no step after the halt. */
    CHECK(sim_count(&s, "step d2 web-1 AfterInstall") == 1);
    CHECK(sim_count(&s, "step d2 web-1 ApplicationStart") == 0);
    CHECK(sim_count(&s, "batch d2 1:") == 0);
    CHECK(sim_count(&s, "step d2 web-3") == 0);
    CHECK(sim_count(&s, "failed d2: 1 host(s) failed (threshold 1) [web-1,web-2]") == 1);
    CHECK(sim_count(&s, "rollback d2 as rb-1 hosts=[web-1,web-2]") == 1);
    CHECK(sim_count(&s, "started rb-1 web-1 previous=d1 restore=d1") == 1);
    CHECK_STEPS(&s, "rb-1", "web-1", ROLLING_ROLLBACK_STEPS);
    CHECK_STEPS(&s, "rb-1", "web-2", ROLLING_ROLLBACK_STEPS);
    CHECK(sim_count(&s, "step rb-1 web-2 Install rev=d1") == 1);
    CHECK(sim_count(&s, "step rb-1 web-3") == 0);
    CHECK(sim_status(&s, "rb-1") == STATUS(ROLLBACK_SUCCEEDED));
    CHECK(sim_status(&s, "d2") == STATUS(ROLLBACK_SUCCEEDED));
    /* Restored: the hosts run d1 again. */
    CHECK_STREQ(kd_model_installed(s.m, "shop", "web", "web-2"), "d1");
    CHECK_STREQ(kd_model_installed(s.m, "shop", "web", "web-4"), "d1");
    sim_free(&s);
}

static const char *fail_b_and_d(const char *id, const char *host, kd_event_t ev)
{
    (void)id;
    return (strcmp(host, "b") == 0 || strcmp(host, "d") == 0) && ev == KD_EVENT(ApplicationStart)
               ? "exit 1" : NULL;
}

static void test_threshold_two_goes_on_after_one_failure(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c, d, e, f]", "failure_threshold: 2\n");
    sim_answer_all(&s, fail_b_and_d, 100000);
    CHECK(sim_count(&s, "finished d1 b failed") == 1);
    CHECK(sim_count(&s, "finished d1 c succeeded") == 1); /* went on after b */
    CHECK(sim_count(&s, "finished d1 d failed") == 1);
    CHECK(sim_count(&s, "batch d1 4:") == 0);               /* e never started */
    CHECK(sim_count(&s, "failed d1: 2 host(s) failed (threshold 2) [b,d]") == 1);
    /* No auto_rollback in the spec: nothing follows. */
    CHECK(sim_count(&s, "rollback d1") == 0);
    CHECK(sim_status(&s, "d1") == STATUS(FAILED));
    sim_free(&s);
}

static const char *fail_all_install(const char *id, const char *host, kd_event_t ev)
{
    (void)host;
    return strcmp(id, "d1") == 0 && ev == KD_EVENT(Install) ? "disk full" : NULL;
}

/* A host's first deployment has nothing to roll back to: skipped, and the
 * rollback still ends (nothing else was to be done). */
static void test_rollback_of_first_deployment_skips_hosts(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "auto_rollback: true\n");
    sim_answer_all(&s, fail_all_install, 100000);
    CHECK(sim_count(&s, "rollback d1 as rb-1 hosts=[a]") == 1);
    CHECK(sim_count(&s, "finished rb-1 a skipped: first deployment") == 1);
    CHECK(sim_count(&s, "step rb-1") == 0);
    CHECK(sim_status(&s, "rb-1") == STATUS(ROLLBACK_SUCCEEDED));
    sim_free(&s);
}

/* ---- rolling with a load balancer ---- */

static const char *fail_lb_validate(const char *id, const char *host, kd_event_t ev)
{
    return strcmp(id, "d2") == 0 && strcmp(host, "b") == 0 && ev == KD_EVENT(ValidateService)
               ? "health check failed" : NULL;
}

static void test_rolling_with_load_balancer_and_rollback(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "load_balancer: {server_group: web}\n");
    sim_answer_all(&s, NULL, 100000);
    CHECK_STEPS(&s, "d1", "a", LB_STEPS);
    CHECK_STEPS(&s, "d1", "b", LB_STEPS);
    CHECK(sim_count(&s, "traffic d1 a BlockTraffic") == 1);
    CHECK(sim_count(&s, "step d1 a BlockTraffic") == 0); /* lbctl's, not the worker's */
    s.now += MINUTE;
    create_rolling(&s, "d2", "[a, b]",
                   "load_balancer: {server_group: web}\nauto_rollback: true\n");
    sim_answer_all(&s, fail_lb_validate, 100000);
    /* b fails while out of the pool: it never gets traffic back. */
    CHECK(sim_count(&s, "traffic d2 b AllowTraffic") == 0);
    CHECK(sim_count(&s, "rollback d2 as rb-1 hosts=[a,b]") == 1);
    CHECK_STEPS(&s, "rb-1", "a", LB_ROLLBACK_STEPS);
    CHECK_STEPS(&s, "rb-1", "b", LB_ROLLBACK_STEPS);
    CHECK(sim_status(&s, "d2") == STATUS(ROLLBACK_SUCCEEDED));
    sim_free(&s);
}

/* ---- blue-green ---- */

static char *blue_green(size_t nblue, size_t ngreen)
{
    size_t cap = 1024 + (nblue + ngreen) * 16, len = 0;
    char *yaml = malloc(cap);

    if (!yaml)
        abort();
    len += (size_t)snprintf(yaml + len, cap - len,
                            "application: shop\ngroup: web\nrevision:\n  url: https://a.example/s.tgz\n"
                            "  " SHA "strategy: blue_green\nconcurrency: \"50%%\"\n"
                            "load_balancer: {service: shop}\nblue_green:\n  blue:\n"
                            "    server_group: blue\n    hosts: [");
    for (size_t i = 0; i < nblue; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "%sb%zu", i ? ", " : "", i + 1);
    len += (size_t)snprintf(yaml + len, cap - len, "]\n  green:\n    server_group: green\n    hosts: [");
    for (size_t i = 0; i < ngreen; i++)
        len += (size_t)snprintf(yaml + len, cap - len, "%sg%zu", i ? ", " : "", i + 1);
    snprintf(yaml + len, cap - len, "]\n");
    return yaml;
}

static void create_blue_green(sim_t *s, const char *id, size_t nblue, size_t ngreen)
{
    char *yaml = blue_green(nblue, ngreen);

    sim_create(s, id, yaml);
    free(yaml);
}

static void test_blue_green_swaps_then_rolls_back(void)
{
    sim_t s;

    sim_init(&s);
    create_blue_green(&s, "d1", 2, 3);
    CHECK(sim_count(&s, "accepted d1 total=2 hosts=[] target=blue") == 1);
    CHECK(sim_count(&s, "hosts d1 0: [b1,b2]") == 1);
    CHECK(sim_count(&s, "hosts d1 0 standby: [g1,g2,g3]") == 1);
    sim_answer_all(&s, NULL, 100000);
    CHECK_STEPS(&s, "d1", "b1", ROLLING_STEPS);
    CHECK(sim_count(&s, "traffic d1 shop SwapTraffic") == 1);
    /* The swap comes after every host of the group succeeded. */
    CHECK(sim_find(&s, "finished d1 b2 succeeded", 0) < sim_find(&s, "traffic d1 shop", 0));
    CHECK(sim_count(&s, "succeeded d1 live=blue") == 1);
    CHECK_STREQ(kd_model_live_group(s.m, "shop", "web"), "blue");

    s.now += MINUTE;
    create_blue_green(&s, "d2", 2, 3);
    CHECK(sim_count(&s, "accepted d2 total=3 hosts=[] target=green") == 1);
    CHECK(sim_count(&s, "hosts d2 0: [g1,g2,g3]") == 1);
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_count(&s, "succeeded d2 live=green") == 1);

    s.now += MINUTE;
    sim_rollback(&s, "rb-x", "d2");
    /* Check the group that served before (blue, still on d1), then swap
     * the service back to it. */
    CHECK(sim_count(&s, "rollback d2 as rb-x hosts=[b1,b2]") == 1);
    sim_answer_all(&s, NULL, 100000);
    CHECK_STEPS(&s, "rb-x", "b1", "ValidateService");
    CHECK(sim_count(&s, "step rb-x b2 ValidateService rev=d1") == 1);
    CHECK(sim_count(&s, "traffic rb-x shop SwapTraffic") == 1);
    CHECK(sim_count(&s, "succeeded rb-x live=blue") == 1);
    CHECK(sim_status(&s, "d2") == STATUS(ROLLBACK_SUCCEEDED));
    CHECK_STREQ(kd_model_live_group(s.m, "shop", "web"), "blue");
    sim_free(&s);
}

/* Groups of very different sizes, in both directions: the rollback runs on
 * the group that served before, whatever its size. */
static void check_unequal_groups(size_t nblue, size_t ngreen)
{
    char needle[64];
    size_t want = nblue; /* d2 goes to green; its rollback checks blue */
    sim_t s;

    sim_init(&s);
    create_blue_green(&s, "d1", nblue, ngreen);
    sim_answer_all(&s, NULL, 1000000);
    create_blue_green(&s, "d2", nblue, ngreen);
    sim_answer_all(&s, NULL, 1000000);
    CHECK(sim_status(&s, "d2") == STATUS(SUCCEEDED));
    sim_rollback(&s, "rb-x", "d2");
    sim_answer_all(&s, NULL, 1000000);
    CHECK_MSG(sim_status(&s, "rb-x") == STATUS(ROLLBACK_SUCCEEDED), "%zu vs %zu", nblue, ngreen);
    snprintf(needle, sizeof needle, "step rb-x ");
    CHECK_MSG(sim_count(&s, needle) == want, "%zu vs %zu: %zu checks", nblue, ngreen,
              sim_count(&s, needle));
    sim_free(&s);
}

static void test_blue_green_unequal_groups(void)
{
    check_unequal_groups(1, 100);
    check_unequal_groups(100, 1);
}

static const char *fail_g2(const char *id, const char *host, kd_event_t ev)
{
    (void)ev;
    return strcmp(id, "d2") == 0 && strcmp(host, "g2") == 0 ? "exit 1" : NULL;
}

static void test_blue_green_failure_never_moves_traffic(void)
{
    sim_t s;

    sim_init(&s);
    create_blue_green(&s, "d1", 2, 2);
    sim_answer_all(&s, NULL, 100000);
    create_blue_green(&s, "d2", 2, 2);
    sim_answer_all(&s, fail_g2, 100000);
    CHECK(sim_count(&s, "traffic d2 shop SwapTraffic") == 0);
    CHECK(sim_status(&s, "d2") == STATUS(FAILED));
    CHECK(sim_count(&s, "rollback d2") == 0); /* traffic never moved: nothing to undo */
    CHECK_STREQ(kd_model_live_group(s.m, "shop", "web"), "blue");
    sim_rollback(&s, "rb-x", "d2");
    CHECK(sim_count(&s, "rejected rb-x: traffic never moved") == 1);
    sim_free(&s);
}

static const char *fail_swap(const char *id, const char *host, kd_event_t ev)
{
    (void)id;
    (void)host;
    return ev == KD_EVENT(SwapTraffic) ? "backend down" : NULL;
}

static void test_blue_green_swap_failure_and_timeout(void)
{
    sim_cmd_t cmd;
    sim_t s;

    sim_init(&s);
    create_blue_green(&s, "d1", 1, 1);
    sim_answer_all(&s, fail_swap, 100000);
    CHECK(sim_count(&s, "failed d1: the traffic swap failed") == 1);
    CHECK(kd_model_live_group(s.m, "shop", "web") == NULL);

    create_blue_green(&s, "d2", 1, 1);
    /* Answer every host step, leave the swap unanswered. */
    while (s.ncmds && !s.cmds[0].traffic)
        sim_answer_all(&s, NULL, 1);
    CHECK(s.ncmds == 1 && s.cmds[0].event == KD_EVENT(SwapTraffic));
    sim_tick(&s, 4 * MINUTE);
    CHECK(sim_count(&s, "failed d2") == 0);
    sim_tick(&s, 2 * MINUTE);
    CHECK(sim_count(&s, "failed d2: the traffic swap timed out after 300 s") == 1);
    /* A late answer changes nothing. */
    if (sim_take(&s, &cmd)) {
        sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, NULL);
        sim_free_cmd(&cmd);
    }
    CHECK(sim_status(&s, "d2") == STATUS(FAILED));
    CHECK(kd_model_live_group(s.m, "shop", "web") == NULL);
    sim_free(&s);
}

/* ---- time ---- */

static void test_silent_host_times_out(void)
{
    sim_cmd_t cmd;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "concurrency: 2\ntimeouts: {host: 60}\n");
    /* a answers everything at once; b goes silent after its download. */
    while (sim_take(&s, &cmd)) {
        if (strcmp(cmd.host, "b") != 0 || cmd.event == KD_EVENT(DownloadBundle))
            sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, NULL);
        sim_free_cmd(&cmd);
    }
    CHECK(sim_count(&s, "finished d1 a succeeded") == 1);
    sim_tick(&s, 59 * 1000);
    CHECK(sim_count(&s, "finished d1 b") == 0);
    sim_tick(&s, 2 * 1000);
    CHECK(sim_count(&s, "finished d1 b failed: ApplicationStop: no result or heartbeat from b "
                        "within 60 s") == 1);
    CHECK(sim_count(&s, "failed d1: 1 host(s) failed (threshold 1) [b]") == 1);
    sim_free(&s);
}

/* The brokers were away for longer than the host timeout (the daemon
 * decides nothing meanwhile): when they answer again, a running host gets
 * full timeouts from that moment, for its silence and for its whole run. */
static void test_outage_restarts_host_timers(void)
{
    sim_cmd_t cmd, held[2];
    size_t nheld = 0;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "concurrency: 2\ntimeouts: {host: 60}\n");
    /* Both download; their ApplicationStop results are held up. */
    while (nheld < 2 && sim_take(&s, &cmd)) {
        if (cmd.event == KD_EVENT(DownloadBundle)) {
            sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, NULL);
            sim_free_cmd(&cmd);
        } else {
            held[nheld++] = cmd;
        }
    }
    CHECK(nheld == 2);
    s.now += 150 * 1000; /* the outage */
    s.since = s.now;     /* the brokers answer again */
    sim_tick(&s, 59 * 1000);
    CHECK(sim_count(&s, "finished d1") == 0);
    for (size_t i = 0; i < nheld; i++) {
        if (strcmp(held[i].host, "a") == 0)
            sim_answer_cmd(&s, &held[i], KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, NULL);
        sim_free_cmd(&held[i]);
    }
    sim_answer_all(&s, NULL, 100);
    CHECK(sim_count(&s, "finished d1 a succeeded") == 1);
    sim_tick(&s, 2 * 1000); /* b stays silent: now it is gone */
    CHECK(sim_count(&s, "finished d1 b failed: ApplicationStop: no result or heartbeat from b "
                        "within 60 s") == 1);
    sim_free(&s);
}

/* A heartbeat tells a slow hook from a dead worker: the silence clock
 * starts again, though the host's own timeout still bounds it. */
static void test_heartbeat_keeps_a_step_alive(void)
{
    Kdeploy__V1__StepProgress pr = KDEPLOY__V1__STEP_PROGRESS__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a]", "timeouts: {host: 60}\n");
    CHECK(s.ncmds == 1);
    s.now += 40 * 1000;
    kd_envelope_init(&env, eid, "d1", "worker@test");
    pr.step_id = s.cmds[0].step_id;
    pr.host = s.cmds[0].host;
    env.body_case = KD_BODY(PROGRESS);
    env.progress = &pr;
    sim_result(&s, &env);
    sim_tick(&s, 15 * 1000);
    CHECK(sim_count(&s, "finished d1 a") == 0);
    sim_tick(&s, 10 * 1000);
    CHECK(sim_count(&s, "finished d1 a failed: host timed out after 60 s") == 1);
    sim_free(&s);
}

/* A host whose worker died: the rollback restores every other host, skips
 * it (it is gone), says so, and succeeds. Once the worker has announced
 * itself again, a rollback covers it like the others. */
static void check_rollback_with_dead_host(bool comes_back)
{
    const char *rb = comes_back ? "rb-x" : "rb-1";
    char needle[128];
    sim_cmd_t cmd;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c]", "concurrency: 3\n");
    sim_answer_all(&s, NULL, 100000);
    create_rolling(&s, "d2", "[a, b, c]",
                   comes_back ? "concurrency: 3\ntimeouts: {host: 60}\n"
                              : "concurrency: 3\nauto_rollback: true\ntimeouts: {host: 60}\n");
    /* b's worker dies after its download; a and c go on to the end. */
    while (sim_take(&s, &cmd)) {
        if (strcmp(cmd.host, "b") != 0 || cmd.event == KD_EVENT(DownloadBundle))
            sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, NULL);
        sim_free_cmd(&cmd);
    }
    sim_tick(&s, 61 * 1000);
    CHECK(sim_count(&s, "finished d2 b failed: ApplicationStop: no result or heartbeat") == 1);
    if (comes_back) {
        s.now += MINUTE;
        sim_host_status(&s, "b", true); /* restarted */
        sim_rollback(&s, rb, "d2");
    }
    snprintf(needle, sizeof needle, "rollback d2 as %s hosts=[a,b,c]", rb);
    CHECK(sim_count(&s, needle) == 1);
    sim_answer_all(&s, NULL, 100000);
    snprintf(needle, sizeof needle, "step %s b ApplicationStop", rb);
    if (comes_back) {
        CHECK(sim_count(&s, needle) == 1);
        CHECK(sim_count(&s, "succeeded rb-x live= skipped=[]") == 1);
    } else {
        CHECK(sim_count(&s, needle) == 0);
        CHECK(sim_count(&s, "finished rb-1 b skipped: gone: its worker stopped answering during d2") == 1);
        CHECK_STEPS(&s, "rb-1", "a", ROLLING_ROLLBACK_STEPS);
        CHECK(sim_count(&s, "succeeded rb-1 live= skipped=[b]") == 1);
    }
    CHECK(sim_status(&s, rb) == STATUS(ROLLBACK_SUCCEEDED));
    CHECK(sim_status(&s, "d2") == STATUS(ROLLBACK_SUCCEEDED));
    sim_free(&s);
}

static void test_rollback_skips_dead_hosts(void)
{
    check_rollback_with_dead_host(false);
    check_rollback_with_dead_host(true);
}

static void test_host_and_deployment_timeouts(void)
{
    sim_t s;

    sim_init(&s);
    /* A host that keeps answering, but takes longer than its host timeout. */
    create_rolling(&s, "d1", "[a]", "timeouts: {host: 60, deployment: 600}\n");
    for (int i = 0; i < 4; i++) {
        s.now += 20 * 1000;
        sim_answer_all(&s, NULL, 1);
    }
    sim_tick(&s, 1000);
    CHECK(sim_count(&s, "finished d1 a failed: host timed out after 60 s") == 1);
    CHECK(sim_count(&s, "failed d1") == 1);

    /* The deployment's own deadline, over hosts that each finish in time. */
    create_rolling(&s, "d2", "[a, b, c, d, e, f, g, h, i, j, k, l]",
                   "timeouts: {host: 300, deployment: 600}\n");
    for (int i = 0; i < 200 && sim_status(&s, "d2") == STATUS(DEPLOYING); i++) {
        s.now += 10 * 1000;
        sim_answer_all(&s, NULL, 1);
        sim_tick(&s, 0);
    }
    CHECK(sim_count(&s, "failed d2: deployment timed out after 600 s") == 1);
    CHECK(sim_count(&s, "batch d2 11:") == 0);
    sim_free(&s);
}

/* ---- pause and stop ---- */

static void restart_from(sim_t *s, size_t n);
static void takeover(sim_t *s);

/* The last request was answered once, by a line holding text that names
 * it (" <- req-N" at its end). */
static bool answered_by(const sim_t *s, const char *text)
{
    char suffix[64];
    size_t n = 0;

    snprintf(suffix, sizeof suffix, " <- %s", s->request_id);
    for (size_t i = 0; i < s->ntrace; i++) {
        const char *line = s->trace[i];
        size_t len = strlen(line);

        n += strstr(line, text) && len >= strlen(suffix) &&
             strcmp(line + len - strlen(suffix), suffix) == 0;
    }
    return n == 1 && s->answers == 1;
}

#define CHECK_ANSWER(s, text) CHECK_MSG(answered_by((s), (text)), "no single answer \"%s\" to %s", \
                                        (text), (s)->request_id)

/* Pause holds new hosts, but the host in flight goes through its whole
 * workflow: never left between ApplicationStop and ApplicationStart. */
static void test_pause_lets_the_host_in_flight_finish(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c]", NULL);
    sim_answer_all(&s, NULL, 2); /* a: download and stop done, BeforeInstall in flight */
    sim_control(&s, "d1", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "status d1 paused");
    CHECK(sim_status(&s, "d1") == STATUS(PAUSED));
    sim_control(&s, "d1", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "refused d1 pause: the deployment is already paused");
    CHECK(sim_status(&s, "d1") == STATUS(PAUSED));
    sim_answer_all(&s, NULL, 100);
    CHECK_STEPS(&s, "d1", "a", ROLLING_STEPS);
    CHECK(sim_count(&s, "finished d1 a succeeded") == 1);
    CHECK(sim_count(&s, "batch d1 1:") == 0 && sim_count(&s, "step d1 b") == 0);
    CHECK(s.ncmds == 0);
    sim_control(&s, "d1", KD_BODY(RESUME));
    CHECK_ANSWER(&s, "status d1 deploying");
    CHECK(sim_count(&s, "batch d1 1: [b]") == 1);
    sim_control(&s, "d1", KD_BODY(RESUME));
    CHECK_ANSWER(&s, "refused d1 resume: the deployment is not paused");
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    sim_control(&s, "d1", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "refused d1 pause: the deployment has already ended (succeeded)");
    sim_free(&s);

    /* Behind a load balancer: a host paused while out of the pool goes
     * back into it. */
    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "load_balancer: {server_group: web}\n");
    sim_answer_all(&s, NULL, 3); /* through BlockTraffic */
    sim_control(&s, "d1", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "status d1 paused");
    sim_answer_all(&s, NULL, 100);
    CHECK_STEPS(&s, "d1", "a", LB_STEPS);
    CHECK(sim_count(&s, "traffic d1 a AllowTraffic") == 1);
    CHECK(sim_count(&s, "step d1 b") == 0 && sim_count(&s, "traffic d1 b") == 0);
    CHECK(sim_status(&s, "d1") == STATUS(PAUSED));
    sim_free(&s);
}

static const char *fail_b_start(const char *id, const char *host, kd_event_t ev)
{
    return strcmp(id, "d1") == 0 && strcmp(host, "b") == 0 && ev == KD_EVENT(ApplicationStart)
               ? "exit 1" : NULL;
}

/* Stop answers "stopping" at once; the hosts in flight finish their
 * workflow (a failure is a failed host as usual), none starts, and the
 * deployment ends stopped, counting its hosts. */
static void test_stop_lets_hosts_in_flight_finish(void)
{
    long stopping;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c, d]", "concurrency: 2\nfailure_threshold: 2\n");
    sim_answer_all(&s, NULL, 3);
    sim_control(&s, "d1", KD_BODY(STOP));
    CHECK_ANSWER(&s, "status d1 stopping: test");
    CHECK(sim_status(&s, "d1") == STATUS(STOPPING));
    stopping = sim_find(&s, "status d1 stopping", 0);
    /* While it stops, nothing else is carried out. */
    sim_control(&s, "d1", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "refused d1 pause: the deployment is stopping");
    sim_control(&s, "d1", KD_BODY(RESUME));
    CHECK_ANSWER(&s, "refused d1 resume: the deployment is stopping");
    sim_control(&s, "d1", KD_BODY(STOP));
    CHECK_ANSWER(&s, "refused d1 stop: the deployment is already stopping");
    CHECK(sim_status(&s, "d1") == STATUS(STOPPING));
    sim_answer_all(&s, fail_b_start, 100000);
    CHECK_STEPS(&s, "d1", "a", ROLLING_STEPS);
    CHECK_STEPS(&s, "d1", "b", "DownloadBundle ApplicationStop BeforeInstall Install AfterInstall "
                               "ApplicationStart");
    CHECK(sim_count(&s, "finished d1 b failed: ApplicationStart failed: exit 1") == 1);
    CHECK(sim_count(&s, "batch d1 1:") == 0);
    CHECK(sim_count(&s, "step d1 c") == 0 && sim_count(&s, "step d1 d") == 0);
    CHECK(sim_count(&s, "status d1 stopped: stopped by op@test: test: 1 host(s) done, 1 failed, "
                        "2 not started") == 1);
    CHECK(sim_find(&s, "finished d1 a succeeded", 0) > stopping);
    CHECK(sim_find(&s, "status d1 stopped", 0) > sim_find(&s, "finished d1 a", 0));
    CHECK(sim_status(&s, "d1") == STATUS(STOPPED));
    CHECK(sim_count(&s, "rollback d1") == 0 && sim_count(&s, "failed d1") == 0);
    sim_control(&s, "d1", KD_BODY(STOP));
    CHECK_ANSWER(&s, "refused d1 stop: the deployment has already ended (stopped)");
    sim_free(&s);

    /* Stop of a paused deployment: nothing runs, so it ends at once. */
    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c]", NULL);
    sim_answer_all(&s, NULL, 2);
    sim_control(&s, "d1", KD_BODY(PAUSE));
    sim_answer_all(&s, NULL, 100);
    sim_control(&s, "d1", KD_BODY(STOP));
    CHECK_ANSWER(&s, "status d1 stopping");
    CHECK(sim_find(&s, "status d1 stopping", 0) <
          sim_find(&s, "status d1 stopped: stopped by op@test: test: 1 host(s) done, 0 failed, "
                       "2 not started", 0));
    CHECK_STEPS(&s, "d1", "a", ROLLING_STEPS);
    CHECK(sim_count(&s, "step d1 b") == 0);
    CHECK(sim_status(&s, "d1") == STATUS(STOPPED));
    sim_free(&s);

    /* Behind a load balancer: stopped while out of the pool, a host is
     * put back in before the end. */
    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "load_balancer: {server_group: web}\n");
    sim_answer_all(&s, NULL, 5); /* through ApplicationStop */
    sim_control(&s, "d1", KD_BODY(STOP));
    CHECK_ANSWER(&s, "status d1 stopping");
    sim_answer_all(&s, NULL, 100);
    CHECK_STEPS(&s, "d1", "a", LB_STEPS);
    CHECK(sim_find(&s, "traffic d1 a AllowTraffic", 0) < sim_find(&s, "status d1 stopped", 0));
    CHECK(sim_count(&s, "step d1 b") == 0 && sim_count(&s, "traffic d1 b") == 0);
    CHECK(sim_count(&s, "status d1 stopped: stopped by op@test: test: 1 host(s) done, 0 failed, "
                        "1 not started") == 1);
    sim_free(&s);
}

/* Blue-green: no swap while paused, nor after a stop; once the swap is
 * under way there is nothing left to hold. */
static void test_blue_green_pause_and_stop_never_swap(void)
{
    sim_t s;

    sim_init(&s);
    create_blue_green(&s, "d1", 2, 2);
    sim_answer_all(&s, NULL, 100000);
    CHECK_STREQ(kd_model_live_group(s.m, "shop", "web"), "blue");

    create_blue_green(&s, "d2", 2, 2); /* to green, one host a batch */
    sim_answer_all(&s, NULL, 9);       /* g1 done; g2 downloaded, stopped */
    CHECK(sim_count(&s, "batch d2 1: [g2]") == 1);
    sim_control(&s, "d2", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "status d2 paused");
    sim_answer_all(&s, NULL, 100);
    CHECK_STEPS(&s, "d2", "g2", ROLLING_STEPS);
    CHECK(sim_count(&s, "finished d2 g2 succeeded") == 1);
    CHECK(sim_count(&s, "traffic d2 shop SwapTraffic") == 0);
    CHECK(sim_status(&s, "d2") == STATUS(PAUSED));
    sim_control(&s, "d2", KD_BODY(RESUME));
    CHECK(sim_count(&s, "traffic d2 shop SwapTraffic") == 1);
    sim_answer_all(&s, NULL, 100);
    CHECK(sim_count(&s, "succeeded d2 live=green") == 1);

    create_blue_green(&s, "d3", 2, 2); /* to blue */
    while (s.ncmds && !s.cmds[0].traffic)
        sim_answer_all(&s, NULL, 1);
    CHECK(s.ncmds == 1 && s.cmds[0].event == KD_EVENT(SwapTraffic));
    sim_control(&s, "d3", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "refused d3 pause: the traffic swap is already under way");
    sim_control(&s, "d3", KD_BODY(STOP));
    CHECK_ANSWER(&s, "refused d3 stop: the traffic swap is already under way");
    sim_answer_all(&s, NULL, 100);
    CHECK(sim_count(&s, "succeeded d3 live=blue") == 1);

    create_blue_green(&s, "d4", 2, 2); /* to green */
    sim_answer_all(&s, NULL, 2);
    sim_control_ex(&s, "d4", KD_BODY(STOP), true, NULL);
    CHECK_ANSWER(&s, "status d4 stopping (rollback)");
    sim_answer_all(&s, NULL, 100);
    CHECK_STEPS(&s, "d4", "g1", ROLLING_STEPS);
    CHECK(sim_count(&s, "step d4 g2") == 0);
    CHECK(sim_count(&s, "traffic d4") == 0);
    CHECK(sim_count(&s, "status d4 stopped: stopped by op@test: test: 1 host(s) done, 0 failed, "
                        "1 not started; not rolled back: traffic never moved") == 1);
    CHECK(sim_count(&s, "rollback d4") == 0 && sim_count(&s, "rejected") == 0);
    CHECK(sim_status(&s, "d4") == STATUS(STOPPED));
    CHECK_STREQ(kd_model_live_group(s.m, "shop", "web"), "blue");
    sim_free(&s);
}

static const char *fail_c_install(const char *id, const char *host, kd_event_t ev)
{
    return strcmp(id, "d3") == 0 && strcmp(host, "c") == 0 && ev == KD_EVENT(Install)
               ? "exit 2" : NULL;
}

/* stop with rollback: once stopped, the hosts the deployment started are
 * rolled back (only those), as an automatic rollback would; the stop is
 * kept across a planner restart. The undone deployment ends "rollback
 * succeeded", with its "stopped" in its history. */
static void test_stop_with_rollback_rolls_back_started_hosts(void)
{
    sim_cmd_t cmd;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c, d]", "concurrency: 2\n");
    sim_answer_all(&s, NULL, 100000);
    s.now += MINUTE;
    create_rolling(&s, "d2", "[a, b, c, d]", "concurrency: 2\n");
    sim_answer_all(&s, NULL, 5); /* a and b in the middle of their workflow */
    sim_control_ex(&s, "d2", KD_BODY(STOP), true, NULL);
    CHECK_ANSWER(&s, "status d2 stopping (rollback): test");
    /* A new planner takes over here: what was in flight is sent again. */
    while (sim_take(&s, &cmd))
        sim_free_cmd(&cmd);
    s.now += 1000;
    restart_from(&s, s.nhist);
    takeover(&s);
    CHECK(s.ncmds == 2);
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_count(&s, "dispatch d2 a ") == 7 && sim_count(&s, "dispatch d2 b ") == 7);
    CHECK(sim_count(&s, "step d2 c") == 0 && sim_count(&s, "step d2 d") == 0);
    CHECK(sim_count(&s, "status d2 stopped: stopped by op@test: test: 2 host(s) done, 0 failed, "
                        "2 not started") == 1);
    CHECK(sim_count(&s, "rollback d2 as rb-1 hosts=[a,b]") == 1);
    CHECK(sim_find(&s, "status d2 stopped", 0) < sim_find(&s, "rollback d2 as rb-1", 0));
    CHECK_STEPS(&s, "rb-1", "a", ROLLING_ROLLBACK_STEPS);
    CHECK_STEPS(&s, "rb-1", "b", ROLLING_ROLLBACK_STEPS);
    CHECK(sim_count(&s, "step rb-1 a Install rev=d1") == 1);
    CHECK(sim_count(&s, "step rb-1 c") == 0 && sim_count(&s, "step rb-1 d") == 0);
    CHECK(sim_status(&s, "rb-1") == STATUS(ROLLBACK_SUCCEEDED));
    CHECK(sim_status(&s, "d2") == STATUS(ROLLBACK_SUCCEEDED));
    CHECK_STREQ(kd_model_installed(s.m, "shop", "web", "a"), "d1");
    CHECK_STREQ(kd_model_installed(s.m, "shop", "web", "c"), "d1");
    sim_free(&s);
}

/* A failure past the threshold while stopping fails the deployment as
 * usual, and the rollback the stop asked for still comes. */
static void test_stop_with_rollback_after_a_failure(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c, d]", "concurrency: 2\n");
    sim_answer_all(&s, NULL, 100000);
    s.now += MINUTE;
    create_rolling(&s, "d3", "[c, d, a, b]", "concurrency: 2\n");
    sim_answer_all(&s, NULL, 2);
    sim_control_ex(&s, "d3", KD_BODY(STOP), true, NULL);
    sim_answer_all(&s, fail_c_install, 100000);
    CHECK(sim_count(&s, "failed d3: 1 host(s) failed (threshold 1) [c,d]") == 1);
    CHECK(sim_count(&s, "status d3 stopped") == 0);
    CHECK(sim_count(&s, "rollback d3 as rb-1 hosts=[c,d]") == 1);
    CHECK(sim_status(&s, "d3") == STATUS(ROLLBACK_SUCCEEDED));
    sim_free(&s);
}

/* A rollback is stopped like any deployment; it has not restored what it
 * undoes, which says so. And it is not rolled back itself. */
static void test_stop_of_a_rollback(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", NULL);
    sim_answer_all(&s, NULL, 100000);
    create_rolling(&s, "d2", "[a, b]", NULL);
    sim_answer_all(&s, NULL, 100000);
    sim_rollback(&s, "rb-x", "d2");
    CHECK_ANSWER(&s, "accepted rb-x");
    CHECK(sim_count(&s, "rollback d2 as rb-x hosts=[a,b] <-") == 0);
    sim_answer_all(&s, NULL, 2);
    sim_control_ex(&s, "rb-x", KD_BODY(STOP), true, NULL);
    CHECK_ANSWER(&s, "refused rb-x stop: a rollback is not rolled back");
    sim_control(&s, "rb-x", KD_BODY(STOP));
    CHECK_ANSWER(&s, "status rb-x stopping");
    sim_answer_all(&s, NULL, 100000);
    CHECK_STEPS(&s, "rb-x", "a", ROLLING_ROLLBACK_STEPS);
    CHECK(sim_count(&s, "step rb-x b") == 0);
    CHECK(sim_status(&s, "rb-x") == STATUS(STOPPED));
    CHECK(sim_count(&s, "status d2 rollback failed: rb-x") == 1);
    CHECK(sim_status(&s, "d2") == STATUS(ROLLBACK_FAILED));
    sim_free(&s);
}

/* Time runs while paused: a silent host still times out, and so does the
 * deployment (its commands expire with it). */
static void test_timeouts_while_paused(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", "timeouts: {host: 60, deployment: 600}\n");
    sim_answer_all(&s, NULL, 1);
    sim_control(&s, "d1", KD_BODY(PAUSE));
    sim_tick(&s, 61 * 1000);
    CHECK(sim_count(&s, "finished d1 a failed: ApplicationStop: no result or heartbeat from a "
                        "within 60 s") == 1);
    CHECK(sim_count(&s, "failed d1: 1 host(s) failed (threshold 1) [a]") == 1);

    create_rolling(&s, "d2", "[a, b]", "timeouts: {host: 60, deployment: 600}\n");
    sim_answer_all(&s, NULL, 1);
    sim_control(&s, "d2", KD_BODY(PAUSE));
    sim_answer_all(&s, NULL, 100);
    CHECK(sim_count(&s, "finished d2 a succeeded") == 1);
    sim_tick(&s, 599 * 1000);
    CHECK(sim_status(&s, "d2") == STATUS(PAUSED));
    sim_tick(&s, 2 * 1000);
    CHECK(sim_count(&s, "failed d2: deployment timed out after 600 s") == 1);
    CHECK(sim_count(&s, "step d2 b") == 0);
    sim_free(&s);
}

/* ---- answers ---- */

static void create_as(sim_t *s, const char *id, const char *hosts, const char *event_id)
{
    Kdeploy__V1__CreateDeployment cr = KDEPLOY__V1__CREATE_DEPLOYMENT__INIT;
    char *yaml = rolling(hosts, NULL);
    kd_envelope_t env;
    char eid[KD_UUID_LEN];

    kd_envelope_init(&env, eid, id, "kdeploy@test");
    cr.spec = sim_spec(yaml);
    cr.requested_by = "op@test";
    env.body_case = KD_BODY(CREATE);
    env.create = &cr;
    env.event_id = (char *)event_id;
    sim_request_as(s, &env);
    kd_spec_free(cr.spec);
    free(yaml);
}

/* Every request gets exactly one answer naming it, refusals included; a
 * request seen again after a restart gets no second one, even where the
 * answer would now differ. */
static void test_every_request_answered_once(void)
{
    size_t lines;
    sim_t s;

    sim_init(&s);
    create_as(&s, "d1", "[a, b]", "c-1");
    CHECK_ANSWER(&s, "accepted d1");
    CHECK(sim_count(&s, "hosts d1 0: [a,b] <-") == 0); /* the rest answers nothing */
    create_as(&s, "d2", "[a]", "c-2");
    CHECK_ANSWER(&s, "rejected d2: shop/web already has an active deployment, d1");
    sim_rollback(&s, "rb-1", "d1");
    CHECK_ANSWER(&s, "rejected rb-1: the deployment is still running");
    sim_control(&s, "nope", KD_BODY(STOP));
    CHECK_ANSWER(&s, "refused nope stop: no such deployment");
    sim_control(&s, "nope", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "refused nope pause: no such deployment");
    sim_control(&s, "nope", KD_BODY(RESUME));
    CHECK_ANSWER(&s, "refused nope resume: no such deployment");
    sim_control(&s, "../x", KD_BODY(PAUSE));
    CHECK_ANSWER(&s, "rejected ../x: the deploy id is not a name");
    sim_control_ex(&s, "d1", KD_BODY(PAUSE), false, "p-1");
    CHECK_ANSWER(&s, "status d1 paused");
    /* Refusals change nothing: a model rebuilt from the topic agrees. */
    CHECK(kd_model_find(s.m, "nope") == NULL);

    /* A new planner reads the same requests again (not committed). */
    restart_from(&s, s.nhist);
    lines = s.ntrace;
    sim_control_ex(&s, "d1", KD_BODY(PAUSE), false, "p-1");
    create_as(&s, "d1", "[a, b]", "c-1");
    CHECK(s.ntrace == lines && s.answers == 0);
    CHECK(sim_status(&s, "d1") == STATUS(PAUSED));
    sim_control(&s, "d1", KD_BODY(RESUME));
    CHECK_ANSWER(&s, "status d1 deploying");
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    /* d2 was refused while d1 ran; seen again now, it is not taken. */
    lines = s.ntrace;
    create_as(&s, "d2", "[a]", "c-2");
    CHECK(s.ntrace == lines && kd_model_find(s.m, "d2") == NULL);
    sim_rollback(&s, "rb-2", "d1");
    CHECK_ANSWER(&s, "accepted rb-2");
    CHECK(sim_count(&s, "rollback d1 as rb-2 hosts=[a,b]") == 1);
    CHECK(sim_count(&s, "rollback d1 as rb-2 hosts=[a,b] <-") == 0);
    sim_free(&s);
}

/* ---- requests ---- */

static void test_requests_refused(void)
{
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a]", NULL);
    create_rolling(&s, "d1", "[a]", NULL); /* a repeat: already taken */
    CHECK(sim_count(&s, "accepted d1") == 1 && sim_count(&s, "rejected d1") == 0);
    create_rolling(&s, "d2", "[a]", NULL);
    CHECK(sim_count(&s, "rejected d2: shop/web already has an active deployment, d1") == 1);
    sim_rollback(&s, "rb-1", "d1");
    CHECK(sim_count(&s, "rejected rb-1: the deployment is still running") == 1);
    sim_rollback(&s, "rb-2", "nope");
    CHECK(sim_count(&s, "rejected rb-2: no such deployment to roll back") == 1);
    sim_control(&s, "nope", KD_BODY(STOP));
    CHECK(sim_count(&s, "refused nope stop: no such deployment") == 1);
    sim_answer_all(&s, NULL, 1000);
    sim_rollback(&s, "rb-3", "d1");
    CHECK(sim_count(&s, "accepted rb-3") == 1);
    sim_answer_all(&s, NULL, 1000);
    sim_rollback(&s, "rb-4", "d1");
    CHECK(sim_count(&s, "rejected rb-4: this deployment has already been rolled back") == 1);
    sim_rollback(&s, "rb-5", "rb-3");
    CHECK(sim_count(&s, "rejected rb-5: a rollback is not rolled back") == 1);
    sim_free(&s);
}

/* A request naming a host twice, as a hostile client could produce it
 * (straight to the topic, not through the CLI), is refused; and if such a
 * deployment is in the history anyway (an older planner accepted it), the
 * model counts the host once and the deployment ends in a bounded number
 * of decisions. */
static void test_duplicate_hosts(void)
{
    Kdeploy__V1__DeploymentSpec *spec = sim_spec("application: shop\ngroup: web\nhosts: [a, b]\n"
                                                 "revision:\n  url: https://a.example/s.tgz\n  " SHA);
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    char **hosts = realloc(spec->hosts, 3 * sizeof *hosts);
    kd_envelope_t env;
    char eid[KD_UUID_LEN];
    sim_t s;

    CHECK(hosts != NULL);
    spec->hosts = hosts;
    spec->hosts[2] = strdup("a");
    spec->n_hosts = 3;
    sim_init(&s);
    sim_create_spec(&s, "d1", spec);
    CHECK(sim_count(&s, "rejected d1: hosts[2]: \"a\" is named twice") == 1);
    CHECK(sim_count(&s, "accepted d1") == 0);

    kd_envelope_init(&env, eid, "d2", "planner@old");
    env.ts_ms = s.now;
    a.spec = spec;
    a.hosts = spec->hosts;
    a.n_hosts = spec->n_hosts;
    env.body_case = KD_BODY(ACCEPTED);
    env.accepted = &a;
    kd_model_apply(s.m, &env);
    {
        kd_decisions_t dec;
        kd_core_ctx_t c;

        kd_decisions_init(&dec);
        sim_ctx(&s, &c);
        kd_core_drive(s.m, &c, "d2", &dec);
        sim_execute(&s, &dec);
    }
    sim_answer_all(&s, NULL, 1000);
    CHECK(sim_status(&s, "d2") == STATUS(SUCCEEDED));
    CHECK(sim_count(&s, "batch d2 ") == 2);
    CHECK(s.ntrace < 100);
    kd_spec_free(spec);
    sim_free(&s);
}

/* Every request is checked by the planner itself: each of these is
 * refused with its reason, and nothing else is decided. */
static void test_hostile_requests_refused(void)
{
    static const struct {
        const char *hosts[2];
        const char *reason; /* NULL: accepted */
    } cases[] = {
        {{"web-1\nweb-2", NULL}, "hosts[0]: \"web-1?web-2\" is not a host id"},
        {{"ok", "../etc"}, "hosts[1]: \"../etc\" is not a host id"},
        {{"-rf", NULL}, "hosts[0]: \"-rf\" is not a host id"},
        {{"", NULL}, "hosts[0]: \"\" is not a host id"},
        {{"a:b.c_d-e", "f"}, NULL},
    };
    char *yaml;
    sim_t s;

    sim_init(&s);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Kdeploy__V1__DeploymentSpec *spec = sim_spec("application: shop\ngroup: web\nhosts: [a, b]\n"
                                                     "revision:\n  url: https://a.example/s.tgz\n  " SHA);
        char id[16], needle[256];

        /* The YAML parser refuses these names itself: put them straight in
         * the spec, as a client writing to the topic would. */
        spec->n_hosts = 0;
        for (size_t j = 0; j < 2 && cases[i].hosts[j]; j++) {
            free(spec->hosts[j]);
            spec->hosts[spec->n_hosts++] = strdup(cases[i].hosts[j]);
        }
        for (size_t j = spec->n_hosts; j < 2; j++) {
            free(spec->hosts[j]);
            spec->hosts[j] = NULL;
        }
        snprintf(id, sizeof id, "h%zu", i);
        sim_create_spec(&s, id, spec);
        if (cases[i].reason) {
            snprintf(needle, sizeof needle, "rejected %s: %s", id, cases[i].reason);
            CHECK_MSG(sim_count(&s, needle) == 1, "case %zu: no \"%s\"", i, needle);
        } else {
            snprintf(needle, sizeof needle, "accepted %s", id);
            CHECK_MSG(sim_count(&s, needle) == 1, "case %zu: not accepted", i);
            sim_answer_all(&s, NULL, 1000);
        }
        kd_spec_free(spec);
    }
    /* A 254-character host id, and a deploy id that is a path. */
    {
        char host[260];

        memset(host, 'h', 254);
        host[254] = '\0';
        if (asprintf(&yaml, "application: shop\ngroup: web2\nhosts: [a]\nrevision:\n"
                            "  url: https://a.example/s.tgz\n  " SHA) < 0)
            abort();
        {
            Kdeploy__V1__DeploymentSpec *spec = sim_spec(yaml);

            free(spec->hosts[0]);
            spec->hosts[0] = strdup(host);
            sim_create_spec(&s, "long", spec);
            CHECK(sim_count(&s, "rejected long: hosts[0]:") == 1);
            sim_create_spec(&s, "../../etc", spec);
            CHECK(sim_count(&s, "rejected ../../etc: the deploy id is not a name") == 1);
            kd_spec_free(spec);
        }
        free(yaml);
    }
    /* Blue-green with one server group twice. */
    yaml = blue_green(1, 1);
    {
        Kdeploy__V1__DeploymentSpec *spec = sim_spec(yaml);

        free(spec->blue_green->green->server_group);
        spec->blue_green->green->server_group = strdup("blue");
        sim_create_spec(&s, "bg", spec);
        CHECK(sim_count(&s, "rejected bg: blue_green: blue and green must be different") == 1);
        kd_spec_free(spec);
    }
    free(yaml);
    /* No spec at all. */
    sim_create_spec(&s, "empty", NULL);
    CHECK(sim_count(&s, "rejected empty: the request holds no spec") == 1);
    sim_free(&s);
}

static const char *fail_last_host(const char *id, const char *host, kd_event_t ev)
{
    return strcmp(id, "big") == 0 && strncmp(host, "host-009999.", 12) == 0 &&
                   ev == KD_EVENT(ValidateService)
               ? "exit 1" : NULL;
}

static const char *fail_second_batch(const char *id, const char *host, kd_event_t ev)
{
    return strcmp(id, "d2") == 0 && strncmp(host, "host-002500.", 12) == 0 &&
                   ev == KD_EVENT(Install)
               ? "exit 1" : NULL;
}

/* A fleet whose host list alone is about 1 MB: every event stays under the
 * broker's message limit (the lists go in slices), and the deployment runs
 * to its end, then its rollback. */
static void test_large_fleet_fits_the_message_limit(void)
{
    enum { HOSTS = 10000 };
    Kdeploy__V1__DeploymentSpec *spec = sim_spec("application: shop\ngroup: web\nhosts: [a]\n"
                                                 "concurrency: \"20%\"\nauto_rollback: true\n"
                                                 "revision:\n  url: https://a.example/s.tgz\n  " SHA);
    sim_t s;

    free(spec->hosts[0]);
    free(spec->hosts);
    spec->hosts = calloc(HOSTS, sizeof *spec->hosts);
    for (size_t i = 0; i < HOSTS; i++)
        if (asprintf(&spec->hosts[i], "host-%06zu.rack-%03zu.row-%02zu.hall-b.eu-west-1."
                                      "datacenter-7.fleet.example.internal", i, i % 100, i % 7) < 0)
            abort();
    spec->n_hosts = HOSTS;
    sim_init(&s);
    s.keep_history = false;
    sim_create_spec(&s, "big", spec);
    CHECK(sim_count(&s, "accepted big total=10000") == 1);
    CHECK(sim_count(&s, "hosts big ") >= 4);
    sim_answer_all(&s, fail_last_host, (size_t)-1);
    CHECK(sim_status(&s, "big") == STATUS(ROLLBACK_SUCCEEDED));
    CHECK(sim_count(&s, "rollback big as rb-1") == 1);
    CHECK(sim_count(&s, "succeeded rb-1") == 1);
    CHECK_MSG(s.max_bytes <= SIM_MESSAGE_MAX, "largest message %zu bytes", s.max_bytes);
    fprintf(stderr, "     %zu events published, the largest %zu bytes\n", s.published, s.max_bytes);
    kd_spec_free(spec);
    sim_free(&s);
}

static Kdeploy__V1__DeploymentSpec *long_named_fleet(size_t n, const char *extra)
{
    char *yaml = rolling("[a]", extra);
    Kdeploy__V1__DeploymentSpec *spec = sim_spec(yaml);

    free(yaml);
    free(spec->hosts[0]);
    free(spec->hosts);
    spec->hosts = calloc(n, sizeof *spec->hosts);
    for (size_t i = 0; i < n; i++)
        if (asprintf(&spec->hosts[i], "host-%06zu.rack-%03zu.row-%02zu.hall-b.eu-west-1."
                                      "datacenter-7.fleet.example.internal", i, i % 100, i % 7) < 0)
            abort();
    spec->n_hosts = n;
    return spec;
}

/* The index just past the first event of deploy_id of kind body after
 * skipping `skip` of them, or 0. */
static size_t history_after(const sim_t *s, const char *deploy_id, kd_body_t body, int skip)
{
    for (size_t i = 0; i < s->nhist; i++)
        if (strcmp(s->history[i]->deploy_id, deploy_id) == 0 && s->history[i]->body_case == body &&
            skip-- == 0)
            return i + 1;
    return 0;
}

static void restart_from(sim_t *s, size_t n);
static void takeover(sim_t *s);

/* Stopped between a deployment's acceptance and the last slice of its
 * hosts: a created one gets the rest from its request (which comes again,
 * uncommitted); a rollback from the deployment it undoes. */
static void test_restart_between_host_slices(void)
{
    Kdeploy__V1__DeploymentSpec *spec = long_named_fleet(4000, "concurrency: \"50%\"\n");
    size_t cut;
    sim_t s;

    sim_init(&s);
    sim_create_spec(&s, "d1", spec);
    CHECK(sim_count(&s, "hosts d1 ") == 2);
    cut = history_after(&s, "d1", KD_BODY(DEPLOYMENT_HOSTS), 0);
    CHECK(cut > 0);
    for (size_t i = 0; i < s.ncmds; i++)
        sim_free_cmd(&s.cmds[i]);
    s.ncmds = 0;
    restart_from(&s, cut);
    takeover(&s);
    CHECK(s.ncmds == 0); /* waits for the rest of its hosts */
    sim_create_spec(&s, "d1", spec);
    CHECK(sim_count(&s, "hosts d1 ") == 3);
    sim_answer_all(&s, NULL, (size_t)-1);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    kd_spec_free(spec);
    sim_free(&s);

    spec = long_named_fleet(4000, "concurrency: \"50%\"\nauto_rollback: true\n");
    sim_init(&s);
    sim_create_spec(&s, "d2", spec);
    sim_answer_all(&s, fail_second_batch, (size_t)-1);
    CHECK(sim_count(&s, "rollback d2 as rb-1") == 1);
    CHECK(sim_count(&s, "hosts rb-1 ") == 2);
    cut = history_after(&s, "rb-1", KD_BODY(ACCEPTED), 0);
    for (size_t i = 0; i < s.ncmds; i++)
        sim_free_cmd(&s.cmds[i]);
    s.ncmds = 0;
    restart_from(&s, cut);
    takeover(&s);
    CHECK(sim_count(&s, "hosts rb-1 ") == 4);
    sim_answer_all(&s, NULL, (size_t)-1);
    CHECK(sim_status(&s, "rb-1") == STATUS(ROLLBACK_SUCCEEDED));
    kd_spec_free(spec);
    sim_free(&s);
}

/* A round the broker did not take stays whole and unapplied, so the daemon
 * can try it again: nothing is lost and nothing is half-applied. */
static void test_publish_failure_keeps_the_round(void)
{
    Kdeploy__V1__DeploymentSpec *spec = sim_spec("application: shop\ngroup: web\nhosts: [a, b]\n"
                                                 "revision:\n  url: https://a.example/s.tgz\n  " SHA);
    Kdeploy__V1__CreateDeployment cr = KDEPLOY__V1__CREATE_DEPLOYMENT__INIT;
    kd_decisions_t dec;
    kd_core_ctx_t c;
    kd_envelope_t env;
    char eid[KD_UUID_LEN], err[256];
    size_t round;
    sim_t s;

    sim_init(&s);
    kd_envelope_init(&env, eid, "d1", "kdeploy@test");
    cr.spec = spec;
    cr.requested_by = "op@test";
    env.body_case = KD_BODY(CREATE);
    env.create = &cr;
    kd_decisions_init(&dec);
    sim_ctx(&s, &c);
    kd_core_request(s.m, &c, &env, &dec);
    round = dec.count;
    s.fail_publishes = 3;
    for (int i = 0; i < 3; i++) {
        CHECK(kd_core_execute(s.m, &dec, sim_ctx, sim_publish, &s, err, sizeof err) == KD_EKAFKA);
        CHECK(dec.count == round);                 /* the round, whole */
        CHECK(kd_model_find(s.m, "d1") == NULL);   /* and not applied */
    }
    CHECK_CONTAINS(err, "timed out");
    CHECK(kd_core_execute(s.m, &dec, sim_ctx, sim_publish, &s, err, sizeof err) == KD_OK);
    CHECK(dec.count == 0);
    CHECK(sim_count(&s, "accepted d1") == 1 && sim_count(&s, "step d1 a DownloadBundle") == 1);
    kd_decisions_clear(&dec);
    kd_spec_free(spec);
    sim_free(&s);
}

/* Results that answer nothing: another attempt, another host, a finished
 * deployment. */
static void test_stale_results_change_nothing(void)
{
    sim_cmd_t cmd;
    size_t lines;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a]", NULL);
    CHECK(sim_take(&s, &cmd));
    free(cmd.step_id);
    cmd.step_id = strdup("d1/a/DownloadBundle/2");
    lines = s.ntrace;
    sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_FAILED, "stale");
    free(cmd.step_id);
    cmd.step_id = strdup("d1/b/DownloadBundle/1");
    sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_FAILED, "stranger");
    CHECK(s.ntrace == lines);
    free(cmd.step_id);
    cmd.step_id = strdup("d1/a/DownloadBundle/1");
    sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED, NULL);
    sim_answer_cmd(&s, &cmd, KDEPLOY__V1__STEP_STATUS__STEP_FAILED, "repeat");
    CHECK(sim_count(&s, "dispatch d1 a ApplicationStop") == 1);
    CHECK(sim_count(&s, "finished d1 a") == 0);
    sim_free_cmd(&cmd);
    sim_free(&s);
}

/* ---- restart ---- */

/* A new planner: a fresh model rebuilt from the first n events published. */
static void restart_from(sim_t *s, size_t n)
{
    kd_model_t *m = kd_model_new();

    for (size_t i = 0; i < n; i++)
        kd_model_apply(m, s->history[i]);
    kd_model_free(s->m);
    s->m = m;
    s->since = s->now;
}

static void takeover(sim_t *s)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;

    kd_decisions_init(&dec);
    sim_ctx(s, &c);
    kd_core_takeover(s->m, &c, &dec);
    sim_execute(s, &dec);
}

static void test_restart_in_the_middle_of_a_step(void)
{
    size_t dispatched;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b, c, d]", "concurrency: 2\n");
    sim_answer_all(&s, NULL, 5);
    /* Crash: the commands in flight are lost with the planner. */
    for (size_t i = 0; i < s.ncmds; i++)
        sim_free_cmd(&s.cmds[i]);
    s.ncmds = 0;
    dispatched = sim_count(&s, "dispatch d1 ");
    s.now += 5000;
    restart_from(&s, s.nhist);
    takeover(&s);
    /* The steps in flight are sent again with the same ids, unrecorded. */
    CHECK(s.ncmds == 2);
    CHECK(sim_count(&s, "dispatch d1 ") == dispatched);
    CHECK(s.ncmds == 2 && strcmp(s.cmds[0].step_id, "d1/a/Install/1") == 0 &&
          strcmp(s.cmds[1].step_id, "d1/b/BeforeInstall/1") == 0);
    /* Their old silence does not count: the new planner's clock started. */
    sim_tick(&s, 250 * 1000);
    CHECK(sim_count(&s, "finished d1") == 0);
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_status(&s, "d1") == STATUS(SUCCEEDED));
    /* Every step was decided exactly once per host. */
    CHECK(sim_count(&s, "dispatch d1 a Install") == 1);
    CHECK(sim_count(&s, "dispatch d1 c Install") == 1);
    CHECK(sim_count(&s, "dispatch d1 ") == 28);
    sim_free(&s);
}

/* A crash inside a round: HostStarted published, its first step not. */
static void test_restart_between_host_start_and_first_step(void)
{
    long cut;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a, b]", NULL);
    sim_answer_all(&s, NULL, 100000);
    create_rolling(&s, "d2", "[a, b]", NULL);
    /* history: accepted, batch, started a, dispatch a ... keep up to started */
    cut = -1;
    for (size_t i = 0; i < s.nhist; i++)
        if (strcmp(s.history[i]->deploy_id, "d2") == 0 &&
            s.history[i]->body_case == KD_BODY(HOST_STARTED))
            cut = (long)i + 1;
    CHECK(cut > 0);
    for (size_t i = 0; i < s.ncmds; i++)
        sim_free_cmd(&s.cmds[i]);
    s.ncmds = 0;
    restart_from(&s, (size_t)cut);
    takeover(&s);
    CHECK(s.ncmds == 1 && strcmp(s.cmds[0].step_id, "d2/a/DownloadBundle/1") == 0);
    sim_answer_all(&s, NULL, 100000);
    CHECK(sim_status(&s, "d2") == STATUS(SUCCEEDED));
    sim_free(&s);
}

/* A planner that does not own a deployment decides nothing for it on a
 * tick or a takeover. */
static void test_not_owned_is_left_alone(void)
{
    size_t lines;
    sim_t s;

    sim_init(&s);
    create_rolling(&s, "d1", "[a]", "timeouts: {host: 60}\n");
    s.owns_nothing = true;
    lines = s.ntrace;
    sim_tick(&s, 10 * MINUTE);
    takeover(&s);
    CHECK(s.ntrace == lines);
    sim_free(&s);
}

int main(void)
{
    /* The core logs each decision; the trace is what the tests read. */
    kd_log_threshold = getenv("SIM_TRACE") ? KD_LOG_DEBUG : KD_LOG_ERROR;
    RUN(test_rolling_one_at_a_time);
    RUN(test_batches_by_count_percent_and_ramp);
    RUN(test_failure_halts_and_rolls_back);
    RUN(test_threshold_two_goes_on_after_one_failure);
    RUN(test_rollback_of_first_deployment_skips_hosts);
    RUN(test_rolling_with_load_balancer_and_rollback);
    RUN(test_blue_green_swaps_then_rolls_back);
    RUN(test_blue_green_unequal_groups);
    RUN(test_blue_green_failure_never_moves_traffic);
    RUN(test_blue_green_swap_failure_and_timeout);
    RUN(test_silent_host_times_out);
    RUN(test_outage_restarts_host_timers);
    RUN(test_heartbeat_keeps_a_step_alive);
    RUN(test_host_and_deployment_timeouts);
    RUN(test_rollback_skips_dead_hosts);
    RUN(test_pause_lets_the_host_in_flight_finish);
    RUN(test_stop_lets_hosts_in_flight_finish);
    RUN(test_blue_green_pause_and_stop_never_swap);
    RUN(test_stop_with_rollback_rolls_back_started_hosts);
    RUN(test_stop_with_rollback_after_a_failure);
    RUN(test_stop_of_a_rollback);
    RUN(test_timeouts_while_paused);
    RUN(test_every_request_answered_once);
    RUN(test_requests_refused);
    RUN(test_duplicate_hosts);
    RUN(test_hostile_requests_refused);
    RUN(test_large_fleet_fits_the_message_limit);
    RUN(test_publish_failure_keeps_the_round);
    RUN(test_stale_results_change_nothing);
    RUN(test_restart_in_the_middle_of_a_step);
    RUN(test_restart_between_host_start_and_first_step);
    RUN(test_restart_between_host_slices);
    RUN(test_not_owned_is_left_alone);
    if (check_failed)
        fprintf(stderr, "(SIM_TRACE=1 shows each decision as it is published)\n");
    return check_summary();
}
