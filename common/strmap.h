/* A string-to-string hash map (open addressing), owning copies of both. */
#ifndef KD_STRMAP_H
#define KD_STRMAP_H

#include <stddef.h>

#include "status.h"

typedef struct kd_strmap kd_strmap_t;

kd_strmap_t *kd_strmap_new(void);
void kd_strmap_free(kd_strmap_t *m);
/* Sets key to value (both copied). */
kd_status_t kd_strmap_set(kd_strmap_t *m, const char *key, const char *value);
/* The value of key, or NULL. */
const char *kd_strmap_get(const kd_strmap_t *m, const char *key);
size_t kd_strmap_count(const kd_strmap_t *m);

#endif
