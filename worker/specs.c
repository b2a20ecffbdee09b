/* A small table of parsed appspecs with reference counts. Entries not in
 * use are evicted oldest first when the table is full; an entry in use
 * stays, so a spec never goes away under the step reading it. */
#include "specs.h"

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SPECS_MAX 16

typedef struct entry {
    char path[PATH_MAX];   /* the appspec file */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    kd_appspec_t *spec;
    unsigned refs;
    uint64_t used;         /* last use, for eviction */
    bool stale;            /* replaced by a newer parse: freed when let go */
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t table[SPECS_MAX];
static uint64_t clock_ticks;
static unsigned long parses;

static bool same_file(const entry_t *e, const char *path, const struct stat *st)
{
    return e->spec && !e->stale && strcmp(e->path, path) == 0 && e->dev == st->st_dev &&
           e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static entry_t *find(const char *path, const struct stat *st)
{
    for (size_t i = 0; i < SPECS_MAX; i++)
        if (same_file(&table[i], path, st))
            return &table[i];
    return NULL;
}

/* A free slot, or the least recently used one not in use (emptied). */
static entry_t *slot(void)
{
    entry_t *best = NULL;

    for (size_t i = 0; i < SPECS_MAX; i++) {
        entry_t *e = &table[i];

        if (!e->spec)
            return e;
        if (!e->refs && (!best || e->used < best->used))
            best = e;
    }
    if (best) {
        kd_appspec_free(best->spec);
        memset(best, 0, sizeof *best);
    }
    return best;
}

/* Marks older parses of path stale: they go when their users let go. */
static void retire(const char *path)
{
    for (size_t i = 0; i < SPECS_MAX; i++) {
        entry_t *e = &table[i];

        if (!e->spec || strcmp(e->path, path) != 0)
            continue;
        if (e->refs) {
            e->stale = true;
        } else {
            kd_appspec_free(e->spec);
            memset(e, 0, sizeof *e);
        }
    }
}

static kd_status_t parse(const char *path, const struct stat *st, const kd_appspec_t **out,
                         char *err, size_t errsz)
{
    kd_appspec_t *spec = NULL;
    entry_t *e;
    kd_status_t rc = kd_appspec_load_file(path, &spec, err, errsz);

    if (rc != KD_OK)
        return rc;
    parses++;
    retire(path);
    if (!(e = slot())) {
        /* Every slot in use: hand out an unshared parse. */
        *out = spec;
        return KD_OK;
    }
    snprintf(e->path, sizeof e->path, "%s", path);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->size = st->st_size;
    e->mtime = st->st_mtim;
    e->spec = spec;
    e->refs = 1;
    e->used = ++clock_ticks;
    *out = spec;
    return KD_OK;
}

kd_status_t kd_specs_get(const char *root, const kd_appspec_t **out, char *err, size_t errsz)
{
    char path[PATH_MAX];
    struct stat st;
    entry_t *e;
    kd_status_t rc = kd_appspec_find(root, path, sizeof path);

    if (rc != KD_OK || stat(path, &st) != 0)
        return kd_appspec_load_dir(root, (kd_appspec_t **)out, err, errsz);
    pthread_mutex_lock(&lock);
    if ((e = find(path, &st)) != NULL) {
        e->refs++;
        e->used = ++clock_ticks;
        *out = e->spec;
        rc = KD_OK;
    } else {
        rc = parse(path, &st, out, err, errsz);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void kd_specs_release(const kd_appspec_t *spec)
{
    if (!spec)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < SPECS_MAX; i++) {
        entry_t *e = &table[i];

        if (e->spec != spec)
            continue;
        if (--e->refs == 0 && e->stale) {
            kd_appspec_free(e->spec);
            memset(e, 0, sizeof *e);
        }
        pthread_mutex_unlock(&lock);
        return;
    }
    pthread_mutex_unlock(&lock);
    /* Not in the table: an unshared parse. */
    kd_appspec_free((kd_appspec_t *)spec);
}

unsigned long kd_specs_parses(void)
{
    unsigned long n;

    pthread_mutex_lock(&lock);
    n = parses;
    pthread_mutex_unlock(&lock);
    return n;
}
