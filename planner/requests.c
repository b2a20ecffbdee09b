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
 * to blue. */
static void pick_blue_green(const kd_model_t *m, const Kdeploy__V1__DeploymentSpec *spec,
                            Kdeploy__V1__DeploymentAccepted *a)
{
    const char *live = kd_model_live_group(m, spec->application, spec->group);
    const Kdeploy__V1__BlueGreenGroup *target = spec->blue_green->blue;

    if (live && strcmp(live, spec->blue_green->blue->server_group) == 0)
        target = spec->blue_green->green;
    a->target_group = target->server_group;
    a->swap_from_group = (char *)(live ? live : "");
    a->hosts = target->hosts;
    a->n_hosts = target->n_hosts;
}

static void create(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                   kd_decisions_t *out)
{
    const Kdeploy__V1__CreateDeployment *cr = req->create;
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    const kd_deploy_t *active;
    char id[KD_UUID_LEN], why[512];
    kd_envelope_t env;

    if (kd_model_find(m, req->deploy_id))
        return; /* a repeated request: already taken */
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
    a.spec = cr->spec;
    a.requested_by = cr->requested_by;
    a.rollback_of = "";
    a.hosts = cr->spec->hosts;
    a.n_hosts = cr->spec->n_hosts;
    a.status = STATUS(DEPLOYING);
    a.operation = KDEPLOY__V1__OPERATION__UPDATE;
    if (cr->spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        pick_blue_green(m, cr->spec, &a);
    kd_core_env(c, &env, id, req->deploy_id);
    env.body_case = KD_BODY(ACCEPTED);
    env.accepted = &a;
    kd_info("%s: accepted: %s/%s to %zu host(s), requested by %s", req->deploy_id,
            cr->spec->application, cr->spec->group, a.n_hosts, cr->requested_by);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, req->deploy_id, &env);
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
