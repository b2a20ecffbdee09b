/* The loop around the core (see core.h): publish a round, apply it, ask
 * again about what it touched. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"
#include "ptrmap.h"

/* A round's decisions make the next round's smaller; a deployment that
 * still has something to decide after this many rounds is a bug, and the
 * loop must not spin on it. */
#define MAX_ROUNDS 10000

/* The deploy ids a round's deployments-topic decisions touched: the next
 * round drives exactly those. */
static kd_status_t touched_ids(const kd_decisions_t *dec, char ***ids, size_t *n)
{
    kd_ptrmap_t *seen = kd_ptrmap_new();
    char **list = calloc(dec->count + 1, sizeof *list);

    *ids = list;
    *n = 0;
    if (!seen || !list) {
        kd_ptrmap_free(seen);
        return KD_ENOMEM;
    }
    for (size_t i = 0; i < dec->count; i++) {
        const char *id = dec->items[i].env->deploy_id;

        if (dec->items[i].topic != KD_TOPIC_DEPLOYMENTS || kd_ptrmap_get(seen, id))
            continue;
        if (!(list[*n] = strdup(id)) || kd_ptrmap_set(seen, list[*n], list[*n]) != KD_OK) {
            kd_ptrmap_free(seen);
            return KD_ENOMEM;
        }
        (*n)++;
    }
    kd_ptrmap_free(seen);
    return KD_OK;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
}

kd_status_t kd_core_execute(kd_model_t *m, kd_decisions_t *dec, kd_ctx_fn ctx,
                            kd_publish_fn publish, void *arg, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;
    int rounds = 0;

    while (dec->count > 0 || dec->failed) {
        kd_core_ctx_t c;
        char **ids = NULL;
        size_t n = 0;

        if (dec->failed) {
            st = kd_err(err, errsz, KD_ENOMEM, "out of memory while deciding");
            break;
        }
        if (++rounds > MAX_ROUNDS) {
            kd_error("still deciding after %d rounds: dropping %zu decision(s)", MAX_ROUNDS,
                     dec->count);
            break;
        }
        if ((st = publish(arg, dec, err, errsz)) != KD_OK)
            return st; /* the round stays in dec, for the caller to retry */
        /* Published: now it is what happened. */
        for (size_t i = 0; i < dec->count; i++)
            if (dec->items[i].topic == KD_TOPIC_DEPLOYMENTS)
                kd_model_apply(m, dec->items[i].env);
        if ((st = touched_ids(dec, &ids, &n)) != KD_OK) {
            st = kd_err(err, errsz, st, "out of memory while deciding");
            free_ids(ids, n);
            break;
        }
        kd_decisions_clear(dec);
        ctx(arg, &c);
        for (size_t i = 0; i < n; i++)
            kd_core_drive(m, &c, ids[i], dec);
        free_ids(ids, n);
    }
    kd_decisions_clear(dec);
    return st;
}
