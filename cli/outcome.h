/* What happened to a deployment, in the operator's words: "failed, rolled
 * back", "rollback: nothing to roll back on 3 hosts", "stopped: maintenance
 * (by ana@ops-1)". The model knows where a deployment stands; the notes
 * keep what the model does not: how it ended before a rollback, the
 * reason and who asked, how many hosts a rollback skipped, rejections. */
#ifndef KD_OUTCOME_H
#define KD_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "model.h"

/* Exit codes of the kdeploy verbs (README, "Exit codes"). */
enum {
    KD_EXIT_OK = 0,          /* succeeded (status: or still on its way) */
    KD_EXIT_FAILED = 1,      /* failed, rolled back, stopped, rejected, refused */
    KD_EXIT_USAGE = 2,       /* bad options, spec or config */
    KD_EXIT_NO_ANSWER = 3,   /* no broker reachable, or no answer from the planner in time */
    KD_EXIT_NOT_FOUND = 4    /* no such deployment, or a short id that is several */
};

#define KD_EXIT_HELP                                                          \
    "exit codes: 0 succeeded (status: also still pending, deploying or paused),\n" \
    "  1 failed, rolled back, stopped, rejected or refused, 2 bad usage or input,\n" \
    "  3 no broker or no planner answered in time, 4 no such deployment\n"

typedef struct kd_notes kd_notes_t;

kd_notes_t *kd_notes_new(void);
void kd_notes_free(kd_notes_t *n);
/* Takes one event of the deployments topic. */
void kd_notes_apply(kd_notes_t *n, const kd_envelope_t *env);

/* A rejected create or rollback's reason, or NULL. */
const char *kd_notes_rejected(const kd_notes_t *n, const char *deploy_id);
/* Why it stopped, failed or was rolled back, and who asked ("" if none). */
const char *kd_notes_reason(const kd_notes_t *n, const char *deploy_id);
const char *kd_notes_reason_by(const kd_notes_t *n, const char *deploy_id);

/* d's outcome as text into buf. notes may be NULL (less is said). */
const char *kd_outcome_text(const kd_notes_t *notes, const kd_deploy_t *d, char *buf,
                            size_t bufsz);
/* The exit code of `kdeploy status` for d: KD_EXIT_OK while it is pending,
 * deploying or paused, and once it (or, for a rollback, the rollback)
 * succeeded; KD_EXIT_FAILED otherwise. */
int kd_outcome_exit(const kd_deploy_t *d);

/* "1 host", "3 hosts". */
const char *kd_hosts_text(size_t n, char *buf, size_t bufsz);
/* A duration as "4.2s", "3m05s", "2h01m". */
const char *kd_duration_text(int64_t ms, char *buf, size_t bufsz);

#endif
