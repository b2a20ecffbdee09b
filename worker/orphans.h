/* Hooks a previous life of the worker left running. A worker killed in the
 * middle of a hook (SIGKILL, a crash, the OOM killer) leaves the hook's
 * process group running, reparented to init. Every hook's group is
 * recorded in the journal before the hook may start; a worker that starts
 * ends the groups still recorded before it reports anything about their
 * steps, so two hooks of one host never overlap. */
#ifndef KD_ORPHANS_H
#define KD_ORPHANS_H

#include <stddef.h>
#include <sys/types.h>

#include "journal.h"
#include "status.h"

/* The start time of process pid (/proc/PID/stat field 22, clock ticks
 * since boot), or 0 when there is no such process. */
unsigned long long kd_proc_start_time(pid_t pid);

/* For every group recorded as running in j: unless its leader's pid now
 * belongs to another process (a different start time), sends the group
 * SIGTERM, then SIGKILL after grace_ms, waits until no process of the group
 * is left (zombies aside), then clears the record. host names the host in
 * the log. Returns KD_OK, or an error if a group cannot be ended. */
kd_status_t kd_orphans_end(kd_journal_t *j, const char *host, long grace_ms, char *err,
                           size_t errsz);

#endif
