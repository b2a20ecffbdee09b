/* Internal to the bus: shared by bus.c (configuration, producer) and
 * consumer.c. Services include bus.h only. */
#ifndef KD_BUS_INT_H
#define KD_BUS_INT_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdbool.h>

#include "bus.h"

typedef struct kd_prop {
    char *name;
    char *value;
} kd_prop_t;

struct kd_bus_conf {
    char *brokers;
    char *prefix;
    bool prefix_set;  /* by an option or the config file, not the default */
    kd_prop_t *props;
    size_t prop_count;
    kd_signer_t *signer;
    kd_verifier_t *verifier;
    pthread_mutex_t probe_lock;
    int embedded;  /* the brokers are `kdeploy broker`: 1, a real cluster: 0, unknown: -1 */
};

/* Builds a librdkafka configuration: the common low-latency defaults, then
 * the given defaults (name, value, ..., NULL), then the operator's
 * properties, then the broker list. */
kd_status_t kd_bus_build_conf(const kd_bus_conf_t *conf, const char *const *defaults,
                             rd_kafka_conf_t **out, char *err, size_t errsz);

/* True when the brokers are the embedded broker (librdkafka's mock
 * cluster), asked once per configuration. Its fetches do not wake up when
 * data arrives, so its consumers poll on a short wait instead. */
bool kd_bus_is_embedded(const kd_bus_conf_t *conf);

/* The consumer group name kdeploy's name for it stands for: the same
 * under the default topic prefix, else prefixed by it, so installations
 * sharing a cluster under their own prefixes (several fleets, or a test
 * run per prefix) never share a group. Every use of a group id (members,
 * committed offsets read or written for them) goes through it. */
const char *kd_bus_group_name(const kd_bus_conf_t *conf, const char *group, char *buf,
                              size_t bufsz);

/* True if the operator set this librdkafka property. */
bool kd_bus_conf_has(const kd_bus_conf_t *conf, const char *name);

#endif
