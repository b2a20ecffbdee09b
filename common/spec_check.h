/* Checks a deployment spec as it arrives from a topic: anyone who can
 * write the requests topic can send one, not only `kdeploy create`, so the
 * planner checks every request itself with this (the CLI's YAML parser,
 * spec.h, is a convenience on top). Also the grammar of host ids and
 * names, shared by every program. */
#ifndef KD_SPEC_CHECK_H
#define KD_SPEC_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "kdeploy.pb-c.h"
#include "status.h"

/* Hosts a deployment may name: a fleet of 100,000 with room to spare. The
 * planner holds a deployment's hosts in memory and chunks them across
 * events, so this bounds memory, not message sizes. */
#define KD_SPEC_MAX_HOSTS 250000
#define KD_HOST_ID_MAX 253      /* a DNS name's length */
#define KD_SPEC_URL_MAX 4096
#define KD_SPEC_SCRIPT_MAX 65536
#define KD_SPEC_RAMP_MAX 100

/* A host id: 1 to 253 letters, digits, '.', '-', '_' or ':', not starting
 * with '.' or '-' (no "..", no option lookalikes). */
bool kd_host_id_valid(const char *s);
/* An application, group or server group name: 1 to 128 letters, digits,
 * '.', '_' or '-', not starting with '.'. */
bool kd_name_valid(const char *s);

/* Checks spec; KD_EINVAL with the first problem in err ("hosts[3]: ..."),
 * KD_ENOMEM when the duplicate check cannot allocate. O(hosts). */
kd_status_t kd_spec_check(const Kdeploy__V1__DeploymentSpec *spec, char *err, size_t errsz);

#endif
