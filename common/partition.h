/* Key-to-partition mapping, identical to the Java client's default
 * partitioner and librdkafka's murmur2_random for non-empty keys, so that
 * every Kafka client places a host's or a deployment's events alike. */
#ifndef KD_PARTITION_H
#define KD_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* Kafka's murmur2 hash (org.apache.kafka.common.utils.Utils.murmur2). */
int32_t kd_murmur2(const void *key, size_t len);
/* The partition a key maps to among partition_cnt partitions (> 0). */
int32_t kd_partition_for_key(const void *key, size_t len, int32_t partition_cnt);

#endif
