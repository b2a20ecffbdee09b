/* Reading the steps topic for every host of a worker process with one
 * consumer per partition, not one per host: a process simulating many
 * hosts would otherwise poll the brokers once per host. Each host keeps
 * its own consumer group for its committed offset; its steps reach it
 * through a queue, from that offset on. */
#ifndef KD_FANOUT_H
#define KD_FANOUT_H

#include <signal.h>
#include <stddef.h>

#include "bus.h"
#include "status.h"

typedef struct kd_fanout kd_fanout_t;

/* One host's end of the fan-out: its queue, and its own group's handle for
 * commits (kd_consumer_commit_offset) and for decoding (verify key). */
typedef struct kd_fanout_host kd_fanout_host_t;

/* Sets up the hosts (their groups' committed offsets, one reader per
 * partition they map to) and starts reading. stop ends the readers. */
kd_status_t kd_fanout_start(const kd_bus_conf_t *conf, const char *const *host_ids, size_t n,
                            volatile sig_atomic_t *stop, kd_fanout_t **out, char *err,
                            size_t errsz);
/* Stops the readers and frees everything; every host must be done with its
 * messages (kd_message_free) first. Accepts NULL. */
void kd_fanout_free(kd_fanout_t *f);

/* Host i's end (in the order of host_ids). */
kd_fanout_host_t *kd_fanout_host(kd_fanout_t *f, size_t i);
/* The host's consumer handle: its group, its partition; fetches nothing. */
kd_consumer_t *kd_fanout_handle(kd_fanout_host_t *h);
/* The next step message for the host, waiting up to timeout_ms; NULL if
 * none came. The caller frees it with kd_message_free. */
kd_message_t *kd_fanout_next(kd_fanout_host_t *h, int timeout_ms);
/* A reader's failure (the bus is gone): KD_OK while all is well. */
kd_status_t kd_fanout_status(kd_fanout_t *f, char *err, size_t errsz);

#endif
