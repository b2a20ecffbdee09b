#include "idset.h"

#include <stdlib.h>
#include <string.h>

kd_status_t kd_idset_add(kd_idset_t *s, const char *id)
{
    if (!s->seen && !(s->seen = kd_ptrmap_new()))
        return KD_ENOMEM;
    if (kd_ptrmap_get(s->seen, id))
        return KD_OK;
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **ids = realloc(s->ids, cap * sizeof *ids);

        if (!ids)
            return KD_ENOMEM;
        s->ids = ids;
        s->cap = cap;
    }
    if (!(s->ids[s->count] = strdup(id)))
        return KD_ENOMEM;
    if (kd_ptrmap_set(s->seen, s->ids[s->count], s->ids[s->count]) != KD_OK) {
        free(s->ids[s->count]);
        return KD_ENOMEM;
    }
    s->count++;
    return KD_OK;
}

void kd_idset_clear(kd_idset_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->ids[i]);
    s->count = 0;
    /* A fresh map: its keys were the copies just freed. */
    kd_ptrmap_free(s->seen);
    s->seen = NULL;
}

void kd_idset_free(kd_idset_t *s)
{
    kd_idset_clear(s);
    free(s->ids);
    s->ids = NULL;
    s->cap = 0;
}
