/* The worker as a real process on the embedded broker, driven with
 * hand-made step events: results, journal replay (the same step twice runs
 * its hook once), recovery after a SIGKILL mid-hook, poison messages and
 * other hosts' events skipped, hostile or forged bundles refused. */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bus.h"
#include "check.h"
#include "testutil.h"
#include "event.h"
#include "fsutil.h"
#include "ids.h"
#include "partition.h"
#include "sign.h"

#define HOST "web-01"
#define DEPLOY "0b1c2d3e-0000-4000-8000-00000000aaaa"
#define DEPLOY_BAD "0b1c2d3e-0000-4000-8000-00000000bbbb"

static char dir[PATH_MAX], brokers[256], bin[PATH_MAX];
static pid_t broker_pid, worker_pid;
static kd_bus_conf_t *conf;
static kd_producer_t *producer;
static kd_consumer_t *results;
static const char *deploy = DEPLOY; /* the deployment steps are sent for */

/* ---- processes ---- */

static int start_broker(void)
{
    broker_pid = tu_start_broker(dir, 3, brokers, sizeof brokers);
    return broker_pid > 0 ? 0 : -1;
}

static void start_worker(void)
{
    char exe[PATH_MAX + 32], root[PATH_MAX + 16], prefix[PATH_MAX + 16], log[PATH_MAX + 16];
    char hook_log[PATH_MAX + 32], marker[PATH_MAX + 32];

    snprintf(exe, sizeof exe, "%s/kdeploy-worker", bin);
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(prefix, sizeof prefix, "%s/prefix", dir);
    snprintf(log, sizeof log, "%s/worker.log", dir);
    snprintf(hook_log, sizeof hook_log, "HOOK_LOG=%s/hooks.log", dir);
    snprintf(marker, sizeof marker, "SLOW_MARKER=%s/slow", dir);
    worker_pid = tu_spawn((char *[]){exe, "--brokers", brokers, "--host-id", HOST, "--root", root,
                                  "--install-prefix", prefix, "--allow-unsigned", "--env", hook_log,
                                  "--env", marker,
                                  "--env", "TIER=web", NULL}, log);
}

/* ---- bundles ---- */

static void add_entry(struct archive *a, const char *name, const char *text, int mode)
{
    struct archive_entry *e = archive_entry_new();

    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, mode);
    archive_entry_set_size(e, (la_int64_t)strlen(text));
    archive_write_header(a, e);
    archive_write_data(a, text, strlen(text));
    archive_entry_free(e);
}

static const char appspec[] =
    "version: 0.0\nos: linux\n"
    "files:\n  - source: app\n    destination: /opt/shop\n"
    "hooks:\n"
    "  BeforeInstall:\n    - location: hook.sh\n"
    "  AfterInstall:\n    - location: hook.sh\n"
    "  ApplicationStart:\n    - location: hook.sh\n      timeout: 60\n";

static const char hook[] =
    "#!/bin/sh\n"
    "echo \"$LIFECYCLE_EVENT $DEPLOYMENT_ID $JDCLOUD_CODEDEPLOY_OPERATION $TIER\" >> \"$HOOK_LOG\"\n"
    "echo \"ran $LIFECYCLE_EVENT\"\n"
    "if [ \"$LIFECYCLE_EVENT\" = ApplicationStart ] && [ -e \"$SLOW_MARKER\" ]; then sleep 30; fi\n";

/* Writes a tar.gz and returns its sha256 in hex. */
static void make_bundle(const char *path, int hostile, char sha[65])
{
    struct archive *a = archive_write_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    kd_buf_t data = KD_BUF_INIT(0);

    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    archive_write_open_filename(a, path);
    add_entry(a, "appspec.yml", appspec, 0644);
    add_entry(a, "hook.sh", hook, 0755);
    add_entry(a, "app/VERSION", "1.0\n", 0644);
    if (hostile)
        add_entry(a, "../../escaped", "gotcha\n", 0644);
    archive_write_close(a);
    archive_write_free(a);
    kd_read_file(path, &data, NULL, 0);
    EVP_Digest(data.data, data.len, md, &len, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < len; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    kd_buf_free(&data);
}

/* ---- steps and results ---- */

static void send_step(const char *host, kd_event_t ev, uint32_t attempt, const char *url,
                      const char *sha)
{
    Kdeploy__V1__StepCommand cmd = KDEPLOY__V1__STEP_COMMAND__INIT;
    Kdeploy__V1__Revision rev = KDEPLOY__V1__REVISION__INIT;
    char id[KD_UUID_LEN], step_id[256], err[512];
    kd_envelope_t env;

    snprintf(step_id, sizeof step_id, "%s/%s/%s/%u", deploy, host, kd_event_name(ev), attempt);
    rev.url = (char *)url;
    rev.sha256 = (char *)sha;
    cmd.step_id = step_id;
    cmd.host = (char *)host;
    cmd.event = ev;
    cmd.attempt = attempt;
    cmd.application = "shop";
    cmd.group = "web";
    cmd.operation = KDEPLOY__V1__OPERATION__UPDATE;
    cmd.revision = &rev;
    cmd.expires_ms = kd_now_ms() + 600000; /* a verifying worker refuses commands without */
    kd_envelope_init(&env, id, deploy, "test");
    env.body_case = KD_BODY(STEP);
    env.step = &cmd;
    CHECK_MSG(kd_producer_send(producer, KD_TOPIC_STEPS, host, &env, true, err, sizeof err) == KD_OK,
              "%s", err);
}

/* Waits for the next result of step ev/attempt; NULL after timeout_ms. */
static Kdeploy__V1__StepResult *wait_host_result(const char *host, kd_event_t ev,
                                                 uint32_t attempt, int timeout_ms)
{
    char step_id[256];
    int64_t deadline = kd_mono_ms() + timeout_ms;

    snprintf(step_id, sizeof step_id, "%s/%s/%s/%u", deploy, host, kd_event_name(ev), attempt);
    while (kd_mono_ms() < deadline) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;
        Kdeploy__V1__StepResult *r = NULL;

        kd_consumer_poll(results, 100, &m, NULL, 0);
        if (m && kd_message_decode(results, m, &env, NULL, 0) == KD_OK &&
            env->body_case == KD_BODY(STEP_RESULT) && strcmp(env->step_result->step_id, step_id) == 0) {
            r = env->step_result;
            env->step_result = NULL;
            env->body_case = KD_BODY(_NOT_SET);
        }
        kd_envelope_free(env);
        kd_message_free(m);
        if (r)
            return r;
    }
    return NULL;
}

static Kdeploy__V1__StepResult *wait_result(kd_event_t ev, uint32_t attempt, int timeout_ms)
{
    return wait_host_result(HOST, ev, attempt, timeout_ms);
}

static int hook_lines(const char *event)
{
    char path[PATH_MAX + 16];
    kd_buf_t b = KD_BUF_INIT(0);
    int n = 0;

    snprintf(path, sizeof path, "%s/hooks.log", dir);
    kd_read_file(path, &b, NULL, 0);
    for (const char *p = kd_buf_str(&b); (p = strstr(p, event)); p += strlen(event))
        n++;
    kd_buf_free(&b);
    return n;
}

static Kdeploy__V1__StepStatus step(kd_event_t ev, uint32_t attempt, const char *url,
                                    const char *sha, Kdeploy__V1__StepResult **keep)
{
    Kdeploy__V1__StepResult *r;
    Kdeploy__V1__StepStatus st;

    send_step(HOST, ev, attempt, url, sha);
    r = wait_result(ev, attempt, 30000);
    CHECK_MSG(r != NULL, "no result for %s", kd_event_name(ev));
    if (!r)
        return KDEPLOY__V1__STEP_STATUS__STEP_STATUS_UNSPECIFIED;
    st = r->status;
    if (keep)
        *keep = r;
    else
        kdeploy__v1__step_result__free_unpacked(r, NULL);
    return st;
}

#define OK KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED

static void test_lifecycle(const char *url, const char *sha)
{
    Kdeploy__V1__StepResult *r = NULL;
    char path[PATH_MAX + 64];

    CHECK(step(KD_EVENT(DownloadBundle), 1, url, sha, NULL) == OK);
    CHECK(step(KD_EVENT(ApplicationStop), 1, url, sha, &r) == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED);
    if (r)
        CHECK_CONTAINS(r->error, "no revision installed");
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    r = NULL;
    CHECK(step(KD_EVENT(BeforeInstall), 1, url, sha, &r) == OK);
    if (r) {
        CHECK_CONTAINS(r->output_tail, "ran BeforeInstall");
        CHECK(!r->replayed);
    }
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    r = NULL;
    CHECK(hook_lines("BeforeInstall " DEPLOY " UPDATE web") == 1);
    CHECK(step(KD_EVENT(Install), 1, url, sha, &r) == OK);
    if (r)
        CHECK_STREQ(r->revision_installed, DEPLOY);
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    snprintf(path, sizeof path, "%s/prefix/opt/shop/VERSION", dir);
    CHECK(access(path, F_OK) == 0);
}

static void test_same_step_twice_runs_once(const char *url, const char *sha)
{
    Kdeploy__V1__StepResult *r = NULL;

    CHECK(step(KD_EVENT(BeforeInstall), 1, url, sha, &r) == OK);
    CHECK(r && r->replayed);
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    CHECK_MSG(hook_lines("BeforeInstall") == 1, "BeforeInstall ran %d times",
              hook_lines("BeforeInstall"));
}

static void send_raw(const char *key, const void *value, size_t len)
{
    char err[512], topic[128];
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    rd_kafka_t *rk;

    rd_kafka_conf_set(rc, "bootstrap.servers", brokers, err, sizeof err);
    rd_kafka_conf_set(rc, "partitioner", "murmur2_random", err, sizeof err);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof err);
    kd_bus_topic_name(conf, KD_TOPIC_STEPS, topic, sizeof topic);
    rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                      RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_HEADER("kdeploy-type", "step", -1), RD_KAFKA_V_END);
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
}

static void test_poison_and_foreign_events_are_skipped(const char *url, const char *sha)
{
    /* Garbage under this host's key, and a valid step for another host. */
    send_raw(HOST, "\xff\xfe garbage", 10);
    send_step("web-99", KD_EVENT(AfterInstall), 1, url, sha);
    CHECK(step(KD_EVENT(AfterInstall), 1, url, sha, NULL) == OK);
    CHECK(hook_lines("AfterInstall") == 1);
}

static void test_restart_mid_hook(const char *url, const char *sha)
{
    Kdeploy__V1__StepResult *r;
    char marker[PATH_MAX + 16];
    int64_t deadline = kd_mono_ms() + 20000;

    snprintf(marker, sizeof marker, "%s/slow", dir);
    kd_write_file_atomic(marker, "", 0, 0644, NULL, 0);
    send_step(HOST, KD_EVENT(ApplicationStart), 1, url, sha);
    while (hook_lines("ApplicationStart") == 0 && kd_mono_ms() < deadline)
        usleep(20000);
    CHECK(hook_lines("ApplicationStart") == 1);
    tu_stop(&worker_pid, SIGKILL);
    unlink(marker);
    start_worker();
    r = wait_result(KD_EVENT(ApplicationStart), 1, 30000);
    CHECK(r != NULL);
    if (r) {
        CHECK(r->status == KDEPLOY__V1__STEP_STATUS__STEP_FAILED);
        CHECK_CONTAINS(r->error, "agent restarted");
    }
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    CHECK_MSG(hook_lines("ApplicationStart") == 1, "the hook ran %d times",
              hook_lines("ApplicationStart"));
    /* The next attempt is a new step: it runs. */
    CHECK(step(KD_EVENT(ApplicationStart), 2, url, sha, NULL) == OK);
}

static void test_bad_bundles_are_refused(void)
{
    char hostile[PATH_MAX + 16], url[PATH_MAX + 32], sha[65], escaped[PATH_MAX + 128];
    Kdeploy__V1__StepResult *r = NULL;
    const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";

    snprintf(hostile, sizeof hostile, "%s/hostile.tar.gz", dir);
    snprintf(url, sizeof url, "file://%s", hostile);
    make_bundle(hostile, 1, sha);
    deploy = DEPLOY_BAD; /* a revision this host has not downloaded */
    CHECK(step(KD_EVENT(DownloadBundle), 7, url, wrong, &r) == KDEPLOY__V1__STEP_STATUS__STEP_FAILED);
    if (r)
        CHECK_CONTAINS(r->error, "sha256");
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    r = NULL;
    CHECK(step(KD_EVENT(DownloadBundle), 8, url, sha, &r) == KDEPLOY__V1__STEP_STATUS__STEP_FAILED);
    if (r)
        CHECK_CONTAINS(r->error, "..");
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    snprintf(escaped, sizeof escaped, "%s/root/app-shop/escaped", dir);
    CHECK(access(escaped, F_OK) != 0);
    snprintf(escaped, sizeof escaped, "%s/root/app-shop/group-web/deploy-%s/bundle", dir, deploy);
    CHECK(access(escaped, F_OK) != 0);
    deploy = DEPLOY;
}

/* With a verify key, a worker acts only on steps the planner signed. */
static void test_unsigned_steps_are_refused(const char *url, const char *sha)
{
    char priv[PATH_MAX + 32], pub[PATH_MAX + 32], exe[PATH_MAX + 32], root[PATH_MAX + 32];
    char log[PATH_MAX + 32], err[512], hook_log[PATH_MAX + 48];
    kd_bus_conf_t *signed_conf = kd_bus_conf_new();
    kd_producer_t *signer = NULL, *plain = producer;
    Kdeploy__V1__StepResult *r;
    pid_t pid;

    snprintf(priv, sizeof priv, "%s/planner.key", dir);
    snprintf(pub, sizeof pub, "%s/planner.pub", dir);
    CHECK(kd_keygen(priv, pub, err, sizeof err) == KD_OK);
    snprintf(exe, sizeof exe, "%s/kdeploy-worker", bin);
    snprintf(root, sizeof root, "%s/root-signed", dir);
    snprintf(log, sizeof log, "%s/worker-signed.log", dir);
    snprintf(hook_log, sizeof hook_log, "HOOK_LOG=%s/hooks-signed.log", dir);
    /* The same host id as the main worker, stopped meanwhile. */
    tu_stop(&worker_pid, SIGTERM);
    pid = tu_spawn((char *[]){exe, "--brokers", brokers, "--host-id", HOST, "--root", root,
                           "--verify-key", pub, "--env", hook_log, NULL}, log);
    deploy = "0b1c2d3e-0000-4000-8000-00000000cccc";
    send_step(HOST, KD_EVENT(DownloadBundle), 1, url, sha);
    r = wait_result(KD_EVENT(DownloadBundle), 1, 4000);
    CHECK_MSG(r == NULL, "an unsigned step was acted on");
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    kd_bus_conf_set(signed_conf, "brokers", brokers, err, sizeof err);
    CHECK(kd_bus_conf_set(signed_conf, "signing_key", priv, err, sizeof err) == KD_OK);
    CHECK(kd_producer_new(signed_conf, "test", &signer, err, sizeof err) == KD_OK);
    producer = signer;
    CHECK(step(KD_EVENT(DownloadBundle), 2, url, sha, NULL) == OK);
    producer = plain;
    deploy = DEPLOY;
    kd_producer_free(signer);
    kd_bus_conf_free(signed_conf);
    tu_stop(&pid, SIGTERM);
}

/* A host joining a process whose other host on the same partition has
 * committed further gets the steps sent to it before it started. */
static void test_new_host_gets_its_earlier_steps(const char *url, const char *sha)
{
    char newhost[32] = "", exe[PATH_MAX + 32], root[PATH_MAX + 32], log[PATH_MAX + 32];
    Kdeploy__V1__StepResult *r;
    pid_t pid;

    for (int i = 2; i < 100 && !newhost[0]; i++) {
        snprintf(newhost, sizeof newhost, "web-%02d", i);
        if (kd_partition_for_key(newhost, strlen(newhost), 3) !=
            kd_partition_for_key(HOST, strlen(HOST), 3))
            newhost[0] = '\0';
    }
    start_worker();
    deploy = "0b1c2d3e-0000-4000-8000-00000000dddd";
    send_step(newhost, KD_EVENT(DownloadBundle), 1, url, sha);  /* nobody serves it yet */
    CHECK(step(KD_EVENT(DownloadBundle), 1, url, sha, NULL) == OK); /* HOST commits past it */
    tu_stop(&worker_pid, SIGTERM);
    snprintf(exe, sizeof exe, "%s/kdeploy-worker", bin);
    snprintf(root, sizeof root, "%s/multi", dir);
    snprintf(log, sizeof log, "%s/worker-multi.log", dir);
    pid = tu_spawn((char *[]){exe, "--brokers", brokers, "--host-id", newhost, "--host-id", HOST,
                           "--root", root, "--allow-unsigned", NULL}, log);
    r = wait_host_result(newhost, KD_EVENT(DownloadBundle), 1, 30000);
    CHECK_MSG(r && r->status == OK, "%s never got the step sent before it started", newhost);
    kdeploy__v1__step_result__free_unpacked(r, NULL);
    deploy = DEPLOY;
    tu_stop(&pid, SIGTERM);
}

static int setup(void)
{
    const char *tmp = getenv("KD_TEST_TMP"), *b = getenv("KD_BIN_DIR");
    kd_topic_t topic = KD_TOPIC_RESULTS;
    kd_consumer_opts_t o = {.topics = &topic, .topic_count = 1, .read_all = true};
    char err[512];

    snprintf(bin, sizeof bin, "%s", b ? b : "build/bin");
    snprintf(dir, sizeof dir, "%s/workerXXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir) || start_broker() != 0)
        return -1;
    conf = kd_bus_conf_new();
    kd_bus_conf_set(conf, "brokers", brokers, err, sizeof err);
    if (kd_producer_new(conf, "test", &producer, err, sizeof err) != KD_OK ||
        kd_consumer_new(conf, &o, &results, err, sizeof err) != KD_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    start_worker();
    return 0;
}

int main(void)
{
    char bundle[PATH_MAX + 16], url[PATH_MAX + 32], sha[65], err[256];

    if (setup() != 0) {
        fprintf(stderr, "setup failed\n");
        CHECK(0);
    } else {
        snprintf(bundle, sizeof bundle, "%s/good.tar.gz", dir);
        snprintf(url, sizeof url, "file://%s", bundle);
        make_bundle(bundle, 0, sha);
        test_lifecycle(url, sha);
        test_same_step_twice_runs_once(url, sha);
        test_poison_and_foreign_events_are_skipped(url, sha);
        test_restart_mid_hook(url, sha);
        test_bad_bundles_are_refused();
        test_unsigned_steps_are_refused(url, sha);
        test_new_host_gets_its_earlier_steps(url, sha);
        fprintf(stderr, "%s\n", check_failed ? "see the worker's log in the test dir" : "ok");
    }
    kd_consumer_free(results);
    kd_producer_free(producer);
    kd_bus_conf_free(conf);
    tu_stop(&worker_pid, SIGTERM);
    tu_stop(&broker_pid, SIGTERM);
    if (!check_failed)
        kd_remove_tree(dir, err, sizeof err);
    return check_summary();
}
