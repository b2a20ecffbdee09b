/* The steps of every host a worker process serves, read through one
 * consumer and handed to the hosts' code by a pool of threads.
 *
 * One consumer reads every partition the hosts map to, from the lowest
 * offset any of them still needs, and routes each message by its key (the
 * host id). A host's position is its own: kept in its journal, and also
 * committed to its consumer group kdeploy-worker-<host> through the
 * producer's handle, so a host moved without its journal, or a worker
 * upgraded from the layout with a handle per host, resumes there too. A
 * host with steps waiting is served by a pool thread, one message at a
 * time and in order; an idle host holds no thread and no Kafka handle. */
#ifndef KD_FANOUT_H
#define KD_FANOUT_H

#include <signal.h>
#include <stddef.h>

#include "bus.h"
#include "journal.h"
#include "status.h"

typedef struct kd_fanout kd_fanout_t;

/* One host's end of the fan-out: its queue and its position. */
typedef struct kd_fanout_host kd_fanout_host_t;

/* Handles one step message of a host (m is freed after it returns); feed
 * is the host's end, for kd_fanout_done. Never called for one host from
 * two threads at once. An error stops the process (the bus or the disk
 * failed). */
typedef kd_status_t (*kd_fanout_serve_fn)(void *host, kd_fanout_host_t *feed, kd_message_t *m,
                                          char *err, size_t errsz);

typedef struct kd_fanout_opts {
    const kd_bus_conf_t *conf;
    kd_producer_t *producer;   /* the process's: group offsets go through it */
    const char *const *host_ids;
    kd_journal_t *const *journals;  /* each host's, in the order of host_ids */
    void *const *hosts;        /* handed to serve, in the order of host_ids */
    size_t count;
    kd_fanout_serve_fn serve;
    /* Threads serving hosts at once, at most (0: one per host). Threads
     * start when steps come and end after a while without any. */
    size_t max_threads;
    volatile sig_atomic_t *stop; /* set on SIGTERM: kd_fanout_run returns */
} kd_fanout_opts_t;

/* Finds each host's position (its journal's, or its group's if further)
 * and assigns the reader. Reads nothing yet. */
kd_status_t kd_fanout_start(const kd_fanout_opts_t *opts, kd_fanout_t **out, char *err,
                            size_t errsz);
/* Reads and dispatches, on the caller's thread, until *stop is set or a
 * host's serve fails (which sets *stop); then waits for the pool threads
 * to finish the message they hold. Returns the first failure, or KD_OK. */
kd_status_t kd_fanout_run(kd_fanout_t *f, char *err, size_t errsz);
/* Frees everything; after kd_fanout_run returned. Accepts NULL. */
void kd_fanout_free(kd_fanout_t *f);

/* The shared reader: decodes and checks a host's messages (its verify key). */
kd_consumer_t *kd_fanout_handle(kd_fanout_host_t *h);
/* The partition the host's steps are on. */
int32_t kd_fanout_partition(const kd_fanout_host_t *h);
/* The host has done its steps before next_offset: recorded in its journal
 * and committed to its group (asynchronously). */
kd_status_t kd_fanout_done(kd_fanout_host_t *h, int64_t next_offset, char *err, size_t errsz);

#endif
