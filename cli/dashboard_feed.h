/* The dashboard's feed: the deployments and results topics read from
 * their beginning and kept on, each event turned into one line of JSON
 * (what the web page needs of it) and kept in a log bounded by bytes, so
 * that any number of browsers can follow it from any point. */
#ifndef KD_DASHBOARD_FEED_H
#define KD_DASHBOARD_FEED_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "buf.h"
#include "deploy_metrics.h"

typedef struct kd_feed kd_feed_t;

/* Starts reading (a thread of its own). max_bytes bounds the events kept:
 * the oldest go first. dm (may be NULL) counts the events that come after
 * the history. The configuration and dm must outlive the feed. */
kd_status_t kd_feed_start(const kd_bus_conf_t *conf, size_t max_bytes, kd_deploy_metrics_t *dm,
                          kd_feed_t **out, char *err, size_t errsz);
/* Stops reading and wakes every waiter (kd_feed_read returns -1 from then
 * on); accepts NULL. */
void kd_feed_stop(kd_feed_t *f);
/* Stops (if not yet) and frees; accepts NULL. No reader may be left. */
void kd_feed_free(kd_feed_t *f);

/* The feed's epoch: its start time, which event ids carry ("EPOCH.N"), so
 * a browser that reconnects to another dashboard process is told apart. */
int64_t kd_feed_epoch(const kd_feed_t *f);

/* Appends events numbered from *next (1 is the first ever) to out as
 * server-sent events ("id: EPOCH.N\ndata: JSON\n\n"), at most about max bytes
 * (at least one event). Waits up to wait_ms for one when there is none.
 * An event no longer kept is skipped. Returns the count appended (0: none
 * came in time) and advances *next; -1 once the feed stops. */
int kd_feed_read(kd_feed_t *f, uint64_t *next, kd_buf_t *out, size_t max, int wait_ms);

/* Turns one envelope into the dashboard's JSON (a malloc'd string), or
 * NULL for an event the page does not use. */
char *kd_feed_event_json(const kd_envelope_t *env, uint64_t seq);

#endif
