/* The consumer half of the bus: group members (planner), one-partition
 * readers (a worker reads only its host's partition of `steps`), and
 * whole-topic readers (status, replay). */
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
};

/* A message and the librdkafka message it came from. */
typedef struct kd_message_int {
    kd_message_t pub;
    rd_kafka_message_t *rkm;
    char *key;
    char *type;
    char *deploy_id;
} kd_message_int_t;

static const int metadata_timeout_ms = 10000;

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
        /* Readers never join or commit, but librdkafka wants a group id. */
        char uuid[KD_UUID_LEN];

        kd_uuid_new(uuid);
        snprintf(reader_group, sizeof reader_group, "kdeploy-reader-%s", uuid);
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

static kd_message_t *wrap(kd_consumer_t *c, rd_kafka_message_t *rkm)
{
    kd_message_int_t *m = calloc(1, sizeof *m);
    rd_kafka_headers_t *hdrs = NULL;
    const void *sig = NULL;
    size_t siglen = 0;

    if (!m)
        return NULL;
    rd_kafka_message_headers(rkm, &hdrs);
    m->rkm = rkm;
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
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout_ms);
    char fatal[512];

    *out = NULL;
    if (!rkm)
        return KD_OK;
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
    if (!(*out = wrap(c, rkm))) {
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
