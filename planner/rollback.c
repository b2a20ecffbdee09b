/* A rollback is a new deployment with its own id that points back at the
 * one it undoes. Rolling: on every host the undone deployment touched, the
 * failed revision's stop script, then the previous revision from the
 * host's cache. Blue-green: check the group that served before, then swap
 * the service back to it. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "planner.h"

/* The hosts to roll back, in the undone deployment's order. */
static size_t rollback_hosts(const kd_deploy_t *undone, char **out)
{
    size_t n = 0;

    if (undone->wf->swap_after) {
        const Kdeploy__V1__BlueGreen *bg = undone->spec->blue_green;
        const Kdeploy__V1__BlueGreenGroup *g =
            strcmp(bg->blue->server_group, undone->swap_from) == 0 ? bg->blue : bg->green;

        for (size_t i = 0; i < g->n_hosts; i++)
            out[n++] = g->hosts[i];
        return n;
    }
    for (size_t i = 0; i < undone->host_count; i++)
        if (undone->hosts[i].phase != KD_HOST_PENDING)
            out[n++] = undone->hosts[i].name;
    return n;
}

static const char *why_not(kd_planner_t *p, const kd_deploy_t *undone, const char *rollback_id)
{
    if (undone->rollback_of[0])
        return "a rollback is not rolled back: deploy the revision you want instead";
    if (undone->rolled_back_by[0])
        return "this deployment has already been rolled back";
    if (!kd_deploy_finished(undone))
        return "the deployment is still running: stop it first";
    if (kd_model_active(p->model, undone->spec->application, undone->spec->group, rollback_id))
        return "another deployment of this application and group is active";
    if (undone->wf->swap_after && !undone->swap_from[0])
        return "the first blue-green deployment of a group has no group to go back to";
    if (undone->wf->swap_after && undone->swap != KD_SWAP_DONE)
        return "traffic never moved to the new group: nothing to roll back";
    return NULL;
}

kd_status_t kd_rollback_start(kd_planner_t *p, kd_deploy_t *undone, const char *rollback_id,
                              const char *requested_by, const char *reason, char *err,
                              size_t errsz)
{
    Kdeploy__V1__RollbackStarted rs = KDEPLOY__V1__ROLLBACK_STARTED__INIT;
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    char *hosts[undone->host_count + 1 + (undone->spec->blue_green ? 64 : 0)];
    const char *bad = why_not(p, undone, rollback_id);
    char id1[KD_UUID_LEN], id2[KD_UUID_LEN];
    kd_envelope_t env;
    kd_deploy_t *d;
    kd_status_t st;

    if (bad)
        return kd_emit_rejected(p, rollback_id, requested_by, bad, err, errsz);
    rs.rollback_of = undone->id;
    rs.rollback_deploy_id = (char *)rollback_id;
    rs.reason = (char *)reason;
    rs.n_hosts = rollback_hosts(undone, hosts);
    rs.hosts = hosts;
    kd_envelope_init(&env, id1, undone->id, kd_producer_self(p->producer));
    env.body_case = KD_BODY(ROLLBACK_STARTED);
    env.rollback_started = &rs;
    kd_info("%s: rolling back as %s (%s)", undone->id, rollback_id, reason);
    if ((st = kd_emit(p, undone->id, &env, err, errsz)) != KD_OK)
        return st;

    a.spec = undone->spec;
    a.requested_by = (char *)requested_by;
    a.rollback_of = undone->id;
    a.hosts = hosts;
    a.n_hosts = rs.n_hosts;
    a.status = KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_DEPLOYING;
    a.operation = KDEPLOY__V1__OPERATION__ROLLBACK;
    a.target_group = undone->swap_from;
    a.swap_from_group = undone->target_group;
    kd_envelope_init(&env, id2, rollback_id, kd_producer_self(p->producer));
    env.body_case = KD_BODY(ACCEPTED);
    env.accepted = &a;
    if ((st = kd_emit(p, rollback_id, &env, err, errsz)) != KD_OK)
        return st;
    d = kd_model_find(p->model, rollback_id);
    return d ? kd_engine_drive(p, d, err, errsz) : KD_OK;
}
