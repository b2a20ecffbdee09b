/* The planner daemon around the core: it reads the deployments topic into
 * the model, takes requests and results as a member of the planners'
 * consumer group, asks the core what to do, publishes the decisions,
 * applies them, and commits the input only then. */
#ifndef KD_DAEMON_H
#define KD_DAEMON_H

#include <signal.h>

#include "bus.h"
#include "deploy_metrics.h"
#include "metrics.h"
#include "notify.h"

typedef struct kd_daemon_opts {
    const char *group;        /* the planners' consumer group */
    const char *instance_id;  /* static membership, or NULL */
    /* Optional (NULL: none). Deployment metrics and webhooks are fed with
     * each event this planner publishes and each result it takes. */
    kd_metrics_t *metrics;
    kd_deploy_metrics_t *deploy_metrics;
    kd_notify_t *notify;
} kd_daemon_opts_t;

/* Runs until *stop is set (by a signal) or the bus fails for good.
 * Returns KD_OK after a stop. */
kd_status_t kd_daemon_run(const kd_bus_conf_t *conf, const kd_daemon_opts_t *opts,
                          volatile sig_atomic_t *stop, char *err, size_t errsz);

#endif
