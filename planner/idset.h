/* A set of deploy ids, kept in the order first added: the deployments a
 * round of decisions or a batch of results touched, each to be driven
 * once. The ids are copies the set owns. */
#ifndef KD_IDSET_H
#define KD_IDSET_H

#include <stddef.h>

#include "ptrmap.h"
#include "status.h"

typedef struct kd_idset {
    kd_ptrmap_t *seen;  /* id -> its copy in ids */
    char **ids;
    size_t count, cap;
} kd_idset_t;

#define KD_IDSET_INIT {NULL, NULL, 0, 0}

/* Adds id unless already there. KD_ENOMEM on failure. */
kd_status_t kd_idset_add(kd_idset_t *s, const char *id);
/* Empties the set (it can be reused). */
void kd_idset_clear(kd_idset_t *s);
/* Empties it and frees what it holds. */
void kd_idset_free(kd_idset_t *s);

#endif
