/* The host agent: reads the host's step events, performs each once, and
 * publishes its result. */
#ifndef KD_AGENT_H
#define KD_AGENT_H

#include "host.h"
#include "status.h"

/* Before the host's first step: ends the hooks a crashed worker left
 * running for it (their steps are then reported cut short). */
kd_status_t kd_agent_prepare(kd_host_t *host, char *err, size_t errsz);

/* The fan-out's serve function (kd_fanout_serve_fn; opaque is the
 * kd_host_t): performs one step message once, publishes its result, then
 * records the step's offset as done (kd_fanout_done). Returns an error
 * only if the bus or the disk cannot be used. */
kd_status_t kd_agent_serve(void *opaque, kd_fanout_host_t *feed, kd_message_t *m, char *err,
                           size_t errsz);

/* Publishes the host's status (alive, agent version, revisions installed)
 * to the hosts topic. */
kd_status_t kd_agent_publish_status(kd_host_t *host, int alive, char *err, size_t errsz);
/* The same without waiting for the broker: a process announcing many hosts
 * queues them all, then waits once (kd_producer_flush reports failures). */
kd_status_t kd_agent_queue_status(kd_host_t *host, int alive, char *err, size_t errsz);

#endif
