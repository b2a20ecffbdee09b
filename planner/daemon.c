#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "ids.h"
#include "idset.h"
#include "log.h"
#include "partition.h"

#define TICK_MS 200
#define MAX_PARTITIONS 1024
#define FLUSH_TIMEOUT_MS 30000
/* Messages taken in one batch at most: bounds the time between commits and
 * between ticks under a flood of results. */
#define BATCH_MAX 20000
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 30000
/* Quiet for this long, the planner asks the brokers whether they still
 * answer, waiting this long for it. */
#define QUIET_MS 3000
#define PROBE_TIMEOUT_MS 2000
/* A create naming hosts not announced yet waits at most this long for the
 * planner to read the hosts topic to its end, then is decided as it is. */
#define HOSTS_CATCH_UP_MS 5000

typedef struct daemon {
    kd_producer_t *producer;
    kd_model_t *model;
    int partition_count;                /* of requests and results */
    bool owned[MAX_PARTITIONS];         /* partitions this planner drives */
    bool rebalanced;                    /* owned changed: take over again */
    int64_t since_ms;                   /* when owned last changed */
    volatile sig_atomic_t *stop;
    kd_deploy_metrics_t *dm;            /* may be NULL */
    kd_notify_t *notify;                /* may be NULL */
    int64_t last_gauges_ms;
    int64_t commanded_ms;               /* monotonic: steps or traffic last sent */
    unsigned in_flight;                 /* hosts in flight, as of last_gauges_ms */
    int64_t heard_ms;                   /* monotonic: the brokers last answered */
    int64_t probed_ms;                  /* monotonic: the last probe */
    int64_t outage_ms;                  /* monotonic: since when they have not (0: they do) */
    kd_consumer_t *history;             /* deployments and hosts, read whole */
} daemon_t;

static bool owns(void *arg, const char *deploy_id)
{
    const daemon_t *p = arg;
    int32_t part;

    if (p->partition_count <= 0)
        return false;
    part = kd_partition_for_key(deploy_id, strlen(deploy_id), p->partition_count);
    return part >= 0 && part < MAX_PARTITIONS && p->owned[part];
}

/* An automatic rollback's id: on the failed deployment's own partition,
 * which this planner owns since it decided the failure. A UUID lands there
 * once in partition_count tries on average; the bound only guards a bug. */
static void new_id(void *arg, const char *deploy_id, char out[KD_UUID_LEN])
{
    const daemon_t *p = arg;
    int32_t want = p->partition_count > 0
                       ? kd_partition_for_key(deploy_id, strlen(deploy_id), p->partition_count)
                       : -1;

    for (int tries = 0; tries < 1000000; tries++) {
        kd_uuid_new(out);
        if (want < 0 || kd_partition_for_key(out, strlen(out), p->partition_count) == want)
            return;
    }
    kd_warn("%s: no rollback id on partition %d found; its results may go to another planner",
            deploy_id, want);
}

static void ctx_of(daemon_t *p, kd_core_ctx_t *c)
{
    memset(c, 0, sizeof *c);
    c->now_ms = kd_now_ms();
    c->self = kd_producer_self(p->producer);
    c->since_ms = p->since_ms;
    c->owns = owns;
    c->new_id = new_id;
    c->arg = p;
    c->hosts_read = KD_HOSTS_MAYBE_BEHIND;
}

/* Publishes one round: its records on the deployments topic first, all
 * acknowledged together, then its commands. A command is thus never out
 * before its record, and a round costs two waits for the broker, not one
 * per event (the idempotent producer keeps the order). */
static kd_status_t publish_round(void *arg, const kd_decisions_t *dec, char *err, size_t errsz)
{
    daemon_t *p = arg;
    kd_status_t st = KD_OK;

    for (int pass = 0; pass < 2 && st == KD_OK; pass++) {
        bool records = pass == 0, any = false;

        /* The commands go out signed as one batch: a signature per
         * thousand commands instead of one each. */
        if (!records)
            kd_producer_batch_begin(p->producer);
        for (size_t i = 0; i < dec->count && st == KD_OK; i++) {
            const kd_decision_t *x = &dec->items[i];

            if ((x->topic == KD_TOPIC_DEPLOYMENTS) != records)
                continue;
            st = kd_producer_send_encoded(p->producer, x->topic, x->key, x->env, x->bytes,
                                          x->len, false, err, errsz);
            any = true;
        }
        if (!records) {
            char why[512];
            kd_status_t est = kd_producer_batch_end(p->producer, why, sizeof why);

            if (st == KD_OK && est != KD_OK)
                st = kd_err(err, errsz, est, "%s", why);
        }
        if (st == KD_OK && any)
            st = kd_producer_flush(p->producer, FLUSH_TIMEOUT_MS, err, errsz);
        if (st == KD_OK && any && !records)
            p->commanded_ms = kd_mono_ms();
        if (st != KD_OK)
            kd_deploy_metrics_publish_error(p->dm, records ? KD_TOPIC_DEPLOYMENTS : KD_TOPIC_STEPS);
    }
    /* Acknowledged: what happened, for metrics and webhooks. */
    for (size_t i = 0; st == KD_OK && i < dec->count; i++)
        if (dec->items[i].topic == KD_TOPIC_DEPLOYMENTS) {
            kd_deploy_metrics_event(p->dm, dec->items[i].env, false);
            kd_notify_event(p->notify, dec->items[i].env);
        }
    return st;
}

static void refresh(void *arg, kd_core_ctx_t *c)
{
    ctx_of(arg, c);
}

/* Publishes dec. A round the broker did not take is tried again with
 * backoff for as long as the failure may pass (the broker is down or
 * moving leaders): the planner waits out an outage instead of exiting.
 * One that can never pass (too large) is given up at once. */
static kd_status_t execute(daemon_t *p, kd_decisions_t *dec, char *err, size_t errsz)
{
    int delay_ms = RETRY_FIRST_MS;
    kd_status_t st;

    while ((st = kd_core_execute(p->model, dec, refresh, publish_round, p, err, errsz)) != KD_OK &&
           st != KD_ETOOLARGE && st != KD_ENOMEM && !*p->stop) {
        kd_warn("publishing %zu decision(s) failed: %s; trying again in %d ms", dec->count, err,
                delay_ms);
        for (int slept = 0; slept < delay_ms && !*p->stop; slept += 100)
            kd_sleep_ms(100);
        delay_ms = delay_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : delay_ms * 2;
    }
    kd_decisions_clear(dec);
    return st;
}

static void on_rebalance(void *opaque, bool assigned, const int32_t *parts, size_t n)
{
    daemon_t *p = opaque;

    if (!assigned)
        memset(p->owned, 0, sizeof p->owned);
    for (size_t i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < MAX_PARTITIONS)
            p->owned[parts[i]] = assigned;
    p->rebalanced = true;
    p->since_ms = kd_now_ms();
    kd_info("%s %zu partition(s)", assigned ? "took" : "gave back", n);
}

/* Applies the deployments topic's new events: other planners' decisions,
 * and on start-up the whole history. Own events were applied when made. */
static kd_status_t follow_history(daemon_t *p, kd_consumer_t *history, int timeout_ms,
                                  char *err, size_t errsz)
{
    kd_message_t *m;
    kd_status_t st;

    while ((st = kd_consumer_poll(history, timeout_ms, &m, err, errsz)) == KD_OK && m) {
        kd_envelope_t *env = NULL;
        char why[512];

        if (kd_message_decode(history, m, &env, why, sizeof why) != KD_OK)
            kd_warn("%s partition %d offset %lld: skipped: %s", kd_topic_suffix(m->topic),
                    m->partition, (long long)m->offset, why);
        else if (strcmp(env->producer, kd_producer_self(p->producer)) != 0) {
            kd_model_apply(p->model, env);
            kd_notify_learn(p->notify, env); /* names for webhook texts */
        }
        kd_envelope_free(env);
        kd_message_free(m);
        timeout_ms = 0;
    }
    return st;
}

static kd_status_t load_history(daemon_t *p, kd_consumer_t *history,
                                volatile sig_atomic_t *stop, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;
    int64_t start = kd_mono_ms();

    while (st == KD_OK && !kd_consumer_at_end(history) && !*stop)
        st = follow_history(p, history, 100, err, errsz);
    kd_info("history read in %lld ms (%zu deployments)", (long long)(kd_mono_ms() - start),
            kd_model_count(p->model));
    return st;
}

/* Reads the history (with the hosts topic) up to the end the broker has
 * now, for at most HOSTS_CATCH_UP_MS: a worker that announced itself just
 * before an operator's create is then known. Usually one round trip: the
 * history is followed all along and is rarely behind. */
static kd_status_t catch_up_hosts(daemon_t *p, char *err, size_t errsz)
{
    int64_t deadline = kd_mono_ms() + HOSTS_CATCH_UP_MS;
    kd_status_t st = KD_OK;
    bool at_end = false;
    char why[512];

    while (st == KD_OK && !*p->stop && kd_mono_ms() < deadline) {
        if (kd_consumer_read_to_end(p->history, KD_TOPIC_HOSTS, 1000, &at_end, why,
                                    sizeof why) != KD_OK) {
            kd_warn("hosts topic: %s", why);
            at_end = false;
        }
        if (at_end)
            return KD_OK;
        st = follow_history(p, p->history, 100, err, errsz);
    }
    if (st == KD_OK)
        kd_warn("the hosts topic was not read to its end in %d ms: deciding with what was read",
                HOSTS_CATCH_UP_MS);
    return st;
}

/* A request: decided and published on its own, against a model that holds
 * every decision before it (two creates for one application must see each
 * other). */
static kd_status_t handle_request(daemon_t *p, const kd_envelope_t *env, char *err,
                                  size_t errsz)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;
    kd_status_t st;

    kd_decisions_init(&dec);
    ctx_of(p, &c);
    kd_core_request(p->model, &c, env, &dec);
    if (dec.wait_for_hosts) {
        /* Named hosts not announced yet: maybe they were, and the history
         * has not brought it. Asked again once it has, and then final. */
        kd_decisions_clear(&dec);
        if ((st = catch_up_hosts(p, err, errsz)) != KD_OK)
            return st;
        ctx_of(p, &c);
        c.hosts_read = KD_HOSTS_READ;
        kd_core_request(p->model, &c, env, &dec);
    }
    st = execute(p, &dec, err, errsz);
    if (st == KD_ETOOLARGE) {
        /* Never publishable: said to the one who asked, and not taken
         * again at every restart. */
        char reason[1200];

        snprintf(reason, sizeof reason, "the planner could not publish its decisions: %s", err);
        kd_decisions_init(&dec);
        ctx_of(p, &c);
        kd_core_reject(&c, env, reason, &dec);
        st = execute(p, &dec, err, errsz);
    }
    return st;
}

/* A batch of results: the deployments they touched, driven once each and
 * everything decided published as one round, and per partition the message
 * to commit after that. */
typedef struct batch {
    kd_idset_t touched;
    kd_message_t *last[2][MAX_PARTITIONS]; /* per topic: the message to commit */
} batch_t;

static kd_status_t batch_drive(daemon_t *p, batch_t *b, char *err, size_t errsz)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;
    kd_status_t st;

    if (!b->touched.count)
        return KD_OK;
    kd_decisions_init(&dec);
    ctx_of(p, &c);
    for (size_t i = 0; i < b->touched.count; i++)
        kd_core_drive(p->model, &c, b->touched.ids[i], &dec);
    kd_idset_clear(&b->touched);
    st = execute(p, &dec, err, errsz);
    if (st == KD_ETOOLARGE) {
        kd_error("dropped decisions that cannot be published: %s", err);
        st = KD_OK;
    }
    return st;
}

/* Keeps m as the message to commit for its topic and partition. */
static void batch_keep(batch_t *b, kd_message_t *m)
{
    int t = m->topic == KD_TOPIC_REQUESTS ? 0 : 1;

    if (m->partition < 0 || m->partition >= MAX_PARTITIONS) {
        kd_message_free(m);
        return;
    }
    kd_message_free(b->last[t][m->partition]);
    b->last[t][m->partition] = m;
}

/* Commits (when st is KD_OK) and frees the kept messages. */
static kd_status_t batch_commit(batch_t *b, kd_consumer_t *group, kd_status_t st, char *err,
                                size_t errsz)
{
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < MAX_PARTITIONS; i++) {
            if (!b->last[t][i])
                continue;
            if (st == KD_OK)
                st = kd_consumer_commit(group, b->last[t][i], err, errsz);
            kd_message_free(b->last[t][i]);
            b->last[t][i] = NULL;
        }
    return st;
}

/* Takes what the consumer has now, up to BATCH_MAX messages: results are
 * applied as they come and their deployments driven once, together, so a
 * fleet's answers cost a few rounds, not one round each. Requests are
 * decided one by one, in order. Offsets are committed once everything
 * the batch decided is published: a crash before brings it all again, and
 * the model makes repeats no-ops. */
static kd_status_t take_batch(daemon_t *p, kd_consumer_t *group, batch_t *b, int timeout_ms,
                              char *err, size_t errsz)
{
    kd_message_t *m = NULL;
    kd_status_t st = kd_consumer_poll(group, timeout_ms, &m, err, errsz);

    if (m)
        p->heard_ms = kd_mono_ms();
    for (size_t n = 0; st == KD_OK && m; n++) {
        kd_envelope_t *env = NULL;
        char why[1024];

        if (kd_message_decode(group, m, &env, why, sizeof why) != KD_OK) {
            kd_error("%s partition %d offset %lld: skipping a malformed message: %s",
                     kd_topic_suffix(m->topic), m->partition, (long long)m->offset, why);
        } else if (m->topic == KD_TOPIC_REQUESTS) {
            if ((st = batch_drive(p, b, err, errsz)) == KD_OK)
                st = handle_request(p, env, err, errsz);
        } else if (env->deploy_id && *env->deploy_id) {
            /* Timeouts run on this planner's clock: a worker's skewed
             * clock must not make a step look silent or fresh. */
            env->ts_ms = kd_now_ms();
            kd_model_apply(p->model, env);
            kd_deploy_metrics_event(p->dm, env, false);
            st = kd_idset_add(&b->touched, env->deploy_id);
        }
        kd_envelope_free(env);
        batch_keep(b, m);
        m = NULL;
        if (st == KD_OK && n + 1 < BATCH_MAX)
            st = kd_consumer_poll(group, 0, &m, err, errsz);
    }
    kd_message_free(m);
    if (st == KD_OK)
        st = batch_drive(p, b, err, errsz);
    kd_idset_clear(&b->touched);
    /* Not committed on failure (stopping, out of memory): it comes again. */
    return batch_commit(b, group, st, err, errsz);
}

static kd_status_t take_over(daemon_t *p, char *err, size_t errsz)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;

    kd_decisions_init(&dec);
    ctx_of(p, &c);
    kd_core_takeover(p->model, &c, &dec);
    return execute(p, &dec, err, errsz);
}

/* Hosts in flight and active deployments, for the gauges and for
 * hurrying the consumer: once a second, from this thread (the model is not
 * for the metrics server's). */
static void gauges(daemon_t *p, kd_consumer_t *group)
{
    unsigned hosts = 0, active = 0;
    int64_t lag;
    char err[256];

    if (kd_mono_ms() - p->last_gauges_ms < 1000)
        return;
    p->last_gauges_ms = kd_mono_ms();
    for (const kd_deploy_t *d = kd_model_first(p->model); d; d = kd_model_next(d)) {
        kd_host_counts_t n;

        if (kd_deploy_finished(d) || !owns(p, kd_deploy_id(d)))
            continue;
        kd_deploy_counts(d, &n);
        hosts += (unsigned)n.in_flight;
        active++;
    }
    p->in_flight = hosts;
    if (!p->dm)
        return;
    kd_deploy_metrics_in_flight(p->dm, hosts, active);
    if (kd_consumer_lag(group, KD_TOPIC_REQUESTS, &lag, err, sizeof err) == KD_OK)
        kd_deploy_metrics_lag(p->dm, KD_TOPIC_REQUESTS, lag);
    if (kd_consumer_lag(group, KD_TOPIC_RESULTS, &lag, err, sizeof err) == KD_OK)
        kd_deploy_metrics_lag(p->dm, KD_TOPIC_RESULTS, lag);
}

/* Whether the brokers answer. While they do not, workers' results and
 * heartbeats cannot reach the planner, so silence says nothing about a host:
 * no timeout is decided, and when they answer again the silence timers
 * restart, as after a takeover. (The deployment timeout runs on.) */
static bool brokers_answer(daemon_t *p, kd_consumer_t *group)
{
    int64_t now = kd_mono_ms();
    char why[256];

    if (now - p->heard_ms >= QUIET_MS && now - p->probed_ms >= QUIET_MS) {
        p->probed_ms = now;
        if (kd_consumer_probe(group, KD_TOPIC_RESULTS, PROBE_TIMEOUT_MS, why, sizeof why) ==
            KD_OK)
            p->heard_ms = kd_mono_ms();
        else if (!p->outage_ms) {
            p->outage_ms = now;
            kd_warn("the brokers do not answer (%s): no host times out until they do", why);
        }
    }
    if (p->outage_ms && p->heard_ms > p->outage_ms) {
        kd_warn("the brokers answer again after %lld s: host timers restart",
                (long long)((p->heard_ms - p->outage_ms) / 1000));
        p->outage_ms = 0;
        p->since_ms = kd_now_ms();
    }
    return p->outage_ms == 0;
}

static kd_status_t tick(daemon_t *p, kd_consumer_t *group, char *err, size_t errsz)
{
    kd_decisions_t dec;
    kd_core_ctx_t c;

    gauges(p, group);
    if (!brokers_answer(p, group))
        return KD_OK;

    kd_decisions_init(&dec);
    ctx_of(p, &c);
    kd_core_tick(p->model, &c, &dec);
    return execute(p, &dec, err, errsz);
}

static kd_status_t loop(daemon_t *p, const kd_bus_conf_t *conf, const kd_daemon_opts_t *o,
                        volatile sig_atomic_t *stop, char *err, size_t errsz)
{
    /* The deployments topic is the planner's state; the hosts topic says
     * which workers announced themselves (a rollback skips the gone). */
    kd_topic_t hist_topics[] = {KD_TOPIC_DEPLOYMENTS, KD_TOPIC_HOSTS};
    kd_topic_t topics[] = {KD_TOPIC_REQUESTS, KD_TOPIC_RESULTS};
    kd_consumer_opts_t ho = {.topics = hist_topics, .topic_count = 2, .read_all = true};
    kd_consumer_opts_t go = {.group_id = o->group, .topics = topics, .topic_count = 2,
                             .on_rebalance = on_rebalance, .opaque = p,
                             .instance_id = o->instance_id, .eager = true};
    kd_consumer_t *history = NULL, *group = NULL;
    batch_t batch = {0};
    int64_t last_tick = 0;
    kd_status_t st;

    if ((st = kd_consumer_new(conf, &ho, &history, err, errsz)) != KD_OK ||
        (st = kd_consumer_topic_partitions(history, KD_TOPIC_REQUESTS, &p->partition_count,
                                           err, errsz)) != KD_OK ||
        (st = load_history(p, history, stop, err, errsz)) != KD_OK ||
        (st = kd_consumer_new(conf, &go, &group, err, errsz)) != KD_OK)
        goto out;
    p->history = history;
    kd_info("planning (%d partitions, group %s)", p->partition_count, o->group);
    while (!*stop && st == KD_OK) {
        /* Results are due while hosts are in flight, and just after steps
         * were sent (the count is a second old). */
        kd_consumer_hurry(group, p->in_flight > 0 || kd_mono_ms() - p->commanded_ms < 1000);
        if ((st = follow_history(p, history, 0, err, errsz)) != KD_OK ||
            (st = take_batch(p, group, &batch, 50, err, errsz)) != KD_OK)
            break;
        if (p->rebalanced) {
            p->rebalanced = false;
            st = take_over(p, err, errsz);
        }
        if (st == KD_OK && kd_mono_ms() - last_tick >= TICK_MS) {
            last_tick = kd_mono_ms();
            st = tick(p, group, err, errsz);
        }
    }
out:
    p->history = NULL;
    kd_idset_free(&batch.touched);
    kd_consumer_free(group);
    kd_consumer_free(history);
    return st;
}

kd_status_t kd_daemon_run(const kd_bus_conf_t *conf, const kd_daemon_opts_t *opts,
                          volatile sig_atomic_t *stop, char *err, size_t errsz)
{
    daemon_t *p = calloc(1, sizeof *p);
    kd_status_t st;

    if (!p)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    p->stop = stop;
    p->dm = opts->deploy_metrics;
    p->notify = opts->notify;
    if ((st = kd_producer_new(conf, "planner", &p->producer, err, errsz)) == KD_OK) {
        if ((p->model = kd_model_new()))
            st = loop(p, conf, opts, stop, err, errsz);
        else
            st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    kd_producer_free(p->producer);
    kd_model_free(p->model);
    free(p);
    return st;
}
