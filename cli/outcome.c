#include "outcome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptrmap.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name

typedef struct note {
    char *id;                             /* the map's key */
    Kdeploy__V1__DeploymentStatus ended;  /* succeeded, failed or stopped; 0 before */
    char *reason;
    char *reason_by;
    char *rejected;                       /* a rejection's reason */
    uint32_t skipped;                     /* hosts it had nothing to do on */
    uint32_t hosts;                       /* hosts it was accepted with */
    struct note *next;                    /* every note, for freeing */
} note_t;

struct kd_notes {
    kd_ptrmap_t *by_id;
    note_t *all;
};

kd_notes_t *kd_notes_new(void)
{
    kd_notes_t *n = calloc(1, sizeof *n);

    if (n && !(n->by_id = kd_ptrmap_new())) {
        free(n);
        return NULL;
    }
    return n;
}

void kd_notes_free(kd_notes_t *n)
{
    if (!n)
        return;
    while (n->all) {
        note_t *t = n->all;

        n->all = t->next;
        free(t->id);
        free(t->reason);
        free(t->reason_by);
        free(t->rejected);
        free(t);
    }
    kd_ptrmap_free(n->by_id);
    free(n);
}

static note_t *note_of(kd_notes_t *n, const char *id)
{
    note_t *t = kd_ptrmap_get(n->by_id, id);

    if (t)
        return t;
    if (!(t = calloc(1, sizeof *t)) || !(t->id = strdup(id)) ||
        kd_ptrmap_set(n->by_id, t->id, t) != KD_OK) {
        if (t)
            free(t->id);
        free(t);
        return NULL;
    }
    t->next = n->all;
    n->all = t;
    return t;
}

/* Replaces *dst with a copy of value; an empty value keeps what was said. */
static void keep(char **dst, const char *value)
{
    char *copy;

    if (!value || !*value || !(copy = strdup(value)))
        return;
    free(*dst);
    *dst = copy;
}

void kd_notes_apply(kd_notes_t *n, const kd_envelope_t *env)
{
    note_t *t;

    if (!env->deploy_id || !*env->deploy_id || !(t = note_of(n, env->deploy_id)))
        return;
    switch (env->body_case) {
    case KD_BODY(SUCCEEDED):
        t->ended = STATUS(SUCCEEDED);
        t->skipped = env->succeeded->hosts_skipped;
        break;
    case KD_BODY(FAILED):
        t->ended = STATUS(FAILED);
        keep(&t->reason, env->failed->reason);
        break;
    case KD_BODY(REJECTED):
        keep(&t->rejected, env->rejected->reason);
        break;
    case KD_BODY(ACCEPTED):
        t->hosts = env->accepted->n_hosts ? (uint32_t)env->accepted->n_hosts
                                          : env->accepted->hosts_total;
        /* Who asked for a rollback; a deployment's creator is shown apart. */
        if (env->accepted->rollback_of && *env->accepted->rollback_of)
            keep(&t->reason_by, env->accepted->requested_by);
        break;
    case KD_BODY(ROLLBACK_STARTED):
        /* Published under the undone deployment's id: the rollback's own
         * note gets the reason too. */
        if (!t->reason)
            keep(&t->reason, env->rollback_started->reason);
        if (env->rollback_started->rollback_deploy_id &&
            *env->rollback_started->rollback_deploy_id &&
            (t = note_of(n, env->rollback_started->rollback_deploy_id)))
            keep(&t->reason, env->rollback_started->reason);
        break;
    case KD_BODY(STATUS_CHANGED):
        if (env->status_changed->status == STATUS(STOPPED))
            t->ended = STATUS(STOPPED);
        if (env->status_changed->status == STATUS(STOPPED) ||
            env->status_changed->status == STATUS(STOPPING)) {
            keep(&t->reason, env->status_changed->reason);
            keep(&t->reason_by, env->status_changed->requested_by);
        }
        break;
    default:
        break;
    }
}

static const note_t *find(const kd_notes_t *n, const char *id)
{
    return n ? kd_ptrmap_get(n->by_id, id) : NULL;
}

const char *kd_notes_rejected(const kd_notes_t *n, const char *deploy_id)
{
    const note_t *t = find(n, deploy_id);

    return t ? t->rejected : NULL;
}

const char *kd_notes_reason(const kd_notes_t *n, const char *deploy_id)
{
    const note_t *t = find(n, deploy_id);

    return t && t->reason ? t->reason : "";
}

const char *kd_notes_reason_by(const kd_notes_t *n, const char *deploy_id)
{
    const note_t *t = find(n, deploy_id);

    return t && t->reason_by ? t->reason_by : "";
}

const char *kd_hosts_text(size_t n, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%zu host%s", n, n == 1 ? "" : "s");
    return buf;
}

const char *kd_duration_text(int64_t ms, char *buf, size_t bufsz)
{
    int64_t s = ms / 1000;

    if (ms < 0)
        snprintf(buf, bufsz, "-");
    else if (s < 60)
        snprintf(buf, bufsz, "%.1fs", ms / 1000.0);
    else if (s < 3600)
        snprintf(buf, bufsz, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, bufsz, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
    return buf;
}

/* A rollback that found nothing to restore anywhere says so, rather than
 * "succeeded". */
static const char *rollback_text(const kd_deploy_t *d, const note_t *t, char *buf, size_t bufsz)
{
    kd_host_counts_t c;
    size_t skipped;
    char hosts[32];

    kd_deploy_counts(d, &c);
    skipped = t && t->skipped > c.skipped ? t->skipped : c.skipped;
    if (kd_deploy_status(d) != STATUS(ROLLBACK_SUCCEEDED) || skipped == 0)
        return NULL;
    if (skipped >= c.total)
        snprintf(buf, bufsz, "rollback: nothing to roll back on %s",
                 kd_hosts_text(skipped, hosts, sizeof hosts));
    else
        snprintf(buf, bufsz, "rollback succeeded (nothing to roll back on %s)",
                 kd_hosts_text(skipped, hosts, sizeof hosts));
    return buf;
}

/* Its rollback skipped every host: nothing had been installed before. */
static bool restored_nothing(const kd_notes_t *notes, const kd_deploy_t *d)
{
    const note_t *rb = find(notes, kd_deploy_rolled_back_by(d));

    return rb && rb->ended == STATUS(SUCCEEDED) && rb->hosts && rb->skipped >= rb->hosts;
}

const char *kd_outcome_text(const kd_notes_t *notes, const kd_deploy_t *d, char *buf,
                            size_t bufsz)
{
    const note_t *t = find(notes, kd_deploy_id(d));
    Kdeploy__V1__DeploymentStatus st = kd_deploy_status(d);
    /* How this deployment itself ended, before a rollback undid it. */
    const char *ended = t && t->ended ? kd_status_name_of(t->ended) : "failed";

    if (kd_deploy_rollback_of(d)[0] && rollback_text(d, t, buf, bufsz))
        return buf;
    if (kd_deploy_rollback_of(d)[0] || (st != STATUS(ROLLING_BACK) &&
                                        st != STATUS(ROLLBACK_SUCCEEDED) &&
                                        st != STATUS(ROLLBACK_FAILED))) {
        snprintf(buf, bufsz, "%s", kd_deploy_paused(d) && !kd_deploy_finished(d)
                                       ? "paused" : kd_status_name_of(st));
        return buf;
    }
    snprintf(buf, bufsz, "%s, %s", ended,
             st == STATUS(ROLLING_BACK)        ? "rolling back"
             : st != STATUS(ROLLBACK_SUCCEEDED) ? "rollback failed"
             : restored_nothing(notes, d)       ? "nothing to roll back"
                                               : "rolled back");
    return buf;
}

int kd_outcome_exit(const kd_deploy_t *d)
{
    switch (kd_deploy_status(d)) {
    case STATUS(PENDING):
    case STATUS(DEPLOYING):
    case STATUS(PAUSED):
    case STATUS(SUCCEEDED):
        return KD_EXIT_OK;
    case STATUS(ROLLBACK_SUCCEEDED):
        /* The rollback's own success; the deployment it undid did not. */
        return kd_deploy_rollback_of(d)[0] ? KD_EXIT_OK : KD_EXIT_FAILED;
    default:
        return KD_EXIT_FAILED;
    }
}
