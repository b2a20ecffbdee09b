/* One host a worker process serves: its id, its directories, and the
 * shared handles its steps use. A process serves one host or several
 * (dense hosts, fleet simulation); a host with steps to do is served by a
 * thread of the process's pool (fanout.h). */
#ifndef KD_HOST_H
#define KD_HOST_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "fanout.h"
#include "journal.h"
#include "telemetry.h"

typedef struct kd_host {
    const char *id;              /* the host id: the steps topic's key */
    const char *root;            /* cache dirs and journal live here */
    const char *install_prefix;  /* NULL or "": absolute appspec paths as they are */
    const char *const *env;      /* host-level NAME=VALUE for every hook, NULL-terminated */
    const char *const *labels;   /* checked KEY=VALUE labels, NULL-terminated; NULL: none */
    unsigned keep_revisions;     /* cache dirs kept per app/group */
    size_t max_bundle_bytes;     /* downloads larger than this fail */
    unsigned max_unpack_ratio;   /* unpacked bytes per archive byte, at most */
    uint64_t max_cache_bytes;    /* the host's cache (every revision kept), at most */
    const kd_bus_conf_t *conf;
    kd_producer_t *producer;     /* shared by every host of the process */
    kd_journal_t *journal;
    kd_fanout_host_t *feed;      /* this host's end of the process's steps reader */
    volatile sig_atomic_t *stop; /* set on SIGTERM/SIGINT: abort the running hook */
    kd_worker_metrics_t *metrics; /* shared by every host of the process; NULL: none */
} kd_host_t;

#endif
