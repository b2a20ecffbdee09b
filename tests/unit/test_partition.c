/* Partitions agree with the Java client and with librdkafka's own
 * murmur2_random partitioner, so every client places a key alike. */
#include <librdkafka/rdkafka.h>
#include <string.h>

#include "check.h"
#include "partition.h"

static void test_murmur2_matches_java(void)
{
    /* Apache Kafka's UtilsTest.testMurmur2. */
    static const struct { const char *key; int32_t hash; } cases[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(kd_murmur2(cases[i].key, strlen(cases[i].key)) == cases[i].hash,
                  "murmur2(%s)", cases[i].key);
}

static void test_partition_matches_librdkafka(void)
{
    static const char *const keys[] = {
        "web-01", "web-02", "web-03", "b1", "g2", "host-0001", "host-9999",
        "0b1c2d3e-0000-4000-8000-000000000001", "x", "blue", "shop-svc",
    };
    static const int32_t counts[] = {1, 2, 3, 4, 6, 12, 64, 1000};

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        for (size_t j = 0; j < sizeof counts / sizeof counts[0]; j++) {
            int32_t ours = kd_partition_for_key(keys[i], strlen(keys[i]), counts[j]);
            /* Non-empty keys never touch the topic handle, so NULL is fine. */
            int32_t theirs = rd_kafka_msg_partitioner_murmur2_random(
                NULL, keys[i], strlen(keys[i]), counts[j], NULL, NULL);

            CHECK_MSG(ours == theirs, "%s over %d: %d vs librdkafka %d", keys[i], counts[j],
                      ours, theirs);
            CHECK(ours >= 0 && ours < counts[j]);
        }
}

static void test_known_partitions(void)
{
    /* Checked against kafka-python's DefaultPartitioner on the embedded broker. */
    CHECK(kd_partition_for_key("web-01", 6, 4) == 3);
}

int main(void)
{
    RUN(test_murmur2_matches_java);
    RUN(test_partition_matches_librdkafka);
    RUN(test_known_partitions);
    return check_summary();
}
