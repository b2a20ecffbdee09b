/* kdeploy-lbctl end to end: the broker (`kdeploy broker`), HAProxy and
 * kdeploy-lbctl run as processes; signed traffic commands go onto the
 * traffic topic and their results are read back from the results topic.
 * Checks block, allow, swap and a stale swap on the real HAProxy, a
 * repeated traffic id answered from the journal without a second change,
 * garbage, foreign and unsigned messages skipped with the next command
 * still served, and offsets committed across a restart of lbctl. */
#include <librdkafka/rdkafka.h>
#include <stdarg.h>

#include "bus.h"
#include "check.h"
#include "testutil.h"
#include "event.h"
#include "fsutil.h"
#include "lb_harness.h"
#include "sign.h"

#define WAIT_MS 30000

typedef Kdeploy__V1__TrafficCommand traffic_cmd_t;

/* One traffic result read back from the results topic. */
typedef struct seen {
    char traffic_id[128], key[64], deploy_id[64], error[512], driver[32];
    int status;
    bool replayed;
} seen_t;

static char g_dir[PATH_MAX], g_sock[PATH_MAX], g_map[PATH_MAX], g_brokers[256];
static char g_priv[PATH_MAX], g_pub[PATH_MAX], g_state_dir[PATH_MAX], g_lbctl_log[PATH_MAX];
static char g_deploy[KD_UUID_LEN];
static kd_bus_conf_t *g_conf, *g_unsigned_conf;
static kd_producer_t *g_signed, *g_unsigned;
static kd_consumer_t *g_reader;
static seen_t g_seen[256];
static int g_seen_count;
static pid_t g_lbctl;

/* ---- processes ---- */

static int start_broker(void)
{
    char bin[PATH_MAX], file[PATH_MAX], log[PATH_MAX];
    char *argv[] = {bin, "broker", "--brokers-file", file, "--partitions", "3", NULL};

    tu_pathf(bin, "%s/kdeploy", getenv("KD_BIN_DIR"));
    tu_pathf(file, "%s/brokers", g_dir);
    tu_pathf(log, "%s/broker.log", g_dir);
    if (lbh_track_spawn(argv, log) < 0)
        return -1;
    for (int i = 0; i < 400; i++) {
        char *text = tu_read_text(file);

        if (text && text[0]) {
            text[strcspn(text, "\r\n")] = '\0';
            snprintf(g_brokers, sizeof g_brokers, "%s", text);
            free(text);
            return 0;
        }
        free(text);
        tu_sleep_ms(50);
    }
    return -1;
}

static int start_haproxy(void)
{
    char cfg[PATH_MAX], log[PATH_MAX];
    FILE *f;

    tu_pathf(g_sock, "%s/admin.sock", g_dir);
    tu_pathf(g_map, "%s/services.map", g_dir);
    tu_pathf(cfg, "%s/haproxy.cfg", g_dir);
    tu_pathf(log, "%s/haproxy.log", g_dir);
    if (!(f = fopen(g_map, "w")))
        return -1;
    fputs("shop-svc blue\n", f);
    fclose(f);
    if (!(f = fopen(cfg, "w")))
        return -1;
    fprintf(f,
            "global\n    stats socket %s level admin\n"
            "defaults\n    mode http\n    timeout connect 1s\n"
            "    timeout client 5s\n    timeout server 5s\n"
            "frontend fe\n    bind 127.0.0.1:%d\n"
            "    use_backend %%[str(shop-svc),map(%s)]\n"
            "backend blue\n    server b1 127.0.0.1:%d\n    server b2 127.0.0.1:%d\n"
            "backend green\n    server g1 127.0.0.1:%d\n    server g2 127.0.0.1:%d\n"
            "backend web\n    server w1 127.0.0.1:%d\n",
            g_sock, lbh_free_port(), g_map, lbh_free_port(), lbh_free_port(), lbh_free_port(),
            lbh_free_port(), lbh_free_port());
    fclose(f);
    return lbh_haproxy(cfg, g_sock, log) > 0 ? 0 : -1;
}

static pid_t start_lbctl(void)
{
    char bin[PATH_MAX];
    char *argv[] = {bin, "--brokers", g_brokers, "--driver", "haproxy", "--haproxy-socket",
                    g_sock, "--state-dir", g_state_dir, "--verify-key", g_pub,
                    "--drain-timeout", "2", "--log-level", "debug", NULL};

    tu_pathf(bin, "%s/kdeploy-lbctl", getenv("KD_BIN_DIR"));
    return lbh_track_spawn(argv, g_lbctl_log);
}

/* ---- the bus ---- */

static kd_bus_conf_t *bus_conf(const char *signing_key)
{
    kd_bus_conf_t *conf = kd_bus_conf_new();
    char err[512];

    if (!conf || kd_bus_conf_set(conf, "brokers", g_brokers, err, sizeof err) != KD_OK ||
        (signing_key && kd_bus_conf_set(conf, "signing_key", signing_key, err, sizeof err) !=
                            KD_OK)) {
        fprintf(stderr, "bus conf: %s\n", err);
        kd_bus_conf_free(conf);
        return NULL;
    }
    return conf;
}

static int open_bus(void)
{
    kd_topic_t topic = KD_TOPIC_RESULTS;
    kd_consumer_opts_t opts = {.topics = &topic, .topic_count = 1, .read_all = true};
    char err[512];

    if (!(g_conf = bus_conf(g_priv)) || !(g_unsigned_conf = bus_conf(NULL)) ||
        kd_producer_new(g_conf, "test", &g_signed, err, sizeof err) != KD_OK ||
        kd_producer_new(g_unsigned_conf, "test", &g_unsigned, err, sizeof err) != KD_OK ||
        kd_consumer_new(g_conf, &opts, &g_reader, err, sizeof err) != KD_OK) {
        fprintf(stderr, "bus: %s\n", err);
        return -1;
    }
    return 0;
}

static void send_cmd(kd_producer_t *p, const char *key, traffic_cmd_t *tc)
{
    char id[KD_UUID_LEN], err[512];
    kd_envelope_t env;

    kd_envelope_init(&env, id, g_deploy, kd_producer_self(p));
    env.body_case = KD_BODY(TRAFFIC);
    env.traffic = tc;
    CHECK_MSG(kd_producer_send(p, KD_TOPIC_TRAFFIC, key, &env, true, err, sizeof err) == KD_OK,
              "%s", err);
}

static void send_server(kd_producer_t *p, const char *id, bool allow, const char *group,
                        const char *host)
{
    traffic_cmd_t tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;

    tc.traffic_id = (char *)id;
    tc.action = allow ? KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW
                      : KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK;
    tc.event = allow ? KD_EVENT(AllowTraffic) : KD_EVENT(BlockTraffic);
    tc.server_group = (char *)group;
    tc.host = (char *)host;
    tc.attempt = 1;
    tc.expires_ms = kd_now_ms() + 600000; /* signed commands must carry an expiry */
    send_cmd(p, group, &tc);
}

static void send_swap(const char *id, const char *service, const char *from, const char *to)
{
    traffic_cmd_t tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;

    tc.traffic_id = (char *)id;
    tc.action = KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP;
    tc.event = KD_EVENT(SwapTraffic);
    tc.service = (char *)service;
    tc.from_group = (char *)from;
    tc.to_group = (char *)to;
    tc.attempt = 1;
    tc.expires_ms = kd_now_ms() + 600000;
    send_cmd(g_signed, service, &tc);
}

/* Bytes that are no envelope, straight through librdkafka. */
static void send_garbage(const char *key)
{
    char errstr[512];
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    rd_kafka_t *rk;

    rd_kafka_conf_set(rc, "bootstrap.servers", g_brokers, errstr, sizeof errstr);
    rd_kafka_conf_set(rc, "partitioner", "murmur2_random", errstr, sizeof errstr);
    CHECK((rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, sizeof errstr)) != NULL);
    if (!rk)
        return;
    CHECK(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("kdeploy.traffic"),
                            RD_KAFKA_V_KEY(key, strlen(key)),
                            RD_KAFKA_V_VALUE("\xff\x01garbage", 9),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END) == 0);
    CHECK(rd_kafka_flush(rk, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/* A step result on the traffic topic: an envelope, but not a command. */
static void send_foreign(const char *key)
{
    Kdeploy__V1__StepResult sr = KDEPLOY__V1__STEP_RESULT__INIT;
    char id[KD_UUID_LEN], err[512];
    kd_envelope_t env;

    sr.step_id = "x/y/Install/1";
    kd_envelope_init(&env, id, g_deploy, kd_producer_self(g_signed));
    env.body_case = KD_BODY(STEP_RESULT);
    env.step_result = &sr;
    CHECK(kd_producer_send(g_signed, KD_TOPIC_TRAFFIC, key, &env, true, err, sizeof err) ==
          KD_OK);
}

static void remember(const kd_message_t *m, const Kdeploy__V1__TrafficResult *r,
                     const kd_envelope_t *env)
{
    seen_t *s;

    if (g_seen_count >= (int)(sizeof g_seen / sizeof g_seen[0]))
        return;
    s = &g_seen[g_seen_count++];
    snprintf(s->traffic_id, sizeof s->traffic_id, "%s", r->traffic_id);
    snprintf(s->key, sizeof s->key, "%s", m->key);
    snprintf(s->deploy_id, sizeof s->deploy_id, "%s", env->deploy_id);
    snprintf(s->error, sizeof s->error, "%s", r->error);
    snprintf(s->driver, sizeof s->driver, "%s", r->driver);
    s->status = r->status;
    s->replayed = r->replayed;
}

/* Reads results for up to ms. */
static void collect(int ms)
{
    int64_t deadline = kd_mono_ms() + ms;

    while (kd_mono_ms() < deadline) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;
        char err[512];

        if (kd_consumer_poll(g_reader, 100, &m, err, sizeof err) != KD_OK || !m)
            continue;
        if (kd_message_decode(g_reader, m, &env, err, sizeof err) == KD_OK &&
            env->body_case == KD_BODY(TRAFFIC_RESULT))
            remember(m, env->traffic_result, env);
        kd_envelope_free(env);
        kd_message_free(m);
    }
}

static int count_results(const char *id)
{
    int n = 0;

    for (int i = 0; i < g_seen_count; i++)
        n += strcmp(g_seen[i].traffic_id, id) == 0;
    return n;
}

/* The nth (1-based) result for id, waiting up to WAIT_MS; NULL if none. */
static const seen_t *wait_result(const char *id, int nth)
{
    int64_t deadline = kd_mono_ms() + WAIT_MS;

    for (;;) {
        for (int i = 0, n = 0; i < g_seen_count; i++)
            if (strcmp(g_seen[i].traffic_id, id) == 0 && ++n == nth)
                return &g_seen[i];
        if (kd_mono_ms() >= deadline) {
            fprintf(stderr, "no result %d for %s\n", nth, id);
            return NULL;
        }
        collect(100);
    }
}

static bool map_says(const char *value)
{
    kd_buf_t out = KD_BUF_INIT(1 << 20);
    char cmd[PATH_MAX + 16], want[64];
    bool ok;

    snprintf(cmd, sizeof cmd, "show map %s", g_map);
    snprintf(want, sizeof want, " shop-svc %s\n", value);
    ok = lbh_cli(g_sock, cmd, &out) == 0 && strstr(kd_buf_str(&out), want);
    kd_buf_free(&out);
    return ok;
}

#define SUCCEEDED KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED
#define FAILED KDEPLOY__V1__STEP_STATUS__STEP_FAILED

/* ---- tests ---- */

static void test_block_and_allow(void)
{
    const seen_t *r;

    send_server(g_signed, "d/b1/BlockTraffic/1", false, "blue", "b1");
    CHECK((r = wait_result("d/b1/BlockTraffic/1", 1)) != NULL);
    if (r) {
        CHECK_MSG(r->status == SUCCEEDED, "%s", r->error);
        CHECK(!r->replayed);
        CHECK_STREQ(r->key, g_deploy);
        CHECK_STREQ(r->deploy_id, g_deploy);
        CHECK_STREQ(r->driver, "haproxy");
    }
    CHECK(lbh_admin_state(g_sock, "blue", "b1") == 1);
    send_server(g_signed, "d/b1/AllowTraffic/1", true, "blue", "b1");
    CHECK((r = wait_result("d/b1/AllowTraffic/1", 1)) != NULL);
    CHECK(r && r->status == SUCCEEDED);
    CHECK(lbh_admin_state(g_sock, "blue", "b1") == 0);
}

static void test_swap_and_stale_swap(void)
{
    const seen_t *r;

    send_swap("d/shop-svc/SwapTraffic/1", "shop-svc", "blue", "green");
    CHECK((r = wait_result("d/shop-svc/SwapTraffic/1", 1)) != NULL);
    CHECK_MSG(r && r->status == SUCCEEDED, "%s", r ? r->error : "");
    CHECK(map_says("green"));
    send_swap("e/shop-svc/SwapTraffic/1", "shop-svc", "blue", "web");
    CHECK((r = wait_result("e/shop-svc/SwapTraffic/1", 1)) != NULL);
    CHECK(r && r->status == FAILED);
    CHECK_CONTAINS(r ? r->error : "", "conflict");
    CHECK_CONTAINS(r ? r->error : "", "'green'");
    CHECK(map_says("green"));
}

static void test_repeated_delivery_is_replayed(void)
{
    const seen_t *r;

    /* b1 is ready now; the repeated block must not take it out again. */
    send_server(g_signed, "d/b1/BlockTraffic/1", false, "blue", "b1");
    CHECK((r = wait_result("d/b1/BlockTraffic/1", 2)) != NULL);
    CHECK(r && r->replayed && r->status == SUCCEEDED);
    CHECK(lbh_admin_state(g_sock, "blue", "b1") == 0);
}

static void test_garbage_is_skipped(void)
{
    const seen_t *r;

    send_garbage("blue");
    send_foreign("blue");
    send_server(g_signed, "d/b2/BlockTraffic/1", false, "blue", "b2");
    CHECK((r = wait_result("d/b2/BlockTraffic/1", 1)) != NULL);
    CHECK(r && r->status == SUCCEEDED);
    CHECK(lbh_admin_state(g_sock, "blue", "b2") == 1);
}

static void test_unsigned_command_is_skipped(void)
{
    const seen_t *r;

    send_server(g_unsigned, "d/g1/BlockTraffic/1", false, "green", "g1");
    send_server(g_signed, "d/g2/AllowTraffic/1", true, "green", "g2");
    CHECK((r = wait_result("d/g2/AllowTraffic/1", 1)) != NULL);
    CHECK(r && r->status == SUCCEEDED);
    collect(300);
    CHECK(count_results("d/g1/BlockTraffic/1") == 0);
    CHECK(lbh_admin_state(g_sock, "green", "g1") == 0);
}

static void test_unsafe_name_fails(void)
{
    const seen_t *r;

    send_server(g_signed, "d/bad/BlockTraffic/1", false, "blue", "b1;shutdown");
    CHECK((r = wait_result("d/bad/BlockTraffic/1", 1)) != NULL);
    CHECK(r && r->status == FAILED);
    CHECK_CONTAINS(r ? r->error : "", "refused");
}

static void test_restart_resumes_after_committed_offsets(void)
{
    char *log;

    lbh_stop(g_lbctl);
    g_lbctl = start_lbctl();
    send_server(g_signed, "d/w1/BlockTraffic/1", false, "web", "w1");
    CHECK(wait_result("d/w1/BlockTraffic/1", 1) != NULL);
    collect(500);
    CHECK(count_results("d/b1/BlockTraffic/1") == 2);
    CHECK(count_results("d/shop-svc/SwapTraffic/1") == 1);
    CHECK(count_results("d/b2/BlockTraffic/1") == 1);
    log = tu_read_text(g_lbctl_log);
    CHECK_CONTAINS(log, "skipping");
    CHECK_CONTAINS(log, "signature");
    free(log);
}

static int setup(void)
{
    char err[512];

    kd_uuid_new(g_deploy);
    if (tu_scratch(g_dir, "lbctl-e2e-") != 0)
        return -1;
    tu_pathf(g_priv, "%s/signing.pem", g_dir);
    tu_pathf(g_pub, "%s/verify.pem", g_dir);
    tu_pathf(g_state_dir, "%s/state", g_dir);
    tu_pathf(g_lbctl_log, "%s/lbctl.log", g_dir);
    if (kd_keygen(g_priv, g_pub, err, sizeof err) != KD_OK) {
        fprintf(stderr, "keygen: %s\n", err);
        return -1;
    }
    if (start_broker() != 0 || start_haproxy() != 0 || open_bus() != 0) {
        fprintf(stderr, "broker, haproxy or bus did not start (see %s)\n", g_dir);
        return -1;
    }
    g_lbctl = start_lbctl();
    return g_lbctl > 0 ? 0 : -1;
}

static void teardown(void)
{
    char err[256];
    char *log = tu_read_text(g_lbctl_log);

    if (check_failed && log)
        fprintf(stderr, "---- lbctl log ----\n%s\n", log);
    free(log);
    kd_consumer_free(g_reader);
    kd_producer_free(g_signed);
    kd_producer_free(g_unsigned);
    kd_bus_conf_free(g_conf);
    kd_bus_conf_free(g_unsigned_conf);
    lbh_stop_all();
    if (g_dir[0] && !check_failed)
        kd_remove_tree(g_dir, err, sizeof err);
}

int main(void)
{
    if (access(LBH_HAPROXY, X_OK) != 0 || !getenv("KD_BIN_DIR")) {
        printf("haproxy or KD_BIN_DIR missing: skipped\n0 passed, 0 failed\n");
        return 0;
    }
    if (setup() != 0) {
        CHECK(0);
    } else {
        RUN(test_block_and_allow);
        RUN(test_swap_and_stale_swap);
        RUN(test_repeated_delivery_is_replayed);
        RUN(test_garbage_is_skipped);
        RUN(test_unsigned_command_is_skipped);
        RUN(test_unsafe_name_fails);
        RUN(test_restart_resumes_after_committed_offsets);
    }
    teardown();
    return check_summary();
}
