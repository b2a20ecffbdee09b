#include "bus.h"
#include "bus_int.h"

#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "log.h"
#include "partition.h"
#include "sign_batch.h"

static const char *const topic_suffixes[KD_TOPIC_COUNT] = {
    "requests", "deployments", "steps", "traffic", "results", "hosts", "groups",
};

/* A thread serves delivery reports, so that any number of threads can
 * send and wait without polling each other's reports. */
struct kd_producer {
    rd_kafka_t *rk;
    const kd_bus_conf_t *conf;
    char self[300];
    pthread_t poller;
    atomic_int stopping;
    rd_kafka_queue_t *admin_q;      /* results of group commits, dropped by the poller */
    pthread_mutex_t lock;
    pthread_cond_t delivered;       /* broadcast on every waited-for report */
    rd_kafka_resp_err_t async_err;  /* first failed delivery since the last flush */
    size_t pending;                 /* sent without wait, not yet reported */
    /* A batch (kd_producer_batch_begin): the owner thread's commands are
     * held here until sealed under one signature. Only the owner touches
     * the held list; others read batching to know it is not theirs. */
    atomic_bool batching;
    pthread_t batch_owner;
    struct kd_held *held;
    size_t held_count, held_cap;
};

/* A command held for a batch: what its message needs, value owned. */
typedef struct kd_held {
    kd_topic_t topic;
    char *key;        /* NULL for none */
    const char *type; /* a static name */
    char *deploy_id;  /* NULL for none */
    uint8_t *value;
    size_t len;
} kd_held_t;

/* The most commands under one batch signature: each carries an audit path
 * of log2 of it hashes (10 here, 320 bytes). Hashing a command into a tree
 * costs 1/55 to 1/90 of signing it alone (tests/bench/bench_sign.c), so at
 * this size the signature is a small part of the cost, and a bigger tree
 * would only lengthen the headers. */
#define BATCH_MAX_LEAVES 1024

static void held_clear(kd_held_t *h)
{
    free(h->key);
    free(h->deploy_id);
    free(h->value);
}

static void drop_held(kd_producer_t *p)
{
    for (size_t i = 0; i < p->held_count; i++)
        held_clear(&p->held[i]);
    free(p->held);
    p->held = NULL;
    p->held_count = p->held_cap = 0;
}

/* The delivery of one message sent with wait. */
typedef struct kd_delivery {
    int done;                 /* under the producer's lock */
    rd_kafka_resp_err_t err;
} kd_delivery_t;

const char *kd_topic_suffix(kd_topic_t topic)
{
    return topic < KD_TOPIC_COUNT ? topic_suffixes[topic] : "?";
}

/* ---- configuration ---- */

kd_bus_conf_t *kd_bus_conf_new(void)
{
    kd_bus_conf_t *conf = calloc(1, sizeof *conf);

    if (conf && !(conf->prefix = strdup(KD_DEFAULT_TOPIC_PREFIX))) {
        free(conf);
        return NULL;
    }
    if (conf) {
        pthread_mutex_init(&conf->probe_lock, NULL);
        conf->embedded = -1;
    }
    return conf;
}

void kd_bus_conf_free(kd_bus_conf_t *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < conf->prop_count; i++) {
        free(conf->props[i].name);
        free(conf->props[i].value);
    }
    free(conf->props);
    free(conf->brokers);
    free(conf->prefix);
    kd_signer_free(conf->signer);
    kd_verifier_free(conf->verifier);
    pthread_mutex_destroy(&conf->probe_lock);
    free(conf);
}

static kd_status_t replace_str(char **dst, const char *value, char *err, size_t errsz)
{
    char *copy = strdup(value);

    if (!copy)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    free(*dst);
    *dst = copy;
    return KD_OK;
}

/* Checks a librdkafka property on a scratch configuration, so a typo in a
 * config file is reported where it is written, not at connect time. */
static kd_status_t check_rdkafka_prop(const char *name, const char *value, char *err,
                                      size_t errsz)
{
    char rkerr[512];
    rd_kafka_conf_t *tmp = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(tmp, name, value, rkerr, sizeof rkerr);

    rd_kafka_conf_destroy(tmp);
    if (res == RD_KAFKA_CONF_OK)
        return KD_OK;
    return kd_err(err, errsz, KD_EINVAL, "%s", rkerr);
}

static kd_status_t add_prop(kd_bus_conf_t *conf, const char *name, const char *value,
                            char *err, size_t errsz)
{
    kd_prop_t *props;
    kd_status_t st = check_rdkafka_prop(name, value, err, errsz);

    if (st != KD_OK)
        return st;
    for (size_t i = 0; i < conf->prop_count; i++)
        if (strcmp(conf->props[i].name, name) == 0)
            return replace_str(&conf->props[i].value, value, err, errsz);
    props = realloc(conf->props, (conf->prop_count + 1) * sizeof *props);
    if (!props)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    conf->props = props;
    props[conf->prop_count].name = strdup(name);
    props[conf->prop_count].value = strdup(value);
    if (!props[conf->prop_count].name || !props[conf->prop_count].value) {
        free(props[conf->prop_count].name);
        free(props[conf->prop_count].value);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    conf->prop_count++;
    return KD_OK;
}

/* Kafka takes topic names of at most 249 letters, digits, '.', '_' and '-';
 * the prefix leaves room for the longest suffix. */
static kd_status_t check_prefix(const char *prefix, char *err, size_t errsz)
{
    size_t n = strlen(prefix);

    if (n == 0 || n > 200 || strspn(prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "0123456789._-") != n)
        return kd_err(err, errsz, KD_EINVAL,
                      "topic prefix '%.64s': use 1 to 200 letters, digits, '.', '_' or '-'",
                      prefix);
    return KD_OK;
}

kd_status_t kd_bus_conf_set(kd_bus_conf_t *conf, const char *name, const char *value,
                            char *err, size_t errsz)
{
    if (strcmp(name, "brokers") == 0 || strcmp(name, "bootstrap.servers") == 0)
        return replace_str(&conf->brokers, value, err, errsz);
    if (strcmp(name, "topic_prefix") == 0) {
        kd_status_t st = check_prefix(value, err, errsz);

        if (st == KD_OK && (st = replace_str(&conf->prefix, value, err, errsz)) == KD_OK)
            conf->prefix_set = true;
        return st;
    }
    if (strcmp(name, "signing_key") == 0) {
        kd_signer_free(conf->signer);
        conf->signer = NULL;
        return kd_signer_load(value, &conf->signer, err, errsz);
    }
    if (strcmp(name, "verify_key") == 0) /* repeatable: key rotation */
        return conf->verifier ? kd_verifier_add(conf->verifier, value, err, errsz)
                              : kd_verifier_load(value, &conf->verifier, err, errsz);
    return add_prop(conf, name, value, err, errsz);
}

kd_status_t kd_bus_conf_apply(kd_bus_conf_t *conf, const kd_config_t *cfg, char *err,
                              size_t errsz)
{
    static const char *const own[] = {"brokers", "topic_prefix", "signing_key", "verify_key"};
    size_t n;
    const kd_config_entry_t *e = kd_config_entries(cfg, &n);

    for (size_t i = 0; i < n; i++) {
        const char *name = NULL;
        char why[512];
        kd_status_t st;

        if (strncmp(e[i].key, "kafka.", 6) == 0)
            name = e[i].key + 6;
        for (size_t j = 0; !name && j < sizeof own / sizeof own[0]; j++)
            if (strcmp(e[i].key, own[j]) == 0)
                name = own[j];
        if (!name)
            continue;
        if ((st = kd_bus_conf_set(conf, name, e[i].value, why, sizeof why)) != KD_OK)
            return kd_err(err, errsz, st, "%s:%d: %s: %s", kd_config_name(cfg), e[i].line,
                          e[i].key, why);
    }
    return KD_OK;
}

kd_status_t kd_bus_conf_env_defaults(kd_bus_conf_t *conf, char *err, size_t errsz)
{
    const char *env = getenv("KDEPLOY_BROKERS");
    kd_status_t st;

    if (!conf->brokers && env && *env &&
        (st = replace_str(&conf->brokers, env, err, errsz)) != KD_OK)
        return st;
    env = getenv("KDEPLOY_TOPIC_PREFIX");
    if (!conf->prefix_set && env && *env) {
        char why[256];

        if ((st = kd_bus_conf_set(conf, "topic_prefix", env, why, sizeof why)) != KD_OK)
            return kd_err(err, errsz, st, "KDEPLOY_TOPIC_PREFIX: %s", why);
    }
    return KD_OK;
}

const char *kd_bus_group_name(const kd_bus_conf_t *conf, const char *group, char *buf,
                              size_t bufsz)
{
    if (strcmp(conf->prefix, KD_DEFAULT_TOPIC_PREFIX) == 0)
        return group;
    snprintf(buf, bufsz, "%s%s", conf->prefix, group);
    return buf;
}

const char *kd_bus_conf_prefix(const kd_bus_conf_t *conf)
{
    return conf->prefix;
}

const char *kd_bus_conf_brokers(const kd_bus_conf_t *conf)
{
    return conf->brokers;
}

const char *kd_bus_topic_name(const kd_bus_conf_t *conf, kd_topic_t topic, char *buf,
                              size_t bufsz)
{
    snprintf(buf, bufsz, "%s%s", conf->prefix, kd_topic_suffix(topic));
    return buf;
}

const kd_verifier_t *kd_bus_conf_verifier(const kd_bus_conf_t *conf)
{
    return conf->verifier;
}

bool kd_bus_conf_has(const kd_bus_conf_t *conf, const char *name)
{
    for (size_t i = 0; i < conf->prop_count; i++)
        if (strcmp(conf->props[i].name, name) == 0)
            return true;
    return false;
}

static int probe_embedded(const kd_bus_conf_t *conf)
{
    static const char *const none[] = {NULL};
    rd_kafka_conf_t *rc;
    rd_kafka_t *rk;
    char *id;
    int embedded = 0;

    if (kd_bus_build_conf(conf, none, &rc, NULL, 0) != KD_OK)
        return 0;
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, NULL, 0))) {
        rd_kafka_conf_destroy(rc);
        return 0;
    }
    /* The mock cluster names itself so; a real cluster has a random id. */
    if ((id = rd_kafka_clusterid(rk, 5000))) {
        embedded = strncmp(id, "mockCluster", 11) == 0;
        rd_kafka_mem_free(rk, id);
    }
    rd_kafka_destroy(rk);
    return embedded;
}

bool kd_bus_is_embedded(const kd_bus_conf_t *conf)
{
    kd_bus_conf_t *c = (kd_bus_conf_t *)conf; /* the answer is cached */
    int embedded;

    /* Under a lock: a conf is shared by a process's threads, and one probe
     * (a connection to the cluster) is enough. */
    pthread_mutex_lock(&c->probe_lock);
    if (c->embedded < 0)
        c->embedded = probe_embedded(conf);
    embedded = c->embedded;
    pthread_mutex_unlock(&c->probe_lock);
    return embedded == 1;
}

/* What the probe's handle heard: the last transport error, and whether
 * librdkafka gave up on every bootstrap broker. */
typedef struct probe_state {
    pthread_mutex_t lock;
    char reason[512];
    bool all_down;
} probe_state_t;

static void probe_error_cb(rd_kafka_t *rk, int errcode, const char *reason, void *opaque)
{
    probe_state_t *ps = opaque;

    (void)rk;
    pthread_mutex_lock(&ps->lock);
    if (errcode == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        ps->all_down = true;
    else
        snprintf(ps->reason, sizeof ps->reason, "%s", reason);
    pthread_mutex_unlock(&ps->lock);
}

/* Asks for the cluster's metadata in short rounds until timeout_ms: a
 * refused connection is known in a round or two, an unanswered one only
 * at the end. */
static rd_kafka_resp_err_t probe_rounds(rd_kafka_t *rk, probe_state_t *ps, int timeout_ms)
{
    int64_t start = kd_mono_ms();
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR__TIMED_OUT;

    while (kd_mono_ms() - start < timeout_ms) {
        const struct rd_kafka_metadata *md = NULL;
        bool down;

        /* Serves the error callbacks (a producer has no other poller here). */
        rd_kafka_poll(rk, 0);
        if ((rerr = rd_kafka_metadata(rk, 0, NULL, &md, 500)) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_metadata_destroy(md);
            return rerr;
        }
        pthread_mutex_lock(&ps->lock);
        down = ps->all_down;
        pthread_mutex_unlock(&ps->lock);
        /* Every broker refused at least once, and a second try (librdkafka
         * reconnects within a second) did not fare better. */
        if (down && kd_mono_ms() - start >= 1000)
            break;
    }
    return rerr;
}

kd_status_t kd_bus_probe(kd_bus_conf_t *conf, int timeout_ms, char *err, size_t errsz)
{
    static const char *const none[] = {NULL};
    probe_state_t ps = {.reason = ""};
    rd_kafka_conf_t *rc;
    rd_kafka_t *rk;
    rd_kafka_resp_err_t rerr;
    char rkerr[512], *id;
    kd_status_t st;

    if ((st = kd_bus_build_conf(conf, none, &rc, err, errsz)) != KD_OK)
        return st;
    pthread_mutex_init(&ps.lock, NULL);
    rd_kafka_conf_set_error_cb(rc, probe_error_cb);
    rd_kafka_conf_set_opaque(rc, &ps);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, rkerr, sizeof rkerr))) {
        rd_kafka_conf_destroy(rc);
        pthread_mutex_destroy(&ps.lock);
        return kd_err(err, errsz, KD_EKAFKA, "creating a Kafka client: %s", rkerr);
    }
    if ((rerr = probe_rounds(rk, &ps, timeout_ms)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        pthread_mutex_lock(&ps.lock);
        st = kd_err(err, errsz, KD_EKAFKA, "cannot reach the broker at %s (%s)",
                    conf->brokers, ps.reason[0] ? ps.reason : rd_kafka_err2str(rerr));
        pthread_mutex_unlock(&ps.lock);
    } else if ((id = rd_kafka_clusterid(rk, 1000))) {
        /* The answer kd_bus_is_embedded would ask for again. */
        pthread_mutex_lock(&conf->probe_lock);
        conf->embedded = strncmp(id, "mockCluster", 11) == 0;
        pthread_mutex_unlock(&conf->probe_lock);
        rd_kafka_mem_free(rk, id);
    }
    rd_kafka_destroy(rk);
    pthread_mutex_destroy(&ps.lock);
    return st;
}

/* ---- librdkafka handles ---- */

/* Process-wide, as the log itself: the operator's tool turns librdkafka's
 * lines down to debug, so an unreachable broker is one line of its own,
 * not a screenful of retries. */
static atomic_bool kafka_log_quiet;

void kd_bus_quiet_kafka_log(bool quiet)
{
    atomic_store(&kafka_log_quiet, quiet);
}

/* librdkafka logs with syslog levels: 0-3 are errors, 4 a warning, 5-6
 * notices and information, 7 debug. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kd_log_level_t lvl = level <= 3 ? KD_LOG_ERROR : level == 4 ? KD_LOG_WARN
                       : level <= 6 ? KD_LOG_INFO : KD_LOG_DEBUG;

    if (atomic_load(&kafka_log_quiet))
        lvl = KD_LOG_DEBUG;
    kd_log(lvl, "kafka %s %s: %s", rd_kafka_name(rk), fac, buf);
}

static void error_cb(rd_kafka_t *rk, int errcode, const char *reason, void *opaque)
{
    (void)opaque;
    /* Others are transient (a broker down, a connection reset) and librdkafka
     * retries them itself: at error level they would flood the log. */
    if (errcode == RD_KAFKA_RESP_ERR__FATAL)
        kd_error("kafka %s: fatal: %s", rd_kafka_name(rk), reason);
    else
        kd_debug("kafka %s: %s: %s", rd_kafka_name(rk),
                 rd_kafka_err2name((rd_kafka_resp_err_t)errcode), reason);
}

static kd_status_t set_all(rd_kafka_conf_t *rc, const char *const *kv, char *err, size_t errsz)
{
    char rkerr[512];

    for (; kv[0]; kv += 2)
        if (rd_kafka_conf_set(rc, kv[0], kv[1], rkerr, sizeof rkerr) != RD_KAFKA_CONF_OK)
            return kd_err(err, errsz, KD_EINVAL, "%s=%s: %s", kv[0], kv[1], rkerr);
    return KD_OK;
}

kd_status_t kd_bus_build_conf(const kd_bus_conf_t *conf, const char *const *defaults,
                             rd_kafka_conf_t **out, char *err, size_t errsz)
{
    static const char *const common[] = {
        "socket.nagle.disable", "true",
        "log.connection.close", "false",
        "reconnect.backoff.ms", "10",
        "reconnect.backoff.max.ms", "1000",
        NULL,
    };
    rd_kafka_conf_t *rc;
    kd_status_t st;

    if (!conf->brokers || !*conf->brokers)
        return kd_err(err, errsz, KD_EINVAL,
                      "no Kafka brokers: pass --brokers LIST or set KDEPLOY_BROKERS");
    rc = rd_kafka_conf_new();
    /* Ours first, then the caller's defaults, then the configured properties:
     * each may override the one before. */
    if ((st = set_all(rc, common, err, errsz)) != KD_OK ||
        (st = set_all(rc, defaults, err, errsz)) != KD_OK)
        goto fail;
    for (size_t i = 0; i < conf->prop_count; i++) {
        const char *kv[] = {conf->props[i].name, conf->props[i].value, NULL};

        if ((st = set_all(rc, kv, err, errsz)) != KD_OK)
            goto fail;
    }
    {
        const char *kv[] = {"bootstrap.servers", conf->brokers, NULL};

        if ((st = set_all(rc, kv, err, errsz)) != KD_OK)
            goto fail;
    }
    rd_kafka_conf_set_log_cb(rc, log_cb);
    rd_kafka_conf_set_error_cb(rc, error_cb);
    *out = rc;
    return KD_OK;
fail:
    rd_kafka_conf_destroy(rc);
    return st;
}

/* ---- producer ---- */

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    kd_producer_t *p = opaque;
    kd_delivery_t *d = rkm->_private;

    (void)rk;
    /* d is on the stack of a sender that waits for this very report, so it
     * is alive here; broadcast, as several senders may be waiting. */
    pthread_mutex_lock(&p->lock);
    if (d) {
        d->err = rkm->err;
        d->done = 1;
        pthread_cond_broadcast(&p->delivered);
    } else {
        if (rkm->err && !p->async_err)
            p->async_err = rkm->err;
        /* The last one ends a kd_producer_flush at once. */
        if (p->pending > 0 && --p->pending == 0)
            pthread_cond_broadcast(&p->delivered);
    }
    pthread_mutex_unlock(&p->lock);
    if (rkm->err)
        kd_debug("delivery to %s failed: %s", rd_kafka_topic_name(rkm->rkt),
                 rd_kafka_err2str(rkm->err));
}

/* Learns the topics' leaders now, in one request: a first send to a topic
 * the producer has not met waits for metadata, which an idle client may
 * take a second to ask for. A failure here only costs that second later. */
static void warm_up(kd_producer_t *p)
{
    const struct rd_kafka_metadata *md = NULL;

    if (rd_kafka_metadata(p->rk, 1, NULL, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
}

/* A group commit's outcome: a failed one is overwritten by the host's next
 * commit, and its journal has the offset anyway. */
static void drop_admin_results(kd_producer_t *p)
{
    rd_kafka_event_t *ev;

    while ((ev = rd_kafka_queue_poll(p->admin_q, 0))) {
        if (rd_kafka_event_error(ev))
            kd_debug("group commit: %s", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
    }
}

static void *poll_thread(void *arg)
{
    kd_producer_t *p = arg;

    /* A long wait: delivery reports end it early, and kd_producer_free
     * ends it (rd_kafka_queue_yield), so an idle worker wakes once a second. */
    while (!atomic_load(&p->stopping)) {
        rd_kafka_poll(p->rk, 1000);
        drop_admin_results(p);
    }
    return NULL;
}

kd_status_t kd_producer_new(const kd_bus_conf_t *conf, const char *service,
                            kd_producer_t **out, char *err, size_t errsz)
{
    static const char *const defaults[] = {
        /* A retried send neither duplicates nor reorders a key's events, and
         * an acknowledged one survives a broker's loss. */
        "enable.idempotence", "true",
        "acks", "all",
        /* Sent at once: a send that is waited for would wait out the
         * linger too. */
        "linger.ms", "0",
        /* The Java client's partitioner: every client puts a key where
         * kd_partition_for_key says. */
        "partitioner", "murmur2_random",
        /* Also the bound of a send with wait: wait_delivery has no timeout of
         * its own, librdkafka fails the message after this. */
        "message.timeout.ms", "30000",
        NULL,
    };
    kd_producer_t *p = calloc(1, sizeof *p);
    rd_kafka_conf_t *rc;
    char rkerr[512];
    kd_status_t st;

    if (!p)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if ((st = kd_bus_build_conf(conf, defaults, &rc, err, errsz)) != KD_OK) {
        free(p);
        return st;
    }
    rd_kafka_conf_set_dr_msg_cb(rc, dr_msg_cb);
    rd_kafka_conf_set_opaque(rc, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, rkerr, sizeof rkerr);
    if (!p->rk) {
        rd_kafka_conf_destroy(rc);
        free(p);
        return kd_err(err, errsz, KD_EKAFKA, "creating producer: %s", rkerr);
    }
    p->conf = conf;
    kd_self_name(service, p->self, sizeof p->self);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->delivered, NULL);
    p->admin_q = rd_kafka_queue_new(p->rk);
    warm_up(p);
    if (pthread_create(&p->poller, NULL, poll_thread, p) != 0) {
        rd_kafka_queue_destroy(p->admin_q);
        rd_kafka_destroy(p->rk);
        pthread_cond_destroy(&p->delivered);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return kd_err(err, errsz, KD_ENOMEM, "cannot start the producer's poll thread");
    }
    *out = p;
    return KD_OK;
}

void kd_producer_free(kd_producer_t *p)
{
    if (!p)
        return;
    /* The poll thread ends first; rd_kafka_flush serves the last delivery
     * reports itself. */
    atomic_store(&p->stopping, 1);
    /* Ends the poller's wait at once (rd_kafka_yield would end only the
     * calling thread's). */
    {
        rd_kafka_queue_t *main_q = rd_kafka_queue_get_main(p->rk);

        rd_kafka_queue_yield(main_q);
        rd_kafka_queue_destroy(main_q);
    }
    pthread_join(p->poller, NULL);
    if (p->held_count > 0)
        kd_warn("producer closed in a batch: %zu commands not sent", p->held_count);
    drop_held(p);
    drop_admin_results(p);
    if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        kd_warn("producer closed with %d messages undelivered", rd_kafka_outq_len(p->rk));
    drop_admin_results(p);
    rd_kafka_queue_destroy(p->admin_q);
    rd_kafka_destroy(p->rk);
    pthread_cond_destroy(&p->delivered);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

const char *kd_producer_self(const kd_producer_t *p)
{
    return p->self;
}

static bool is_command(const kd_envelope_t *env)
{
    return env->body_case == KD_BODY(STEP) || env->body_case == KD_BODY(TRAFFIC);
}

/* The headers every message has: its type and deployment. */
static rd_kafka_headers_t *base_headers(const char *type, const char *deploy_id, size_t extra)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2 + extra);

    rd_kafka_header_add(hdrs, KD_HEADER_TYPE, -1, type, -1);
    if (deploy_id && *deploy_id)
        rd_kafka_header_add(hdrs, KD_HEADER_DEPLOY_ID, -1, deploy_id, -1);
    return hdrs;
}

static kd_status_t make_headers(const kd_producer_t *p, const kd_envelope_t *env,
                                const uint8_t *value, size_t len,
                                rd_kafka_headers_t **out, char *err, size_t errsz)
{
    rd_kafka_headers_t *hdrs = base_headers(kd_envelope_type(env), env->deploy_id, 1);
    kd_status_t st;

    /* The signature covers the encoded value, the very bytes a worker
     * verifies before decoding; headers and key are not covered. */
    if (p->conf->signer && is_command(env)) {
        uint8_t sig[KD_SIGNATURE_LEN];

        if ((st = kd_sign(p->conf->signer, value, len, sig, err, errsz)) != KD_OK) {
            rd_kafka_headers_destroy(hdrs);
            return st;
        }
        rd_kafka_header_add(hdrs, KD_HEADER_SIGNATURE, -1, sig, sizeof sig);
    }
    *out = hdrs;
    return KD_OK;
}

static kd_status_t wait_delivery(kd_producer_t *p, kd_delivery_t *d, char *err, size_t errsz)
{
    pthread_mutex_lock(&p->lock);
    while (!d->done)
        pthread_cond_wait(&p->delivered, &p->lock);
    pthread_mutex_unlock(&p->lock);
    if (d->err)
        return kd_err(err, errsz, KD_EKAFKA, "delivery failed: %s", rd_kafka_err2str(d->err));
    return KD_OK;
}

/* Queues value with hdrs, which it takes in every case; with owned,
 * librdkafka takes value and frees it (as this does on failure), else
 * copies it. */
static kd_status_t produce(kd_producer_t *p, kd_topic_t topic, const char *key,
                           rd_kafka_headers_t *hdrs, uint8_t *value, size_t len, bool owned,
                           bool wait, char *err, size_t errsz)
{
    char name[256];
    kd_delivery_t d = {0};
    rd_kafka_resp_err_t rerr;

    kd_bus_topic_name(p->conf, topic, name, sizeof name);
    if (!wait) {
        /* Counted before it is queued: its report may come at once. */
        pthread_mutex_lock(&p->lock);
        p->pending++;
        pthread_mutex_unlock(&p->lock);
    }
    rerr = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(name),
                             RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                             RD_KAFKA_V_VALUE(value, len),
                             RD_KAFKA_V_MSGFLAGS(owned ? RD_KAFKA_MSG_F_FREE : RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(wait ? &d : NULL),
                             RD_KAFKA_V_END);
    /* On failure librdkafka took neither the headers nor the value (F_FREE
     * applies only once the message is queued). */
    if (rerr) {
        rd_kafka_headers_destroy(hdrs);
        if (owned)
            free(value);
        if (!wait) {
            pthread_mutex_lock(&p->lock);
            p->pending--;
            pthread_mutex_unlock(&p->lock);
        }
        /* Too large never passes; anything else may once the broker is back. */
        return kd_err(err, errsz,
                      rerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? KD_ETOOLARGE : KD_EKAFKA,
                      "producing to %s: %s", name, rd_kafka_err2str(rerr));
    }
    return wait ? wait_delivery(p, &d, err, errsz) : KD_OK;
}

/* ---- batches: one signature for many commands ---- */

static bool in_batch(const kd_producer_t *p)
{
    return atomic_load(&p->batching) && pthread_equal(p->batch_owner, pthread_self());
}

static kd_status_t held_grow(kd_producer_t *p)
{
    size_t cap = p->held_cap ? 2 * p->held_cap : 256;
    kd_held_t *more;

    if (p->held_count < p->held_cap)
        return KD_OK;
    if (!(more = realloc(p->held, cap * sizeof *more)))
        return KD_ENOMEM;
    p->held = more;
    p->held_cap = cap;
    return KD_OK;
}

/* Keeps a command for the batch; takes value when owned, else copies it. */
static kd_status_t hold(kd_producer_t *p, kd_topic_t topic, const char *key,
                        const kd_envelope_t *env, uint8_t *value, size_t len, bool owned,
                        char *err, size_t errsz)
{
    bool has_id = env->deploy_id && *env->deploy_id;
    kd_held_t h = {.topic = topic, .type = kd_envelope_type(env), .len = len};

    h.value = owned ? value : malloc(len ? len : 1);
    if (h.value && !owned)
        memcpy(h.value, value, len);
    h.key = key ? strdup(key) : NULL;
    h.deploy_id = has_id ? strdup(env->deploy_id) : NULL;
    if (!h.value || (key && !h.key) || (has_id && !h.deploy_id) || held_grow(p) != KD_OK) {
        held_clear(&h);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    p->held[p->held_count++] = h;
    return KD_OK;
}

/* Produces held[0..n) under one signature, in their order; each value
 * passes to librdkafka (or is freed). */
static kd_status_t seal_tree(kd_producer_t *p, kd_held_t *held, size_t n, char *err,
                             size_t errsz)
{
    const void **values = malloc(n * sizeof *values);
    size_t *lens = malloc(n * sizeof *lens);
    kd_batch_t *b = NULL;
    kd_status_t st = KD_OK;

    if (!values || !lens)
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
    for (size_t i = 0; st == KD_OK && i < n; i++) {
        values[i] = held[i].value;
        lens[i] = held[i].len;
    }
    if (st == KD_OK)
        st = kd_batch_sign(p->conf->signer, values, lens, n, &b, err, errsz);
    for (size_t i = 0; i < n; i++) {
        uint8_t proof[KD_BATCH_PROOF_MAX];
        rd_kafka_headers_t *hdrs;

        if (st != KD_OK) {
            held_clear(&held[i]);
            continue;
        }
        hdrs = base_headers(held[i].type, held[i].deploy_id, 2);
        rd_kafka_header_add(hdrs, KD_HEADER_BATCH_SIGNATURE, -1, kd_batch_signature(b),
                            KD_SIGNATURE_LEN);
        rd_kafka_header_add(hdrs, KD_HEADER_BATCH_PROOF, -1, proof, kd_batch_proof(b, i, proof));
        st = produce(p, held[i].topic, held[i].key, hdrs, held[i].value, held[i].len, true,
                     false, err, errsz);
        held[i].value = NULL; /* librdkafka's now, or freed */
        held_clear(&held[i]);
    }
    kd_batch_free(b);
    free(values);
    free(lens);
    return st;
}

/* Signs and produces what the batch holds, in trees of equal size (at most
 * BATCH_MAX_LEAVES leaves), and empties it. After a failure the rest is
 * dropped, as a failed send drops the message: the caller sends again. */
static kd_status_t seal(kd_producer_t *p, char *err, size_t errsz)
{
    size_t trees = (p->held_count + BATCH_MAX_LEAVES - 1) / BATCH_MAX_LEAVES, done = 0;
    kd_status_t st = KD_OK;

    for (size_t t = 0; t < trees && st == KD_OK; t++) {
        /* Spread evenly: 1,030 commands make two trees of 515, not one of
         * 1,024 and one of 6. */
        size_t n = (p->held_count - done) / (trees - t);

        st = seal_tree(p, p->held + done, n, err, errsz);
        done += n;
    }
    for (; done < p->held_count; done++)
        held_clear(&p->held[done]);
    p->held_count = 0;
    return st;
}

void kd_producer_batch_begin(kd_producer_t *p)
{
    p->batch_owner = pthread_self();
    atomic_store(&p->batching, true);
}

kd_status_t kd_producer_batch_end(kd_producer_t *p, char *err, size_t errsz)
{
    kd_status_t st = seal(p, err, errsz);

    atomic_store(&p->batching, false);
    return st;
}

/* Queues value (the encoding of env, which gives the headers); with
 * owned, librdkafka takes value and frees it, else copies it. Inside a
 * batch, a command not waited for is held; anything else first sends what
 * is held, so the producer's order is the callers' order. */
static kd_status_t send_value(kd_producer_t *p, kd_topic_t topic, const char *key,
                              const kd_envelope_t *env, uint8_t *value, size_t len, bool owned,
                              bool wait, char *err, size_t errsz)
{
    rd_kafka_headers_t *hdrs;
    kd_status_t st = KD_OK;

    if (in_batch(p) && p->conf->signer) {
        if (!wait && is_command(env))
            return hold(p, topic, key, env, value, len, owned, err, errsz);
        if (p->held_count > 0)
            st = seal(p, err, errsz);
    }
    if (st == KD_OK)
        st = make_headers(p, env, value, len, &hdrs, err, errsz);
    if (st != KD_OK) {
        if (owned)
            free(value);
        return st;
    }
    return produce(p, topic, key, hdrs, value, len, owned, wait, err, errsz);
}

kd_status_t kd_producer_send(kd_producer_t *p, kd_topic_t topic, const char *key,
                             const kd_envelope_t *env, bool wait, char *err, size_t errsz)
{
    uint8_t *value;
    size_t len;
    kd_status_t st;

    if ((st = kd_envelope_encode(env, &value, &len, err, errsz)) != KD_OK)
        return st;
    return send_value(p, topic, key, env, value, len, true, wait, err, errsz);
}

kd_status_t kd_producer_send_encoded(kd_producer_t *p, kd_topic_t topic, const char *key,
                                     const kd_envelope_t *env, const void *value, size_t len,
                                     bool wait, char *err, size_t errsz)
{
    return send_value(p, topic, key, env, (uint8_t *)value, len, false, wait, err, errsz);
}

kd_status_t kd_producer_send_tombstone(kd_producer_t *p, kd_topic_t topic, const char *key,
                                       char *err, size_t errsz)
{
    char name[256];
    kd_delivery_t d = {0};
    rd_kafka_resp_err_t rerr;

    kd_bus_topic_name(p->conf, topic, name, sizeof name);
    rerr = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(name), RD_KAFKA_V_KEY(key, strlen(key)),
                             RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (rerr)
        return kd_err(err, errsz, KD_EKAFKA, "producing to %s: %s", name,
                      rd_kafka_err2str(rerr));
    return wait_delivery(p, &d, err, errsz);
}

/* Waits on the poller's reports rather than with rd_kafka_flush: that
 * polls the report queue itself in slices of up to 10 ms, and the reports
 * it waits for are taken by the poller thread, so it noticed them only when
 * a slice ended, up to 10 ms after the broker's ack (a planner round
 * waits twice). */
kd_status_t kd_producer_flush(kd_producer_t *p, int timeout_ms, char *err, size_t errsz)
{
    struct timespec until;
    rd_kafka_resp_err_t rerr;
    size_t left;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0)
        if (pthread_cond_timedwait(&p->delivered, &p->lock, &until) == ETIMEDOUT)
            break;
    left = p->pending;
    rerr = left ? RD_KAFKA_RESP_ERR_NO_ERROR : p->async_err;
    if (!left)
        p->async_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    pthread_mutex_unlock(&p->lock);
    if (left)
        return kd_err(err, errsz, KD_ETIMEDOUT, "%zu messages still undelivered", left);
    if (rerr)
        return kd_err(err, errsz,
                      rerr == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? KD_ETOOLARGE : KD_EKAFKA,
                      "delivery failed: %s", rd_kafka_err2str(rerr));
    return KD_OK;
}

/* ---- group offsets through the producer's handle ---- */

static rd_kafka_topic_partition_list_t *one_partition(const kd_producer_t *p, kd_topic_t topic,
                                                      int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    char name[256];

    kd_bus_topic_name(p->conf, topic, name, sizeof name);
    rd_kafka_topic_partition_list_add(parts, name, partition)->offset = offset;
    return parts;
}

static void ask_committed(kd_producer_t *p, rd_kafka_queue_t *q, const char *group,
                          kd_topic_t topic, int32_t partition, size_t i)
{
    rd_kafka_topic_partition_list_t *parts = one_partition(p, topic, partition, 0);
    char name[512];
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(
        kd_bus_group_name(p->conf, group, name, sizeof name), parts);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);

    /* The index comes back with the result: the answers come in any order. */
    rd_kafka_AdminOptions_set_opaque(opts, (void *)(uintptr_t)i);
    rd_kafka_AdminOptions_set_request_timeout(opts, 10000, NULL, 0);
    rd_kafka_ListConsumerGroupOffsets(p->rk, &req, 1, opts, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_topic_partition_list_destroy(parts);
}

static kd_status_t take_committed(rd_kafka_event_t *ev, int64_t *offsets, size_t n, char *err,
                                  size_t errsz)
{
    const rd_kafka_ListConsumerGroupOffsets_result_t *res =
        rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t i = (size_t)(uintptr_t)rd_kafka_event_opaque(ev), cnt = 0;
    const rd_kafka_group_result_t **groups;
    const rd_kafka_topic_partition_list_t *parts;

    if (rd_kafka_event_error(ev) || !res)
        return kd_err(err, errsz, KD_EKAFKA, "reading committed offsets: %s",
                      rd_kafka_event_error_string(ev));
    groups = rd_kafka_ListConsumerGroupOffsets_result_groups(res, &cnt);
    if (i >= n || cnt != 1)
        return kd_err(err, errsz, KD_EKAFKA, "reading committed offsets: unexpected answer");
    if (rd_kafka_group_result_error(groups[0]))
        return kd_err(err, errsz, KD_EKAFKA, "reading committed offsets of %s: %s",
                      rd_kafka_group_result_name(groups[0]),
                      rd_kafka_error_string(rd_kafka_group_result_error(groups[0])));
    parts = rd_kafka_group_result_partitions(groups[0]);
    /* librdkafka says RD_KAFKA_OFFSET_INVALID (-1001) for nothing committed. */
    offsets[i] = parts && parts->cnt == 1 && !parts->elems[0].err && parts->elems[0].offset >= 0
                     ? parts->elems[0].offset
                     : -1;
    return KD_OK;
}

kd_status_t kd_producer_group_offsets(kd_producer_t *p, kd_topic_t topic,
                                      const char *const *groups, const int32_t *partitions,
                                      size_t n, int64_t *offsets, char *err, size_t errsz)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->rk);
    int64_t deadline = kd_now_ms() + 15000;
    size_t answered = 0;
    kd_status_t st = KD_OK;

    /* All asked at once, each group of its own request (librdkafka takes one
     * group per call), so a hundred hosts cost one round trip, not a hundred. */
    for (size_t i = 0; i < n; i++) {
        offsets[i] = -1;
        ask_committed(p, q, groups[i], topic, partitions[i], i);
    }
    while (answered < n && st == KD_OK) {
        int64_t left = deadline - kd_now_ms();
        rd_kafka_event_t *ev = left > 0 ? rd_kafka_queue_poll(q, (int)left) : NULL;

        if (!ev) {
            st = kd_err(err, errsz, KD_ETIMEDOUT, "reading committed offsets: %zu of %zu "
                        "groups did not answer", n - answered, n);
            break;
        }
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT) {
            st = take_committed(ev, offsets, n, err, errsz);
            answered++;
        }
        rd_kafka_event_destroy(ev);
    }
    /* Answers still on their way are destroyed with the queue. */
    rd_kafka_queue_destroy(q);
    return st;
}

kd_status_t kd_producer_commit_group(kd_producer_t *p, const char *group, kd_topic_t topic,
                                     int32_t partition, int64_t next_offset, char *err,
                                     size_t errsz)
{
    rd_kafka_topic_partition_list_t *parts = one_partition(p, topic, partition, next_offset);
    char name[512];
    rd_kafka_AlterConsumerGroupOffsets_t *req =
        rd_kafka_AlterConsumerGroupOffsets_new(kd_bus_group_name(p->conf, group, name,
                                                                 sizeof name), parts);

    (void)err;
    (void)errsz;
    /* Not waited for: the poller drops the answer (drop_admin_results). */
    rd_kafka_AlterConsumerGroupOffsets(p->rk, &req, 1, NULL, p->admin_q);
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    rd_kafka_topic_partition_list_destroy(parts);
    return KD_OK;
}
