/* Step and traffic commands: what the planner asks workers and lbctl to do.
 * Each is first recorded (StepDispatched on the deployments topic), then
 * sent; the daemon publishes a round's records before its commands. A
 * resend after a restart carries the same step id, which the worker's
 * journal answers without running anything twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "log.h"

char *kd_core_step_id(const char *deploy_id, const char *host, kd_event_t ev, uint32_t attempt)
{
    char *id = NULL;

    return asprintf(&id, "%s/%s/%s/%u", deploy_id, host, kd_event_name(ev), attempt) < 0 ? NULL
                                                                                         : id;
}

static uint32_t timeout_s(const kd_deploy_t *d)
{
    return (uint32_t)(kd_core_host_timeout_ms(d) / 1000);
}

/* Commands are signed with their expiry: a deployment cannot outlive its
 * timeout, so a command replayed after that does nothing. */
static int64_t expires_ms(const kd_deploy_t *d)
{
    return d->accepted_ms + kd_core_deployment_timeout_ms(d);
}

static void record(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                   const char *step_id, const char *host, kd_event_t ev, uint32_t attempt)
{
    Kdeploy__V1__StepDispatched sd = KDEPLOY__V1__STEP_DISPATCHED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_core_env(c, &env, id, d->id);
    sd.step_id = (char *)step_id;
    sd.host = (char *)host;
    sd.event = ev;
    sd.attempt = attempt;
    env.body_case = KD_BODY(STEP_DISPATCHED);
    env.step_dispatched = &sd;
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, d->id, &env);
}

/* The revision a host's step installs or runs hooks of: the deployment's
 * own, or for a rollback the one restored on that host. */
static void step_revision(const kd_model_t *m, const kd_deploy_t *d, const char *host,
                          const char *restore, Kdeploy__V1__StepCommand *cmd)
{
    const kd_deploy_t *restored;

    cmd->revision = d->spec->revision;
    cmd->revision_deploy_id = d->id;
    cmd->scripts = d->spec->scripts;
    if (!d->rollback_of[0])
        return;
    if (d->wf->swap_after) {
        /* Blue-green rollback: check what the old group still runs. */
        const char *installed = kd_model_installed(m, d->spec->application, d->spec->group, host);

        cmd->revision_deploy_id = (char *)(installed ? installed : "");
        restored = installed ? kd_model_find(m, installed) : NULL;
    } else {
        cmd->revision_deploy_id = (char *)(restore ? restore : "");
        restored = restore ? kd_model_find(m, restore) : NULL;
    }
    /* Known: the worker may fetch it again if the host's cache lost it. */
    cmd->revision = restored ? restored->spec->revision : NULL;
    cmd->scripts = restored ? restored->spec->scripts : NULL;
}

static void worker_step(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                        const kd_deploy_t *d, const kd_dhost_t *h, const char *restore,
                        kd_event_t ev, uint32_t attempt, const char *step_id)
{
    Kdeploy__V1__StepCommand cmd = KDEPLOY__V1__STEP_COMMAND__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    cmd.step_id = (char *)step_id;
    cmd.host = h->name;
    cmd.event = ev;
    cmd.attempt = attempt;
    cmd.application = d->spec->application;
    cmd.group = d->spec->group;
    cmd.operation = d->rollback_of[0] ? KDEPLOY__V1__OPERATION__ROLLBACK
                                      : KDEPLOY__V1__OPERATION__UPDATE;
    step_revision(m, d, h->name, restore, &cmd);
    cmd.file_exists = d->spec->file_exists;
    cmd.ignore_failure = ev == KD_EVENT(ApplicationStop) && d->spec->ignore_stop_failures;
    cmd.timeout_s = timeout_s(d);
    cmd.rollback_of = d->rollback_of;
    cmd.skip_traffic_hooks = d->spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN;
    cmd.expires_ms = expires_ms(d);
    kd_core_env(c, &env, id, d->id);
    env.body_case = KD_BODY(STEP);
    env.step = &cmd;
    kd_decide(out, KD_TOPIC_STEPS, h->name, &env);
}

static void traffic(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                    Kdeploy__V1__TrafficCommand *tc, const char *key)
{
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    tc->timeout_s = timeout_s(d);
    tc->expires_ms = expires_ms(d);
    kd_core_env(c, &env, id, d->id);
    env.body_case = KD_BODY(TRAFFIC);
    env.traffic = tc;
    kd_decide(out, KD_TOPIC_TRAFFIC, key, &env);
}

static void host_traffic(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                         const kd_dhost_t *h, kd_event_t ev, uint32_t attempt,
                         const char *step_id)
{
    Kdeploy__V1__TrafficCommand tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;

    tc.traffic_id = (char *)step_id;
    tc.action = ev == KD_EVENT(BlockTraffic) ? KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK
                                             : KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW;
    tc.event = ev;
    tc.server_group = d->spec->load_balancer->server_group;
    tc.host = h->name;
    tc.attempt = attempt;
    /* Keyed by server group: one lbctl drives a backend, in order. */
    traffic(out, c, d, &tc, tc.server_group);
}

static void command(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                    const kd_deploy_t *d, const kd_dhost_t *h, const char *restore,
                    kd_event_t ev, uint32_t attempt, const char *step_id)
{
    if (ev == KD_EVENT(BlockTraffic) || ev == KD_EVENT(AllowTraffic))
        host_traffic(out, c, d, h, ev, attempt, step_id);
    else
        worker_step(out, c, m, d, h, restore, ev, attempt, step_id);
}

void kd_decide_step(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                    const kd_deploy_t *d, const kd_dhost_t *h, const char *restore, int step,
                    uint32_t attempt)
{
    kd_event_t ev = d->wf->steps[step];
    char *step_id = kd_core_step_id(d->id, h->name, ev, attempt);

    if (!step_id) {
        out->failed = true;
        return;
    }
    record(out, c, d, step_id, h->name, ev, attempt);
    kd_debug("%s: %s -> %s", d->id, kd_event_name(ev), h->name);
    command(out, c, m, d, h, restore, ev, attempt, step_id);
    free(step_id);
}

void kd_decide_resend(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                      const kd_deploy_t *d, const kd_dhost_t *h)
{
    kd_event_t ev = d->wf->steps[h->step];
    char *step_id = kd_core_step_id(d->id, h->name, ev, h->attempt);

    if (!step_id) {
        out->failed = true;
        return;
    }
    kd_info("%s: sending %s again (in flight when the planner took over)", d->id, step_id);
    command(out, c, m, d, h, h->restore_id, ev, h->attempt, step_id);
    free(step_id);
}

void kd_decide_swap(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_deploy_t *d,
                    uint32_t attempt, bool resend)
{
    Kdeploy__V1__TrafficCommand tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;
    const char *service = d->spec->load_balancer->service;
    char *traffic_id = kd_core_step_id(d->id, service, KD_EVENT(SwapTraffic), attempt);

    if (!traffic_id) {
        out->failed = true;
        return;
    }
    if (!resend)
        record(out, c, d, traffic_id, service, KD_EVENT(SwapTraffic), attempt);
    tc.traffic_id = traffic_id;
    tc.action = KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP;
    tc.event = KD_EVENT(SwapTraffic);
    tc.service = (char *)service;
    tc.from_group = d->swap_from;
    tc.to_group = d->target_group;
    tc.attempt = attempt;
    kd_info("%s: swapping %s from %s to %s", d->id, service,
            d->swap_from[0] ? d->swap_from : "(none)", d->target_group);
    /* Keyed by service: swaps of one service are ordered. */
    traffic(out, c, d, &tc, service);
    free(traffic_id);
}
