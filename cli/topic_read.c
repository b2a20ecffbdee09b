#include "topic_read.h"

#include "ids.h"

/* Long enough for a topic of a large fleet on a slow link; a hung broker
 * still ends in a clear error rather than a hang. */
#define READ_TIMEOUT_MS 30000

kd_status_t kd_cli_read_topic(const kd_bus_conf_t *conf, kd_topic_t topic, kd_topic_read_fn fn,
                              void *arg, char *err, size_t errsz)
{
    kd_consumer_opts_t o = {.topics = &topic, .topic_count = 1, .read_all = true};
    kd_consumer_t *c = NULL;
    kd_status_t st = kd_consumer_new(conf, &o, &c, err, errsz);
    int64_t deadline = kd_mono_ms() + READ_TIMEOUT_MS;

    while (st == KD_OK && !kd_consumer_at_end(c) && kd_mono_ms() < deadline) {
        kd_message_t *m = NULL;

        if ((st = kd_consumer_poll(c, 100, &m, err, errsz)) == KD_OK && m)
            fn(arg, c, m);
        kd_message_free(m);
    }
    if (st == KD_OK && !kd_consumer_at_end(c))
        st = kd_err(err, errsz, KD_ETIMEDOUT, "the %s topic was not read to its end in %d s",
                    kd_topic_suffix(topic), READ_TIMEOUT_MS / 1000);
    kd_consumer_free(c);
    return st;
}
