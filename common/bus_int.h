/* Internal to the bus: shared by bus.c (configuration, producer) and
 * consumer.c. Services include bus.h only. */
#ifndef KD_BUS_INT_H
#define KD_BUS_INT_H

#include <librdkafka/rdkafka.h>

#include "bus.h"

typedef struct kd_prop {
    char *name;
    char *value;
} kd_prop_t;

struct kd_bus_conf {
    char *brokers;
    char *prefix;
    kd_prop_t *props;
    size_t prop_count;
    kd_signer_t *signer;
    kd_verifier_t *verifier;
};

/* Builds a librdkafka configuration: the common low-latency defaults, then
 * the given defaults (name, value, ..., NULL), then the operator's
 * properties, then the broker list. */
kd_status_t kd_bus_build_conf(const kd_bus_conf_t *conf, const char *const *defaults,
                             rd_kafka_conf_t **out, char *err, size_t errsz);

#endif
