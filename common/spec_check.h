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

/* Host labels (`kdeploy-worker --label role=web`, `hosts: {labels: ...}`):
 * at most 32 a host; a key 1 to 63 letters, digits, '.', '_', '/' or '-'
 * starting with a letter or digit; a value 1 to 63 of the same. */
#define KD_LABEL_MAX 32
#define KD_LABEL_LEN_MAX 63
#define KD_LABEL_GRAMMAR "1 to 63 letters, digits, '.', '_', '/' or '-'"
bool kd_label_key_valid(const char *s);
bool kd_label_value_valid(const char *s);
/* "KEY=VALUE" split and checked into key/value (each KD_LABEL_LEN_MAX + 1
 * bytes); KD_EINVAL with a message naming text otherwise. */
kd_status_t kd_label_parse(const char *text, char *key, char *value, char *err, size_t errsz);

/* Checks spec; KD_EINVAL with the first problem in err ("hosts[3]: ..."),
 * KD_ENOMEM when the duplicate check cannot allocate. O(hosts). */
kd_status_t kd_spec_check(const Kdeploy__V1__DeploymentSpec *spec, char *err, size_t errsz);

#endif
