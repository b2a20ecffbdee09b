/* lbctl's traffic loop: reads traffic commands as a member of a consumer
 * group, applies each through the load-balancer driver, publishes its
 * result and only then commits the command's offset. */
#ifndef KD_LB_TRAFFIC_H
#define KD_LB_TRAFFIC_H

#include <signal.h>
#include <stddef.h>

#include "bus.h"
#include "driver.h"
#include "journal.h"
#include "status.h"
#include "telemetry.h"

#define KD_LB_DEFAULT_GROUP "kdeploy-lbctl"

/* What the loop works with; all borrowed, none freed by the loop. */
typedef struct kd_traffic {
    const kd_bus_conf_t *conf;
    kd_producer_t *producer;       /* publishes results (service "lbctl") */
    kd_journal_t *journal;         /* traffic ids done, with their results */
    const kd_lb_driver_t *driver;
    void *driver_state;            /* from driver->open */
    const char *group_id;          /* consumer group; NULL: KD_LB_DEFAULT_GROUP */
    volatile sig_atomic_t *stop;   /* set by a signal handler: the loop ends */
    kd_lb_metrics_t *metrics;      /* NULL: none */
} kd_traffic_t;

/* Applies cmd through the driver and fills r (its strings point into cmd
 * and into errbuf, which receives the failure's words). Returns KD_ESTOPPED
 * when stopping cut the change short (r is then not to be published), else
 * KD_OK, r->status telling the outcome. */
kd_status_t kd_traffic_apply(const kd_traffic_t *t, const Kdeploy__V1__TrafficCommand *cmd,
                             Kdeploy__V1__TrafficResult *r, char *errbuf, size_t errsz);

/* Runs until *t->stop is set (KD_OK) or the bus or the journal fails (the
 * error). Malformed, foreign and unsigned or forged messages are logged and
 * skipped. A traffic id the journal holds a result for is answered with
 * that result again (replayed), not applied again; one started but never
 * finished is applied again, which is safe: every change is idempotent. */
kd_status_t kd_traffic_run(const kd_traffic_t *t, char *err, size_t errsz);

#endif
