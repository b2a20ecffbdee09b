#ifndef KD_CMD_HOSTS_H
#define KD_CMD_HOSTS_H

#include <jansson.h>

#include "bus.h"

/* `kdeploy hosts [--label KEY=VALUE]... [--json]`: the agents from the
 * hosts topic, as a table or JSON. */
int kd_cmd_hosts(int argc, char **argv);

/* Reads the whole hosts topic into hosts (a JSON object: host id -> its
 * latest status: host, alive, agent_version, hostname, pid, last_seen_ms,
 * labels {key: value}, installed [{application, group, deploy_id}]).
 * KD_ETIMEDOUT when the topic's end is not reached in 30 s. */
kd_status_t kd_cli_read_hosts(const kd_bus_conf_t *conf, json_t *hosts, char *err, size_t errsz);

/* What the planner will make of spec's hosts, from the hosts topic, for
 * `kdeploy create --dry-run`: a label selector is resolved into spec->hosts
 * (sorted host ids; none is an error), and hosts no worker announced are
 * named on stderr (an error unless spec->allow_unknown_hosts). KD_EINVAL
 * when the planner would reject the spec for its hosts. */
kd_status_t kd_cli_check_hosts(const kd_bus_conf_t *conf, Kdeploy__V1__DeploymentSpec *spec);

#endif
