/* The consumer half of the bus: group members (planner), one-partition
 * readers (a worker reads only its host's partition of `steps`), and
 * whole-topic readers (status, replay). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_int.h"
#include "ids.h"
#include "log.h"
#include "partition.h"
#include "sign_batch.h"

struct kd_consumer {
    rd_kafka_t *rk;
    const kd_bus_conf_t *conf;
    bool read_all;
    int32_t partition;                          /* partition mode, else -1 */
    int partition_count;                        /* partition mode: of topics[0] */
    rd_kafka_topic_partition_list_t *assigned;  /* partition and reader modes */
    bool *at_eof;                               /* reader mode: per assigned partition */
    char first_topic[256];                      /* group mode: topics[0]'s full name */
    void (*on_rebalance)(void *, bool, const int32_t *, size_t);
    void *opaque;
    /* The eager lane (kd_consumer_hurry), on the embedded broker only: a
     * second handle with a 1 ms fetch wait, assigned the same partitions
     * while its owner expects messages soon. Both handles' messages pass
     * through next[], so what both bring is delivered once, in order. */
    bool eager;                                 /* the lane may be used */
    bool hurrying;
    rd_kafka_t *fast;
    rd_kafka_queue_t *fast_q;
    struct lane_part *lane;                     /* the lane's partitions */
    size_t lane_count;
    bool lane_waiting;                          /* some wait for their next offset */
    bool flooded;                               /* messages come fast enough without it */
    int64_t window_ms;                          /* monotonic: this second's start */
    unsigned window_count;                      /* messages delivered in it */
    atomic_long fast_held;                      /* fast's messages not yet freed */
    int64_t calm_since_ms;                      /* monotonic: hurrying last ended */
    size_t eager_delivered;                     /* messages the lane delivered first */
    int64_t *next[KD_TOPIC_COUNT];              /* per partition: the next offset, -1 unknown */
    int32_t next_cap[KD_TOPIC_COUNT];
};

/* A message and the librdkafka message it came from. */
typedef struct kd_message_int {
    kd_message_t pub;
    rd_kafka_message_t *rkm;
    atomic_long *held;                          /* the eager lane's count, if it came from it */
    char *key;
    char *type;
    char *deploy_id;
} kd_message_int_t;

static const int metadata_timeout_ms = 10000;
/* Hurrying, the owner's poll waits on the eager lane at most this long
 * before looking at the main handle again (its callbacks, its partitions
 * the lane does not have yet). */
static const int eager_slice_ms = 20;
/* An eager lane unused this long is closed: an idle process holds no
 * second handle and its threads. */
static const int64_t eager_retire_ms = 30000;
/* Past this many messages a second, fetches find data waiting and return
 * at once: the lane would only read everything twice (a planner at
 * scale), so it stops until the flow slows. */
static const unsigned eager_flood_per_s = 1000;

static void reader_group_id(char *buf, size_t size)
{
    /* Readers never join or commit, but librdkafka wants a group id. */
    char uuid[KD_UUID_LEN];

    kd_uuid_new(uuid);
    snprintf(buf, size, "kdeploy-reader-%s", uuid);
}

/* ---- the eager lane ---- */

static void forget_positions(kd_consumer_t *c)
{
    for (int t = 0; t < KD_TOPIC_COUNT; t++)
        for (int32_t i = 0; i < c->next_cap[t]; i++)
            c->next[t][i] = -1;
}

/* The slot of a partition's next offset, grown on demand; NULL for a
 * topic that is not kdeploy's or a partition beyond any real cluster's. */
static int64_t *next_slot(kd_consumer_t *c, kd_topic_t t, int32_t part)
{
    if ((int)t < 0 || t >= KD_TOPIC_COUNT || part < 0 || part >= 1 << 16)
        return NULL;
    if (part >= c->next_cap[t]) {
        int32_t cap = part < 64 ? 64 : part * 2;
        int64_t *grown = realloc(c->next[t], (size_t)cap * sizeof *grown);

        if (!grown)
            return NULL;
        for (int32_t i = c->next_cap[t]; i < cap; i++)
            grown[i] = -1;
        c->next[t] = grown;
        c->next_cap[t] = cap;
    }
    return &c->next[t][part];
}

static kd_topic_t topic_of(const kd_consumer_t *c, const char *name);

/* Whether to deliver rkm, and if so it becomes its partition's last. The
 * main handle's messages unless delivered already (its position trails the
 * lane's); the lane's only when exactly the next one: the main handle reads
 * everything, so a lane that ever started ahead or skipped could only make
 * messages look delivered that were not. */
static bool take_message(kd_consumer_t *c, const rd_kafka_message_t *rkm, bool from_fast)
{
    int64_t *next = next_slot(c, topic_of(c, rd_kafka_topic_name(rkm->rkt)), rkm->partition);

    if (!next)
        return !from_fast;
    if (from_fast ? rkm->offset != *next : *next >= 0 && rkm->offset < *next)
        return false;
    *next = rkm->offset + 1;
    return true;
}

/* The lane's partitions: the main handle's, each started at the next offset
 * not yet delivered once that is known, and stopped while calm. */
typedef struct lane_part {
    rd_kafka_topic_t *rkt;
    int32_t partition;
    kd_topic_t topic;
    bool started;
} lane_part_t;

static void lane_stop(kd_consumer_t *c)
{
    for (size_t i = 0; i < c->lane_count; i++)
        if (c->lane[i].started) {
            rd_kafka_consume_stop(c->lane[i].rkt, c->lane[i].partition);
            c->lane[i].started = false;
        }
}

/* Starts the partitions whose next offset is known: exactly there, so the
 * lane never brings what was delivered before, nor anything out of turn. */
static void lane_start(kd_consumer_t *c)
{
    c->lane_waiting = false;
    for (size_t i = 0; i < c->lane_count; i++) {
        lane_part_t *lp = &c->lane[i];
        int64_t *next = next_slot(c, lp->topic, lp->partition);

        if (lp->started)
            continue;
        if (!next || *next < 0)
            c->lane_waiting = true; /* its first message comes through the main handle */
        else if (rd_kafka_consume_start_queue(lp->rkt, lp->partition, *next, c->fast_q) == 0)
            lp->started = true;
    }
}

static void lane_clear(kd_consumer_t *c)
{
    lane_stop(c);
    for (size_t i = 0; i < c->lane_count; i++)
        rd_kafka_topic_destroy(c->lane[i].rkt);
    free(c->lane);
    c->lane = NULL;
    c->lane_count = 0;
}

/* The lane follows the main handle's assignment (parts; NULL: none). */
static void mirror_assignment(kd_consumer_t *c, const rd_kafka_topic_partition_list_t *parts)
{
    if (!c->fast)
        return;
    lane_clear(c);
    if (!parts || parts->cnt <= 0 || !(c->lane = calloc((size_t)parts->cnt, sizeof *c->lane)))
        return;
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->fast, parts->elems[i].topic, NULL);

        if (rkt)
            c->lane[c->lane_count++] = (lane_part_t){.rkt = rkt,
                                                     .partition = parts->elems[i].partition,
                                                     .topic = topic_of(c, parts->elems[i].topic)};
    }
    if (c->hurrying && !c->flooded)
        lane_start(c);
}

/* The lane is librdkafka's simple consumer: it starts a partition at a
 * given offset at once, with no group, no coordinator and no assignment
 * state to go through, so it can follow each hurry exactly. */
static kd_status_t new_fast_handle(kd_consumer_t *c, char *err, size_t errsz)
{
    static const char *const defaults[] = {
        "enable.auto.commit", "false",
        "fetch.error.backoff.ms", "20",
        /* What the lane is for: the embedded broker answers a fetch that
         * finds nothing when its wait ends, so this is the latency. */
        "fetch.wait.max.ms", "1",
        NULL,
    };
    rd_kafka_conf_t *rc;
    char rkerr[512];
    kd_status_t st;

    if ((st = kd_bus_build_conf(c->conf, defaults, &rc, err, errsz)) != KD_OK)
        return st;
    if (!(c->fast = rd_kafka_new(RD_KAFKA_CONSUMER, rc, rkerr, sizeof rkerr))) {
        rd_kafka_conf_destroy(rc);
        return kd_err(err, errsz, KD_EKAFKA, "creating the eager consumer: %s", rkerr);
    }
    if (!(c->fast_q = rd_kafka_queue_new(c->fast))) {
        rd_kafka_destroy(c->fast);
        c->fast = NULL;
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    return KD_OK;
}

void kd_consumer_hurry(kd_consumer_t *c, bool soon)
{
    rd_kafka_topic_partition_list_t *mine = NULL;
    char err[512];

    if (!c->eager || soon == c->hurrying)
        return;
    c->hurrying = soon;
    if (!soon) {
        c->calm_since_ms = kd_mono_ms();
        lane_stop(c);
        return;
    }
    if (c->fast) {
        if (!c->flooded)
            lane_start(c);
        return;
    }
    if (new_fast_handle(c, err, sizeof err) != KD_OK) {
        kd_warn("%s; going on with the main consumer only", err);
        c->eager = c->hurrying = false;
        return;
    }
    if (rd_kafka_assignment(c->rk, &mine) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        mirror_assignment(c, mine);
        rd_kafka_topic_partition_list_destroy(mine);
    }
}

size_t kd_consumer_eager_count(const kd_consumer_t *c)
{
    return c->eager_delivered;
}

static void close_fast(kd_consumer_t *c)
{
    lane_clear(c);
    rd_kafka_queue_destroy(c->fast_q);
    rd_kafka_destroy(c->fast);
    c->fast_q = NULL;
    c->fast = NULL;
}

/* The next message of either handle: the main one without waiting (its
 * callbacks stay timely), then the lane, up to a slice of the wait. */
static void check_flood(kd_consumer_t *c)
{
    int64_t now = kd_mono_ms();
    bool flooded;

    if (now - c->window_ms < 1000)
        return;
    flooded = c->window_count >= eager_flood_per_s;
    c->window_ms = now;
    c->window_count = 0;
    if (flooded == c->flooded)
        return;
    c->flooded = flooded;
    if (flooded)
        lane_stop(c);
    else
        lane_start(c);
}

static rd_kafka_message_t *poll_handles(kd_consumer_t *c, int timeout_ms, bool *from_fast)
{
    rd_kafka_message_t *rkm;

    *from_fast = false;
    if (c->hurrying)
        check_flood(c);
    if (!c->hurrying || c->flooded) {
        if (!c->hurrying && c->fast && atomic_load(&c->fast_held) == 0 &&
            kd_mono_ms() - c->calm_since_ms >= eager_retire_ms)
            close_fast(c);
        return rd_kafka_consumer_poll(c->rk, timeout_ms);
    }
    if (c->lane_waiting)
        lane_start(c);
    if ((rkm = rd_kafka_consumer_poll(c->rk, 0)))
        return rkm;
    *from_fast = true;
    return rd_kafka_consume_queue(c->fast_q, timeout_ms < eager_slice_ms ? timeout_ms
                                                                         : eager_slice_ms);
}

/* Eager rebalancing: take or drop the whole assignment, then tell the
 * owner which partitions of its first topic it now has or lost. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t rerr,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kd_consumer_t *c = opaque;
    bool assigned = rerr == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    int32_t *nums = calloc((size_t)parts->cnt + 1, sizeof *nums);
    size_t n = 0;

    rd_kafka_assign(rk, assigned ? parts : NULL);
    /* What was delivered before says nothing about where the new owner of
     * a partition starts: the eager lane follows the main handle again. */
    if (c->eager) {
        forget_positions(c);
        mirror_assignment(c, assigned ? parts : NULL);
    }
    for (int i = 0; nums && i < parts->cnt; i++)
        if (strcmp(parts->elems[i].topic, c->first_topic) == 0)
            nums[n++] = parts->elems[i].partition;
    if (c->on_rebalance && nums)
        c->on_rebalance(c->opaque, assigned, nums, n);
    free(nums);
}

static kd_status_t new_handle(kd_consumer_t *c, const kd_consumer_opts_t *o, char *err,
                              size_t errsz)
{
    static const char *const defaults[] = {
        /* Commits are explicit, once the work a message asks for is done:
         * a crash before that brings the message again, never loses it. */
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        /* A group with nothing committed (a new host, a new planner group)
         * reads what the log still holds rather than only what comes next. */
        "auto.offset.reset", "earliest",
        /* A planner that dies loses its partitions to the others in 6 s. */
        "session.timeout.ms", "6000",
        "heartbeat.interval.ms", "1000",
        "fetch.wait.max.ms", "500",
        "fetch.error.backoff.ms", "20",
        NULL,
    };
    char reader_group[64], group[512];
    /* End-of-partition events only for readers: kd_consumer_at_end needs
     * them; for the others they would be noise. */
    const char *extra[] = {"group.id", o->group_id, "enable.partition.eof",
                           o->read_all ? "true" : "false", NULL};

    if (o->group_id)
        extra[1] = kd_bus_group_name(c->conf, o->group_id, group, sizeof group);
    rd_kafka_conf_t *rc;
    char rkerr[512];
    kd_status_t st;

    if (!o->group_id) {
        reader_group_id(reader_group, sizeof reader_group);
        extra[1] = reader_group;
    }
    if ((st = kd_bus_build_conf(c->conf, defaults, &rc, err, errsz)) != KD_OK)
        return st;
    if (!o->read_all && !o->partition_key) {
        rd_kafka_conf_set_opaque(rc, c);
        rd_kafka_conf_set_rebalance_cb(rc, rebalance_cb);
        /* Range assignment keeps co-partitioned topics on one member. */
        rd_kafka_conf_set(rc, "partition.assignment.strategy", "range", NULL, 0);
        if (o->instance_id &&
            rd_kafka_conf_set(rc, "group.instance.id", o->instance_id, rkerr, sizeof rkerr) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(rc);
            return kd_err(err, errsz, KD_EINVAL, "%s", rkerr);
        }
    }
    /* A real broker answers a waiting fetch as soon as data arrives; the
     * embedded one only when the wait is over, so it gets a short one. */
    if (!kd_bus_conf_has(c->conf, "fetch.wait.max.ms") && kd_bus_is_embedded(c->conf))
        rd_kafka_conf_set(rc, "fetch.wait.max.ms", "5", NULL, 0);
    for (size_t i = 0; extra[i]; i += 2)
        if (rd_kafka_conf_set(rc, extra[i], extra[i + 1], rkerr, sizeof rkerr) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(rc);
            return kd_err(err, errsz, KD_EINVAL, "%s", rkerr);
        }
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, rc, rkerr, sizeof rkerr);
    if (!c->rk) {
        rd_kafka_conf_destroy(rc);
        return kd_err(err, errsz, KD_EKAFKA, "creating consumer: %s", rkerr);
    }
    /* Rebalances, commit results and errors come through kd_consumer_poll
     * with the messages: a handle needs no other polling. */
    rd_kafka_poll_set_consumer(c->rk);
    return KD_OK;
}

static kd_status_t partition_count(kd_consumer_t *c, const char *topic, int *count, char *err,
                                   size_t errsz)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rerr;
    kd_status_t st = KD_OK;

    if (!rkt)
        return kd_err(err, errsz, KD_EKAFKA, "%s: %s", topic,
                      rd_kafka_err2str(rd_kafka_last_error()));
    rerr = rd_kafka_metadata(c->rk, 0, rkt, &md, metadata_timeout_ms);
    if (rerr)
        st = kd_err(err, errsz, KD_EKAFKA, "metadata of %s: %s", topic, rd_kafka_err2str(rerr));
    else if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
        st = kd_err(err, errsz, KD_ENOTFOUND, "topic %s does not exist on %s", topic,
                    kd_bus_conf_brokers(c->conf));
    else
        *count = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return st;
}

static kd_status_t assign_partition(kd_consumer_t *c, const kd_consumer_opts_t *o, char *err,
                                    size_t errsz)
{
    char topic[256];
    int count;
    kd_status_t st;
    rd_kafka_resp_err_t rerr;

    kd_bus_topic_name(c->conf, o->topics[0], topic, sizeof topic);
    if ((st = partition_count(c, topic, &count, err, errsz)) != KD_OK)
        return st;
    c->partition_count = count;
    /* The producer's own mapping (murmur2), so this is where the key's
     * messages are. */
    c->partition = kd_partition_for_key(o->partition_key, strlen(o->partition_key), count);
    c->assigned = rd_kafka_topic_partition_list_new(1);
    /* STORED: resume at the group's committed offset, else auto.offset.reset. */
    rd_kafka_topic_partition_list_add(c->assigned, topic, c->partition)->offset =
        o->from_offset ? o->offset : RD_KAFKA_OFFSET_STORED;
    if (o->from_end) {
        int64_t low, high;

        /* OFFSET_END would be resolved at the first fetch, after a request
         * sent meanwhile may have been answered. */
        if ((rerr = rd_kafka_query_watermark_offsets(c->rk, topic, c->partition, &low, &high,
                                                     metadata_timeout_ms)) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return kd_err(err, errsz, KD_EKAFKA, "end of %s[%d]: %s", topic, c->partition,
                          rd_kafka_err2str(rerr));
        c->assigned->elems[0].offset = high;
    }
    if (o->commit_only)
        return KD_OK; /* never assigned: commits and committed offsets need no fetch */
    if ((rerr = rd_kafka_assign(c->rk, c->assigned)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return kd_err(err, errsz, KD_EKAFKA, "assigning %s[%d]: %s", topic, c->partition,
                      rd_kafka_err2str(rerr));
    return KD_OK;
}

static kd_status_t assign_all(kd_consumer_t *c, const kd_consumer_opts_t *o, char *err,
                              size_t errsz)
{
    rd_kafka_resp_err_t rerr;
    kd_status_t st;

    c->assigned = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; i < o->topic_count; i++) {
        char topic[256];
        int count;

        kd_bus_topic_name(c->conf, o->topics[i], topic, sizeof topic);
        if ((st = partition_count(c, topic, &count, err, errsz)) != KD_OK)
            return st;
        for (int part = 0; part < count; part++)
            rd_kafka_topic_partition_list_add(c->assigned, topic, part)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    }
    c->at_eof = calloc((size_t)c->assigned->cnt + 1, sizeof *c->at_eof);
    if (!c->at_eof)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if ((rerr = rd_kafka_assign(c->rk, c->assigned)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return kd_err(err, errsz, KD_EKAFKA, "assigning: %s", rd_kafka_err2str(rerr));
    return KD_OK;
}

static kd_status_t subscribe(kd_consumer_t *c, const kd_consumer_opts_t *o, char *err,
                             size_t errsz)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)o->topic_count);
    rd_kafka_resp_err_t rerr;

    for (size_t i = 0; i < o->topic_count; i++) {
        char topic[256];

        kd_bus_topic_name(c->conf, o->topics[i], topic, sizeof topic);
        rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    }
    rerr = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rerr)
        return kd_err(err, errsz, KD_EKAFKA, "subscribing: %s", rd_kafka_err2str(rerr));
    return KD_OK;
}

kd_status_t kd_consumer_new(const kd_bus_conf_t *conf, const kd_consumer_opts_t *opts,
                            kd_consumer_t **out, char *err, size_t errsz)
{
    kd_consumer_t *c;
    kd_status_t st;

    if (!opts->topic_count)
        return kd_err(err, errsz, KD_EINVAL, "consumer without topics");
    if (!opts->read_all && !opts->group_id && !opts->from_end)
        return kd_err(err, errsz, KD_EINVAL, "consumer needs a group id");
    if (!(c = calloc(1, sizeof *c)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    c->conf = conf;
    c->read_all = opts->read_all;
    c->partition = -1;
    c->on_rebalance = opts->on_rebalance;
    c->opaque = opts->opaque;
    /* A real broker answers a waiting fetch when data comes: no lane
     * needed. Nor when the operator chose the wait. */
    c->eager = opts->eager && !opts->read_all && kd_bus_is_embedded(conf) &&
               !kd_bus_conf_has(conf, "fetch.wait.max.ms");
    kd_bus_topic_name(conf, opts->topics[0], c->first_topic, sizeof c->first_topic);
    if ((st = new_handle(c, opts, err, errsz)) != KD_OK)
        goto fail;
    if (opts->manual)
        st = KD_OK; /* kd_consumer_assign */
    else if (opts->read_all)
        st = assign_all(c, opts, err, errsz);
    else if (opts->partition_key)
        st = assign_partition(c, opts, err, errsz);
    else
        st = subscribe(c, opts, err, errsz);
    if (st != KD_OK)
        goto fail;
    *out = c;
    return KD_OK;
fail:
    kd_consumer_free(c);
    return st;
}

kd_status_t kd_consumer_assign(kd_consumer_t *c, const int32_t *partitions,
                               const int64_t *offsets, size_t n, char *err, size_t errsz)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new((int)n + 1);
    rd_kafka_resp_err_t rerr;

    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, c->first_topic, partitions[i])->offset =
            offsets[i];
    if ((rerr = rd_kafka_assign(c->rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(parts);
        return kd_err(err, errsz, KD_EKAFKA, "assigning %s: %s", c->first_topic,
                      rd_kafka_err2str(rerr));
    }
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = parts;
    if (c->eager) {
        forget_positions(c);
        mirror_assignment(c, parts);
    }
    return KD_OK;
}

void kd_consumer_free(kd_consumer_t *c)
{
    if (!c)
        return;
    /* Close before destroy: a member leaves its group now, so the others take
     * its partitions at once rather than after the session timeout. */
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    if (c->fast)
        close_fast(c);
    for (int t = 0; t < KD_TOPIC_COUNT; t++)
        free(c->next[t]);
    if (c->assigned)
        rd_kafka_topic_partition_list_destroy(c->assigned);
    free(c->at_eof);
    free(c);
}

static void mark_eof(kd_consumer_t *c, const rd_kafka_message_t *rkm, bool eof)
{
    const char *topic = rd_kafka_topic_name(rkm->rkt);

    if (!c->at_eof)
        return;
    for (int i = 0; i < c->assigned->cnt; i++)
        if (c->assigned->elems[i].partition == rkm->partition &&
            strcmp(c->assigned->elems[i].topic, topic) == 0)
            c->at_eof[i] = eof;
}

bool kd_consumer_at_end(const kd_consumer_t *c)
{
    if (!c->at_eof)
        return false;
    for (int i = 0; i < c->assigned->cnt; i++)
        if (!c->at_eof[i])
            return false;
    return true;
}

int32_t kd_consumer_partition(const kd_consumer_t *c)
{
    return c->partition;
}

int kd_consumer_partition_count(const kd_consumer_t *c)
{
    return c->partition_count;
}

kd_status_t kd_consumer_committed(kd_consumer_t *c, int64_t *offset, char *err, size_t errsz)
{
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t rerr;

    if (c->partition < 0)
        return kd_err(err, errsz, KD_EINVAL, "not a partition-mode consumer");
    parts = rd_kafka_topic_partition_list_copy(c->assigned);
    rerr = rd_kafka_committed(c->rk, parts, 10000);
    if (!rerr)
        rerr = parts->elems[0].err;
    /* librdkafka says RD_KAFKA_OFFSET_INVALID (-1001) for nothing committed. */
    if (!rerr)
        *offset = parts->elems[0].offset >= 0 ? parts->elems[0].offset : -1;
    rd_kafka_topic_partition_list_destroy(parts);
    if (rerr)
        return kd_err(err, errsz, KD_EKAFKA, "reading committed offsets: %s",
                      rd_kafka_err2str(rerr));
    return KD_OK;
}

kd_status_t kd_consumer_commit_offset(kd_consumer_t *c, int64_t next_offset, char *err,
                                      size_t errsz)
{
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t rerr;

    if (c->partition < 0)
        return kd_err(err, errsz, KD_EINVAL, "not a partition-mode consumer");
    parts = rd_kafka_topic_partition_list_copy(c->assigned);
    parts->elems[0].offset = next_offset;
    rerr = rd_kafka_commit(c->rk, parts, 1);
    rd_kafka_topic_partition_list_destroy(parts);
    if (rerr)
        return kd_err(err, errsz, KD_EKAFKA, "committing offset %lld: %s", (long long)next_offset,
                      rd_kafka_err2str(rerr));
    return KD_OK;
}

kd_status_t kd_consumer_topic_partitions(kd_consumer_t *c, kd_topic_t topic, int *count,
                                         char *err, size_t errsz)
{
    char name[256];

    kd_bus_topic_name(c->conf, topic, name, sizeof name);
    return partition_count(c, name, count, err, errsz);
}

static char *header_str(rd_kafka_headers_t *hdrs, const char *name)
{
    const void *val = NULL;
    size_t size = 0;

    if (hdrs && rd_kafka_header_get_last(hdrs, name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && val)
        return strndup(val, size);
    return strdup("");
}

static kd_topic_t topic_of(const kd_consumer_t *c, const char *name)
{
    char buf[256];

    for (int t = 0; t < KD_TOPIC_COUNT; t++)
        if (strcmp(kd_bus_topic_name(c->conf, (kd_topic_t)t, buf, sizeof buf), name) == 0)
            return (kd_topic_t)t;
    return KD_TOPIC_COUNT;
}

static kd_message_t *wrap(kd_consumer_t *c, rd_kafka_message_t *rkm, bool from_fast)
{
    kd_message_int_t *m = calloc(1, sizeof *m);
    rd_kafka_headers_t *hdrs = NULL;
    const void *sig = NULL;
    size_t siglen = 0;

    if (!m)
        return NULL;
    rd_kafka_message_headers(rkm, &hdrs);
    m->rkm = rkm;
    /* The lane's handle is closed only once its messages are all freed. */
    if (from_fast) {
        m->held = &c->fast_held;
        atomic_fetch_add(m->held, 1);
    }
    /* Keys and header values are bytes with a length, not C strings. */
    m->key = rkm->key ? strndup(rkm->key, rkm->key_len) : strdup("");
    m->type = header_str(hdrs, KD_HEADER_TYPE);
    m->deploy_id = header_str(hdrs, KD_HEADER_DEPLOY_ID);
    if (!m->key || !m->type || !m->deploy_id) {
        m->rkm = NULL;
        kd_message_free(&m->pub);
        return NULL;
    }
    if (hdrs && rd_kafka_header_get_last(hdrs, KD_HEADER_SIGNATURE, &sig, &siglen) != 0)
        sig = NULL;
    m->pub = (kd_message_t){
        .topic = topic_of(c, rd_kafka_topic_name(rkm->rkt)),
        .partition = rkm->partition,
        .offset = rkm->offset,
        .timestamp_ms = rd_kafka_message_timestamp(rkm, NULL),
        .key = m->key,
        .key_len = rkm->key_len,
        .type = m->type,
        .deploy_id = m->deploy_id,
        .value = rkm->payload,
        .len = rkm->len,
        .signature = sig,
        .signature_len = sig ? siglen : 0,
    };
    return &m->pub;
}

kd_status_t kd_consumer_poll(kd_consumer_t *c, int timeout_ms, kd_message_t **out, char *err,
                             size_t errsz)
{
    rd_kafka_message_t *rkm;
    bool from_fast;
    char fatal[512];

    *out = NULL;
    /* Bounded: each message the two handles both bring is dropped once. */
    for (int dropped = 0;; dropped++) {
        if (!(rkm = poll_handles(c, dropped ? 0 : timeout_ms, &from_fast)))
            return KD_OK;
        if (rkm->err || !c->eager || take_message(c, rkm, from_fast))
            break;
        rd_kafka_message_destroy(rkm);
        if (dropped == 10000)
            return KD_OK;
    }
    if (from_fast && rkm->err) {
        /* The main handle says the same about the same broker. */
        kd_debug("eager consumer: %s", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
        return KD_OK;
    }
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        mark_eof(c, rkm, true);
        rd_kafka_message_destroy(rkm);
        return KD_OK;
    }
    /* librdkafka retries broker errors itself; only a fatal one (the
     * handle can do no more) is worth ending the caller for. */
    if (rkm->err) {
        rd_kafka_resp_err_t rerr = rkm->err;

        kd_warn("consumer: %s", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
        if (rd_kafka_fatal_error(c->rk, fatal, sizeof fatal))
            return kd_err(err, errsz, KD_EKAFKA, "consumer: fatal: %s", fatal);
        (void)rerr;
        return KD_OK;
    }
    mark_eof(c, rkm, false);
    if (from_fast)
        c->eager_delivered++;
    c->window_count++;
    if (!(*out = wrap(c, rkm, from_fast))) {
        rd_kafka_message_destroy(rkm);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    return KD_OK;
}

kd_status_t kd_consumer_commit(kd_consumer_t *c, const kd_message_t *m, char *err,
                               size_t errsz)
{
    const kd_message_int_t *mi = (const kd_message_int_t *)m;
    /* Asynchronous: a commit lost in a crash only means the message comes
     * again, which every kdeploy consumer answers without acting twice. */
    rd_kafka_resp_err_t rerr = rd_kafka_commit_message(c->rk, mi->rkm, 1);

    if (rerr)
        return kd_err(err, errsz, KD_EKAFKA, "committing offset %lld: %s",
                      (long long)m->offset + 1, rd_kafka_err2str(rerr));
    return KD_OK;
}

void kd_message_free(kd_message_t *m)
{
    kd_message_int_t *mi = (kd_message_int_t *)m;

    if (!mi)
        return;
    if (mi->rkm)
        rd_kafka_message_destroy(mi->rkm);
    if (mi->held)
        atomic_fetch_sub(mi->held, 1);
    free(mi->key);
    free(mi->type);
    free(mi->deploy_id);
    free(mi);
}

/* A command's expiry is signed with it: past it, the command is old (a
 * replay, or a deployment long over) and does nothing. */
kd_status_t kd_command_fresh(const kd_consumer_t *c, const kd_envelope_t *env, char *err,
                             size_t errsz)
{
    bool verifying = kd_bus_conf_verifier(c->conf) != NULL;
    /* Wall clock, as the planner's that set the expiry: the hosts' clocks are
     * assumed to agree with it (NTP) to well within a deployment timeout. */
    int64_t expires, now = kd_now_ms();

    if (env->body_case == KD_BODY(STEP) && env->step)
        expires = env->step->expires_ms;
    else if (env->body_case == KD_BODY(TRAFFIC) && env->traffic)
        expires = env->traffic->expires_ms;
    else
        return KD_OK;
    if (expires == 0)
        return verifying && KD_REQUIRE_COMMAND_EXPIRY
                   ? kd_err(err, errsz, KD_EREFUSED, "the command carries no expiry")
                   : KD_OK;
    if (now > expires)
        return kd_err(err, errsz, KD_EREFUSED, "the command expired %lld ms ago",
                      (long long)(now - expires));
    return KD_OK;
}

/* A command's signature: its batch proof when it carries one (a planner
 * signing in batches), else its own signature. Workers take both, so they
 * can be upgraded before the planners. */
static kd_status_t verify_command(const kd_verifier_t *v, const kd_message_t *m, char *err,
                                  size_t errsz)
{
    const kd_message_int_t *mi = (const kd_message_int_t *)m;
    rd_kafka_headers_t *hdrs = NULL;
    const void *sig = NULL, *proof = NULL;
    size_t siglen = 0, prooflen = 0;

    if (rd_kafka_message_headers(mi->rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, KD_HEADER_BATCH_SIGNATURE, &sig, &siglen) != 0)
        return kd_verify(v, m->value, m->len, m->signature, m->signature_len, err, errsz);
    if (rd_kafka_header_get_last(hdrs, KD_HEADER_BATCH_PROOF, &proof, &prooflen) != 0)
        return kd_err(err, errsz, KD_ESIGNATURE, "batch signature without its proof");
    return kd_batch_verify(v, m->value, m->len, sig, siglen, proof, prooflen, err, errsz);
}

kd_status_t kd_message_decode(const kd_consumer_t *c, const kd_message_t *m,
                              kd_envelope_t **out, char *err, size_t errsz)
{
    const kd_verifier_t *v = kd_bus_conf_verifier(c->conf);
    kd_body_t claimed = kd_envelope_type_parse(m->type);
    kd_envelope_t *env;
    kd_status_t st;

    /* Verify before parsing: forged bytes never reach the decoder. The header
     * or the topic calls for it, so a forged header cannot skip it. */
    if (v && (claimed == KD_BODY(STEP) || claimed == KD_BODY(TRAFFIC) ||
              m->topic == KD_TOPIC_STEPS || m->topic == KD_TOPIC_TRAFFIC) &&
        (st = verify_command(v, m, err, errsz)) != KD_OK)
        return st;
    if ((st = kd_envelope_decode(m->value, m->len, &env, err, errsz)) != KD_OK)
        return st;
    if (claimed != env->body_case) {
        st = kd_err(err, errsz, KD_EPROTO, "header %s=%s but the body is %s", KD_HEADER_TYPE,
                    m->type, kd_envelope_type(env));
        kd_envelope_free(env);
        return st;
    }

    *out = env;
    return KD_OK;
}

kd_status_t kd_consumer_lag(kd_consumer_t *c, kd_topic_t topic, int64_t *lag, char *err,
                            size_t errsz)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t rerr;
    char name[256];

    *lag = 0;
    kd_bus_topic_name(c->conf, topic, name, sizeof name);
    if ((rerr = rd_kafka_assignment(c->rk, &parts)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return kd_err(err, errsz, KD_EKAFKA, "assignment: %s", rd_kafka_err2str(rerr));
    /* Positions and end offsets are both local knowledge: cheap enough for
     * a gauge refreshed every second. */
    rd_kafka_position(c->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t low = -1, high = -1;

        if (strcmp(tp->topic, name) != 0 ||
            rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &low, &high) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        if (tp->offset >= 0 && high > tp->offset)
            *lag += high - tp->offset;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return KD_OK;
}

kd_status_t kd_consumer_probe(kd_consumer_t *c, kd_topic_t topic, int timeout_ms, char *err,
                              size_t errsz)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t rerr;
    char name[256];

    /* A metadata request keeps to its timeout; an offsets query waits out a
     * stalled broker's request timeout, however short the one it is given. */
    kd_bus_topic_name(c->conf, topic, name, sizeof name);
    if (!(rkt = rd_kafka_topic_new(c->rk, name, NULL)))
        return kd_err(err, errsz, KD_EKAFKA, "%s: %s", name,
                      rd_kafka_err2str(rd_kafka_last_error()));
    rerr = rd_kafka_metadata(c->rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR)
        return kd_err(err, errsz, rerr == RD_KAFKA_RESP_ERR__TIMED_OUT ? KD_ETIMEDOUT : KD_EKAFKA,
                      "%s: %s", name, rd_kafka_err2str(rerr));
    return KD_OK;
}

kd_status_t kd_consumer_read_to_end(kd_consumer_t *c, kd_topic_t topic, int timeout_ms,
                                    bool *at_end, char *err, size_t errsz)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t rerr;
    kd_status_t st = KD_OK;
    char name[256];

    *at_end = true;
    kd_bus_topic_name(c->conf, topic, name, sizeof name);
    if ((rerr = rd_kafka_assignment(c->rk, &parts)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return kd_err(err, errsz, KD_EKAFKA, "assignment: %s", rd_kafka_err2str(rerr));
    rd_kafka_position(c->rk, parts);
    for (int i = 0; i < parts->cnt && *at_end && st == KD_OK; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t low = -1, high = -1;

        if (strcmp(tp->topic, name) != 0)
            continue;
        /* The broker's end now, not the one the last fetch brought. */
        rerr = rd_kafka_query_watermark_offsets(c->rk, tp->topic, tp->partition, &low, &high,
                                                timeout_ms);
        if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR)
            st = kd_err(err, errsz, KD_EKAFKA, "%s [%d]: end offset: %s", name, tp->partition,
                        rd_kafka_err2str(rerr));
        /* No position yet: nothing read, so at the end only of an empty one. */
        else if (tp->offset < 0 ? high > low : high > tp->offset)
            *at_end = false;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return st;
}
