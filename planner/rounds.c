/* The loop around the core (see core.h): publish a round, apply it, ask
 * again about what it touched. */
#include "core.h"
#include "idset.h"
#include "log.h"

/* A round's decisions make the next round's smaller; a deployment that
 * still has something to decide after this many rounds is a bug, and the
 * loop must not spin on it. */
#define MAX_ROUNDS 10000

kd_status_t kd_core_execute(kd_model_t *m, kd_decisions_t *dec, kd_ctx_fn ctx,
                            kd_publish_fn publish, void *arg, char *err, size_t errsz)
{
    kd_idset_t touched = KD_IDSET_INIT;
    kd_status_t st = KD_OK;
    int rounds = 0;

    while (dec->count > 0 || dec->failed) {
        kd_core_ctx_t c;

        if (dec->failed) {
            st = kd_err(err, errsz, KD_ENOMEM, "out of memory while deciding");
            break;
        }
        if (++rounds > MAX_ROUNDS) {
            kd_error("still deciding after %d rounds: dropping %zu decision(s)", MAX_ROUNDS,
                     dec->count);
            break;
        }
        if ((st = publish(arg, dec, err, errsz)) != KD_OK) {
            kd_idset_free(&touched);
            return st; /* the round stays in dec, for the caller to retry */
        }
        /* Published: now it is what happened. The next round drives exactly
         * the deployments this one touched. */
        for (size_t i = 0; i < dec->count; i++)
            if (dec->items[i].topic == KD_TOPIC_DEPLOYMENTS) {
                kd_model_apply(m, dec->items[i].env);
                if (st == KD_OK)
                    st = kd_idset_add(&touched, dec->items[i].env->deploy_id);
            }
        if (st != KD_OK) {
            st = kd_err(err, errsz, st, "out of memory while deciding");
            break;
        }
        kd_decisions_clear(dec);
        ctx(arg, &c);
        for (size_t i = 0; i < touched.count; i++)
            kd_core_drive(m, &c, touched.ids[i], dec);
        kd_idset_clear(&touched);
    }
    kd_idset_free(&touched);
    kd_decisions_clear(dec);
    return st;
}
