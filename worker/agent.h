/* The host agent: reads the host's step events, performs each once, and
 * publishes its result. */
#ifndef KD_AGENT_H
#define KD_AGENT_H

#include "host.h"
#include "status.h"

/* Serves host until *host->stop is set: takes the host's step events from
 * its feed (the process's reader of the partition the host id maps to)
 * and commits each step's offset, under the group "kdeploy-worker-<host
 * id>", after its result is published. Returns KD_OK on a clean stop; an
 * error if the bus cannot be used. */
kd_status_t kd_agent_run(kd_host_t *host, char *err, size_t errsz);

/* Publishes the host's status (alive, agent version, revisions installed)
 * to the hosts topic. */
kd_status_t kd_agent_publish_status(kd_host_t *host, int alive, char *err, size_t errsz);

#endif
