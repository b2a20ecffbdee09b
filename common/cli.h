/* What every kdeploy command-line tool shares: the bus options
 * (--brokers, --brokers-file, --config, --topic-prefix, -X
 * kafka.property=value) and logging options (--log-level, --log-json,
 * --verbose), parsed alike everywhere. */
#ifndef KD_CLI_H
#define KD_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "bus.h"

typedef struct kd_cli_common {
    const char *brokers;
    const char *brokers_file;  /* the broker list read from a file */
    const char *config_path;
    const char *topic_prefix;
    const char *log_level;
    bool log_json;
    bool verbose;           /* debug logging, librdkafka's lines included */
    const char *props[64];  /* -X name=value, in order */
    int prop_count;
    /* Every key the program's config file may hold (NULL-terminated, with
     * KD_CONFIG_COMMON_KEYS among them): kd_cli_setup refuses any other.
     * NULL: not checked. */
    const char *const *config_keys;
} kd_cli_common_t;

/* Option codes of the common options (above any single-character code). */
enum {
    KD_OPT_BROKERS = 1000,
    KD_OPT_CONFIG,
    KD_OPT_TOPIC_PREFIX,
    KD_OPT_LOG_LEVEL,
    KD_OPT_LOG_JSON,
    KD_OPT_BROKERS_FILE,
    KD_OPT_VERBOSE,
    KD_OPT_PROPERTY = 'X'
};

#define KD_CLI_COMMON_LONGOPTS                                                \
    {"brokers", required_argument, NULL, KD_OPT_BROKERS},                    \
    {"config", required_argument, NULL, KD_OPT_CONFIG},                      \
    {"topic-prefix", required_argument, NULL, KD_OPT_TOPIC_PREFIX},          \
    {"log-level", required_argument, NULL, KD_OPT_LOG_LEVEL},                \
    {"log-json", no_argument, NULL, KD_OPT_LOG_JSON},                        \
    {"brokers-file", required_argument, NULL, KD_OPT_BROKERS_FILE},          \
    {"verbose", no_argument, NULL, KD_OPT_VERBOSE}

#define KD_CLI_COMMON_HELP                                                    \
    "  --brokers LIST        Kafka bootstrap servers (or KDEPLOY_BROKERS)\n"  \
    "  --brokers-file FILE   read the bootstrap servers from FILE\n"          \
    "  --config FILE         YAML config file (brokers, topic_prefix, kafka.*)\n" \
    "  --topic-prefix P      topic name prefix (default kdeploy.)\n"          \
    "  -X NAME=VALUE         any librdkafka property (repeatable)\n"          \
    "  --log-level L         error, warn, info (default) or debug\n"          \
    "  --log-json            log JSON lines instead of text\n"              \
    "  --verbose             debug logging, with librdkafka's own lines\n"

/* Takes one getopt result; returns true if it was a common option. */
bool kd_cli_common_opt(kd_cli_common_t *cli, int opt, const char *arg);

/* Reports the option getopt_long just refused (it returned '?'; call with
 * opterr = 0 set before parsing): "PROG: unknown option '--verify-kye'
 * (did you mean '--verify-key'?)", or that an option needs a value. */
void kd_cli_bad_option(const char *prog, int argc, char *const *argv,
                       const struct option *longopts);

/* Sets up logging for component, loads the config file (if any) and builds
 * the bus configuration: config file first, then command-line options, then
 * KDEPLOY_BROKERS when no broker list was given. cfg_out (optional) receives
 * the loaded config for the caller's own keys (NULL if none).
 * The component "kdeploy" is the operator's tool, which must answer within
 * seconds: librdkafka's log lines are kept for --verbose, and the brokers
 * are probed (KD_CLI_PROBE_MS) so that an unreachable cluster is one line
 * ("cannot reach the broker at ...") instead of retries. */
#define KD_CLI_PROBE_MS 6000

/* Reads a broker list from path: one line, or several lines (joined with
 * commas); blank lines and surrounding spaces are dropped. An unreadable
 * or empty file is refused. *out is the caller's to free. */
kd_status_t kd_cli_read_brokers_file(const char *path, char **out, char *err, size_t errsz);

kd_status_t kd_cli_setup(const kd_cli_common_t *cli, const char *component,
                         kd_bus_conf_t **conf_out, kd_config_t **cfg_out, char *err,
                         size_t errsz);

#endif
