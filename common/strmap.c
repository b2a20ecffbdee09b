#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char *key;
    char *value;
} slot_t;

struct kd_strmap {
    slot_t *slots;
    size_t cap;   /* a power of two */
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

kd_strmap_t *kd_strmap_new(void)
{
    kd_strmap_t *m = calloc(1, sizeof *m);

    if (m && !(m->slots = calloc(16, sizeof *m->slots))) {
        free(m);
        return NULL;
    }
    if (m)
        m->cap = 16;
    return m;
}

void kd_strmap_free(kd_strmap_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        free(m->slots[i].value);
    }
    free(m->slots);
    free(m);
}

static slot_t *find(const kd_strmap_t *m, const char *key)
{
    size_t i = (size_t)hash(key) & (m->cap - 1);

    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static kd_status_t grow(kd_strmap_t *m)
{
    kd_strmap_t bigger = {calloc(m->cap * 2, sizeof(slot_t)), m->cap * 2, m->count};

    if (!bigger.slots)
        return KD_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            *find(&bigger, m->slots[i].key) = m->slots[i];
    free(m->slots);
    *m = bigger;
    return KD_OK;
}

kd_status_t kd_strmap_set(kd_strmap_t *m, const char *key, const char *value)
{
    slot_t *s;
    char *v = strdup(value);

    if (!v)
        return KD_ENOMEM;
    if ((m->count + 1) * 2 > m->cap && grow(m) != KD_OK) {
        free(v);
        return KD_ENOMEM;
    }
    s = find(m, key);
    if (!s->key) {
        if (!(s->key = strdup(key))) {
            free(v);
            return KD_ENOMEM;
        }
        m->count++;
    }
    free(s->value);
    s->value = v;
    return KD_OK;
}

const char *kd_strmap_get(const kd_strmap_t *m, const char *key)
{
    const slot_t *s = find(m, key);

    return s->key ? s->value : NULL;
}

size_t kd_strmap_count(const kd_strmap_t *m)
{
    return m->count;
}
