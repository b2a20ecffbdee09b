/* The consumer's eager lane on the embedded broker: while hurried, a second
 * handle with a short fetch wait reads the same partitions as the main one.
 * Whatever both bring, each message is delivered once and in order, across
 * hurrying and calm, a reassignment from the start, and a group's
 * assignment. */
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_int.h"
#include "check.h"
#include "fsutil.h"
#include "ids.h"
#include "testutil.h"

#define PARTITIONS 3
#define KEYS 7

static char dir[PATH_MAX], brokers[256];
static kd_bus_conf_t *conf;
static rd_kafka_t *raw;
static int produced;

/* Messages carry their sequence number; any key spreads over partitions.
 * Sent, not waited for (linger 0): the consumer is polling meanwhile, as a
 * worker is when its step comes. */
static void produce(int n)
{
    char topic[128], key[16], value[16];

    kd_bus_topic_name(conf, KD_TOPIC_STEPS, topic, sizeof topic);
    for (int i = 0; i < n; i++, produced++) {
        snprintf(key, sizeof key, "host-%d", produced % KEYS);
        snprintf(value, sizeof value, "%d", produced);
        rd_kafka_producev(raw, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(value, strlen(value)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    }
    rd_kafka_poll(raw, 0);
}

typedef struct seen {
    int count[4096];       /* deliveries per sequence number */
    int64_t last[PARTITIONS];
    bool in_order;
    int total;
} seen_t;

static void seen_init(seen_t *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < PARTITIONS; i++)
        s->last[i] = -1;
    s->in_order = true;
}

static void record(seen_t *s, kd_message_t *m)
{
    char num[16] = "";
    int seq;

    snprintf(num, sizeof num, "%.*s", (int)m->len, (const char *)m->value);
    seq = atoi(num);
    if (seq >= 0 && seq < 4096)
        s->count[seq]++;
    if (m->partition >= 0 && m->partition < PARTITIONS) {
        if (m->offset <= s->last[m->partition])
            s->in_order = false;
        s->last[m->partition] = m->offset;
    }
    s->total++;
    kd_message_free(m);
}

/* Polls until want messages came (or 15 s), then 500 ms more for any that
 * should not come. */
static void take(kd_consumer_t *c, seen_t *s, int want)
{
    int64_t until = kd_mono_ms() + 15000, quiet_until = 0;
    char err[256];

    while (kd_mono_ms() < (quiet_until ? quiet_until : until)) {
        kd_message_t *m = NULL;

        CHECK(kd_consumer_poll(c, 20, &m, err, sizeof err) == KD_OK);
        if (m)
            record(s, m);
        if (s->total >= want && !quiet_until)
            quiet_until = kd_mono_ms() + 500;
    }
}

/* Polls until one more message came (or 5 s). */
static void take_one(kd_consumer_t *c, seen_t *s)
{
    int64_t until = kd_mono_ms() + 5000;
    int had = s->total;
    char err[256];

    while (s->total == had && kd_mono_ms() < until) {
        kd_message_t *m = NULL;

        CHECK(kd_consumer_poll(c, 20, &m, err, sizeof err) == KD_OK);
        if (m)
            record(s, m);
    }
}

static void check_once(const seen_t *s, int from, int to)
{
    int missing = 0, twice = 0;

    for (int i = from; i < to; i++) {
        missing += s->count[i] == 0;
        twice += s->count[i] > 1;
    }
    CHECK_MSG(missing == 0 && twice == 0, "messages %d..%d: %d missing, %d delivered twice",
              from, to - 1, missing, twice);
    CHECK_MSG(s->total == to - from, "%d delivered, %d expected", s->total, to - from);
    CHECK(s->in_order);
}

static void test_manual_mode(void)
{
    kd_topic_t topic = KD_TOPIC_STEPS;
    kd_consumer_opts_t o = {.group_id = "eager-test", .topics = &topic, .topic_count = 1,
                            .manual = true, .eager = true};
    int32_t parts[PARTITIONS] = {0, 1, 2};
    int64_t from[PARTITIONS] = {-2, -2, -2};
    kd_consumer_t *c = NULL;
    char err[256];
    seen_t s;
    int start;

    CHECK(kd_consumer_new(conf, &o, &c, err, sizeof err) == KD_OK);
    if (!c)
        return;
    CHECK(kd_consumer_assign(c, parts, from, PARTITIONS, err, sizeof err) == KD_OK);

    /* Calm, hurried, calm, hurried: each round's messages once, in order. */
    for (int round = 0; round < 4; round++) {
        bool hurry = round % 2 == 1;

        kd_consumer_hurry(c, hurry);
        start = produced;
        seen_init(&s);
        /* One at a time, as steps come: each is fetched by whichever
         * handle's wait ends first. */
        for (int i = 0; i < 40; i++) {
            produce(1);
            take_one(c, &s);
        }
        take(c, &s, 40);
        CHECK_MSG(s.total == 40, "round %d (%s)", round, hurry ? "hurried" : "calm");
        check_once(&s, start, produced);
    }
    /* The lane did deliver: a hurried round's messages come through it
     * at least in part (it fetches with a 1 ms wait, the main handle 5 ms). */
    fprintf(stderr, "the eager lane delivered %zu of %d\n", kd_consumer_eager_count(c), produced);
    CHECK_MSG(kd_consumer_eager_count(c) > 0, "the eager lane delivered nothing");

    /* Reassigned from the start while hurried: everything again, once. */
    kd_consumer_hurry(c, true);
    CHECK(kd_consumer_assign(c, parts, from, PARTITIONS, err, sizeof err) == KD_OK);
    seen_init(&s);
    take(c, &s, produced);
    check_once(&s, 0, produced);
    kd_consumer_free(c);
}

static void test_group_mode(void)
{
    kd_topic_t topic = KD_TOPIC_STEPS;
    kd_consumer_opts_t o = {.group_id = "eager-group-test", .topics = &topic,
                            .topic_count = 1, .eager = true};
    kd_consumer_t *c = NULL;
    char err[256];
    seen_t s;
    int all = produced;

    CHECK(kd_consumer_new(conf, &o, &c, err, sizeof err) == KD_OK);
    if (!c)
        return;
    /* A new group reads from the beginning (auto.offset.reset earliest);
     * hurried from the start, before the group's offsets are known. */
    kd_consumer_hurry(c, true);
    seen_init(&s);
    take(c, &s, all);
    check_once(&s, 0, all);
    produce(40);
    seen_init(&s);
    take(c, &s, 40);
    check_once(&s, all, produced);
    kd_consumer_free(c);
}

int main(void)
{
    char err[256];
    pid_t broker = -1;
    rd_kafka_conf_t *rc = rd_kafka_conf_new();

    if (tu_scratch(dir, "eager") != 0 ||
        (broker = tu_start_broker(dir, PARTITIONS, brokers, sizeof brokers)) < 0) {
        fprintf(stderr, "the broker did not start (see %s)\n", dir);
        CHECK(0);
        return check_summary();
    }
    conf = kd_bus_conf_new();
    kd_bus_conf_set(conf, "brokers", brokers, err, sizeof err);
    rd_kafka_conf_set(rc, "bootstrap.servers", brokers, err, sizeof err);
    rd_kafka_conf_set(rc, "linger.ms", "0", err, sizeof err);
    raw = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof err);
    CHECK(raw != NULL);
    CHECK(kd_bus_is_embedded(conf));
    if (raw) {
        test_manual_mode();
        test_group_mode();
        rd_kafka_flush(raw, 10000);
        rd_kafka_destroy(raw);
    }
    kd_bus_conf_free(conf);
    tu_stop(&broker, SIGTERM);
    if (!check_failed)
        kd_remove_tree(dir, err, sizeof err);
    return check_summary();
}
