/* A producer's batch on the embedded broker: the commands held between
 * kd_producer_batch_begin and _end go out in their order, one signature
 * per tree of at most 1,024 (spread evenly); a record or a waited-for
 * command in between first sends what is held; outside a batch a command
 * is signed alone; and a verifying reader takes every one of them. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "envelope.h"
#include "fsutil.h"
#include "ids.h"
#include "testutil.h"

#define DEPLOY "0b1c2d3e-0000-4000-8000-00000000cccc"
#define KEY "web-01" /* one key: one partition, so one order to check */
#define TOTAL 1634

static char dir[PATH_MAX], brokers[256];

static void send_step(kd_producer_t *p, int i, bool wait)
{
    Kdeploy__V1__StepCommand cmd = KDEPLOY__V1__STEP_COMMAND__INIT;
    char id[KD_UUID_LEN], step_id[64], err[512];
    kd_envelope_t env;

    snprintf(step_id, sizeof step_id, "step-%05d", i);
    cmd.step_id = step_id;
    cmd.host = KEY;
    cmd.event = KDEPLOY__V1__LIFECYCLE_EVENT__Install;
    cmd.expires_ms = kd_now_ms() + 600000;
    kd_envelope_init(&env, id, DEPLOY, "test");
    env.body_case = KD_BODY(STEP);
    env.step = &cmd;
    CHECK_MSG(kd_producer_send(p, KD_TOPIC_STEPS, KEY, &env, wait, err, sizeof err) == KD_OK,
              "%s", err);
}

static void send_record(kd_producer_t *p)
{
    Kdeploy__V1__DeploymentSucceeded done = KDEPLOY__V1__DEPLOYMENT_SUCCEEDED__INIT;
    char id[KD_UUID_LEN], err[512];
    kd_envelope_t env;

    kd_envelope_init(&env, id, DEPLOY, "test");
    env.body_case = KD_BODY(SUCCEEDED);
    env.succeeded = &done;
    CHECK_MSG(kd_producer_send(p, KD_TOPIC_DEPLOYMENTS, DEPLOY, &env, false, err, sizeof err) ==
                  KD_OK, "%s", err);
}

/* What message i should carry: its leaf index and tree size, or count 0
 * for a command signed alone. */
static void expected(int i, uint32_t *index, uint32_t *count)
{
    *index = 0;
    *count = 0;
    if (i < 600) { /* sealed by the record */
        *index = (uint32_t)i;
        *count = 600;
    } else if (i < 1630) { /* 1,030 sealed by a waited-for send: two trees of 515 */
        *index = (uint32_t)((i - 600) % 515);
        *count = 515;
    } else if (i == 1631 || i == 1632) { /* sealed by batch_end */
        *index = (uint32_t)(i - 1631);
        *count = 2;
    } /* 1630 (waited for) and 1633 (after the batch) alone */
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One message as a plain Kafka client sees it: in order, with the
 * headers the batch calls for. Returns the number of mismatches. */
static int check_raw(const rd_kafka_message_t *rkm, int i)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *sig = NULL, *proof = NULL, *single = NULL;
    size_t siglen = 0, prooflen = 0, singlelen = 0;
    uint32_t index, count;
    kd_envelope_t *env = NULL;
    char want[64];
    int bad = 0;

    expected(i, &index, &count);
    snprintf(want, sizeof want, "step-%05d", i);
    if (kd_envelope_decode(rkm->payload, rkm->len, &env, NULL, 0) != KD_OK ||
        env->body_case != KD_BODY(STEP) || strcmp(env->step->step_id, want) != 0)
        bad++;
    kd_envelope_free(env);
    rd_kafka_message_headers(rkm, &hdrs);
    if (hdrs) {
        rd_kafka_header_get_last(hdrs, KD_HEADER_BATCH_SIGNATURE, &sig, &siglen);
        rd_kafka_header_get_last(hdrs, KD_HEADER_BATCH_PROOF, &proof, &prooflen);
        rd_kafka_header_get_last(hdrs, KD_HEADER_SIGNATURE, &single, &singlelen);
    }
    if (count == 0)
        bad += sig || proof || singlelen != 64;
    else
        bad += single || siglen != 64 || prooflen < 8 || be32(proof) != index ||
               be32((const uint8_t *)proof + 4) != count;
    if (bad)
        fprintf(stderr, "message %d: want leaf %u of %u\n", i, index, count);
    return bad;
}

static void read_raw(void)
{
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    char name[256], err[512];
    rd_kafka_t *rk;
    int n = 0, bad = 0;

    snprintf(name, sizeof name, "%ssteps", KD_DEFAULT_TOPIC_PREFIX);
    rd_kafka_conf_set(rc, "bootstrap.servers", brokers, err, sizeof err);
    rd_kafka_conf_set(rc, "group.id", "batch-test", err, sizeof err);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, err, sizeof err);
    CHECK_MSG(rk != NULL, "%s", err);
    if (!rk)
        return;
    for (int32_t i = 0; i < 3; i++)
        rd_kafka_topic_partition_list_add(parts, name, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    for (int idle = 0; n < TOTAL && idle < 300;) {
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(rk, 100);

        if (!rkm) {
            idle++;
            continue;
        }
        if (!rkm->err)
            bad += check_raw(rkm, n++);
        rd_kafka_message_destroy(rkm);
    }
    CHECK_MSG(n == TOTAL, "read %d of %d steps", n, TOTAL);
    CHECK_MSG(bad == 0, "%d mismatches", bad);
    rd_kafka_consumer_close(rk);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_destroy(rk);
}

/* kdeploy's own reader, with the verify key: every command verifies. */
static void read_verified(kd_bus_conf_t *conf)
{
    kd_topic_t topic = KD_TOPIC_STEPS;
    kd_consumer_opts_t o = {.topics = &topic, .topic_count = 1, .read_all = true};
    kd_consumer_t *c = NULL;
    char err[512];
    int n = 0, ok = 0;

    CHECK_MSG(kd_consumer_new(conf, &o, &c, err, sizeof err) == KD_OK, "%s", err);
    for (int idle = 0; c && n < TOTAL && idle < 300;) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;

        if (kd_consumer_poll(c, 100, &m, err, sizeof err) != KD_OK || !m) {
            idle++;
            continue;
        }
        n++;
        if (kd_message_decode(c, m, &env, err, sizeof err) == KD_OK)
            ok++;
        else
            fprintf(stderr, "offset %lld: %s\n", (long long)m->offset, err);
        kd_envelope_free(env);
        kd_message_free(m);
    }
    CHECK_MSG(ok == TOTAL, "%d of %d steps verified (%d read)", ok, TOTAL, n);
    kd_consumer_free(c);
}

static void test_batch_order_trees_and_verify(void)
{
    char priv[PATH_MAX], pub[PATH_MAX], err[512];
    kd_bus_conf_t *conf = kd_bus_conf_new();
    kd_producer_t *p = NULL;

    tu_pathf(priv, "%s/k.key", dir);
    tu_pathf(pub, "%s/k.pub", dir);
    CHECK_MSG(kd_keygen(priv, pub, err, sizeof err) == KD_OK, "%s", err);
    CHECK(kd_bus_conf_set(conf, "brokers", brokers, err, sizeof err) == KD_OK);
    CHECK(kd_bus_conf_set(conf, "signing_key", priv, err, sizeof err) == KD_OK);
    CHECK(kd_bus_conf_set(conf, "verify_key", pub, err, sizeof err) == KD_OK);
    CHECK_MSG(kd_producer_new(conf, "test", &p, err, sizeof err) == KD_OK, "%s", err);
    if (p) {
        kd_producer_batch_begin(p);
        for (int i = 0; i < 600; i++)
            send_step(p, i, false);
        send_record(p);
        for (int i = 600; i < 1630; i++)
            send_step(p, i, false);
        send_step(p, 1630, true);
        send_step(p, 1631, false);
        send_step(p, 1632, false);
        CHECK_MSG(kd_producer_batch_end(p, err, sizeof err) == KD_OK, "%s", err);
        send_step(p, 1633, false);
        CHECK_MSG(kd_producer_flush(p, 30000, err, sizeof err) == KD_OK, "%s", err);
        read_raw();
        read_verified(conf);
    }
    kd_producer_free(p);
    kd_bus_conf_free(conf);
}

int main(void)
{
    pid_t broker;
    char err[256];

    if (tu_scratch(dir, "busbatch") != 0 ||
        (broker = tu_start_broker(dir, 3, brokers, sizeof brokers)) < 0) {
        fprintf(stderr, "no broker\n");
        return 1;
    }
    RUN(test_batch_order_trees_and_verify);
    tu_stop(&broker, SIGTERM);
    if (!check_failed)
        kd_remove_tree(dir, err, sizeof err);
    return check_summary();
}
