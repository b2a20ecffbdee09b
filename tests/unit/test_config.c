/* Config files and the librdkafka passthrough: any property reaches
 * librdkafka, typos are refused where they are written. */
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "check.h"
#include "config.h"

static const char sample[] =
    "brokers: 10.0.0.1:9092,10.0.0.2:9092\n"
    "topic_prefix: prod.kdeploy.\n"
    "log:\n"
    "  level: debug\n"
    "  format: json\n"
    "kafka:\n"
    "  security.protocol: SASL_SSL\n"
    "  sasl.mechanisms: SCRAM-SHA-512\n"
    "  sasl.username: deployer\n"
    "  compression.type: zstd\n"
    "  acks: all\n"
    "env:\n"
    "  - REGION=eu\n"
    "  - TIER=web\n";

static void test_flattened_keys(void)
{
    char err[512];
    kd_config_t *cfg = NULL;
    size_t n;
    const kd_config_entry_t *e;
    int envs = 0;

    CHECK(kd_config_parse("sample.yml", sample, strlen(sample), &cfg, err, sizeof err) == KD_OK);
    if (!cfg)
        return;
    CHECK_STREQ(kd_config_get(cfg, "brokers"), "10.0.0.1:9092,10.0.0.2:9092");
    CHECK_STREQ(kd_config_get(cfg, "log.level"), "debug");
    CHECK_STREQ(kd_config_get(cfg, "kafka.security.protocol"), "SASL_SSL");
    CHECK(kd_config_get(cfg, "missing") == NULL);
    e = kd_config_entries(cfg, &n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].key, "env") == 0) {
            envs++;
            CHECK(e[i].line == 12 + envs);
        }
    CHECK(envs == 2);
    kd_config_free(cfg);
}

static void test_list_of_mappings_numbers_items(void)
{
    static const char text[] =
        "notify:\n"
        "  - url: http://a/\n"
        "    events: [failed, host_failed]\n"
        "  - {url: http://b/, secret: s}\n"
        "after: 1\n";
    char err[512];
    kd_config_t *cfg = NULL;
    size_t n;
    const kd_config_entry_t *e;

    CHECK(kd_config_parse("n.yml", text, strlen(text), &cfg, err, sizeof err) == KD_OK);
    if (!cfg)
        return;
    e = kd_config_entries(cfg, &n);
    CHECK(n == 6);
    CHECK_STREQ(kd_config_get(cfg, "notify.0.url"), "http://a/");
    CHECK_STREQ(e[1].key, "notify.0.events");
    CHECK_STREQ(e[1].value, "failed");
    CHECK_STREQ(e[2].value, "host_failed");
    CHECK(e[2].line == 3);
    CHECK_STREQ(kd_config_get(cfg, "notify.1.url"), "http://b/");
    CHECK_STREQ(kd_config_get(cfg, "notify.1.secret"), "s");
    CHECK_STREQ(kd_config_get(cfg, "after"), "1");
    kd_config_free(cfg);
}

static void test_syntax_error_names_line(void)
{
    const char bad[] = "brokers: a\nkafka:\n  acks: [all\n";
    char err[512] = "";
    kd_config_t *cfg = NULL;

    CHECK(kd_config_parse("bad.yml", bad, strlen(bad), &cfg, err, sizeof err) == KD_EINVAL);
    CHECK(cfg == NULL);
    CHECK_CONTAINS(err, "bad.yml:4");
}

static void test_passthrough_to_librdkafka(void)
{
    char err[512] = "";
    kd_config_t *cfg = NULL;
    kd_bus_conf_t *conf = kd_bus_conf_new();
    char topic[128];

    CHECK(kd_config_parse("sample.yml", sample, strlen(sample), &cfg, err, sizeof err) == KD_OK);
    CHECK_MSG(kd_bus_conf_apply(conf, cfg, err, sizeof err) == KD_OK, "%s", err);
    CHECK_STREQ(kd_bus_conf_brokers(conf), "10.0.0.1:9092,10.0.0.2:9092");
    CHECK_STREQ(kd_bus_topic_name(conf, KD_TOPIC_STEPS, topic, sizeof topic), "prod.kdeploy.steps");
    /* Direct properties are checked by librdkafka itself. */
    CHECK(kd_bus_conf_set(conf, "linger.ms", "5", err, sizeof err) == KD_OK);
    CHECK(kd_bus_conf_set(conf, "compresion.type", "lz4", err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "compresion.type");
    CHECK(kd_bus_conf_set(conf, "acks", "sometimes", err, sizeof err) == KD_EINVAL);
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
}

static void test_bad_property_names_file_and_line(void)
{
    const char text[] = "brokers: x:1\nkafka:\n  socket.timeout.ms: soon\n";
    char err[512] = "";
    kd_config_t *cfg = NULL;
    kd_bus_conf_t *conf = kd_bus_conf_new();

    CHECK(kd_config_parse("svc.yml", text, strlen(text), &cfg, err, sizeof err) == KD_OK);
    CHECK(kd_bus_conf_apply(conf, cfg, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "svc.yml:3: kafka.socket.timeout.ms");
    kd_config_free(cfg);
    kd_bus_conf_free(conf);
}

static void test_brokers_from_environment(void)
{
    kd_bus_conf_t *conf = kd_bus_conf_new();
    char err[256];

    setenv("KDEPLOY_BROKERS", "127.0.0.1:1234", 1);
    CHECK(kd_bus_conf_env_defaults(conf, err, sizeof err) == KD_OK);
    CHECK_STREQ(kd_bus_conf_brokers(conf), "127.0.0.1:1234");
    /* An explicit list wins over the environment. */
    kd_bus_conf_set(conf, "brokers", "127.0.0.1:9", err, sizeof err);
    CHECK(kd_bus_conf_env_defaults(conf, err, sizeof err) == KD_OK);
    CHECK_STREQ(kd_bus_conf_brokers(conf), "127.0.0.1:9");
    kd_bus_conf_free(conf);
}

static void test_topic_prefix_from_environment(void)
{
    kd_bus_conf_t *conf = kd_bus_conf_new();
    char err[256] = "", name[256];

    CHECK_STREQ(kd_bus_conf_prefix(conf), "kdeploy.");
    setenv("KDEPLOY_TOPIC_PREFIX", "ci-42.", 1);
    CHECK(kd_bus_conf_env_defaults(conf, err, sizeof err) == KD_OK);
    CHECK_STREQ(kd_bus_topic_name(conf, KD_TOPIC_STEPS, name, sizeof name), "ci-42.steps");
    /* An option or the config file wins over the environment. */
    CHECK(kd_bus_conf_set(conf, "topic_prefix", "prod.", err, sizeof err) == KD_OK);
    CHECK(kd_bus_conf_env_defaults(conf, err, sizeof err) == KD_OK);
    CHECK_STREQ(kd_bus_conf_prefix(conf), "prod.");
    kd_bus_conf_free(conf);

    /* Not a Kafka topic name: refused, naming the variable. */
    conf = kd_bus_conf_new();
    setenv("KDEPLOY_TOPIC_PREFIX", "a/b", 1);
    CHECK(kd_bus_conf_env_defaults(conf, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "KDEPLOY_TOPIC_PREFIX");
    CHECK(kd_bus_conf_set(conf, "topic_prefix", "", err, sizeof err) == KD_EINVAL);
    unsetenv("KDEPLOY_TOPIC_PREFIX");
    kd_bus_conf_free(conf);
}

static void test_producer_needs_brokers(void)
{
    kd_bus_conf_t *conf = kd_bus_conf_new();
    kd_producer_t *p = NULL;
    char err[256] = "";

    unsetenv("KDEPLOY_BROKERS");
    CHECK(kd_producer_new(conf, "test", &p, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "--brokers");
    kd_bus_conf_free(conf);
}

/* A misspelt key fails at start, with the file, the line and a hint. */
static void test_unknown_keys_are_refused(void)
{
    static const char *const keys[] = {KD_CONFIG_COMMON_KEYS, "verify_key", "host_id", NULL};
    const char good[] = "brokers: a:1\nverify_key: /k\nkafka:\n  security.protocol: SSL\n"
                        "log:\n  level: info\n";
    const char typo[] = "brokers: a:1\nhost_id: web-01\nverify_kye: /k\n";
    const char far[] = "brokers: a:1\nsomething_else: 1\n";
    const char bare[] = "kafka: x\n"; /* "kafka.*" allows keys below kafka only */
    kd_config_t *cfg = NULL;
    char err[256] = "";

    CHECK(kd_config_parse("good.yml", good, strlen(good), &cfg, err, sizeof err) == KD_OK);
    CHECK_MSG(kd_config_check_keys(cfg, keys, err, sizeof err) == KD_OK, "%s", err);
    kd_config_free(cfg);
    CHECK(kd_config_parse("w.yml", typo, strlen(typo), &cfg, err, sizeof err) == KD_OK);
    CHECK(kd_config_check_keys(cfg, keys, err, sizeof err) == KD_EINVAL);
    CHECK_STREQ(err, "w.yml:3: unknown key 'verify_kye' (did you mean 'verify_key'?)");
    kd_config_free(cfg);
    CHECK(kd_config_parse("w.yml", far, strlen(far), &cfg, err, sizeof err) == KD_OK);
    CHECK(kd_config_check_keys(cfg, keys, err, sizeof err) == KD_EINVAL);
    CHECK_STREQ(err, "w.yml:2: unknown key 'something_else'");
    kd_config_free(cfg);
    CHECK(kd_config_parse("w.yml", bare, strlen(bare), &cfg, err, sizeof err) == KD_OK);
    CHECK(kd_config_check_keys(cfg, keys, err, sizeof err) == KD_EINVAL);
    kd_config_free(cfg);
    CHECK_STREQ(kd_did_you_mean("signing_kye", (const char *const[]){"signing_key", "group", NULL}),
                "signing_key");
    CHECK(kd_did_you_mean("zzz", (const char *const[]){"signing_key", NULL}) == NULL);
}

int main(void)
{
    RUN(test_unknown_keys_are_refused);
    RUN(test_flattened_keys);
    RUN(test_list_of_mappings_numbers_items);
    RUN(test_syntax_error_names_line);
    RUN(test_passthrough_to_librdkafka);
    RUN(test_bad_property_names_file_and_line);
    RUN(test_brokers_from_environment);
    RUN(test_topic_prefix_from_environment);
    RUN(test_producer_needs_brokers);
    return check_summary();
}
