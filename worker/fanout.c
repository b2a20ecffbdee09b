#include "fanout.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define OFFSET_BEGINNING (-2) /* librdkafka's RD_KAFKA_OFFSET_BEGINNING */

typedef struct queued {
    kd_message_t *m;
    struct queued *next;
} queued_t;

struct kd_fanout_host {
    const char *id;
    kd_consumer_t *handle;  /* the host's group: committed offsets, commits */
    int32_t partition;
    int64_t start;          /* messages before this offset were done before */
    pthread_mutex_t lock;
    pthread_cond_t ready;
    queued_t *head, *tail;
};

/* One partition's reader, serving the hosts that map to it. */
typedef struct reader {
    kd_fanout_t *f;
    int32_t partition;
    kd_consumer_t *c;
    pthread_t thread;
    bool started;
} reader_t;

struct kd_fanout {
    kd_fanout_host_t *hosts;
    size_t host_count;
    reader_t *readers;
    size_t reader_count;
    volatile sig_atomic_t *stop;
    pthread_mutex_t lock;    /* guards status and err: readers write, hosts read */
    kd_status_t status;      /* a reader's failure */
    char err[512];
};

static void push(kd_fanout_host_t *h, kd_message_t *m)
{
    queued_t *q = malloc(sizeof *q);

    if (!q) {
        kd_message_free(m); /* comes again after a restart: not committed */
        return;
    }
    q->m = m;
    q->next = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->tail)
        h->tail->next = q;
    else
        h->head = q;
    h->tail = q;
    pthread_cond_signal(&h->ready);
    pthread_mutex_unlock(&h->lock);
}

kd_message_t *kd_fanout_next(kd_fanout_host_t *h, int timeout_ms)
{
    struct timespec until;
    kd_message_t *m = NULL;
    queued_t *q;

    /* The condition variable keeps its default clock, CLOCK_REALTIME, so the
     * deadline is on that clock; a clock step can only skew this one wait. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->lock);
    /* A loop: a wakeup may be spurious. */
    while (!h->head)
        if (pthread_cond_timedwait(&h->ready, &h->lock, &until) == ETIMEDOUT)
            break;
    if ((q = h->head)) {
        h->head = q->next;
        if (!h->head)
            h->tail = NULL;
        m = q->m;
        free(q);
    }
    pthread_mutex_unlock(&h->lock);
    return m;
}

/* The host a message is for, among those of the reader's partition. The
 * key is the host id (DESIGN.md), so no decoding is needed to route. */
static kd_fanout_host_t *owner(reader_t *r, const kd_message_t *m)
{
    for (size_t i = 0; i < r->f->host_count; i++) {
        kd_fanout_host_t *h = &r->f->hosts[i];

        if (h->partition == r->partition && strcmp(h->id, m->key) == 0)
            return h;
    }
    return NULL;
}

static void *read_partition(void *arg)
{
    reader_t *r = arg;
    char err[512] = "";

    while (!*r->f->stop) {
        kd_message_t *m = NULL;
        kd_fanout_host_t *h;

        /* A short poll, so that a stop is seen within 200 ms. */
        if (kd_consumer_poll(r->c, 200, &m, err, sizeof err) != KD_OK) {
            pthread_mutex_lock(&r->f->lock);
            r->f->status = KD_EKAFKA;
            snprintf(r->f->err, sizeof r->f->err, "%s", err);
            pthread_mutex_unlock(&r->f->lock);
            /* The hosts find it through kd_fanout_status when their queue
             * runs dry, and stop; the reader cannot go on without a bus. */
            break;
        }
        if (!m)
            continue;
        /* Another host's step, or one this host had done before. */
        if (!(h = owner(r, m)) || m->offset < h->start)
            kd_message_free(m);
        else
            push(h, m);
    }
    return NULL;
}

static kd_status_t open_host(kd_fanout_host_t *h, const kd_bus_conf_t *conf, char *err,
                             size_t errsz)
{
    char group[300];
    kd_topic_t topic = KD_TOPIC_STEPS;
    kd_consumer_opts_t o = {.group_id = group, .topics = &topic, .topic_count = 1,
                            .partition_key = h->id, .commit_only = true};
    kd_status_t st;

    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->ready, NULL);
    /* One group per host, not per process: the committed offset says what
     * this host has done, whichever process serves it next time. */
    snprintf(group, sizeof group, "kdeploy-worker-%s", h->id);
    if ((st = kd_consumer_new(conf, &o, &h->handle, err, errsz)) != KD_OK ||
        (st = kd_consumer_committed(h->handle, &h->start, err, errsz)) != KD_OK)
        return st;
    if (h->start < 0)
        h->start = 0; /* nothing committed yet: every step on the log is new */
    /* The partition comes from the same murmur2 mapping as the planner's
     * producer, so the reader of this partition sees all of this host's steps. */
    h->partition = kd_consumer_partition(h->handle);
    return KD_OK;
}

/* One reader per partition, from the earliest offset any of its hosts
 * still needs. */
static kd_status_t open_reader(kd_fanout_t *f, int32_t partition, const kd_bus_conf_t *conf,
                               char *err, size_t errsz)
{
    reader_t *r = &f->readers[f->reader_count];
    kd_topic_t topic = KD_TOPIC_STEPS;
    /* The reader's group is only a name librdkafka requires: the reader is
     * assigned its partition, never joins, never commits. The hosts commit. */
    kd_consumer_opts_t o = {.group_id = "kdeploy-worker-reader", .topics = &topic,
                            .topic_count = 1, .from_offset = true, .offset = INT64_MAX};
    kd_status_t st;

    for (size_t i = 0; i < f->host_count; i++) {
        kd_fanout_host_t *h = &f->hosts[i];

        if (h->partition != partition)
            continue;
        /* The host furthest behind sets the start; the others drop what they had
         * done before (read_partition). */
        if (h->start < o.offset)
            o.offset = h->start;
        /* Any host of the partition will do: they all map to it. */
        if (!o.partition_key)
            o.partition_key = h->id;
    }
    /* A host that never committed needs all that is left of the log. */
    if (o.offset <= 0)
        o.offset = OFFSET_BEGINNING;
    r->f = f;
    r->partition = partition;
    if ((st = kd_consumer_new(conf, &o, &r->c, err, errsz)) != KD_OK)
        return st;
    f->reader_count++;
    if (pthread_create(&r->thread, NULL, read_partition, r) != 0)
        return kd_err(err, errsz, KD_ENOMEM, "cannot start a reader thread");
    r->started = true;
    return KD_OK;
}

static bool has_reader(const kd_fanout_t *f, int32_t partition)
{
    for (size_t i = 0; i < f->reader_count; i++)
        if (f->readers[i].partition == partition)
            return true;
    return false;
}

kd_status_t kd_fanout_start(const kd_bus_conf_t *conf, const char *const *host_ids, size_t n,
                            volatile sig_atomic_t *stop, kd_fanout_t **out, char *err,
                            size_t errsz)
{
    kd_fanout_t *f = calloc(1, sizeof *f);
    kd_status_t st = KD_OK;

    if (!f || !(f->hosts = calloc(n, sizeof *f->hosts)) ||
        !(f->readers = calloc(n, sizeof *f->readers))) {
        kd_fanout_free(f);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    f->host_count = n;
    f->stop = stop;
    pthread_mutex_init(&f->lock, NULL);
    /* Every host's committed offset first: a reader starts from the lowest of
     * its partition's hosts, so no reader may start before all are known. */
    for (size_t i = 0; i < n && st == KD_OK; i++) {
        f->hosts[i].id = host_ids[i];
        st = open_host(&f->hosts[i], conf, err, errsz);
    }
    for (size_t i = 0; i < n && st == KD_OK; i++)
        if (!has_reader(f, f->hosts[i].partition))
            st = open_reader(f, f->hosts[i].partition, conf, err, errsz);
    if (st != KD_OK) {
        *stop = 1; /* the readers already started end, so the free can join them */
        kd_fanout_free(f);
        return st;
    }
    kd_info("reading the steps of %zu host(s) through %zu partition reader(s)", n,
            f->reader_count);
    *out = f;
    return KD_OK;
}

kd_fanout_host_t *kd_fanout_host(kd_fanout_t *f, size_t i)
{
    return &f->hosts[i];
}

kd_consumer_t *kd_fanout_handle(kd_fanout_host_t *h)
{
    return h->handle;
}

kd_status_t kd_fanout_status(kd_fanout_t *f, char *err, size_t errsz)
{
    kd_status_t st;

    pthread_mutex_lock(&f->lock);
    st = f->status;
    if (st != KD_OK)
        kd_err(err, errsz, st, "%s", f->err);
    pthread_mutex_unlock(&f->lock);
    return st;
}

void kd_fanout_free(kd_fanout_t *f)
{
    if (!f)
        return;
    /* Readers first (they feed the queues), then what is left queued. */
    for (size_t i = 0; i < f->reader_count; i++)
        if (f->readers[i].started)
            pthread_join(f->readers[i].thread, NULL);
    for (size_t i = 0; f->hosts && i < f->host_count; i++) {
        kd_message_t *m;

        while ((m = kd_fanout_next(&f->hosts[i], 0)))
            kd_message_free(m);
    }
    for (size_t i = 0; i < f->reader_count; i++)
        kd_consumer_free(f->readers[i].c);
    for (size_t i = 0; f->hosts && i < f->host_count; i++) {
        kd_consumer_free(f->hosts[i].handle);
        pthread_mutex_destroy(&f->hosts[i].lock);
        pthread_cond_destroy(&f->hosts[i].ready);
    }
    pthread_mutex_destroy(&f->lock);
    free(f->readers);
    free(f->hosts);
    free(f);
}
