/* A string-keyed index to pointers (open addressing). Keys are NOT copied:
 * each key must stay valid, unchanged, while it is in the map — typically a
 * string owned by the value it points to (a host's name, a deployment's
 * id). Lookups are O(1), so per-event bookkeeping never scans a fleet. */
#ifndef KD_PTRMAP_H
#define KD_PTRMAP_H

#include <stddef.h>

#include "status.h"

typedef struct kd_ptrmap kd_ptrmap_t;

kd_ptrmap_t *kd_ptrmap_new(void);
/* Frees the map, not the keys or values; accepts NULL. */
void kd_ptrmap_free(kd_ptrmap_t *m);
/* Frees every value (with free()); for maps that own their values. */
void kd_ptrmap_free_values(kd_ptrmap_t *m);
/* Sets key to value (replacing a previous value). KD_ENOMEM on failure. */
kd_status_t kd_ptrmap_set(kd_ptrmap_t *m, const char *key, void *value);
/* The value of key, or NULL. */
void *kd_ptrmap_get(const kd_ptrmap_t *m, const char *key);
size_t kd_ptrmap_count(const kd_ptrmap_t *m);

#endif
