/* What each lifecycle step does on a host. The revision a step acts on is
 * found in the host's cache (see cache.h); hook commands come only from
 * that verified bundle's appspec or from the deployment's form scripts. */
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appspec.h"
#include "bundle.h"
#include "cache.h"
#include "event.h"
#include "fsutil.h"
#include "hooks.h"
#include "ids.h"
#include "install.h"
#include "orphans.h"
#include "specs.h"

#define STEP_SUCCEEDED KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED
#define STEP_FAILED KDEPLOY__V1__STEP_STATUS__STEP_FAILED
#define STEP_SKIPPED KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED
#define STEP_TIMED_OUT KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT

/* Everything one step works with. */
typedef struct step_ctx {
    kd_host_t *host;
    const char *deploy_id;
    const Kdeploy__V1__StepCommand *cmd;
    kd_step_outcome_t *out;
    void (*on_progress)(void *, int64_t, const char *, size_t);
    void *opaque;
    int log_fd;
} step_ctx_t;

/* A revision as found in the cache. */
typedef struct revision {
    char id[160];             /* its deploy id */
    char dir[PATH_MAX];       /* its cache dir */
    char root[PATH_MAX];      /* the bundle root: where the appspec is */
    const kd_appspec_t *appspec;  /* held from specs.h: parsed once per revision */
} revision_t;

static void outcome(step_ctx_t *c, Kdeploy__V1__StepStatus st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void outcome(step_ctx_t *c, Kdeploy__V1__StepStatus st, const char *fmt, ...)
{
    va_list ap;

    c->out->status = st;
    va_start(ap, fmt);
    vsnprintf(c->out->error, sizeof c->out->error, fmt, ap);
    va_end(ap);
}

static void append_tail(kd_step_outcome_t *out, const char *data, size_t len)
{
    size_t cap = sizeof out->output_tail - 1, have = strlen(out->output_tail);

    if (len >= cap) {
        memcpy(out->output_tail, data + (len - cap), cap);
        out->output_tail[cap] = '\0';
        return;
    }
    if (have + len > cap) {
        size_t drop = have + len - cap;

        memmove(out->output_tail, out->output_tail + drop, have - drop);
        have -= drop;
    }
    memcpy(out->output_tail + have, data, len);
    out->output_tail[have + len] = '\0';
}

static void revision_free(revision_t *r)
{
    kd_specs_release(r->appspec);
    r->appspec = NULL;
}

/* ---- the cache ---- */

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static kd_status_t write_text(const char *dir, const char *name, const char *text, mode_t mode,
                              char *err, size_t errsz)
{
    char path[PATH_MAX];

    if (kd_pathf(path, sizeof path, "%s/%s", dir, name) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "path too long");
    return kd_write_file_atomic(path, text, strlen(text), mode, err, errsz);
}

/* The deployment's form scripts are kept with the revision, so that a later
 * ApplicationStop (or a rollback) runs the scripts that came with it. */
static kd_status_t save_form_scripts(const char *cache, const Kdeploy__V1__FormScripts *fs,
                                     char *err, size_t errsz)
{
    const char *scripts[][2] = {{"stop", fs ? fs->stop : NULL}, {"start", fs ? fs->start : NULL},
                                {"check", fs ? fs->check : NULL}};
    char dir[PATH_MAX];
    kd_status_t st;

    if (kd_pathf(dir, sizeof dir, "%s/form", cache) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "path too long");
    if ((st = kd_mkdirs(dir, 0755, err, errsz)) != KD_OK)
        return st;
    for (size_t i = 0; i < 3; i++)
        if (scripts[i][1] && *scripts[i][1] &&
            (st = write_text(dir, scripts[i][0], scripts[i][1], 0755, err, errsz)) != KD_OK)
            return st;
    return KD_OK;
}

/* Loads a cached revision: its root and its appspec. KD_ENOTFOUND if the
 * cache holds no complete download of it. */
static kd_status_t revision_load(kd_host_t *host, const Kdeploy__V1__StepCommand *cmd,
                                 const char *id, revision_t *r, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_buf_t root = KD_BUF_INIT(PATH_MAX);
    kd_status_t st;

    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    if ((st = kd_cache_deploy_dir(host->root, cmd->application, cmd->group, id, r->dir,
                                  sizeof r->dir, err, errsz)) != KD_OK)
        return st;
    if (kd_pathf(path, sizeof path, "%s/bundle.root", r->dir) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "path too long");
    if ((st = kd_read_file(path, &root, err, errsz)) != KD_OK) {
        kd_buf_free(&root);
        return st == KD_ENOTFOUND
                   ? kd_err(err, errsz, KD_ENOTFOUND, "revision %s is not in this host's cache", id)
                   : st;
    }
    snprintf(r->root, sizeof r->root, "%s", kd_buf_str(&root));
    kd_buf_free(&root);
    return kd_specs_get(r->root, &r->appspec, err, errsz);
}

/* Heartbeats of a long download, every few seconds like a hook's. */
typedef struct fetch_beat {
    step_ctx_t *c;
    int64_t started, last;
} fetch_beat_t;

static void fetch_progress(void *opaque, uint64_t bytes)
{
    fetch_beat_t *b = opaque;
    int64_t now = kd_mono_ms();
    char text[96];

    if (!b->c->on_progress || now - b->last < KD_HOOK_PROGRESS_INTERVAL_MS)
        return;
    b->last = now;
    snprintf(text, sizeof text, "downloaded %llu bytes\n", (unsigned long long)bytes);
    b->c->on_progress(b->c->opaque, now - b->started, text, strlen(text));
}

/* What the next unpack may take: the host's cache (every revision kept, the
 * downloaded archive included) stays under max_cache_bytes, and no archive
 * unpacks to more than max_unpack_ratio times its size. */
static kd_status_t unpack_limits(step_ctx_t *c, kd_bundle_limits_t *l, char *why,
                                 size_t whysz, char *err, size_t errsz)
{
    uint64_t used = 0, max = c->host->max_cache_bytes;
    kd_status_t st;

    memset(l, 0, sizeof *l);
    l->max_ratio = c->host->max_unpack_ratio;
    if (!max)
        return KD_OK;
    if ((st = kd_tree_bytes(c->host->root, &used, err, errsz)) != KD_OK)
        return st;
    if (used >= max)
        return kd_err(err, errsz, KD_ETOOLARGE,
                      "the host's cache holds %llu MiB, max_cache_mb is %llu: no room to unpack "
                      "(keep fewer revisions, or raise max_cache_mb)",
                      (unsigned long long)(used >> 20), (unsigned long long)(max >> 20));
    l->max_total_bytes = max - used;
    snprintf(why, whysz, "the room left in the host's cache: %llu of max_cache_mb %llu MiB "
             "are used", (unsigned long long)(used >> 20), (unsigned long long)(max >> 20));
    l->total_reason = why;
    return KD_OK;
}

static kd_status_t download(step_ctx_t *c, const char *id, const Kdeploy__V1__Revision *rev,
                            char *err, size_t errsz)
{
    fetch_beat_t beat = {c, kd_mono_ms(), kd_mono_ms()};
    char cache[PATH_MAX], archive[PATH_MAX], bundle[PATH_MAX], root[PATH_MAX];
    const kd_appspec_t *spec = NULL;
    kd_bundle_fetch_opts_t fo;
    kd_bundle_limits_t limits;
    char why[160];
    kd_status_t st;

    if (!rev || !rev->url || !*rev->url)
        return kd_err(err, errsz, KD_EINVAL, "the step names no revision to download");
    if ((st = kd_cache_deploy_dir(c->host->root, c->cmd->application, c->cmd->group, id, cache,
                                  sizeof cache, err, errsz)) != KD_OK ||
        (st = kd_mkdirs(cache, 0755, err, errsz)) != KD_OK)
        return st;
    if (kd_pathf(archive, sizeof archive, "%s/bundle.archive", cache) != KD_OK ||
        kd_pathf(bundle, sizeof bundle, "%s/bundle", cache) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "path too long");
    /* A download cut short earlier is started again from scratch. */
    if ((st = kd_remove_tree(bundle, err, errsz)) != KD_OK)
        return st;
    kd_bundle_fetch_opts_init(&fo);
    fo.url = rev->url;
    fo.sha256 = rev->sha256 && *rev->sha256 ? rev->sha256 : NULL;
    fo.md5 = rev->md5 && *rev->md5 ? rev->md5 : NULL;
    fo.path = archive;
    fo.max_bytes = c->host->max_bundle_bytes;
    fo.progress = fetch_progress;
    fo.opaque = &beat;
    fo.abort = c->host->stop;
    fo.transient = true; /* unpacked, then removed, below */
    st = kd_bundle_fetch(&fo, err, errsz);
    kd_worker_metrics_download(c->host->metrics, st == KD_OK ? archive : NULL,
                               kd_mono_ms() - beat.started);
    if (st != KD_OK ||
        (st = unpack_limits(c, &limits, why, sizeof why, err, errsz)) != KD_OK) {
        unlink(archive);
        return st;
    }
    st = kd_bundle_unpack(archive, bundle, root, sizeof root, &limits, err, errsz);
    unlink(archive);
    if (st != KD_OK)
        return st;
    /* A bundle whose appspec is invalid, or that lacks a script or a files
     * source, fails here, before anything runs. */
    if ((st = kd_specs_get(root, &spec, err, errsz)) != KD_OK)
        return st;
    st = kd_appspec_check_bundle(spec, root, err, errsz);
    /* Keys CodeDeploy ignores and hooks that never run: shown with the step. */
    if (st == KD_OK && kd_appspec_warning_count(spec))
        append_tail(c->out, kd_appspec_warnings(spec), strlen(kd_appspec_warnings(spec)));
    kd_specs_release(spec);
    if (st != KD_OK)
        return st;
    if ((st = save_form_scripts(cache, c->cmd->scripts, err, errsz)) != KD_OK)
        return st;
    return write_text(cache, "bundle.root", root, 0644, err, errsz);
}

/* The revision a step works on: the cached one, fetched again if its cache
 * is gone and the step says where it comes from. */
static kd_status_t revision_get(step_ctx_t *c, const char *id, revision_t *r, char *err,
                                size_t errsz)
{
    kd_status_t st = revision_load(c->host, c->cmd, id, r, err, errsz);

    if (st != KD_ENOTFOUND || !c->cmd->revision || !c->cmd->revision->url ||
        !*c->cmd->revision->url)
        return st;
    if ((st = download(c, id, c->cmd->revision, err, errsz)) != KD_OK)
        return st;
    return revision_load(c->host, c->cmd, id, r, err, errsz);
}

/* The deployment whose revision the step acts on. */
static const char *revision_id(const step_ctx_t *c)
{
    const char *id = c->cmd->revision_deploy_id;

    return id && *id ? id : c->deploy_id;
}

/* ---- hooks ---- */

static const char *operation_name(const Kdeploy__V1__StepCommand *cmd)
{
    return cmd->operation == KDEPLOY__V1__OPERATION__ROLLBACK ? "ROLLBACK" : "UPDATE";
}

/* A script of the cache (the bundle's, or a form script) runs only if no
 * one but the worker can have changed it since it was unpacked: owned by
 * the worker's user and not writable by group or others. Scripts under the
 * install prefix are the appspec author's choice and are not checked. */
static kd_status_t check_script(const step_ctx_t *c, const char *path, char *err, size_t errsz)
{
    size_t rlen = strlen(c->host->root);
    struct stat st;

    if (strncmp(path, c->host->root, rlen) != 0 || path[rlen] != '/')
        return KD_OK;
    if (stat(path, &st) != 0)
        return kd_err(err, errsz, KD_ENOTFOUND, "script %s: %s", path, strerror(errno));
    if (st.st_uid != geteuid() || (st.st_mode & 022))
        return kd_err(err, errsz, KD_EREFUSED,
                      "script %s is owned by uid %u with mode %04o: others could have changed "
                      "it, refusing to run it", path, (unsigned)st.st_uid,
                      (unsigned)(st.st_mode & 07777));
    return KD_OK;
}

/* One script's argv: a JD command through /bin/sh -c; a script path under
 * the bundle root (relative) or the install prefix (absolute); a script
 * without the executable bit, or a form script (text typed in a form, maybe
 * with no #! line), through /bin/sh. */
static kd_status_t script_argv(const step_ctx_t *c, const revision_t *r,
                               const kd_appspec_script_t *s, bool in_cache, char *path,
                               size_t pathsz, const char *argv[4], char *err, size_t errsz)
{
    kd_status_t st;

    if (s->command) {
        argv[0] = "/bin/sh", argv[1] = "-c", argv[2] = s->command, argv[3] = NULL;
        return KD_OK;
    }
    if (in_cache)
        st = kd_pathf(path, pathsz, "%s", s->location);
    else
        st = kd_appspec_script_path(r->appspec, s, r->root, c->host->install_prefix, path,
                                    pathsz);
    if (st != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "script path too long: %s", s->location);
    if (!s->command && (st = check_script(c, path, err, errsz)) != KD_OK)
        return st;
    if (!in_cache && access(path, X_OK) == 0) {
        argv[0] = path, argv[1] = NULL;
    } else {
        argv[0] = "/bin/sh", argv[1] = path, argv[2] = NULL;
    }
    return KD_OK;
}

/* Records the hook's process group before the hook may run (see orphans.h). */
static kd_status_t record_hook(void *opaque, pid_t pgid, char *err, size_t errsz)
{
    step_ctx_t *c = opaque;

    return kd_journal_set_running(c->host->journal, c->cmd->step_id, (long)pgid,
                                  kd_proc_start_time(pgid), err, errsz);
}

static void hook_progress(void *opaque, int64_t elapsed_ms, const char *tail, size_t len)
{
    step_ctx_t *c = opaque;

    if (c->on_progress)
        c->on_progress(c->opaque, elapsed_ms, tail, len);
}

/* Runs one script; returns 0 if it succeeded, else fills the outcome. */
static int run_script(step_ctx_t *c, const revision_t *r, const kd_hook_env_t *env,
                      const kd_appspec_script_t *s, bool in_cache)
{
    char path[PATH_MAX], err[1024] = "";
    const char *argv[4];
    kd_hook_spec_t spec;
    kd_hook_outcome_t *o = calloc(1, sizeof *o);
    const char *name = s->command ? s->command : s->location;
    int64_t timeout_ms = (int64_t)s->timeout_s * 1000;
    kd_status_t st;
    int rc = -1;

    if (!o) {
        outcome(c, STEP_FAILED, "out of memory");
        return -1;
    }
    if (c->cmd->timeout_s && (int64_t)c->cmd->timeout_s * 1000 < timeout_ms)
        timeout_ms = (int64_t)c->cmd->timeout_s * 1000;
    if (script_argv(c, r, s, in_cache, path, sizeof path, argv, err, sizeof err) != KD_OK) {
        outcome(c, STEP_FAILED, "%s", err);
        goto out;
    }
    kd_hook_spec_init(&spec);
    spec.argv = argv;
    spec.envp = kd_hook_env_envp(env);
    spec.cwd = r->root;
    spec.runas = s->runas;
    spec.timeout_ms = timeout_ms;
    spec.log_fd = c->log_fd;
    spec.progress = hook_progress;
    spec.opaque = c;
    spec.abort = c->host->stop;
    if (c->host->journal) {
        spec.on_start = record_hook;
        spec.start_opaque = c;
    }
    st = kd_hook_run(&spec, o, err, sizeof err);
    /* The group is over (kd_hook_run killed what the script left behind
     * only on timeout or abort: a daemon it started is the application). */
    if (c->host->journal && kd_journal_clear_running(c->host->journal, c->cmd->step_id, NULL,
                                                      0) != KD_OK && st == KD_OK)
        st = kd_err(err, sizeof err, KD_EIO, "cannot clear the hook's journal record");
    append_tail(c->out, o->tail, o->tail_len);
    c->out->exit_code = o->exit_code;
    if (st != KD_OK)
        outcome(c, STEP_FAILED, "%s: %s", name, err);
    else if (o->timed_out)
        outcome(c, STEP_TIMED_OUT, "%s timed out after %lld s", name, (long long)(timeout_ms / 1000));
    else if (o->aborted)
        outcome(c, STEP_FAILED, "%s aborted: the worker is stopping", name);
    else if (o->term_signal)
        outcome(c, STEP_FAILED, "%s killed by signal %d", name, o->term_signal);
    else if (o->exit_code != 0)
        outcome(c, STEP_FAILED, "%s exited with code %d", name, o->exit_code);
    else
        rc = 0;
out:
    free(o);
    return rc;
}

/* Runs scripts in order; the first failure fails the step. in_cache: the
 * scripts are files of the cache dir (form scripts), not of the bundle. */
static void run_scripts(step_ctx_t *c, const revision_t *r, const kd_appspec_script_t *scripts,
                        size_t count, kd_event_t ev, bool in_cache)
{
    kd_hook_deployment_t d = {
        .event = kd_event_name(ev), .deployment_id = c->deploy_id,
        .application_name = c->cmd->application, .group_name = c->cmd->group,
        .operation = operation_name(c->cmd), .host_id = c->host->id,
        .install_prefix = c->host->install_prefix, .labels = c->host->labels,
    };
    kd_hook_env_t *env = NULL;
    size_t nvars = 0;
    const kd_appspec_env_t *vars = r->appspec ? kd_appspec_env(r->appspec, &nvars) : NULL;
    char err[1024] = "";

    if (kd_hook_env_build(&d, vars, nvars, c->host->env, &env, err, sizeof err) != KD_OK) {
        outcome(c, STEP_FAILED, "hook environment: %s", err);
        return;
    }
    outcome(c, STEP_SUCCEEDED, "%s", "");
    for (size_t i = 0; i < count; i++)
        if (run_script(c, r, env, &scripts[i], in_cache) != 0)
            break;
    kd_hook_env_free(env);
}

/* The form script standing for a hook (stop, start, check), if the revision
 * came with one: it replaces the appspec's hook. */
static int form_script(const revision_t *r, kd_event_t ev, kd_appspec_script_t *s, char *path,
                       size_t pathsz)
{
    const char *name = ev == KD_EVENT(ApplicationStop) ? "stop"
                     : ev == KD_EVENT(ApplicationStart) ? "start"
                     : ev == KD_EVENT(ValidateService) ? "check" : NULL;

    if (!name || kd_pathf(path, pathsz, "%s/form/%s", r->dir, name) != KD_OK || !file_exists(path))
        return 0;
    memset(s, 0, sizeof *s);
    s->location = path;
    s->timeout_s = 3600;
    return 1;
}

static void run_hook_of(step_ctx_t *c, const revision_t *r, kd_event_t ev)
{
    kd_appspec_script_t form;
    char path[PATH_MAX];
    size_t count = 0;
    const kd_appspec_script_t *scripts;

    if (form_script(r, ev, &form, path, sizeof path)) {
        run_scripts(c, r, &form, 1, ev, true);
        return;
    }
    scripts = kd_appspec_hook(r->appspec, ev, &count);
    if (count == 0) {
        outcome(c, STEP_SKIPPED, "no %s scripts in the appspec", kd_event_name(ev));
        return;
    }
    run_scripts(c, r, scripts, count, ev, false);
}

/* ---- the steps ---- */

static void step_download(step_ctx_t *c)
{
    char err[4096] = "";
    revision_t r;
    kd_status_t st = revision_load(c->host, c->cmd, revision_id(c), &r, err, sizeof err);

    revision_free(&r);
    if (st == KD_OK) {
        outcome(c, STEP_SUCCEEDED, "%s", "");
        snprintf(c->out->output_tail, sizeof c->out->output_tail,
                 "revision %s already in the cache\n", revision_id(c));
        return;
    }
    if ((st = download(c, revision_id(c), c->cmd->revision, err, sizeof err)) != KD_OK) {
        outcome(c, STEP_FAILED, "%s", err);
        return;
    }
    outcome(c, STEP_SUCCEEDED, "%s", "");
    snprintf(err, sizeof err, "downloaded %s and verified it\n", c->cmd->revision->url);
    append_tail(c->out, err, strlen(err));
}

/* The revision about to be installed must be whole before the running one
 * is stopped: a bundle missing a hook script or a files source would fail
 * later, with the application already down. */
static kd_status_t check_next_revision(step_ctx_t *c, char *err, size_t errsz)
{
    revision_t next;
    kd_status_t st = revision_get(c, revision_id(c), &next, err, errsz);

    if (st == KD_OK)
        st = kd_appspec_check_bundle(next.appspec, next.root, err, errsz);
    revision_free(&next);
    return st;
}

/* The stop script of the revision installed before, not the new one's. */
static void step_stop(step_ctx_t *c)
{
    char installed[160] = "", err[4096] = "";
    revision_t r;
    kd_status_t st;

    if (check_next_revision(c, err, sizeof err) != KD_OK) {
        outcome(c, STEP_FAILED, "the revision to install is not whole, so nothing was stopped: %s",
                err);
        return;
    }
    st = kd_cache_installed_get(c->host->root, c->cmd->application, c->cmd->group, installed,
                                sizeof installed, err, sizeof err);

    if (st == KD_ENOTFOUND) {
        outcome(c, STEP_SKIPPED, "no revision installed on this host yet: nothing to stop");
        return;
    }
    if (st == KD_OK)
        st = revision_load(c->host, c->cmd, installed, &r, err, sizeof err);
    if (st != KD_OK) {
        outcome(c, STEP_FAILED, "installed revision %s: %s", installed, err);
        return;
    }
    run_hook_of(c, &r, KD_EVENT(ApplicationStop));
    revision_free(&r);
    if (c->cmd->ignore_failure && c->out->status != STEP_SUCCEEDED &&
        c->out->status != STEP_SKIPPED) {
        char why[sizeof c->out->error];

        snprintf(why, sizeof why, "%s", c->out->error);
        outcome(c, STEP_SUCCEEDED, "ignored as asked: %.2000s", why);
    }
}

static void step_hook(step_ctx_t *c)
{
    char err[4096] = "";
    revision_t r;

    if (revision_get(c, revision_id(c), &r, err, sizeof err) != KD_OK) {
        outcome(c, STEP_FAILED, "%s", err);
        revision_free(&r);
        return;
    }
    run_hook_of(c, &r, c->cmd->event);
    revision_free(&r);
}

/* As the AWS agent decides: the appspec's file_exists_behavior wins over
 * the deployment's, and with neither an existing file fails the install
 * (DISALLOW). Files the previous revision installed are removed first, so
 * this only meets files kdeploy did not put there. */
static kd_file_exists_t install_policy(const step_ctx_t *c, const revision_t *r)
{
    if (kd_appspec_file_exists(r->appspec) != KD_FILE_EXISTS_UNSET)
        return kd_appspec_file_exists(r->appspec);
    if (c->cmd->file_exists != KD_FILE_EXISTS_UNSET)
        return c->cmd->file_exists;
    return KD_FILE_EXISTS_FAIL;
}

/* The cache's record of the revision installed, written with the install's
 * last sync. */
typedef struct installed_rec {
    const step_ctx_t *c;
    const revision_t *r;
} installed_rec_t;

static kd_status_t record_installed(void *opaque, char *err, size_t errsz)
{
    const installed_rec_t *rec = opaque;

    return kd_cache_installed_stage(rec->c->host->root, rec->c->cmd->application,
                                    rec->c->cmd->group, rec->r->id, err, errsz);
}

static kd_status_t install_revision(step_ctx_t *c, const revision_t *r, char *err, size_t errsz)
{
    char installed[160] = "", manifest[PATH_MAX], previous[PATH_MAX] = "", prev_dir[PATH_MAX];
    size_t nfiles, nperms;
    const kd_appspec_file_t *files = kd_appspec_files(r->appspec, &nfiles);
    const kd_appspec_permission_t *perms = kd_appspec_permissions(r->appspec, &nperms);
    kd_install_opts_t o = {0};
    installed_rec_t rec = {c, r};

    if (kd_pathf(manifest, sizeof manifest, "%s/install.manifest", r->dir) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "path too long");
    if (kd_cache_installed_get(c->host->root, c->cmd->application, c->cmd->group, installed,
                               sizeof installed, NULL, 0) == KD_OK &&
        kd_cache_deploy_dir(c->host->root, c->cmd->application, c->cmd->group, installed,
                            prev_dir, sizeof prev_dir, NULL, 0) == KD_OK)
        kd_pathf(previous, sizeof previous, "%s/install.manifest", prev_dir);
    o.bundle_root = r->root;
    o.prefix = c->host->install_prefix;
    o.policy = install_policy(c, r);
    o.manifest_path = manifest;
    o.previous_manifest = previous[0] ? previous : NULL;
    o.before_sync = record_installed;
    o.opaque = &rec;
    return kd_install_run(files, nfiles, perms, nperms, &o, err, errsz);
}

static void step_install(step_ctx_t *c)
{
    char err[4096] = "";
    revision_t r;
    size_t nfiles = 0;

    if (revision_get(c, revision_id(c), &r, err, sizeof err) != KD_OK ||
        install_revision(c, &r, err, sizeof err) != KD_OK) {
        outcome(c, STEP_FAILED, "%s", err);
        revision_free(&r);
        return;
    }
    kd_appspec_files(r.appspec, &nfiles);
    outcome(c, STEP_SUCCEEDED, "%s", "");
    snprintf(c->out->revision_installed, sizeof c->out->revision_installed, "%s", r.id);
    snprintf(c->out->output_tail, sizeof c->out->output_tail,
             "installed revision %s (%zu files entries)\n", r.id, nfiles);
    revision_free(&r);
    if (kd_cache_prune(c->host->root, c->cmd->application, c->cmd->group,
                       c->host->keep_revisions, c->deploy_id, err, sizeof err) != KD_OK)
        append_tail(c->out, err, strlen(err));
}

/* The per-deployment log every hook's output is appended to. */
static int open_log(const step_ctx_t *c)
{
    char dir[PATH_MAX], path[PATH_MAX];

    if (kd_cache_deploy_dir(c->host->root, c->cmd->application, c->cmd->group, c->deploy_id,
                            dir, sizeof dir, NULL, 0) != KD_OK ||
        kd_mkdirs(dir, 0755, NULL, 0) != KD_OK ||
        kd_pathf(path, sizeof path, "%s/deploy.log", dir) != KD_OK)
        return -1;
    /* Hook output may hold secrets: the worker's alone. */
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
}

void kd_step_perform(kd_host_t *host, const char *deploy_id,
                     const Kdeploy__V1__StepCommand *cmd, kd_step_outcome_t *out,
                     void (*on_progress)(void *opaque, int64_t elapsed_ms, const char *tail,
                                         size_t len),
                     void *opaque)
{
    step_ctx_t c = {host, deploy_id, cmd, out, on_progress, opaque, -1};
    kd_event_t ev = cmd->event;

    memset(out, 0, sizeof *out);
    if (!kd_cache_name_ok(cmd->application) || !kd_cache_name_ok(cmd->group) ||
        !kd_cache_name_ok(deploy_id)) {
        outcome(&c, STEP_FAILED, "unsafe application, group or deploy id in the step");
        return;
    }
    c.log_fd = open_log(&c);
    if (ev == KD_EVENT(DownloadBundle))
        step_download(&c);
    else if (ev == KD_EVENT(ApplicationStop))
        step_stop(&c);
    else if (ev == KD_EVENT(Install))
        step_install(&c);
    else if (kd_event_allows_hooks(ev))
        step_hook(&c);
    else
        outcome(&c, STEP_FAILED, "%s is not a step a worker performs", kd_event_name(ev));
    if (c.log_fd >= 0)
        close(c.log_fd);
}
