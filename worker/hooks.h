/* Running one hook script: a child process in its own process group, its
 * stdout and stderr caught through one pipe (the last 4 KiB kept, all of it
 * optionally appended to a log), bounded by a timeout after which the whole
 * group gets SIGTERM and, after a grace, SIGKILL.
 *
 * Hooks are run from an argv, never from a shell string built out of event
 * fields: argv[0] is the absolute path of a script of the verified bundle.
 * A JD `command:` of a verified appspec is run by the caller as
 * {"/bin/sh", "-c", command, NULL}.
 *
 * Also here: the environment a hook gets, with the variable names both AWS
 * CodeDeploy and JD Cloud CodeDeploy scripts expect. */
#ifndef KD_HOOKS_H
#define KD_HOOKS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "appspec.h"
#include "status.h"

#define KD_HOOK_TAIL_MAX 4096                   /* bytes of output kept */
#define KD_HOOK_KILL_GRACE_MS 5000              /* SIGTERM -> SIGKILL */
#define KD_HOOK_OUTPUT_GRACE_MS 500             /* exit -> stop reading output */
#define KD_HOOK_PROGRESS_INTERVAL_MS 5000
#define KD_HOOK_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Called while a hook runs with the time since it started and the output
 * tail so far (tail_len <= KD_HOOK_TAIL_MAX bytes, not NUL-terminated, valid
 * only during the call). */
typedef void (*kd_hook_progress_fn)(void *opaque, int64_t elapsed_ms, const char *tail,
                                    size_t tail_len);

/* What to run and how. Start from kd_hook_spec_init(); every pointer is
 * borrowed for the duration of kd_hook_run. */
typedef struct kd_hook_spec {
    /* NULL-terminated; argv[0] is an absolute path, executed as is (no PATH
     * search, no shell). Required. */
    const char *const *argv;
    /* NULL-terminated "NAME=VALUE" list: the child's whole environment
     * (nothing is inherited from the worker). NULL: an empty one. With runas,
     * HOME, USER and LOGNAME are replaced by the user's. */
    const char *const *envp;
    const char *cwd;            /* directory to run in; NULL: "/" */
    const char *runas;          /* user name; NULL: the worker's own user */
    int64_t timeout_ms;         /* <= 0: no limit */
    int64_t kill_grace_ms;      /* <= 0: KD_HOOK_KILL_GRACE_MS */
    /* After the script itself exits, how long to keep reading output held
     * open by processes it left behind (daemons). <= 0: the default. */
    int64_t output_grace_ms;
    int log_fd;                 /* output is written here as it arrives; -1: none */
    kd_hook_progress_fn progress;   /* NULL: none */
    void *opaque;                   /* passed to progress */
    int64_t progress_interval_ms;   /* <= 0: KD_HOOK_PROGRESS_INTERVAL_MS */
    /* When *abort becomes non-zero (e.g. set by the worker's SIGTERM
     * handler) the hook is stopped as on a timeout and reported as aborted.
     * Checked every 50 ms. NULL: never. */
    volatile sig_atomic_t *abort;
    /* Called with the hook's process group once it exists and before the
     * script may exec (the child waits for it): the caller records the
     * group, so a worker killed mid-hook can end it when it starts again.
     * A status other than KD_OK stops the hook unstarted. NULL: none. */
    kd_status_t (*on_start)(void *opaque, pid_t pgid, char *err, size_t errsz);
    void *start_opaque;
} kd_hook_spec_t;

/* How a hook ended. */
typedef struct kd_hook_outcome {
    pid_t pid;              /* the script's pid, which is also its process group id */
    int exit_code;          /* 0..255, or -1 when it was ended by a signal */
    int term_signal;        /* the signal that ended it, or 0 */
    bool timed_out;         /* stopped because timeout_ms ran out */
    bool aborted;           /* stopped because *abort was set */
    bool log_failed;        /* writing to log_fd failed; logging stopped there */
    int64_t duration_ms;    /* from start until kd_hook_run returned */
    uint64_t output_bytes;  /* all output seen, of which tail holds the end */
    size_t tail_len;        /* bytes in tail */
    /* The last tail_len bytes of stdout and stderr as they interleaved, NUL-
     * terminated (the output itself may hold NULs or cut a UTF-8 sequence). */
    char tail[KD_HOOK_TAIL_MAX + 1];
} kd_hook_outcome_t;

/* Fills spec with the defaults: everything zero or NULL, log_fd -1. */
void kd_hook_spec_init(kd_hook_spec_t *spec);

/* Runs one hook to its end and fills out. The child runs in its own process
 * group with stdin from /dev/null, stdout and stderr into one pipe, default
 * signal dispositions and an empty signal mask, no other open descriptors,
 * in spec->cwd, as spec->runas (supplementary groups, then gid, then uid).
 *
 * When the script exits by itself, processes it left running (daemons: the
 * application) are left alone; output they keep open is read for at most
 * output_grace_ms more, then the pipe is closed (their later writes to it
 * fail with EPIPE, so such daemons should redirect their output). On timeout
 * or abort the group gets SIGTERM, then SIGKILL after kill_grace_ms if the
 * script is still running; whatever of the group outlives the script is
 * killed with SIGKILL at once. The script itself is always reaped. The
 * caller must not set SIGCHLD to SIG_IGN.
 *
 * Returns KD_OK when the script ran and was waited for: success or failure,
 * timeout or abort, is in out. Otherwise nothing kept running and out holds
 * exit_code -1: KD_EINVAL (bad spec), KD_ENOTFOUND (no such script, cwd or
 * user), KD_EFAILED (it could not be started: e.g. "exec /x/run.sh:
 * Permission denied", or switching user failed), KD_ESTOPPED (*abort was
 * already set: not started), KD_EIO or KD_ENOMEM; err says which and why. */
kd_status_t kd_hook_run(const kd_hook_spec_t *spec, kd_hook_outcome_t *out, char *err,
                        size_t errsz);

/* ---- the hook environment ---------------------------------------------- */

/* A list of NAME=VALUE entries where a later set of a name replaces the
 * earlier value. */
typedef struct kd_hook_env kd_hook_env_t;

/* The deployment a hook runs for. Every field may be NULL, giving an empty
 * value, except where said. */
typedef struct kd_hook_deployment {
    const char *event;            /* appspec event name, e.g. "ApplicationStart" */
    const char *deployment_id;
    const char *application_name;
    const char *application_id;   /* NULL: application_name (kdeploy's names are ids) */
    const char *group_name;
    const char *group_id;         /* NULL: group_name */
    const char *operation;        /* "UPDATE" or "ROLLBACK"; NULL: "UPDATE" */
    const char *host_id;          /* the worker's host id */
    const char *install_prefix;   /* prepended to absolute appspec paths; NULL: none */
    const char *const *labels;    /* the host's KEY=VALUE labels, NULL-terminated; NULL: none */
} kd_hook_deployment_t;

/* Returns an empty environment (free it with kd_hook_env_free), or NULL when
 * out of memory. */
kd_hook_env_t *kd_hook_env_new(void);

void kd_hook_env_free(kd_hook_env_t *env);

/* Sets name to value (both copied). name must be non-empty without '=';
 * value may be anything but NULL. Returns KD_OK, KD_EINVAL or KD_ENOMEM. */
kd_status_t kd_hook_env_set(kd_hook_env_t *env, const char *name, const char *value);

/* Sets one "NAME=VALUE" entry (copied). Returns KD_OK, KD_EINVAL (no '=',
 * empty name) or KD_ENOMEM. */
kd_status_t kd_hook_env_put(kd_hook_env_t *env, const char *entry);

/* Sets each entry of a NULL-terminated "NAME=VALUE" list (e.g. the worker's
 * host-level hook environment); NULL is an empty list. On a bad entry
 * returns KD_EINVAL naming it in err; entries before it stay set. */
kd_status_t kd_hook_env_put_list(kd_hook_env_t *env, const char *const *entries, char *err,
                                 size_t errsz);

/* Sets the appspec's `env:` map, in order. On a bad name returns KD_EINVAL
 * naming it in err; entries before it stay set. */
kd_status_t kd_hook_env_set_appspec(kd_hook_env_t *env, const kd_appspec_env_t *vars,
                                    size_t count, char *err, size_t errsz);

/* Sets the deployment's variables under both products' names:
 *   LIFECYCLE_EVENT, DEPLOYMENT_ID, APPLICATION_NAME, DEPLOYMENT_GROUP_NAME,
 *   DEPLOYMENT_GROUP_ID (AWS);
 *   JDCLOUD_CODEDEPLOY_LIFECYCLE_EVENT, _DEPLOY_ID, _APP_ID, _APP_NAME,
 *   _GROUP_ID, _GROUP_NAME, _OPERATION (JD);
 *   KDEPLOY_HOST_ID, KDEPLOY_INSTALL_PREFIX ("" without a prefix) (kdeploy).
 * Returns KD_EINVAL for an operation other than UPDATE or ROLLBACK. */
kd_status_t kd_hook_env_set_deployment(kd_hook_env_t *env, const kd_hook_deployment_t *d,
                                       char *err, size_t errsz);

/* Builds the whole environment of a hook, later entries overriding earlier
 * ones by name: the deployment's variables, PATH=KD_HOOK_DEFAULT_PATH, the
 * appspec's env map (vars may be NULL when count is 0), then the worker's
 * host-level NULL-terminated "NAME=VALUE" list (may be NULL). On success
 * *out owns the result; on failure *out is untouched. */
kd_status_t kd_hook_env_build(const kd_hook_deployment_t *d, const kd_appspec_env_t *vars,
                              size_t count, const char *const *host_env, kd_hook_env_t **out,
                              char *err, size_t errsz);

/* The value of name, or NULL when unset. Valid until the next change. */
const char *kd_hook_env_get(const kd_hook_env_t *env, const char *name);

/* The number of entries. */
size_t kd_hook_env_count(const kd_hook_env_t *env);

/* The NULL-terminated "NAME=VALUE" list, for kd_hook_spec_t.envp; owned by
 * env and valid until the next change or kd_hook_env_free. */
const char *const *kd_hook_env_envp(const kd_hook_env_t *env);

#endif
