/* A step journal on local disk (the worker's steps, lbctl's traffic
 * changes): each step id is recorded when it starts and, with its result
 * (the serialized result message), when it ends; a worker also records
 * the steps topic offset it has done up to. The records are appended to
 * one preallocated file, journal.log, in the journal's directory; entries
 * of the older layout (a file per entry) are still read.
 * A repeated delivery of a finished step republishes the recorded result
 * instead of running the hook again; a step found started but never
 * finished was cut short by a crash. */
#ifndef KD_JOURNAL_H
#define KD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "status.h"

typedef struct kd_journal kd_journal_t;

typedef enum {
    KD_JOURNAL_NONE = 0,  /* never seen */
    KD_JOURNAL_STARTED,   /* started, no result recorded */
    KD_JOURNAL_FINISHED   /* finished; the result is recorded */
} kd_journal_state_t;

/* Opens (creating if needed) the journal in dir, which must be a directory
 * (not a symlink) owned by this process's user with mode 0700 (KD_EREFUSED
 * otherwise). One process at a time: a journal open elsewhere is refused
 * (KD_EREFUSED). Starts and results are durable (fdatasync) before a call
 * returns. */
kd_status_t kd_journal_open(const char *dir, kd_journal_t **out, char *err, size_t errsz);
void kd_journal_close(kd_journal_t *j);

/* Looks up a step. When finished and result is non-NULL, the recorded
 * result bytes are appended to it. */
kd_status_t kd_journal_lookup(kd_journal_t *j, const char *step_id, kd_journal_state_t *state,
                              kd_buf_t *result, char *err, size_t errsz);
/* Records that a step starts (durably: fsync'd before the hook runs). */
kd_status_t kd_journal_start(kd_journal_t *j, const char *step_id, char *err, size_t errsz);
/* Records a step's result bytes (durably). */
kd_status_t kd_journal_finish(kd_journal_t *j, const char *step_id, const void *result,
                              size_t len, char *err, size_t errsz);

/* Records that the host's steps before next_offset are done (the steps
 * topic's offset, in the host's partition). Not synced on its own: a
 * crash may lose the last ones, which only brings those steps again. */
kd_status_t kd_journal_set_offset(kd_journal_t *j, int64_t next_offset, char *err,
                                  size_t errsz);
/* The last recorded next offset, or -1 if none was. */
int64_t kd_journal_offset(kd_journal_t *j);

/* The process group a step's hook runs in, recorded before the hook may
 * exec (not fsync'd: only a worker crash, not a power cut, leaves a hook
 * running) and cleared when it has ended, so that a worker killed
 * mid-hook can end the orphan when it starts again. start is the group
 * leader's start time (/proc/PID/stat field 22), to tell a reused pid. */
kd_status_t kd_journal_set_running(kd_journal_t *j, const char *step_id, long pgid,
                                   unsigned long long start, char *err, size_t errsz);
kd_status_t kd_journal_clear_running(kd_journal_t *j, const char *step_id, char *err,
                                     size_t errsz);
/* Calls fn for every running record; stops at the first error fn returns. */
typedef kd_status_t (*kd_journal_running_fn)(void *opaque, const char *step_id, long pgid,
                                             unsigned long long start);
kd_status_t kd_journal_each_running(kd_journal_t *j, kd_journal_running_fn fn, void *opaque,
                                    char *err, size_t errsz);

#endif
