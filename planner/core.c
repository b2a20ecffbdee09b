/* Following deployments: answered hosts move along their workflow, batches
 * start when the previous one is done, failures past the threshold halt
 * the deployment (hosts in flight finish their current step first), and
 * the end is decided as succeeded or failed — then, if asked, rolled back.
 * Paused and stopping deployments start no host, but their hosts in flight
 * go on to the end of their workflow (control.c).
 * See core.h for the rounds these decisions are made in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "log.h"
#include "spec.h"

/* DeploymentFailed lists this many hosts by name at most, so that the
 * event stays far below the broker's message limit whatever the fleet. */
#define FAILED_HOSTS_LISTED KD_LISTED_HOSTS

static bool past_deadline(const kd_core_ctx_t *c, const kd_deploy_t *d)
{
    return c->now_ms - d->accepted_ms > kd_core_deployment_timeout_ms(d);
}

static bool failing(const kd_core_ctx_t *c, const kd_deploy_t *d)
{
    return d->halted || d->failed >= kd_core_threshold(d) || past_deadline(c, d);
}

/* ---- the end ---- */

static void finish_succeeded(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d)
{
    Kdeploy__V1__DeploymentSucceeded s = KDEPLOY__V1__DEPLOYMENT_SUCCEEDED__INIT;
    char id[KD_UUID_LEN], **skipped = NULL;
    kd_envelope_t env;

    /* One scan of the fleet, once: its end, and only when hosts were
     * skipped. */
    if (d->skipped && (skipped = calloc(KD_LISTED_HOSTS + 1, sizeof *skipped)))
        for (size_t i = 0; i < d->host_count && s.n_skipped_hosts < KD_LISTED_HOSTS; i++)
            if (d->hosts[i].phase == KD_HOST_SKIPPED)
                skipped[s.n_skipped_hosts++] = d->hosts[i].name;
    s.skipped_hosts = skipped;
    s.hosts_skipped = (uint32_t)d->skipped;
    kd_core_env(c, &env, id, d->id);
    s.hosts_succeeded = (uint32_t)d->succeeded;
    s.duration_ms = env.ts_ms - d->accepted_ms;
    s.live_group = d->wf->swap_after ? d->target_group : "";
    env.body_case = KD_BODY(SUCCEEDED);
    env.succeeded = &s;
    kd_info("%s: succeeded (%u hosts, %u skipped) in %.1f s", d->id, s.hosts_succeeded,
            s.hosts_skipped, (double)s.duration_ms / 1000.0);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
    free(skipped);
    if (d->rollback_of[0])
        kd_decide_status(out, c, d->rollback_of, STATUS(ROLLBACK_SUCCEEDED), d->id, "");
}

static void failure_reason(const kd_core_ctx_t *c, const kd_deploy_t *d, char *out,
                           size_t outsz)
{
    uint32_t threshold = kd_core_threshold(d);

    if (d->failed >= threshold)
        snprintf(out, outsz, "%zu host(s) failed (threshold %u)", d->failed, threshold);
    else if (past_deadline(c, d))
        snprintf(out, outsz, "deployment timed out after %lld s",
                 (long long)(kd_core_deployment_timeout_ms(d) / 1000));
    else if (d->swap == KD_SWAP_FAILED)
        snprintf(out, outsz, "the traffic swap failed");
    else
        snprintf(out, outsz, "%zu host(s) failed", d->failed);
}

/* What halting gives a host that waits for a decision: its answer if it
 * failed or finished its last step, else a failure ("halted"). */
static Kdeploy__V1__StepStatus halt_outcome(const kd_deploy_t *d, const kd_dhost_t *h)
{
    if (h->step >= 0 && !STEP_OK(h->result))
        return STEP(FAILED);
    if (h->step + 1 >= (int)d->wf->count)
        return STEP(SUCCEEDED);
    return STEP(FAILED);
}

/* Failed, then what follows it in the same round: the undone deployment's
 * status for a rollback, or an automatic rollback. why: NULL to say it
 * from the model. halting: the hosts waiting for a decision are failed in
 * this same round (decided just before), so they count as failed. */
static void finish_failed(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                          const kd_deploy_t *d, const char *why, bool halting)
{
    Kdeploy__V1__DeploymentFailed f = KDEPLOY__V1__DEPLOYMENT_FAILED__INIT;
    char **names = calloc(FAILED_HOSTS_LISTED + 1, sizeof *names);
    char id[KD_UUID_LEN], reason[256], rollback_id[KD_UUID_LEN];
    size_t failed = d->failed;
    kd_envelope_t env;

    if (!names) {
        out->failed = true;
        return;
    }
    if (why)
        snprintf(reason, sizeof reason, "%s", why);
    else
        failure_reason(c, d, reason, sizeof reason);
    for (const kd_dhost_t *h = d->ready_head; halting && h; h = h->ready_next)
        failed += halt_outcome(d, h) == STEP(FAILED);
    /* One scan of the fleet, once per deployment: its end. */
    for (size_t i = 0; i < d->host_count && f.n_failed_hosts < FAILED_HOSTS_LISTED; i++) {
        const kd_dhost_t *h = &d->hosts[i];

        if (h->phase == KD_HOST_FAILED ||
            (halting && h->ready && halt_outcome(d, h) == STEP(FAILED)))
            names[f.n_failed_hosts++] = h->name;
    }
    kd_core_env(c, &env, id, d->id);
    f.reason = reason;
    f.failed_hosts = names;
    f.hosts_failed = (uint32_t)failed;
    f.duration_ms = env.ts_ms - d->accepted_ms;
    env.body_case = KD_BODY(FAILED);
    env.failed = &f;
    kd_warn("%s: failed: %s", d->id, reason);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
    free(names);
    if (d->rollback_of[0]) {
        kd_decide_status(out, c, d->rollback_of, STATUS(ROLLBACK_FAILED), d->id, "");
        return;
    }
    /* A blue-green deployment that failed never moved traffic: nothing to
     * undo. Rolling ones are rolled back on the hosts they touched, if the
     * spec or a stop (which it failed before finishing) asked for it. */
    if (!(d->spec->auto_rollback || d->stop_rollback) || d->wf->swap_after)
        return;
    c->new_id(c->arg, d->id, rollback_id);
    kd_decide_rollback(out, c, m, d, rollback_id, "kdeploy-planner (auto rollback)", reason,
                       true);
}

/* ---- hosts ---- */

/* A rolling rollback: what the host ran before the undone deployment. */
static const char *restore_of(const kd_model_t *m, const kd_deploy_t *d, const char *host)
{
    const kd_deploy_t *undone;
    const kd_dhost_t *uh;

    if (!d->rollback_of[0] || d->wf->swap_after)
        return NULL;
    undone = kd_model_find(m, d->rollback_of);
    uh = undone ? kd_deploy_host(undone, host) : NULL;
    return uh ? uh->previous_id : NULL;
}

/* A rollback's host whose worker went silent in the deployment undone and
 * has not announced itself since: gone, as far as the planner knows. */
static bool gone(const kd_model_t *m, const kd_deploy_t *d, const kd_dhost_t *h)
{
    const kd_deploy_t *undone = d->rollback_of[0] ? kd_model_find(m, d->rollback_of) : NULL;
    const kd_dhost_t *uh = undone ? kd_deploy_host(undone, h->name) : NULL;

    return uh && uh->silent && kd_model_host_alive_ms(m, h->name) <= uh->finished_ms;
}

static void first_step(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                       const kd_deploy_t *d, const kd_dhost_t *h, const char *restore)
{
    char why[512];

    if (d->rollback_of[0] && !d->wf->swap_after && (!restore || !*restore)) {
        kd_decide_host_finished(out, c, d, h, STEP(SKIPPED),
                                "first deployment on this host: nothing to roll back to");
    } else if (gone(m, d, h)) {
        /* Waiting for it would fail the rollback of every host that is
         * there; it is named in the result instead. */
        snprintf(why, sizeof why, "gone: its worker stopped answering during %s and has not "
                 "come back; roll it back when it does", d->rollback_of);
        kd_decide_host_finished(out, c, d, h, STEP(SKIPPED), why);
    } else {
        kd_decide_step(out, c, m, d, h, restore, 0, 1);
    }
}

static void start_batch(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                        const kd_deploy_t *d)
{
    Kdeploy__V1__BatchStarted bs = KDEPLOY__V1__BATCH_STARTED__INIT;
    uint32_t batch = (uint32_t)(d->batch + 1);
    size_t first = d->started, size = kd_spec_batch_size(d->spec, batch, d->host_count);
    size_t end = first + size > d->host_count ? d->host_count : first + size;
    char **names = calloc(KD_LISTED_HOSTS + 1, sizeof *names);
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    if (!names) {
        out->failed = true;
        return;
    }
    for (size_t i = first; i < end && bs.n_hosts < KD_LISTED_HOSTS; i++)
        names[bs.n_hosts++] = d->hosts[i].name;
    bs.batch = batch;
    bs.hosts = names;
    bs.hosts_total = (uint32_t)(end - first);
    kd_core_env(c, &env, id, d->id);
    env.body_case = KD_BODY(BATCH_STARTED);
    env.batch_started = &bs;
    kd_info("%s: batch %u: %zu host(s) from %s", d->id, batch, end - first, d->hosts[first].name);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
    free(names);
    for (size_t i = first; i < end; i++) {
        Kdeploy__V1__HostStarted hs = KDEPLOY__V1__HOST_STARTED__INIT;
        const kd_dhost_t *h = &d->hosts[i];
        const char *prev = kd_model_installed(m, d->spec->application, d->spec->group, h->name);
        const char *restore = restore_of(m, d, h->name);

        kd_core_env(c, &env, id, d->id);
        hs.host = h->name;
        hs.batch = batch;
        hs.previous_deploy_id = (char *)(prev ? prev : "");
        hs.restore_deploy_id = (char *)(restore ? restore : "");
        env.body_case = KD_BODY(HOST_STARTED);
        env.host_started = &hs;
        kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
        /* Applied in order, HostStarted comes before the first step. */
        first_step(out, c, m, d, h, restore);
    }
}

/* "ApplicationStart failed: exit 1" for a host whose step failed. */
static void step_failure(const kd_deploy_t *d, const kd_dhost_t *h, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s %s: %s", kd_event_name(d->wf->steps[h->step]),
             h->result == STEP(TIMED_OUT) ? "timed out" : "failed",
             h->error && *h->error ? h->error : "no reason given");
}

/* Answered hosts: finished ones are decided first; if their failures reach
 * the threshold, the others wait for the halt (next round). A paused or
 * stopping deployment sends its hosts their next step all the same: a
 * host held half way would be left with its application stopped. */
static void decide_ready(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                         const kd_deploy_t *d)
{
    size_t failed_now = 0;
    char why[1024];

    for (const kd_dhost_t *h = d->ready_head; h; h = h->ready_next) {
        if (h->step < 0)
            continue;
        if (!STEP_OK(h->result)) {
            step_failure(d, h, why, sizeof why);
            kd_decide_host_finished(out, c, d, h, STEP(FAILED), why);
            failed_now++;
        } else if (h->step + 1 >= (int)d->wf->count) {
            kd_decide_host_finished(out, c, d, h, STEP(SUCCEEDED), "");
        }
    }
    if (d->failed + failed_now >= kd_core_threshold(d))
        return;
    for (const kd_dhost_t *h = d->ready_head; h; h = h->ready_next) {
        if (h->step < 0)
            first_step(out, c, m, d, h, h->restore_id); /* a restart between the two */
        else if (STEP_OK(h->result) && h->step + 1 < (int)d->wf->count)
            kd_decide_step(out, c, m, d, h, h->restore_id, h->step + 1, 1);
    }
}

/* The deployment is failing: once nothing is in flight, every host still
 * running ends (its answer if it has one, else halted), and it fails, in
 * one round — so the reason is the one that made it halt, not the halted
 * hosts it counts afterwards. */
static void halt(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                 const kd_deploy_t *d)
{
    char why[1024], reason[256];

    if (d->in_flight > 0 || d->swap == KD_SWAP_IN_FLIGHT)
        return; /* hosts in flight finish their current step first */
    failure_reason(c, d, reason, sizeof reason);
    for (const kd_dhost_t *h = d->ready_head; h; h = h->ready_next) {
        Kdeploy__V1__StepStatus st = halt_outcome(d, h);

        if (st == STEP(SUCCEEDED))
            kd_decide_host_finished(out, c, d, h, st, "");
        else if (h->step >= 0 && !STEP_OK(h->result)) {
            step_failure(d, h, why, sizeof why);
            kd_decide_host_finished(out, c, d, h, st, why);
        } else {
            kd_decide_host_finished(out, c, d, h, st,
                                    "halted: the deployment stopped before this host finished");
        }
    }
    finish_failed(out, c, m, d, reason, true);
}

static void finish(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                   const kd_deploy_t *d)
{
    /* A named config or minimum_healthy_hosts means CodeDeploy's rule: the
     * deployment succeeds when no more hosts failed than it tolerates. */
    bool too_many = d->failed && (!kd_spec_has_named_config(d->spec) ||
                                  d->failed >= kd_core_threshold(d));

    if (!d->wf->swap_after) {
        if (too_many)
            finish_failed(out, c, m, d, NULL, false);
        else
            finish_succeeded(out, c, d);
        return;
    }
    /* Blue-green: a failed deploy to the idle group never touches traffic. */
    if (d->failed > 0 || d->swap == KD_SWAP_FAILED)
        finish_failed(out, c, m, d, NULL, false);
    else if (d->swap == KD_SWAP_NONE)
        kd_decide_swap(out, c, d, 1, false);
    else if (d->swap == KD_SWAP_DONE)
        finish_succeeded(out, c, d);
}

void kd_core_drive(const kd_model_t *m, const kd_core_ctx_t *c, const char *deploy_id,
                   kd_decisions_t *out)
{
    const kd_deploy_t *d = kd_model_find(m, deploy_id);

    if (!d || kd_deploy_finished(d) || !kd_deploy_complete(d))
        return;
    if (failing(c, d)) {
        halt(out, c, m, d);
        return;
    }
    /* One kind of decision a round: answered hosts first; batches and the
     * end only once every answer is decided. */
    if (d->ready_head) {
        size_t before = out->count;

        decide_ready(out, c, m, d);
        if (out->count > before)
            return;
    }
    if (d->running > 0)
        return;
    /* No host runs: a stop ends here, a pause holds the next batch (and
     * the blue-green swap). */
    if (d->stopping)
        kd_decide_stopped(out, c, m, d);
    else if (d->paused)
        return;
    else if (d->started < d->host_count)
        start_batch(out, c, m, d);
    else
        finish(out, c, m, d);
}

/* ---- time ---- */

static int64_t later(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Running hosts are all in the current batch: a batch starts only when no
 * host runs. So time is checked over that batch, never the fleet. */
static void tick_hosts(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d)
{
    /* A step may take as long as its host may; silence that long means
     * the worker is gone (long hooks send heartbeats). */
    int64_t host_limit = kd_core_host_timeout_ms(d), step_limit = host_limit;
    char why[512];

    for (size_t i = d->batch_first; i < d->started; i++) {
        const kd_dhost_t *h = &d->hosts[i];

        if (h->phase != KD_HOST_RUNNING)
            continue;
        if (h->in_flight && c->now_ms - later(h->seen_ms, c->since_ms) > step_limit) {
            snprintf(why, sizeof why, "%s: no result or heartbeat from %s within %lld s",
                     kd_event_name(d->wf->steps[h->step]), h->name,
                     (long long)(step_limit / 1000));
            kd_decide_host_silent(out, c, d, h, why);
            continue;
        }
        /* Restarted with the silence timers after a takeover or an outage:
         * the host had no chance to answer meanwhile. */
        if (c->now_ms - later(h->started_ms, c->since_ms) > host_limit)
            snprintf(why, sizeof why, "host timed out after %lld s",
                     (long long)(host_limit / 1000));
        else
            continue;
        kd_decide_host_finished(out, c, d, h, STEP(FAILED), why);
    }
}

void kd_core_tick(const kd_model_t *m, const kd_core_ctx_t *c, kd_decisions_t *out)
{
    char why[128];

    for (const kd_deploy_t *d = m->head; d; d = d->next) {
        size_t before = out->count;

        if (kd_deploy_finished(d) || !c->owns(c->arg, d->id))
            continue;
        tick_hosts(out, c, d);
        if (d->swap == KD_SWAP_IN_FLIGHT &&
            c->now_ms - later(d->swap_sent_ms, c->since_ms) > kd_core_host_timeout_ms(d)) {
            snprintf(why, sizeof why, "the traffic swap timed out after %lld s",
                     (long long)(kd_core_host_timeout_ms(d) / 1000));
            finish_failed(out, c, m, d, why, false);
        }
        /* Timed-out hosts are decided; what follows from them waits for
         * the next round. Otherwise the deadline may have passed. */
        if (out->count == before)
            kd_core_drive(m, c, d->id, out);
    }
}

void kd_core_takeover(const kd_model_t *m, const kd_core_ctx_t *c, kd_decisions_t *out)
{
    for (const kd_deploy_t *d = m->head; d; d = d->next) {
        if (kd_deploy_finished(d) || !c->owns(c->arg, d->id))
            continue;
        /* Stopped between a rollback's acceptance and its last host slice:
         * its hosts come from the deployment it undoes. (A created one gets
         * them from its request, which comes again uncommitted.) */
        if (!kd_deploy_complete(d) && d->rollback_of[0]) {
            kd_decide_rollback_slices(out, c, m, d);
            continue;
        }
        for (size_t i = d->batch_first; i < d->started; i++)
            if (d->hosts[i].phase == KD_HOST_RUNNING && d->hosts[i].in_flight)
                kd_decide_resend(out, c, m, d, &d->hosts[i]);
        if (d->swap == KD_SWAP_IN_FLIGHT)
            kd_decide_swap(out, c, d, d->swap_attempt, true);
        /* Consistent with the resends: driving acts on answered hosts and
         * on batches, never on a step in flight. */
        kd_core_drive(m, c, d->id, out);
    }
}
