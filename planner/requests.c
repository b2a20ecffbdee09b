/* Requests from operators: create, stop, pause, resume and rollback. A
 * request the planner cannot take is answered with a rejection on the
 * deployments topic, so the operator's tool can say why. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "planner.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name

/* Blue-green: deploy to the group that is not serving; the first time,
 * to blue. */
static void pick_blue_green(kd_planner_t *p, const Kdeploy__V1__DeploymentSpec *spec,
                            Kdeploy__V1__DeploymentAccepted *a)
{
    const char *live = kd_model_live_group(p->model, spec->application, spec->group);
    const Kdeploy__V1__BlueGreenGroup *target = spec->blue_green->blue;

    if (live && strcmp(live, spec->blue_green->blue->server_group) == 0)
        target = spec->blue_green->green;
    a->target_group = target->server_group;
    a->swap_from_group = (char *)(live ? live : "");
    a->hosts = target->hosts;
    a->n_hosts = target->n_hosts;
}

static const char *check_spec(const Kdeploy__V1__DeploymentSpec *spec)
{
    if (!spec || !spec->application || !*spec->application || !spec->group || !*spec->group)
        return "the spec names no application or group";
    if (!spec->revision || !spec->revision->url || !*spec->revision->url)
        return "the spec names no revision";
    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        return spec->blue_green && spec->blue_green->blue && spec->blue_green->green &&
                       spec->blue_green->blue->n_hosts && spec->blue_green->green->n_hosts &&
                       spec->load_balancer && spec->load_balancer->service &&
                       *spec->load_balancer->service
                   ? NULL : "blue-green needs both groups with hosts and a load_balancer service";
    return spec->n_hosts ? NULL : "the spec names no hosts";
}

static kd_status_t create(kd_planner_t *p, const kd_envelope_t *env, char *err, size_t errsz)
{
    const Kdeploy__V1__CreateDeployment *c = env->create;
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    const kd_deploy_t *active;
    kd_envelope_t out;
    char id[KD_UUID_LEN], why[512];
    const char *bad = check_spec(c->spec);
    kd_deploy_t *d;
    kd_status_t st;

    if (kd_model_find(p->model, env->deploy_id))
        return KD_OK; /* a repeated request: already taken */
    if (bad)
        return kd_emit_rejected(p, env->deploy_id, c->requested_by, bad, err, errsz);
    if ((active = kd_model_active(p->model, c->spec->application, c->spec->group, NULL))) {
        snprintf(why, sizeof why, "%s/%s already has an active deployment, %s (%s): "
                 "stop it or wait for it to end", c->spec->application, c->spec->group,
                 active->id, kd_status_name_of(active->status));
        return kd_emit_rejected(p, env->deploy_id, c->requested_by, why, err, errsz);
    }
    a.spec = c->spec;
    a.requested_by = c->requested_by;
    a.rollback_of = "";
    a.hosts = c->spec->hosts;
    a.n_hosts = c->spec->n_hosts;
    a.status = STATUS(DEPLOYING);
    a.operation = KDEPLOY__V1__OPERATION__UPDATE;
    if (c->spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        pick_blue_green(p, c->spec, &a);
    kd_envelope_init(&out, id, env->deploy_id, kd_producer_self(p->producer));
    out.body_case = KD_BODY(ACCEPTED);
    out.accepted = &a;
    kd_info("%s: accepted: %s/%s to %zu host(s), requested by %s", env->deploy_id,
            c->spec->application, c->spec->group, a.n_hosts, c->requested_by);
    if ((st = kd_emit(p, env->deploy_id, &out, err, errsz)) != KD_OK)
        return st;
    d = kd_model_find(p->model, env->deploy_id);
    return d ? kd_engine_drive(p, d, err, errsz) : KD_OK;
}

static kd_status_t control(kd_planner_t *p, const kd_envelope_t *env, char *err, size_t errsz)
{
    kd_deploy_t *d = kd_model_find(p->model, env->deploy_id);
    Kdeploy__V1__DeploymentStatus to;
    const char *by;
    kd_status_t st;

    switch (env->body_case) {
    case KD_BODY(STOP): to = STATUS(STOPPED); by = env->stop->requested_by; break;
    case KD_BODY(PAUSE): to = STATUS(PAUSED); by = env->pause->requested_by; break;
    default: to = STATUS(DEPLOYING); by = env->resume->requested_by; break;
    }
    if (!d || kd_deploy_finished(d))
        return kd_emit_rejected(p, env->deploy_id, by,
                                d ? "the deployment has already ended" : "no such deployment",
                                err, errsz);
    if ((to == STATUS(PAUSED) && d->paused) || (to == STATUS(DEPLOYING) && !d->paused))
        return KD_OK;
    if ((st = kd_emit_status(p, d->id, to,
                             env->body_case == KD_BODY(STOP) ? env->stop->reason : "", by, err,
                             errsz)) != KD_OK)
        return st;
    return kd_engine_drive(p, d, err, errsz);
}

static kd_status_t rollback(kd_planner_t *p, const kd_envelope_t *env, char *err, size_t errsz)
{
    const Kdeploy__V1__RollbackDeployment *r = env->rollback;
    kd_deploy_t *undone = kd_model_find(p->model, r->rollback_of);

    if (kd_model_find(p->model, env->deploy_id))
        return KD_OK;
    if (!undone)
        return kd_emit_rejected(p, env->deploy_id, r->requested_by,
                                "no such deployment to roll back", err, errsz);
    return kd_rollback_start(p, undone, env->deploy_id, r->requested_by,
                             r->reason && *r->reason ? r->reason : "requested", err, errsz);
}

kd_status_t kd_requests_handle(kd_planner_t *p, const kd_envelope_t *env, char *err,
                               size_t errsz)
{
    switch (env->body_case) {
    case KD_BODY(CREATE): return create(p, env, err, errsz);
    case KD_BODY(STOP):
    case KD_BODY(PAUSE):
    case KD_BODY(RESUME): return control(p, env, err, errsz);
    case KD_BODY(ROLLBACK): return rollback(p, env, err, errsz);
    default:
        kd_warn("%s: a %s event on the requests topic: ignored", env->deploy_id,
                kd_envelope_type(env));
        return KD_OK;
    }
}
