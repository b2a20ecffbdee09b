/* The per-host step sequences of the seed's workflows, as data: one table
 * per workflow in the seed's order (see the design's workflows.md). */
#ifndef KD_WORKFLOW_H
#define KD_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"
#include "kdeploy.pb-c.h"

typedef struct kd_workflow {
    const char *name;          /* "rolling", "rolling rollback", ... */
    const kd_event_t *steps;   /* per host, in order */
    size_t count;
    bool swap_after;           /* blue-green: SwapTraffic once every host succeeded */
} kd_workflow_t;

/* The workflow of a deployment: its strategy, whether it has a load
 * balancer server group, and whether it is a rollback. */
const kd_workflow_t *kd_workflow_for(const Kdeploy__V1__DeploymentSpec *spec, bool rollback);

#endif
