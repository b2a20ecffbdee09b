#include "lookup.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "strmap.h"

/* Candidates named in an ambiguity error; the rest are counted. */
#define SHOWN 8

typedef struct matches {
    kd_strmap_t *seen;     /* every distinct id that starts with given */
    char shown[SHOWN][256];
    size_t shown_count;
    bool exact;
} matches_t;

static void note(matches_t *mt, const char *given, const char *id)
{
    if (!*id || strncmp(id, given, strlen(given)) != 0 || kd_strmap_get(mt->seen, id))
        return;
    if (strcmp(id, given) == 0)
        mt->exact = true;
    kd_strmap_set(mt->seen, id, "");
    if (mt->shown_count < SHOWN)
        snprintf(mt->shown[mt->shown_count++], sizeof mt->shown[0], "%s", id);
}

/* Only the deploy-id header is looked at: nothing is decoded. A forged
 * header can at worst make an id look taken, which the planner's own
 * answer then settles. */
static kd_status_t scan(const kd_bus_conf_t *conf, const char *given, matches_t *mt, char *err,
                        size_t errsz)
{
    kd_topic_t topics[] = {KD_TOPIC_DEPLOYMENTS, KD_TOPIC_REQUESTS};
    kd_consumer_opts_t o = {.topics = topics, .topic_count = 2, .read_all = true};
    kd_consumer_t *c = NULL;
    kd_status_t st = kd_consumer_new(conf, &o, &c, err, errsz);
    /* Every partition's end; one that cannot be read must not hang us. */
    int64_t deadline = kd_mono_ms() + 30000;

    while (st == KD_OK && !kd_consumer_at_end(c)) {
        kd_message_t *m = NULL;

        if (kd_mono_ms() > deadline) {
            st = kd_err(err, errsz, KD_ETIMEDOUT, "the deployments topic could not be read");
            break;
        }
        if ((st = kd_consumer_poll(c, 100, &m, err, errsz)) == KD_OK && m)
            note(mt, given, m->deploy_id);
        kd_message_free(m);
    }
    kd_consumer_free(c);
    return st;
}

static kd_status_t ambiguous(const matches_t *mt, const char *given, char *err, size_t errsz)
{
    size_t total = kd_strmap_count(mt->seen), n;

    n = (size_t)snprintf(err, errsz, "'%s' is more than one deployment:", given);
    for (size_t i = 0; i < mt->shown_count && n < errsz; i++)
        n += (size_t)snprintf(err + n, errsz - n, " %s", mt->shown[i]);
    if (total > mt->shown_count && n < errsz)
        snprintf(err + n, errsz - n, " and %zu more", total - mt->shown_count);
    return KD_ECONFLICT;
}

kd_status_t kd_lookup_id(const kd_bus_conf_t *conf, const char *given, char *full,
                         size_t fullsz, char *err, size_t errsz)
{
    matches_t mt = {.seen = kd_strmap_new()};
    kd_status_t st;

    if (!mt.seen)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (!*given)
        st = kd_err(err, errsz, KD_EINVAL, "an empty deploy id");
    else if ((st = scan(conf, given, &mt, err, errsz)) != KD_OK)
        ;
    else if (mt.exact || kd_strmap_count(mt.seen) == 1)
        snprintf(full, fullsz, "%s", mt.exact ? given : mt.shown[0]);
    else if (kd_strmap_count(mt.seen) == 0)
        st = kd_err(err, errsz, KD_ENOTFOUND, "no deployment '%s'", given);
    else
        st = ambiguous(&mt, given, err, errsz);
    kd_strmap_free(mt.seen);
    return st;
}
