/* Step and traffic commands: what the planner asks workers and lbctl to do.
 * Each is first recorded (StepDispatched on the deployments topic), then
 * sent; a resend after a restart carries the same step id, which the
 * worker's journal answers without running anything twice. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "planner.h"

void kd_step_id(const kd_deploy_t *d, const char *host, kd_event_t ev, uint32_t attempt,
                char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s/%s/%u", d->id, host, kd_event_name(ev), attempt);
}

static uint32_t timeout_s(const kd_deploy_t *d)
{
    return d->spec->host_timeout_s ? d->spec->host_timeout_s : 300;
}

static kd_status_t record(kd_planner_t *p, kd_deploy_t *d, const char *step_id,
                          const char *host, kd_event_t ev, uint32_t attempt, char *err,
                          size_t errsz)
{
    Kdeploy__V1__StepDispatched sd = KDEPLOY__V1__STEP_DISPATCHED__INIT;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    sd.step_id = (char *)step_id;
    sd.host = (char *)host;
    sd.event = ev;
    sd.attempt = attempt;
    env.body_case = KD_BODY(STEP_DISPATCHED);
    env.step_dispatched = &sd;
    return kd_emit(p, d->id, &env, err, errsz);
}

/* The revision a host's step installs or runs hooks of: the deployment's
 * own, or for a rollback the one restored on that host. */
static void step_revision(kd_planner_t *p, const kd_deploy_t *d, const kd_dhost_t *h,
                          Kdeploy__V1__StepCommand *cmd)
{
    const kd_deploy_t *restored;

    cmd->revision = d->spec->revision;
    cmd->revision_deploy_id = d->id;
    cmd->scripts = d->spec->scripts;
    if (!d->rollback_of[0])
        return;
    if (d->wf->swap_after) {
        /* Blue-green rollback: check what the old group still runs. */
        const char *installed =
            kd_model_installed(p->model, d->spec->application, d->spec->group, h->name);

        cmd->revision_deploy_id = (char *)(installed ? installed : "");
        restored = installed ? kd_model_find(p->model, installed) : NULL;
    } else {
        cmd->revision_deploy_id = h->restore_id;
        restored = kd_model_find(p->model, h->restore_id);
    }
    /* Known: the worker may fetch it again if the host's cache lost it. */
    cmd->revision = restored ? restored->spec->revision : NULL;
    cmd->scripts = restored ? restored->spec->scripts : NULL;
}

static kd_status_t send_worker_step(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h,
                                    kd_event_t ev, uint32_t attempt, const char *step_id,
                                    char *err, size_t errsz)
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
    step_revision(p, d, h, &cmd);
    cmd.file_exists = d->spec->file_exists;
    cmd.ignore_failure = ev == KD_EVENT(ApplicationStop) && d->spec->ignore_stop_failures;
    cmd.timeout_s = timeout_s(d);
    cmd.rollback_of = d->rollback_of;
    cmd.skip_traffic_hooks = d->spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN;
    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    env.body_case = KD_BODY(STEP);
    env.step = &cmd;
    return kd_producer_send(p->producer, KD_TOPIC_STEPS, h->name, &env, true, err, errsz);
}

static kd_status_t send_traffic(kd_planner_t *p, const kd_deploy_t *d,
                                Kdeploy__V1__TrafficCommand *tc, const char *key, char *err,
                                size_t errsz)
{
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    tc->timeout_s = timeout_s(d);
    kd_envelope_init(&env, id, d->id, kd_producer_self(p->producer));
    env.body_case = KD_BODY(TRAFFIC);
    env.traffic = tc;
    return kd_producer_send(p->producer, KD_TOPIC_TRAFFIC, key, &env, true, err, errsz);
}

static kd_status_t send_host_traffic(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h,
                                     kd_event_t ev, uint32_t attempt, const char *step_id,
                                     char *err, size_t errsz)
{
    Kdeploy__V1__TrafficCommand tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;

    tc.traffic_id = (char *)step_id;
    tc.action = ev == KD_EVENT(BlockTraffic) ? KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK
                                             : KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW;
    tc.event = ev;
    tc.server_group = d->spec->load_balancer->server_group;
    tc.host = h->name;
    tc.attempt = attempt;
    return send_traffic(p, d, &tc, tc.server_group, err, errsz);
}

static kd_status_t send(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, kd_event_t ev,
                        uint32_t attempt, const char *step_id, char *err, size_t errsz)
{
    if (ev == KD_EVENT(BlockTraffic) || ev == KD_EVENT(AllowTraffic))
        return send_host_traffic(p, d, h, ev, attempt, step_id, err, errsz);
    return send_worker_step(p, d, h, ev, attempt, step_id, err, errsz);
}

kd_status_t kd_dispatch_step(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, int step,
                             uint32_t attempt, char *err, size_t errsz)
{
    kd_event_t ev = d->wf->steps[step];
    char step_id[512];
    kd_status_t st;

    kd_step_id(d, h->name, ev, attempt, step_id, sizeof step_id);
    if ((st = record(p, d, step_id, h->name, ev, attempt, err, errsz)) != KD_OK)
        return st;
    kd_debug("%s: %s -> %s", d->id, kd_event_name(ev), h->name);
    return send(p, d, h, ev, attempt, step_id, err, errsz);
}

kd_status_t kd_dispatch_resend(kd_planner_t *p, kd_deploy_t *d, kd_dhost_t *h, char *err,
                               size_t errsz)
{
    kd_event_t ev = d->wf->steps[h->step];
    char step_id[512];

    kd_step_id(d, h->name, ev, h->attempt, step_id, sizeof step_id);
    kd_info("%s: sending %s again (in flight when the planner took over)", d->id, step_id);
    return send(p, d, h, ev, h->attempt, step_id, err, errsz);
}

kd_status_t kd_dispatch_swap(kd_planner_t *p, kd_deploy_t *d, uint32_t attempt, bool resend,
                             char *err, size_t errsz)
{
    Kdeploy__V1__TrafficCommand tc = KDEPLOY__V1__TRAFFIC_COMMAND__INIT;
    const char *service = d->spec->load_balancer->service;
    char traffic_id[512];
    kd_status_t st;

    kd_step_id(d, service, KD_EVENT(SwapTraffic), attempt, traffic_id, sizeof traffic_id);
    if (!resend &&
        (st = record(p, d, traffic_id, service, KD_EVENT(SwapTraffic), attempt, err, errsz)) != KD_OK)
        return st;
    tc.traffic_id = traffic_id;
    tc.action = KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP;
    tc.event = KD_EVENT(SwapTraffic);
    tc.service = (char *)service;
    tc.from_group = d->swap_from;
    tc.to_group = d->target_group;
    tc.attempt = attempt;
    kd_info("%s: swapping %s from %s to %s", d->id, service,
            d->swap_from[0] ? d->swap_from : "(none)", d->target_group);
    return send_traffic(p, d, &tc, service, err, errsz);
}
