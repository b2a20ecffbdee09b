/* The deployment spec: the YAML file `kdeploy create -f spec.yaml` takes,
 * read strictly into the wire contract's DeploymentSpec. Every error names
 * the file, line and field ("FILE:LINE: FIELD: message"), one per line, and
 * all of a file's errors are reported together so one edit can fix them. */
#ifndef KD_SPEC_H
#define KD_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kdeploy.pb-c.h"
#include "status.h"

/* Defaults the parser stores when the spec leaves them out; a spec from the
 * wire may carry 0 for them, which the getters below read the same way. */
#define KD_SPEC_HOST_TIMEOUT_S 300
#define KD_SPEC_DEPLOYMENT_TIMEOUT_S 3600
#define KD_SPEC_NAME_MAX 128

/* Parses the spec text (len bytes; need not be NUL-terminated); name is the
 * file name used in error messages. On success *out is a spec the caller
 * owns (kd_spec_free), with every default filled in; on failure *out is
 * untouched and err holds every error found, one per line. Returns KD_OK,
 * KD_EINVAL for a bad spec or KD_ENOMEM. */
kd_status_t kd_spec_parse(const char *name, const char *text, size_t len,
                          Kdeploy__V1__DeploymentSpec **out, char *err, size_t errsz);

/* Reads and parses the spec file at path (at most 4 MiB), as kd_spec_parse;
 * errors name the file as path. Also returns KD_ENOTFOUND when there is no
 * such file, KD_EIO when it cannot be read, KD_ETOOLARGE when it is too big. */
kd_status_t kd_spec_load_file(const char *path, Kdeploy__V1__DeploymentSpec **out, char *err,
                              size_t errsz);

/* A deployment group's file (`kdeploy group set NAME -f FILE`): read as a
 * spec, with the same errors, except that it holds no revision (refused if
 * given): `kdeploy create --group` adds it. */
kd_status_t kd_spec_parse_group(const char *name, const char *text, size_t len,
                                Kdeploy__V1__DeploymentSpec **out, char *err, size_t errsz);
kd_status_t kd_spec_load_group_file(const char *path, Kdeploy__V1__DeploymentSpec **out,
                                    char *err, size_t errsz);

/* Frees a spec from kd_spec_parse or kd_spec_load_file, or any spec whose
 * every part was malloc'd (as protobuf-c's unpack makes them). Accepts NULL. */
void kd_spec_free(Kdeploy__V1__DeploymentSpec *spec);

/* The number of hosts in batch batch_index (0-based) of a deployment over
 * host_count hosts: with a named config or minimum_healthy_hosts,
 * host_count - the minimum of healthy hosts; else the concurrency ramp's
 * value for that batch (the last value repeats), a count capped at
 * host_count or a percentage of host_count rounded up; never below 1. No
 * concurrency means 1 host a batch. Returns 0 only when host_count is 0. */
size_t kd_spec_batch_size(const Kdeploy__V1__DeploymentSpec *spec, size_t batch_index,
                          size_t host_count);

/* True when the spec gives deployment_config or minimum_healthy_hosts,
 * which then set the batch size and the failure threshold. */
bool kd_spec_has_named_config(const Kdeploy__V1__DeploymentSpec *spec);
/* The hosts of host_count that must stay healthy: OneAtATime host_count-1,
 * HalfAtATime half rounded up, AllAtOnce 0, or minimum_healthy_hosts (a
 * percentage rounded up); 0 without a named config. */
size_t kd_spec_minimum_healthy(const Kdeploy__V1__DeploymentSpec *spec, size_t host_count);
/* Failed hosts that fail a deployment over host_count hosts: with a named
 * config, one more than host_count - the minimum of healthy hosts (at most
 * host_count: all failed always fails; OneAtATime: 1); else the spec's
 * failure_threshold (0 read as 1). */
uint32_t kd_spec_failure_threshold_for(const Kdeploy__V1__DeploymentSpec *spec,
                                       size_t host_count);
/* "OneAtATime", "HalfAtATime", "AllAtOnce", or "" when unset. */
const char *kd_spec_config_name(Kdeploy__V1__DeploymentConfig config);

/* The spec's values with the wire's zeros read as their defaults. The file
 * exists policy has none: UNSPECIFIED means "the appspec's
 * file_exists_behavior, else fail", which only the worker can resolve. */
Kdeploy__V1__Strategy kd_spec_strategy(const Kdeploy__V1__DeploymentSpec *spec);
Kdeploy__V1__FileExistsPolicy kd_spec_file_exists(const Kdeploy__V1__DeploymentSpec *spec);
uint32_t kd_spec_failure_threshold(const Kdeploy__V1__DeploymentSpec *spec);
uint32_t kd_spec_host_timeout_s(const Kdeploy__V1__DeploymentSpec *spec);
uint32_t kd_spec_deployment_timeout_s(const Kdeploy__V1__DeploymentSpec *spec);

/* The spec file's words for the enums ("rolling", "blue_green"; "fail",
 * "overwrite", "keep"); the UNSPECIFIED values give their defaults' words
 * ("unset" for the file exists policy), unknown values "?". Static strings. */
const char *kd_spec_strategy_name(Kdeploy__V1__Strategy strategy);
const char *kd_spec_file_exists_name(Kdeploy__V1__FileExistsPolicy policy);

/* Formats one concurrency value as the spec file writes it ("2", "25%")
 * into buf; returns buf. */
const char *kd_spec_concurrency_str(const Kdeploy__V1__Concurrency *c, char *buf, size_t bufsz);

#endif
