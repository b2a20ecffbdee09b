#ifndef KD_CMD_GROUP_H
#define KD_CMD_GROUP_H

#include "bus.h"
#include "kdeploy.pb-c.h"

/* `kdeploy group set NAME -f FILE | list | show NAME | delete NAME`. */
int kd_cmd_group(int argc, char **argv);

/* The spec of deployment group name from the groups topic, completed with
 * revision (copied): what `kdeploy create --group` submits. *out is the
 * caller's (kd_spec_free). KD_ENOTFOUND when there is no such group. */
kd_status_t kd_group_spec(const kd_bus_conf_t *conf, const char *name,
                          const Kdeploy__V1__Revision *revision,
                          Kdeploy__V1__DeploymentSpec **out, char *err, size_t errsz);

#endif
