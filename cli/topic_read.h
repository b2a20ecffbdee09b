/* Reading a whole topic once, to its end as the brokers have it when the
 * read starts: what the tool does with the compacted topics (hosts,
 * groups), where the last record of each key is the state. */
#ifndef KD_CLI_TOPIC_READ_H
#define KD_CLI_TOPIC_READ_H

#include "bus.h"

/* Called for every message, in order on each partition. The message and
 * the consumer (to decode it with) are the caller's only during the call. */
typedef void (*kd_topic_read_fn)(void *arg, kd_consumer_t *c, const kd_message_t *m);

/* Reads every partition of topic to its end, within 30 s: KD_ETIMEDOUT,
 * naming the topic, when the end was not reached by then. */
kd_status_t kd_cli_read_topic(const kd_bus_conf_t *conf, kd_topic_t topic, kd_topic_read_fn fn,
                              void *arg, char *err, size_t errsz);

#endif
