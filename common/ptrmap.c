#include "ptrmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    const char *key;
    void *value;
} slot_t;

struct kd_ptrmap {
    slot_t *slots;
    size_t cap;   /* a power of two, at most half full */
    size_t count;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

kd_ptrmap_t *kd_ptrmap_new(void)
{
    kd_ptrmap_t *m = calloc(1, sizeof *m);

    if (m && !(m->slots = calloc(16, sizeof *m->slots))) {
        free(m);
        return NULL;
    }
    if (m)
        m->cap = 16;
    return m;
}

void kd_ptrmap_free(kd_ptrmap_t *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

void kd_ptrmap_free_values(kd_ptrmap_t *m)
{
    for (size_t i = 0; m && i < m->cap; i++)
        if (m->slots[i].key)
            free(m->slots[i].value);
}

static slot_t *find(slot_t *slots, size_t cap, const char *key)
{
    size_t i = (size_t)hash(key) & (cap - 1);

    while (slots[i].key && strcmp(slots[i].key, key) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static kd_status_t grow(kd_ptrmap_t *m)
{
    size_t cap = m->cap * 2;
    slot_t *slots = calloc(cap, sizeof *slots);

    if (!slots)
        return KD_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            *find(slots, cap, m->slots[i].key) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return KD_OK;
}

kd_status_t kd_ptrmap_set(kd_ptrmap_t *m, const char *key, void *value)
{
    slot_t *s;

    if ((m->count + 1) * 2 > m->cap && grow(m) != KD_OK)
        return KD_ENOMEM;
    s = find(m->slots, m->cap, key);
    if (!s->key) {
        s->key = key;
        m->count++;
    }
    s->value = value;
    return KD_OK;
}

void *kd_ptrmap_get(const kd_ptrmap_t *m, const char *key)
{
    slot_t *s = find(m->slots, m->cap, key);

    return s->key ? s->value : NULL;
}

size_t kd_ptrmap_count(const kd_ptrmap_t *m)
{
    return m->count;
}
