#include "agent.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "event.h"
#include "fsutil.h"
#include "ids.h"
#include "hooks.h"
#include "log.h"
#include "orphans.h"
#include "spec_check.h"
#include "steps.h"
#include "utf8.h"

/* Backoff of a result the broker did not take (an outage). */
#define PUBLISH_RETRY_FIRST_MS 500
#define PUBLISH_RETRY_MAX_MS 30000

/* What a running hook's heartbeat needs to be published. */
typedef struct progress_ctx {
    kd_host_t *host;
    const char *deploy_id;
    const Kdeploy__V1__StepCommand *cmd;
} progress_ctx_t;

static void publish_progress(void *opaque, int64_t elapsed_ms, const char *tail, size_t len)
{
    progress_ctx_t *ctx = opaque;
    Kdeploy__V1__StepProgress pr = KDEPLOY__V1__STEP_PROGRESS__INIT;
    char id[KD_UUID_LEN], err[256], text[1025];
    kd_envelope_t env;
    size_t keep = len > 1024 ? 1024 : len;

    /* The last KiB: heartbeats are frequent and only show where a hook is.
     * The cut may split a UTF-8 sequence, and protobuf strings must be UTF-8. */
    snprintf(text, sizeof text, "%.*s", (int)keep, tail + (len - keep));
    kd_utf8_sanitize(text);
    pr.step_id = ctx->cmd->step_id;
    pr.host = (char *)ctx->host->id;
    pr.event = ctx->cmd->event;
    pr.elapsed_ms = elapsed_ms;
    pr.output_tail = text;
    kd_envelope_init(&env, id, ctx->deploy_id, kd_producer_self(ctx->host->producer));
    env.body_case = KD_BODY(PROGRESS);
    env.progress = &pr;
    /* Not waited for: this runs in the loop that reads the hook's output and
     * enforces its timeout; a lost heartbeat costs nothing. */
    if (kd_producer_send(ctx->host->producer, KD_TOPIC_RESULTS, ctx->deploy_id, &env, false,
                         err, sizeof err) != KD_OK)
        kd_warn("%s: heartbeat of %s not sent: %s", ctx->host->id, ctx->cmd->step_id, err);
}

static kd_status_t publish_result(kd_host_t *host, const char *deploy_id,
                                  const Kdeploy__V1__StepResult *r, char *err, size_t errsz)
{
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    int delay_ms = PUBLISH_RETRY_FIRST_MS;
    kd_status_t st;

    kd_envelope_init(&env, id, deploy_id, kd_producer_self(host->producer));
    env.body_case = KD_BODY(STEP_RESULT);
    env.step_result = (Kdeploy__V1__StepResult *)r;
    /* Waits for the broker: the offset is committed only after this. While
     * the broker is away the result waits in the journal and is tried
     * again, for as long as the outage lasts: a worker that exited here
     * would leave its host without an agent. Only a stop ends the wait
     * (the next start publishes the journaled result). */
    while ((st = kd_producer_send(host->producer, KD_TOPIC_RESULTS, deploy_id, &env, true, err,
                                  errsz)) != KD_OK &&
           st != KD_ETOOLARGE && !(host->stop && *host->stop)) {
        kd_warn("%s: the result of %s is not published yet (%s); it is kept in the journal, "
                "trying again in %d ms", host->id, r->step_id, err, delay_ms);
        for (int slept = 0; slept < delay_ms && !(host->stop && *host->stop); slept += 100)
            kd_sleep_ms(100);
        delay_ms = delay_ms * 2 > PUBLISH_RETRY_MAX_MS ? PUBLISH_RETRY_MAX_MS : delay_ms * 2;
    }
    return st;
}

static void fill_result(Kdeploy__V1__StepResult *r, const Kdeploy__V1__StepCommand *cmd,
                        const char *host, kd_step_outcome_t *o, int64_t started, int64_t ended)
{
    r->step_id = cmd->step_id;
    r->host = (char *)host;
    r->event = cmd->event;
    r->attempt = cmd->attempt;
    r->status = o->status;
    r->exit_code = o->exit_code;
    r->duration_ms = ended - started;
    r->output_tail = o->output_tail;
    r->error = o->error;
    r->started_ms = started;
    r->revision_installed = o->revision_installed;
}

static kd_status_t journal_result(kd_host_t *host, const char *step_id,
                                  const Kdeploy__V1__StepResult *r, char *err, size_t errsz)
{
    size_t len = kdeploy__v1__step_result__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);
    kd_status_t st;

    if (!buf)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    kdeploy__v1__step_result__pack(r, buf);
    st = kd_journal_finish(host->journal, step_id, buf, len, err, errsz);
    free(buf);
    return st;
}

/* A step is finished once its result is journaled; the journal entry is
 * what a repeated delivery finds. */
static kd_status_t run_step(kd_host_t *host, const char *deploy_id,
                            const Kdeploy__V1__StepCommand *cmd, char *err, size_t errsz)
{
    Kdeploy__V1__StepResult r = KDEPLOY__V1__STEP_RESULT__INIT;
    kd_step_outcome_t *o = calloc(1, sizeof *o);
    progress_ctx_t ctx = {host, deploy_id, cmd};
    int64_t started = kd_now_ms();
    kd_status_t st;

    if (!o)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    /* Durable before anything runs: after a crash from here on, the step is
     * found started and reported as cut short (replay_step), never run twice. */
    if ((st = kd_journal_start(host->journal, cmd->step_id, err, errsz)) != KD_OK)
        goto out;
    kd_info("%s: %s %s (attempt %u)", host->id, deploy_id, kd_event_name(cmd->event), cmd->attempt);
    kd_worker_metrics_step_started(host->metrics);
    kd_step_perform(host, deploy_id, cmd, o, publish_progress, &ctx);
    /* Hook output is arbitrary bytes; protobuf strings must be UTF-8. */
    kd_utf8_sanitize(o->output_tail);
    kd_utf8_sanitize(o->error);
    fill_result(&r, cmd, host->id, o, started, kd_now_ms());
    kd_worker_metrics_step(host->metrics, cmd->event, o->status, r.duration_ms);
    kd_info("%s: %s %s: %s%s%s", host->id, deploy_id, kd_event_name(cmd->event),
            protobuf_c_enum_descriptor_get_value(&kdeploy__v1__step_status__descriptor,
                                                 (int)o->status)->name,
            o->error[0] ? ": " : "", o->error);
    /* Journal, then publish: a crash between the two leaves the offset
     * uncommitted, and the redelivered step republishes the recorded result. */
    if ((st = journal_result(host, cmd->step_id, &r, err, errsz)) != KD_OK)
        goto out;
    st = publish_result(host, deploy_id, &r, err, errsz);
    /* The new revision for `kdeploy hosts`; best effort, as the result has
     * gone out already and does not depend on it. */
    if (st == KD_OK && cmd->event == KD_EVENT(Install) &&
        o->status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED)
        kd_agent_publish_status(host, 1, NULL, 0);
out:
    free(o);
    return st;
}

/* Answers a step the journal already knows: the recorded result again, or
 * for a step cut short by a crash, a failure saying so. */
static kd_status_t replay_step(kd_host_t *host, const char *deploy_id,
                               const Kdeploy__V1__StepCommand *cmd, kd_journal_state_t state,
                               Kdeploy__V1__StepResult *recorded, char *err, size_t errsz)
{
    Kdeploy__V1__StepResult r = KDEPLOY__V1__STEP_RESULT__INIT;
    kd_step_outcome_t o = {.status = KDEPLOY__V1__STEP_STATUS__STEP_FAILED, .exit_code = -1};
    int64_t now = kd_now_ms();
    kd_status_t st;

    kd_worker_metrics_replay(host->metrics, state != KD_JOURNAL_FINISHED);
    if (state == KD_JOURNAL_FINISHED) {
        kd_info("%s: %s %s already done: publishing its recorded result", host->id, deploy_id,
                kd_event_name(cmd->event));
        recorded->replayed = 1; /* readers of results can tell it was not run again */
        return publish_result(host, deploy_id, recorded, err, errsz);
    }
    snprintf(o.error, sizeof o.error, "agent restarted during the step: its outcome is unknown");
    kd_warn("%s: %s %s: %s", host->id, deploy_id, kd_event_name(cmd->event), o.error);
    fill_result(&r, cmd, host->id, &o, now, now);
    /* Journaled as finished, so that a later delivery gives this same answer
     * instead of another "cut short". */
    if ((st = journal_result(host, cmd->step_id, &r, err, errsz)) != KD_OK)
        return st;
    return publish_result(host, deploy_id, &r, err, errsz);
}

static kd_status_t handle_step(kd_host_t *host, const kd_envelope_t *env, char *err,
                               size_t errsz)
{
    const Kdeploy__V1__StepCommand *cmd = env->step;
    Kdeploy__V1__StepResult *recorded = NULL;
    kd_buf_t bytes = KD_BUF_INIT(1024 * 1024);
    kd_journal_state_t state;
    kd_status_t st;

    if (!cmd->step_id || !*cmd->step_id || !env->deploy_id || !*env->deploy_id)
        return kd_err(err, errsz, KD_EPROTO, "step without a step id or deploy id");
    /* The signature covers the body, not the message key: a step signed for
     * another host and put under this host's key is refused here. */
    if (strcmp(cmd->host, host->id) != 0)
        return kd_err(err, errsz, KD_EPROTO, "step for host '%s' under this host's key",
                      cmd->host);
    st = kd_journal_lookup(host->journal, cmd->step_id, &state, &bytes, err, errsz);
    if (st == KD_OK && state == KD_JOURNAL_FINISHED &&
        !(recorded = kdeploy__v1__step_result__unpack(NULL, bytes.len,
                                                      (const uint8_t *)kd_buf_str(&bytes))))
        st = kd_err(err, errsz, KD_EIO, "corrupt journal entry for %s", cmd->step_id);
    kd_buf_free(&bytes);
    if (st != KD_OK)
        return st;
    if (state == KD_JOURNAL_NONE)
        return run_step(host, env->deploy_id, cmd, err, errsz);
    st = replay_step(host, env->deploy_id, cmd, state, recorded, err, errsz);
    if (recorded)
        kdeploy__v1__step_result__free_unpacked(recorded, NULL);
    return st;
}

/* One step message of the host. Returns an error only when the bus or the
 * disk fails; a malformed event is logged and skipped. */
static kd_status_t handle_message(kd_host_t *host, kd_consumer_t *c, kd_message_t *m,
                                  char *err, size_t errsz)
{
    kd_envelope_t *env = NULL;
    char why[1024] = "";
    kd_status_t st;

    st = kd_message_decode(c, m, &env, why, sizeof why);
    if (st == KD_OK && env->body_case != KD_BODY(STEP))
        st = kd_err(why, sizeof why, KD_EPROTO, "a %s event on the steps topic",
                    kd_envelope_type(env));
    /* An expired step is skipped without a result: it is a replay, or its
     * deployment is over. */
    if (st == KD_OK)
        st = kd_command_fresh(c, env, why, sizeof why);
    if (st == KD_OK) {
        st = handle_step(host, env, why, sizeof why);
        /* Not recorded as done: the worker stops, and the step comes again
         * when it starts next. */
        if (st != KD_OK && st != KD_EPROTO) {
            kd_envelope_free(env);
            return kd_err(err, errsz, st, "%s", why);
        }
    }
    if (st != KD_OK)
        kd_error("%s: skipping the message at %s partition %d offset %lld: %s", host->id,
                 kd_topic_suffix(m->topic), m->partition, (long long)m->offset, why);
    kd_envelope_free(env);
    /* Skipped messages are done too: one bad message must not block the
     * host's steps behind it on every restart. */
    return kd_fanout_done(host->feed, m->offset + 1, err, errsz);
}

kd_status_t kd_agent_prepare(kd_host_t *host, char *err, size_t errsz)
{
    /* Before any step is answered: a step cut short by a crash is reported
     * only once its hook has really ended. */
    return kd_orphans_end(host->journal, host->id, KD_HOOK_KILL_GRACE_MS, err, errsz);
}

kd_status_t kd_agent_serve(void *opaque, kd_fanout_host_t *feed, kd_message_t *m, char *err,
                           size_t errsz)
{
    kd_host_t *host = opaque;

    if (!host->feed) {
        host->feed = feed;
        kd_info("%s: reading steps partition %d", host->id, kd_fanout_partition(feed));
    }
    return handle_message(host, kd_fanout_handle(feed), m, err, errsz);
}

/* ---- host status ---- */

static kd_status_t add_installed(kd_host_t *host, const char *app, const char *group,
                                 Kdeploy__V1__HostStatus *hs, Kdeploy__V1__InstalledRevision *slot,
                                 char *idbuf, size_t idsz)
{
    if (kd_cache_installed_get(host->root, app, group, idbuf, idsz, NULL, 0) != KD_OK)
        return KD_ENOTFOUND;
    kdeploy__v1__installed_revision__init(slot);
    slot->application = (char *)app;
    slot->group = (char *)group;
    slot->deploy_id = idbuf;
    hs->installed[hs->n_installed++] = slot;
    return KD_OK;
}

/* A fixed bound, not one sized by what is on disk: past 64 application
 * groups on one host, the rest go unlisted. */
#define STATUS_MAX_GROUPS 64

typedef struct status_scan {
    char app[STATUS_MAX_GROUPS][160];
    char group[STATUS_MAX_GROUPS][160];
    char deploy[STATUS_MAX_GROUPS][160];
    Kdeploy__V1__InstalledRevision rev[STATUS_MAX_GROUPS];
    Kdeploy__V1__InstalledRevision *ptrs[STATUS_MAX_GROUPS];
    /* The labels, split from their KEY=VALUE texts. */
    char label_key[KD_LABEL_MAX][KD_LABEL_LEN_MAX + 1];
    Kdeploy__V1__HostLabel label[KD_LABEL_MAX];
    Kdeploy__V1__HostLabel *label_ptrs[KD_LABEL_MAX];
} status_scan_t;

/* The host's labels (checked at start) into the status. */
static void set_labels(const kd_host_t *host, Kdeploy__V1__HostStatus *hs, status_scan_t *s)
{
    hs->labels = s->label_ptrs;
    for (size_t i = 0; host->labels && host->labels[i] && i < KD_LABEL_MAX; i++) {
        const char *eq = strchr(host->labels[i], '=');
        size_t klen = eq ? (size_t)(eq - host->labels[i]) : 0;

        if (!eq || klen > KD_LABEL_LEN_MAX)
            continue;
        memcpy(s->label_key[i], host->labels[i], klen);
        s->label_key[i][klen] = '\0';
        kdeploy__v1__host_label__init(&s->label[i]);
        s->label[i].key = s->label_key[i];
        s->label[i].value = (char *)eq + 1;
        hs->labels[hs->n_labels++] = &s->label[i];
    }
}

/* Walks ${root}/app-*\/group-* for installed revisions. */
static void scan_installed(kd_host_t *host, Kdeploy__V1__HostStatus *hs, status_scan_t *s)
{
    DIR *apps = opendir(host->root);
    struct dirent *a;

    hs->installed = s->ptrs;
    if (!apps)
        return;
    while ((a = readdir(apps)) && hs->n_installed < STATUS_MAX_GROUPS) {
        char path[PATH_MAX];
        DIR *groups;
        struct dirent *g;

        if (strncmp(a->d_name, "app-", 4) != 0 ||
            kd_pathf(path, sizeof path, "%s/%s", host->root, a->d_name) != KD_OK ||
            !(groups = opendir(path)))
            continue;
        while ((g = readdir(groups)) && hs->n_installed < STATUS_MAX_GROUPS) {
            /* A group with nothing installed leaves its slot to the next. */
            size_t i = hs->n_installed;

            if (strncmp(g->d_name, "group-", 6) != 0)
                continue;
            snprintf(s->app[i], sizeof s->app[i], "%.150s", a->d_name + 4);
            snprintf(s->group[i], sizeof s->group[i], "%.150s", g->d_name + 6);
            add_installed(host, s->app[i], s->group[i], hs, &s->rev[i], s->deploy[i],
                          sizeof s->deploy[i]);
        }
        closedir(groups);
    }
    closedir(apps);
}

static kd_status_t send_status(kd_host_t *host, int alive, bool wait, char *err, size_t errsz)
{
    Kdeploy__V1__HostStatus hs = KDEPLOY__V1__HOST_STATUS__INIT;
    status_scan_t *scan = calloc(1, sizeof *scan);
    char id[KD_UUID_LEN], hostname[256] = "";
    kd_envelope_t env;
    kd_status_t st;

    if (!scan)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    gethostname(hostname, sizeof hostname - 1); /* truncation may leave no NUL: keep one */
    hs.host = (char *)host->id;
    hs.agent_version = KD_VERSION;
    hs.alive = alive;
    hs.hostname = hostname;
    hs.pid = (int32_t)getpid();
    scan_installed(host, &hs, scan);
    set_labels(host, &hs, scan);
    kd_envelope_init(&env, id, "", kd_producer_self(host->producer));
    env.body_case = KD_BODY(HOST_STATUS);
    env.host_status = &hs;
    st = kd_producer_send(host->producer, KD_TOPIC_HOSTS, host->id, &env, wait, err, errsz);
    free(scan);
    return st;
}

kd_status_t kd_agent_publish_status(kd_host_t *host, int alive, char *err, size_t errsz)
{
    return send_status(host, alive, true, err, errsz);
}

kd_status_t kd_agent_queue_status(kd_host_t *host, int alive, char *err, size_t errsz)
{
    return send_status(host, alive, false, err, errsz);
}
