/* Requests from operators: create, stop, pause, resume and rollback. A
 * request the planner cannot take is answered with a rejection on the
 * deployments topic, so the operator's tool can say why. */
#include <stdio.h>
#include <string.h>

#include "core_int.h"
#include "log.h"
#include "spec_check.h"

#define REQUESTED_BY_MAX 256

/* Blue-green: deploy to the group that is not serving; the first time,
 * to blue. The other group is what a rollback will check. */
static const Kdeploy__V1__BlueGreenGroup *pick_blue_green(const kd_model_t *m,
                                                         const Kdeploy__V1__DeploymentSpec *spec,
                                                         Kdeploy__V1__DeploymentAccepted *a)
{
    const char *live = kd_model_live_group(m, spec->application, spec->group);
    const Kdeploy__V1__BlueGreenGroup *target = spec->blue_green->blue;
    const Kdeploy__V1__BlueGreenGroup *other = spec->blue_green->green;

    if (live && strcmp(live, spec->blue_green->blue->server_group) == 0) {
        target = spec->blue_green->green;
        other = spec->blue_green->blue;
    }
    a->target_group = target->server_group;
    a->swap_from_group = (char *)(live ? live : "");
    a->hosts_total = (uint32_t)target->n_hosts;
    a->standby_total = (uint32_t)other->n_hosts;
    return target;
}

/* The host slices of d not applied yet, from the request that made it. */
static void resend_slices(const kd_core_ctx_t *c, const kd_deploy_t *d,
                          const Kdeploy__V1__DeploymentSpec *spec, kd_decisions_t *out)
{
    char *const *hosts = spec->hosts, *const *standby = NULL;
    size_t n = spec->n_hosts, nstandby = 0;

    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN) {
        bool blue = strcmp(d->target_group, spec->blue_green->blue->server_group) == 0;
        const Kdeploy__V1__BlueGreenGroup *t = blue ? spec->blue_green->blue : spec->blue_green->green;
        const Kdeploy__V1__BlueGreenGroup *o = blue ? spec->blue_green->green : spec->blue_green->blue;

        hosts = t->hosts;
        n = t->n_hosts;
        standby = o->hosts;
        nstandby = o->n_hosts;
    }
    if (n != d->hosts_expected || nstandby != d->standby_expected)
        return; /* not the request this deployment was made from */
    kd_info("%s: sending the rest of its host list again", d->id);
    kd_decide_hosts_from(out, c, d->id, hosts, n, d->hosts_received, false);
    kd_decide_hosts_from(out, c, d->id, standby, nstandby, d->standby_count, true);
}

static void create(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                   kd_decisions_t *out)
{
    const Kdeploy__V1__CreateDeployment *cr = req->create;
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    const Kdeploy__V1__BlueGreenGroup *target = NULL;
    kd_spec_shell_t shell;
    const kd_deploy_t *active, *d;
    char id[KD_UUID_LEN], why[512];
    kd_envelope_t env;

    if ((d = kd_model_find(m, req->deploy_id))) {
        /* A repeated request: already taken — unless the planner stopped
         * between its acceptance and the last slice of its hosts, which
         * come again from the request. */
        if (!kd_deploy_complete(d) && kd_spec_check(cr->spec, why, sizeof why) == KD_OK)
            resend_slices(c, d, cr->spec, out);
        return;
    }
    if (!cr->requested_by || strlen(cr->requested_by) > REQUESTED_BY_MAX) {
        kd_decide_rejected(out, c, req->deploy_id, "", "requested_by is missing or too long");
        return;
    }
    /* Anyone who can write the topic can send anything: checked here, not
     * only by the CLI. */
    if (kd_spec_check(cr->spec, why, sizeof why) != KD_OK) {
        kd_decide_rejected(out, c, req->deploy_id, cr->requested_by, why);
        return;
    }
    if ((active = kd_model_active(m, cr->spec->application, cr->spec->group, NULL))) {
        snprintf(why, sizeof why, "%s/%s already has an active deployment, %s (%s): "
                 "stop it or wait for it to end", cr->spec->application, cr->spec->group,
                 active->id, kd_status_name_of(active->status));
        kd_decide_rejected(out, c, req->deploy_id, cr->requested_by, why);
        return;
    }
    kd_spec_shell(&shell, cr->spec);
    a.spec = &shell.spec;
    a.requested_by = cr->requested_by;
    a.rollback_of = "";
    a.hosts_total = (uint32_t)cr->spec->n_hosts;
    a.status = STATUS(DEPLOYING);
    a.operation = KDEPLOY__V1__OPERATION__UPDATE;
    if (cr->spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        target = pick_blue_green(m, cr->spec, &a);
    kd_core_env(c, &env, id, req->deploy_id);
    env.body_case = KD_BODY(ACCEPTED);
    env.accepted = &a;
    kd_info("%s: accepted: %s/%s to %u host(s), requested by %s", req->deploy_id,
            cr->spec->application, cr->spec->group, a.hosts_total, cr->requested_by);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, req->deploy_id, &env);
    /* The host lists follow in slices (same key: in order, before
     * anything else of this deployment). */
    if (target) {
        const Kdeploy__V1__BlueGreenGroup *other = target == cr->spec->blue_green->blue
                                                       ? cr->spec->blue_green->green
                                                       : cr->spec->blue_green->blue;

        kd_decide_hosts(out, c, req->deploy_id, target->hosts, target->n_hosts, false);
        kd_decide_hosts(out, c, req->deploy_id, other->hosts, other->n_hosts, true);
    } else {
        kd_decide_hosts(out, c, req->deploy_id, cr->spec->hosts, cr->spec->n_hosts, false);
    }
}

static void control(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                    kd_decisions_t *out)
{
    const kd_deploy_t *d = kd_model_find(m, req->deploy_id);
    Kdeploy__V1__DeploymentStatus to;
    const char *by;

    switch (req->body_case) {
    case KD_BODY(STOP): to = STATUS(STOPPED); by = req->stop->requested_by; break;
    case KD_BODY(PAUSE): to = STATUS(PAUSED); by = req->pause->requested_by; break;
    default: to = STATUS(DEPLOYING); by = req->resume->requested_by; break;
    }
    if (!d || kd_deploy_finished(d)) {
        kd_decide_rejected(out, c, req->deploy_id, by,
                           d ? "the deployment has already ended" : "no such deployment");
        return;
    }
    if ((to == STATUS(PAUSED) && d->paused) || (to == STATUS(DEPLOYING) && !d->paused))
        return;
    kd_decide_status(out, c, d->id, to, req->body_case == KD_BODY(STOP) ? req->stop->reason : "",
                     by);
}

static void rollback(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                     kd_decisions_t *out)
{
    const Kdeploy__V1__RollbackDeployment *r = req->rollback;
    const kd_deploy_t *undone = kd_model_find(m, r->rollback_of);

    if (kd_model_find(m, req->deploy_id))
        return;
    if (!undone) {
        kd_decide_rejected(out, c, req->deploy_id, r->requested_by,
                           "no such deployment to roll back");
        return;
    }
    kd_decide_rollback(out, c, m, undone, req->deploy_id, r->requested_by,
                       r->reason && *r->reason ? r->reason : "requested", false);
}

void kd_core_request(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                     kd_decisions_t *out)
{
    if (!req->deploy_id || !*req->deploy_id) {
        kd_warn("a %s request with no deploy id: ignored", kd_envelope_type(req));
        return;
    }
    /* Deploy ids become parts of workers' cache paths and Kafka keys. */
    if (!kd_name_valid(req->deploy_id)) {
        kd_decide_rejected(out, c, req->deploy_id, "",
                           "the deploy id is not a name (letters, digits, '.', '_', '-')");
        return;
    }
    switch (req->body_case) {
    case KD_BODY(CREATE): create(m, c, req, out); break;
    case KD_BODY(STOP):
    case KD_BODY(PAUSE):
    case KD_BODY(RESUME): control(m, c, req, out); break;
    case KD_BODY(ROLLBACK): rollback(m, c, req, out); break;
    default:
        kd_warn("%s: a %s event on the requests topic: ignored", req->deploy_id,
                kd_envelope_type(req));
    }
}

void kd_core_reject(const kd_core_ctx_t *c, const kd_envelope_t *req, const char *reason,
                    kd_decisions_t *out)
{
    const char *by = req->body_case == KD_BODY(CREATE)     ? req->create->requested_by
                     : req->body_case == KD_BODY(ROLLBACK) ? req->rollback->requested_by
                                                           : "";

    kd_decide_rejected(out, c, req->deploy_id, by, reason);
}
