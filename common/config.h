/* Service configuration files: YAML mappings flattened to dotted keys, so
 *   log: {level: debug}
 *   kafka: {security.protocol: SASL_SSL}
 * reads as "log.level" = "debug" and "kafka.security.protocol" = "SASL_SSL".
 * Sequences of scalars become repeated keys ("env" = "A=1", "env" = "B=2");
 * sequences of mappings number their items ("notify.0.url", "notify.1.url").
 * Every entry keeps its line, so a bad value names file:line. */
#ifndef KD_CONFIG_H
#define KD_CONFIG_H

#include <stddef.h>

#include "status.h"

typedef struct kd_config kd_config_t;

typedef struct kd_config_entry {
    const char *key;
    const char *value;
    int line;
} kd_config_entry_t;

/* Parses the YAML file at path. On error fills err with "FILE:LINE:COL: ...". */
kd_status_t kd_config_load(const char *path, kd_config_t **out, char *err, size_t errsz);
/* Parses YAML text; name is used in error messages. */
kd_status_t kd_config_parse(const char *name, const char *text, size_t len, kd_config_t **out,
                            char *err, size_t errsz);
void kd_config_free(kd_config_t *cfg);

/* All entries in file order. */
const kd_config_entry_t *kd_config_entries(const kd_config_t *cfg, size_t *count);
/* The last value of key, or NULL. */
const char *kd_config_get(const kd_config_t *cfg, const char *key);
/* The file the config came from. */
const char *kd_config_name(const kd_config_t *cfg);

/* The keys every service reads through kd_cli_setup, for a list given to
 * kd_config_check_keys: KD_CONFIG_COMMON_KEYS, "my_key", ..., NULL. */
#define KD_CONFIG_COMMON_KEYS "brokers", "topic_prefix", "log.level", "log.format", "kafka.*"

/* Refuses a config holding a key that allowed (NULL-terminated) does not
 * name, so a misspelt key fails at start instead of being ignored. An
 * entry ending in ".*" allows every key below it ("kafka.*" allows
 * "kafka.security.protocol"). Returns KD_OK, or KD_EINVAL with
 * "FILE:LINE: unknown key 'verify_kye' (did you mean 'verify_key'?)" in
 * err for the first unknown key. */
kd_status_t kd_config_check_keys(const kd_config_t *cfg, const char *const *allowed, char *err,
                                 size_t errsz);

/* The candidate (NULL-terminated list) closest to word by edit distance,
 * when close enough to be a likely typo; else NULL. Entries ending in
 * ".*" are compared as their prefix. For did-you-mean hints. */
const char *kd_did_you_mean(const char *word, const char *const *candidates);

#endif
