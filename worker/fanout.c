#include "fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "log.h"
#include "partition.h"
#include "ptrmap.h"

#define OFFSET_BEGINNING (-2) /* librdkafka's RD_KAFKA_OFFSET_BEGINNING */
/* How often the reader looks at the stop flag, at most: a SIGTERM is seen
 * within this, and it is the reader's only wakeup of its own. */
#define READER_POLL_MS 500
/* A pool thread with nothing to do for this long ends. */
#define POOL_IDLE_MS 10000
/* After a host's step, its next one (or the next batch's first) is due
 * within a planner's round trip: the reader hurries this long after the
 * last step ended, and while any step runs. */
#define HURRY_AFTER_STEP_MS 1000
/* While hurrying, how often the reader looks whether it still should. */
#define HURRY_POLL_MS 100

typedef struct queued {
    kd_message_t *m;
    struct queued *next;
} queued_t;

struct kd_fanout_host {
    kd_fanout_t *f;
    const char *id;
    kd_journal_t *journal;
    void *host;              /* the caller's, for serve */
    char *group;             /* kdeploy-worker-<id> */
    int32_t partition;
    int64_t start;           /* messages before this offset were done before */
    /* Under the fan-out's lock: */
    queued_t *head, *tail;
    bool scheduled;          /* on the ready list, or being served */
    bool failed;             /* its serve failed: served no more (the process stops) */
    kd_fanout_host_t *next_ready;
};

struct kd_fanout {
    kd_fanout_host_t *hosts;
    size_t host_count;
    kd_ptrmap_t *by_id;
    kd_consumer_t *reader;
    kd_producer_t *producer;
    kd_fanout_serve_fn serve;
    volatile sig_atomic_t *stop;
    size_t max_threads;
    pthread_mutex_t lock;
    pthread_cond_t work;     /* a host is ready, or stopping */
    pthread_cond_t gone;     /* the last pool thread ended */
    kd_fanout_host_t *ready_head, *ready_tail;
    size_t threads, idle;
    size_t busy;             /* hosts scheduled: queued or being served */
    int64_t step_ended_ms;   /* monotonic: a host's last serve ended */
    bool stopping;
    kd_status_t status;      /* the first failure */
    char err[512];
};

/* Called with the lock held. */
static void fail_locked(kd_fanout_t *f, kd_status_t st, const char *why)
{
    if (f->status == KD_OK) {
        f->status = st;
        snprintf(f->err, sizeof f->err, "%s", why);
    }
    *f->stop = 1; /* one host failing stops the process: the supervisor restarts it */
}

static kd_fanout_host_t *pop_ready(kd_fanout_t *f)
{
    kd_fanout_host_t *h = f->ready_head;

    if (h) {
        f->ready_head = h->next_ready;
        if (!f->ready_head)
            f->ready_tail = NULL;
        h->next_ready = NULL;
    }
    return h;
}

static kd_message_t *pop_message(kd_fanout_host_t *h)
{
    queued_t *q = h->head;
    kd_message_t *m;

    if (!q)
        return NULL;
    h->head = q->next;
    if (!h->head)
        h->tail = NULL;
    m = q->m;
    free(q);
    return m;
}

/* Serves h's messages in order until its queue is empty. Called and
 * returns with the lock held; serve runs without it. */
static void serve_host(kd_fanout_t *f, kd_fanout_host_t *h)
{
    kd_message_t *m;

    while (!f->stopping && !h->failed && (m = pop_message(h))) {
        char err[512] = "";
        kd_status_t st;

        pthread_mutex_unlock(&f->lock);
        st = f->serve(h->host, h, m, err, sizeof err);
        kd_message_free(m);
        pthread_mutex_lock(&f->lock);
        /* The host's later steps wait: done after a step that failed to be
         * recorded, they would move its offset past it. */
        if (st != KD_OK) {
            h->failed = true;
            fail_locked(f, st, err);
        }
    }
    h->scheduled = false;
    f->busy--;
    f->step_ended_ms = kd_mono_ms();
}

static void deadline_in(struct timespec *until, int ms)
{
    /* The condition variable keeps its default clock, CLOCK_REALTIME. */
    clock_gettime(CLOCK_REALTIME, until);
    until->tv_sec += ms / 1000;
    until->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until->tv_nsec >= 1000000000L) {
        until->tv_sec++;
        until->tv_nsec -= 1000000000L;
    }
}

static void *pool_thread(void *arg)
{
    kd_fanout_t *f = arg;
    kd_fanout_host_t *h;

    pthread_mutex_lock(&f->lock);
    for (;;) {
        bool timed_out = false;

        while (!f->ready_head && !f->stopping && !timed_out) {
            struct timespec until;

            deadline_in(&until, POOL_IDLE_MS);
            f->idle++;
            timed_out = pthread_cond_timedwait(&f->work, &f->lock, &until) == ETIMEDOUT;
            f->idle--;
        }
        if (f->stopping || !(h = pop_ready(f)))
            break; /* stopping, or idle long enough: an idle host holds no thread */
        serve_host(f, h);
    }
    if (--f->threads == 0)
        pthread_cond_broadcast(&f->gone);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* A thread for the ready hosts, if none is idle and the pool may grow.
 * Called with the lock held. */
static void wake_pool(kd_fanout_t *f)
{
    pthread_attr_t attr;
    pthread_t t;

    if (f->idle > 0) {
        pthread_cond_signal(&f->work);
        return;
    }
    if (f->threads >= f->max_threads)
        return; /* a busy thread takes the host when it is done */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, pool_thread, f) == 0)
        f->threads++;
    else if (f->threads == 0)
        fail_locked(f, KD_ENOMEM, "cannot start a thread to serve the hosts");
    pthread_attr_destroy(&attr);
}

static void dispatch(kd_fanout_t *f, kd_fanout_host_t *h, kd_message_t *m)
{
    queued_t *q = malloc(sizeof *q);

    if (!q) {
        /* The process stops, and the host takes no later step meanwhile:
         * one done after it would record its offset past this one. */
        kd_message_free(m);
        pthread_mutex_lock(&f->lock);
        h->failed = true;
        fail_locked(f, KD_ENOMEM, "out of memory");
        pthread_mutex_unlock(&f->lock);
        return;
    }
    q->m = m;
    q->next = NULL;
    pthread_mutex_lock(&f->lock);
    if (h->tail)
        h->tail->next = q;
    else
        h->head = q;
    h->tail = q;
    if (!h->scheduled && !h->failed) {
        h->scheduled = true;
        f->busy++;
        if (f->ready_tail)
            f->ready_tail->next_ready = h;
        else
            f->ready_head = h;
        f->ready_tail = h;
        wake_pool(f);
    }
    pthread_mutex_unlock(&f->lock);
}

kd_status_t kd_fanout_run(kd_fanout_t *f, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;
    char why[512] = "";

    while (!*f->stop) {
        kd_message_t *m = NULL;
        kd_fanout_host_t *h;
        bool hurry;

        pthread_mutex_lock(&f->lock);
        hurry = f->busy > 0 || kd_mono_ms() - f->step_ended_ms < HURRY_AFTER_STEP_MS;
        pthread_mutex_unlock(&f->lock);
        kd_consumer_hurry(f->reader, hurry);
        if (kd_consumer_poll(f->reader, hurry ? HURRY_POLL_MS : READER_POLL_MS, &m, why,
                             sizeof why) != KD_OK) {
            pthread_mutex_lock(&f->lock);
            fail_locked(f, KD_EKAFKA, why);
            pthread_mutex_unlock(&f->lock);
            break;
        }
        if (!m)
            continue;
        /* The key is the host id (DESIGN.md): routed without decoding. A
         * step of another host, or one this host had done before, is dropped. */
        h = kd_ptrmap_get(f->by_id, m->key);
        if (!h || h->partition != m->partition || m->offset < h->start)
            kd_message_free(m);
        else
            dispatch(f, h, m);
    }
    /* The pool ends with the message each thread holds: a running hook sees
     * the stop flag too, and ends. What is still queued comes again. */
    pthread_mutex_lock(&f->lock);
    f->stopping = true;
    pthread_cond_broadcast(&f->work);
    while (f->threads > 0)
        pthread_cond_wait(&f->gone, &f->lock);
    if ((st = f->status) != KD_OK)
        kd_err(err, errsz, st, "%s", f->err);
    pthread_mutex_unlock(&f->lock);
    return st;
}

/* Each host's partition, group and start: the further of its journal's
 * offset and its group's committed offset (both only ever record done
 * steps; the group is the one left when the journal is new or lost). */
static kd_status_t place_hosts(kd_fanout_t *f, const kd_fanout_opts_t *o, int partitions,
                               char *err, size_t errsz)
{
    const char **groups = calloc(f->host_count + 1, sizeof *groups);
    int32_t *parts = calloc(f->host_count + 1, sizeof *parts);
    int64_t *committed = calloc(f->host_count + 1, sizeof *committed);
    kd_status_t st = KD_OK;

    if (!groups || !parts || !committed) {
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < f->host_count && st == KD_OK; i++) {
        kd_fanout_host_t *h = &f->hosts[i];
        size_t len = strlen(o->host_ids[i]) + sizeof "kdeploy-worker-";

        h->f = f;
        h->id = o->host_ids[i];
        h->journal = o->journals[i];
        h->host = o->hosts[i];
        /* The planner's producer places a key with the same murmur2 mapping. */
        h->partition = kd_partition_for_key(h->id, strlen(h->id), partitions);
        if (!(h->group = malloc(len)) || kd_ptrmap_set(f->by_id, h->id, h) != KD_OK) {
            st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
            break;
        }
        snprintf(h->group, len, "kdeploy-worker-%s", h->id);
        groups[i] = h->group;
        parts[i] = h->partition;
    }
    if (st == KD_OK)
        st = kd_producer_group_offsets(f->producer, KD_TOPIC_STEPS, groups, parts, f->host_count,
                                       committed, err, errsz);
    for (size_t i = 0; i < f->host_count && st == KD_OK; i++) {
        int64_t journaled = kd_journal_offset(f->hosts[i].journal);

        f->hosts[i].start = journaled > committed[i] ? journaled : committed[i];
        if (f->hosts[i].start < 0)
            f->hosts[i].start = 0; /* nothing done yet: every step on the log is new */
    }
out:
    free(groups);
    free(parts);
    free(committed);
    return st;
}

/* Every partition with a host, from the lowest start among its hosts. */
static kd_status_t assign_reader(kd_fanout_t *f, int partitions, char *err, size_t errsz)
{
    int32_t *parts = calloc((size_t)partitions, sizeof *parts);
    int64_t *from = calloc((size_t)partitions, sizeof *from);
    size_t n = 0;
    kd_status_t st;

    if (!parts || !from) {
        free(parts);
        free(from);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    for (int p = 0; p < partitions; p++) {
        int64_t lowest = INT64_MAX;

        for (size_t i = 0; i < f->host_count; i++)
            if (f->hosts[i].partition == p && f->hosts[i].start < lowest)
                lowest = f->hosts[i].start;
        if (lowest == INT64_MAX)
            continue;
        parts[n] = p;
        /* A host that never did a step needs all that is left of the log. */
        from[n++] = lowest <= 0 ? OFFSET_BEGINNING : lowest;
    }
    st = kd_consumer_assign(f->reader, parts, from, n, err, errsz);
    if (st == KD_OK)
        kd_info("reading the steps of %zu host(s) from %zu partition(s) through one consumer",
                f->host_count, n);
    free(parts);
    free(from);
    return st;
}

kd_status_t kd_fanout_start(const kd_fanout_opts_t *o, kd_fanout_t **out, char *err,
                            size_t errsz)
{
    kd_topic_t topic = KD_TOPIC_STEPS;
    /* The reader's group is only a name librdkafka requires: it never joins
     * and never commits; the hosts' groups hold their offsets. */
    kd_consumer_opts_t co = {.group_id = "kdeploy-worker-reader", .topics = &topic,
                             .topic_count = 1, .manual = true, .eager = true};
    kd_fanout_t *f = calloc(1, sizeof *f);
    int partitions = 0;
    kd_status_t st;

    if (!f)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->work, NULL);
    pthread_cond_init(&f->gone, NULL);
    if (!(f->hosts = calloc(o->count + 1, sizeof *f->hosts)) || !(f->by_id = kd_ptrmap_new())) {
        kd_fanout_free(f);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    f->host_count = o->count;
    f->producer = o->producer;
    f->serve = o->serve;
    f->stop = o->stop;
    f->max_threads = o->max_threads ? o->max_threads : o->count;
    f->step_ended_ms = kd_mono_ms() - HURRY_AFTER_STEP_MS;
    if ((st = kd_consumer_new(o->conf, &co, &f->reader, err, errsz)) != KD_OK ||
        (st = kd_consumer_topic_partitions(f->reader, KD_TOPIC_STEPS, &partitions, err,
                                           errsz)) != KD_OK ||
        (st = place_hosts(f, o, partitions, err, errsz)) != KD_OK ||
        (st = assign_reader(f, partitions, err, errsz)) != KD_OK) {
        kd_fanout_free(f);
        return st;
    }
    *out = f;
    return KD_OK;
}

kd_consumer_t *kd_fanout_handle(kd_fanout_host_t *h)
{
    return h->f->reader;
}

int32_t kd_fanout_partition(const kd_fanout_host_t *h)
{
    return h->partition;
}

kd_status_t kd_fanout_done(kd_fanout_host_t *h, int64_t next_offset, char *err, size_t errsz)
{
    kd_status_t st = kd_journal_set_offset(h->journal, next_offset, err, errsz);

    if (st != KD_OK)
        return st;
    /* The group's copy is for a host that comes back without this journal;
     * the journal is what this process resumes from. */
    return kd_producer_commit_group(h->f->producer, h->group, KD_TOPIC_STEPS, h->partition,
                                    next_offset, err, errsz);
}

void kd_fanout_free(kd_fanout_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->hosts && i < f->host_count; i++) {
        kd_message_t *m;

        while ((m = pop_message(&f->hosts[i])))
            kd_message_free(m);
        free(f->hosts[i].group);
    }
    kd_consumer_free(f->reader);
    kd_ptrmap_free(f->by_id);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->work);
    pthread_cond_destroy(&f->gone);
    free(f->hosts);
    free(f);
}
