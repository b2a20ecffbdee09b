/* The Kafka bus: kdeploy's producer and consumer over librdkafka.
 *
 * Every message is one envelope (protobuf) with the headers `kdeploy-type`
 * and `kdeploy-deploy-id`, keyed per DESIGN.md, placed by the murmur2
 * partitioner so other Kafka clients agree on partitions. Any librdkafka
 * property can be passed through, so SASL/SSL, acks or compression work
 * against a real cluster; the defaults favour low latency on loopback. */
#ifndef KD_BUS_H
#define KD_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "sign.h"
#include "status.h"

typedef enum {
    KD_TOPIC_REQUESTS = 0,
    KD_TOPIC_DEPLOYMENTS,
    KD_TOPIC_STEPS,
    KD_TOPIC_TRAFFIC,
    KD_TOPIC_RESULTS,
    KD_TOPIC_HOSTS,
    KD_TOPIC_GROUPS,  /* compacted: deployment groups by name (kdeploy group) */
    KD_TOPIC_COUNT
} kd_topic_t;

#define KD_DEFAULT_TOPIC_PREFIX "kdeploy."
#define KD_HEADER_TYPE "kdeploy-type"
#define KD_HEADER_DEPLOY_ID "kdeploy-deploy-id"
#define KD_HEADER_SIGNATURE "kdeploy-signature"
/* A command signed in a batch (sign_batch.h) carries these two instead:
 * the batch's signature and the command's proof (leaf index, count, audit
 * path). */
#define KD_HEADER_BATCH_SIGNATURE "kdeploy-batch-signature"
#define KD_HEADER_BATCH_PROOF "kdeploy-batch-proof"

typedef struct kd_bus_conf kd_bus_conf_t;
typedef struct kd_producer kd_producer_t;
typedef struct kd_consumer kd_consumer_t;

/* The topic's name without prefix: "requests", "deployments", ... */
const char *kd_topic_suffix(kd_topic_t topic);

/* ---- configuration ---- */

kd_bus_conf_t *kd_bus_conf_new(void);
void kd_bus_conf_free(kd_bus_conf_t *conf);
/* Sets one option. kdeploy's own: "brokers" (bootstrap list), "topic_prefix",
 * "signing_key" (private key PEM: sign commands), "verify_key" (public key
 * PEM: refuse unsigned or forged commands; each call adds a key, so old
 * and new keys verify during a rotation). Any other name is a librdkafka
 * property, checked at once (unknown names and bad values are refused). */
kd_status_t kd_bus_conf_set(kd_bus_conf_t *conf, const char *name, const char *value,
                            char *err, size_t errsz);
/* Applies "brokers", "topic_prefix", "signing_key", "verify_key" and every
 * "kafka.<property>" of a config file. Errors name the file and line. */
kd_status_t kd_bus_conf_apply(kd_bus_conf_t *conf, const kd_config_t *cfg, char *err,
                              size_t errsz);
/* Fills the broker list from KDEPLOY_BROKERS and the topic prefix from
 * KDEPLOY_TOPIC_PREFIX, each only when neither an option nor the config file
 * set it. Fails on a malformed prefix. */
kd_status_t kd_bus_conf_env_defaults(kd_bus_conf_t *conf, char *err, size_t errsz);

/* The topic prefix ("kdeploy." unless set). */
const char *kd_bus_conf_prefix(const kd_bus_conf_t *conf);
const char *kd_bus_conf_brokers(const kd_bus_conf_t *conf);
/* The full topic name (prefix + suffix) into buf. */
const char *kd_bus_topic_name(const kd_bus_conf_t *conf, kd_topic_t topic, char *buf,
                              size_t bufsz);
/* The verifier configured with "verify_key", or NULL. */
const kd_verifier_t *kd_bus_conf_verifier(const kd_bus_conf_t *conf);

/* For the operator's tool, which must fail fast rather than retry: asks the
 * brokers for their metadata for up to timeout_ms (less when every broker
 * refuses the connection). KD_EKAFKA with "cannot reach the broker at
 * LIST (why)" when none answers. Also learns whether the brokers are the
 * embedded broker, which saves the consumers a second probe. */
kd_status_t kd_bus_probe(kd_bus_conf_t *conf, int timeout_ms, char *err, size_t errsz);

/* Process-wide: librdkafka's own log lines at debug level only (quiet) or
 * at their own level (the default, for services). */
void kd_bus_quiet_kafka_log(bool quiet);

/* ---- producer ---- */

/* Creates a producer; service names it in envelopes ("planner", "worker"...).
 * A producer may be shared by threads: sends and waits are thread-safe. */
kd_status_t kd_producer_new(const kd_bus_conf_t *conf, const char *service,
                            kd_producer_t **out, char *err, size_t errsz);
/* Flushes (up to 10 s) and frees; accepts NULL. */
void kd_producer_free(kd_producer_t *p);
/* "<service>@<hostname>:<pid>": the producer field for envelopes. */
const char *kd_producer_self(const kd_producer_t *p);

/* Publishes env to topic with key. Adds the type and deploy-id headers, and
 * the signature for step and traffic commands when a signing key is set.
 * With wait, blocks until the broker acknowledged it (or it failed) and
 * returns the outcome; without, returns once queued and reports delivery
 * failures at the next kd_producer_flush(). */
kd_status_t kd_producer_send(kd_producer_t *p, kd_topic_t topic, const char *key,
                             const kd_envelope_t *env, bool wait, char *err, size_t errsz);
/* As kd_producer_send, for an envelope already encoded: value (len bytes)
 * is env's encoding, which is sent as it is (copied); env gives the headers.
 * Saves encoding again what the caller had to encode anyway. */
kd_status_t kd_producer_send_encoded(kd_producer_t *p, kd_topic_t topic, const char *key,
                                     const kd_envelope_t *env, const void *value, size_t len,
                                     bool wait, char *err, size_t errsz);
/* Starts a batch for the calling thread: its step and traffic commands
 * sent without wait are held, not sent, until kd_producer_batch_end signs
 * them all at once (one Ed25519 signature per tree of up to 1,024
 * commands, instead of one per command) and sends them in order. Anything
 * else the thread sends meanwhile (a record, a command with wait) first
 * sends what is held, so order is kept. Other threads' sends are not part
 * of it (one batch at a time per producer). Without a signing key there
 * is nothing to hold: sends go out as usual. */
void kd_producer_batch_begin(kd_producer_t *p);
/* Signs and sends what the batch holds and ends it. Delivery is as for
 * sends without wait: reported at the next kd_producer_flush(). */
kd_status_t kd_producer_batch_end(kd_producer_t *p, char *err, size_t errsz);
/* Publishes a tombstone (a record with key and no value) to a compacted
 * topic, and waits for the broker to take it: compaction then drops key. */
kd_status_t kd_producer_send_tombstone(kd_producer_t *p, kd_topic_t topic, const char *key,
                                       char *err, size_t errsz);
/* Waits for every queued message; returns the first delivery failure since
 * the last flush, or KD_ETIMEDOUT. */
kd_status_t kd_producer_flush(kd_producer_t *p, int timeout_ms, char *err, size_t errsz);

/* Consumer group offsets of many groups through the producer's one handle
 * (a worker serving many hosts keeps each host's offset under its own
 * group without a consumer handle per host).
 * The committed offsets of groups[i] on partitions[i] of topic, asked all
 * at once: offsets[i] is -1 when the group committed nothing there. */
kd_status_t kd_producer_group_offsets(kd_producer_t *p, kd_topic_t topic,
                                      const char *const *groups, const int32_t *partitions,
                                      size_t n, int64_t *offsets, char *err, size_t errsz);
/* Commits next_offset for group on topic[partition], asynchronously and not
 * waited for: a lost commit is overwritten by the group's next one. */
kd_status_t kd_producer_commit_group(kd_producer_t *p, const char *group, kd_topic_t topic,
                                     int32_t partition, int64_t next_offset, char *err,
                                     size_t errsz);

/* ---- consumer ---- */

typedef struct kd_consumer_opts {
    const char *group_id;      /* for committed offsets; required unless read_all */
    const kd_topic_t *topics;  /* topics to read */
    size_t topic_count;
    /* Group mode (default): subscribe as a member of group_id. */
    /* Partition mode: read only the partition partition_key maps to in
     * topics[0] (the worker's steps partition), from the committed offset. */
    const char *partition_key;
    /* Partition mode: only find the partition and keep the group for
     * commits and committed offsets; fetch nothing (kd_consumer_poll then
     * never returns a message). */
    bool commit_only;
    /* Partition mode: read from this offset instead of the committed one
     * (when from_offset); RD_KAFKA_OFFSET_BEGINNING is -2. */
    bool from_offset;
    int64_t offset;
    /* Partition mode: read from the partition's end as the broker has it
     * when kd_consumer_new returns (asked then, not at the first fetch), so
     * anything published afterwards is read: how the operator's tool waits
     * for the answer to its request. No group is needed. */
    bool from_end;
    /* Manual mode: no group membership and nothing read until
     * kd_consumer_assign says which partitions of topics[0], from where
     * (one reader for the hosts of a worker process). */
    bool manual;
    /* Reader mode: every partition of the topics from the beginning, no
     * group, no commits; kd_consumer_at_end() tells when all are read. */
    bool read_all;
    /* Group mode: called from kd_consumer_poll() when the group gives this
     * member partitions (assigned) or takes them back, with the partition
     * numbers of topics[0]. Members get the same partition numbers of every
     * topic (range assignment), so keyed-alike topics stay together. */
    void (*on_rebalance)(void *opaque, bool assigned, const int32_t *partitions, size_t count);
    void *opaque;
    /* Group mode: a stable group.instance.id (static membership), so that a
     * restarted member takes its predecessor's partitions at once. */
    const char *instance_id;
    /* Group, partition and manual modes, on the embedded broker: the
     * consumer may open an eager lane while its owner says messages are due
     * (kd_consumer_hurry). */
    bool eager;
} kd_consumer_opts_t;

/* One message. Strings are NUL-terminated; value is the raw envelope. */
typedef struct kd_message {
    kd_topic_t topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const char *key;        /* "" if none */
    size_t key_len;
    const char *type;       /* kdeploy-type header, "" if absent */
    const char *deploy_id;  /* kdeploy-deploy-id header, "" if absent */
    const void *value;
    size_t len;
    const void *signature;  /* kdeploy-signature header, NULL if absent */
    size_t signature_len;
} kd_message_t;

kd_status_t kd_consumer_new(const kd_bus_conf_t *conf, const kd_consumer_opts_t *opts,
                            kd_consumer_t **out, char *err, size_t errsz);
/* Manual mode: reads partitions[i] of topics[0] from offsets[i]
 * (RD_KAFKA_OFFSET_BEGINNING is -2), replacing what was assigned before. */
kd_status_t kd_consumer_assign(kd_consumer_t *c, const int32_t *partitions,
                               const int64_t *offsets, size_t n, char *err, size_t errsz);
/* Leaves the group (if any) and frees; accepts NULL. */
void kd_consumer_free(kd_consumer_t *c);
/* Waits up to timeout_ms for a message. KD_OK with *out NULL when none came.
 * Transient broker errors are logged and not returned; fatal ones are. */
kd_status_t kd_consumer_poll(kd_consumer_t *c, int timeout_ms, kd_message_t **out,
                             char *err, size_t errsz);
/* Says whether messages are due soon (a step in flight: its result, or
 * the host's next step). The embedded broker answers a fetch that finds
 * nothing only when the fetch's wait ends, so a consumer with opts.eager
 * fetches, while hurried, through a second handle whose wait is 1 ms
 * (the main one keeps its 5 ms, so an idle consumer costs what it did).
 * Past 1,000 messages a second the lane rests (fetches find data waiting
 * then). A lane unused for 30 s is closed. No effect on a real broker, which
 * answers a waiting fetch as soon as data arrives, nor when the operator
 * set fetch.wait.max.ms. Call from the thread that polls. */
void kd_consumer_hurry(kd_consumer_t *c, bool soon);
/* How many messages the eager lane delivered (before the main handle). */
size_t kd_consumer_eager_count(const kd_consumer_t *c);
/* Commits the offset after m for the consumer's group, asynchronously:
 * after a crash, messages since the last commit that landed come again
 * (kdeploy's consumers treat repeats as no-ops). */
kd_status_t kd_consumer_commit(kd_consumer_t *c, const kd_message_t *m, char *err,
                               size_t errsz);
/* Reader mode: true once every partition has been read to its end. */
bool kd_consumer_at_end(const kd_consumer_t *c);
/* The partition a partition-mode consumer reads, or -1. */
int32_t kd_consumer_partition(const kd_consumer_t *c);
/* Partition mode: how many partitions topics[0] has. */
int kd_consumer_partition_count(const kd_consumer_t *c);
/* The group's committed offset (the next message to read) of the
 * consumer's partition of topics[0]; -1 when nothing was committed. */
kd_status_t kd_consumer_committed(kd_consumer_t *c, int64_t *offset, char *err, size_t errsz);
/* Commits next_offset for the consumer's partition of topics[0]
 * (asynchronously, as kd_consumer_commit). */
kd_status_t kd_consumer_commit_offset(kd_consumer_t *c, int64_t next_offset, char *err,
                                      size_t errsz);
/* Group mode: messages of topic waiting for this member, summed over its
 * assigned partitions (each partition's last known end offset, from the
 * fetches, less the consumer's position). No broker round trip; 0 before
 * the first fetch. */
kd_status_t kd_consumer_lag(kd_consumer_t *c, kd_topic_t topic, int64_t *lag, char *err,
                            size_t errsz);
/* One metadata round trip about the topic, to tell whether the cluster
 * answers at all: KD_ETIMEDOUT when it did not within timeout_ms. */
kd_status_t kd_consumer_probe(kd_consumer_t *c, kd_topic_t topic, int timeout_ms, char *err,
                              size_t errsz);
/* Whether c has read every partition of topic it is assigned up to the
 * end the brokers report now (a round trip per partition, each bounded by
 * timeout_ms): *at_end true when nothing published before this call is
 * left to read. For "has the planner seen that announcement yet?". */
kd_status_t kd_consumer_read_to_end(kd_consumer_t *c, kd_topic_t topic, int timeout_ms,
                                    bool *at_end, char *err, size_t errsz);
/* How many partitions a topic has (asks the brokers). */
kd_status_t kd_consumer_topic_partitions(kd_consumer_t *c, kd_topic_t topic, int *count,
                                         char *err, size_t errsz);
void kd_message_free(kd_message_t *m);

/* Whether a verifying consumer refuses step and traffic commands that carry
 * no expiry (expires_ms == 0). Every planner sets it (acceptance plus the
 * deployment timeout), so an old signed command replayed after a host lost
 * its journal does nothing. */
#define KD_REQUIRE_COMMAND_EXPIRY 1

/* Decodes m's envelope. For step and traffic commands, when the consumer's
 * configuration has a verify key, the signature must verify first
 * (KD_ESIGNATURE otherwise). Also checks the type header matches the body.
 * Expiry is not checked here (audits read old commands): performers call
 * kd_command_fresh. */
kd_status_t kd_message_decode(const kd_consumer_t *c, const kd_message_t *m,
                              kd_envelope_t **out, char *err, size_t errsz);

/* For a decoded step or traffic command about to be performed: KD_OK, or
 * KD_EREFUSED when its (signed) expires_ms is past, or when it has none,
 * the consumer verifies signatures and KD_REQUIRE_COMMAND_EXPIRY is set.
 * Other bodies are always KD_OK. */
kd_status_t kd_command_fresh(const kd_consumer_t *c, const kd_envelope_t *env, char *err,
                             size_t errsz);

#endif
