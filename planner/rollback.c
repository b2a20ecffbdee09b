/* A rollback is a new deployment with its own id that points back at the
 * one it undoes. Rolling: on every host the undone deployment touched, the
 * failed revision's stop script, then the previous revision from the
 * host's cache. Blue-green: check the group that served before, then swap
 * the service back to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"
#include "log.h"

/* The hosts to roll back, in the undone deployment's order, into a list
 * sized by rollback_hosts_max(). */
static size_t rollback_hosts(const kd_deploy_t *undone, char **out)
{
    size_t n = 0;

    if (undone->wf->swap_after) {
        const Kdeploy__V1__BlueGreen *bg = undone->spec->blue_green;
        const Kdeploy__V1__BlueGreenGroup *g;

        /* The group that served before: sent as the standby slices, or
         * inside the spec by planners that did not slice. */
        if (undone->standby_count) {
            for (size_t i = 0; i < undone->standby_count; i++)
                out[n++] = undone->standby[i];
            return n;
        }
        g = strcmp(bg->blue->server_group, undone->swap_from) == 0 ? bg->blue : bg->green;
        for (size_t i = 0; i < g->n_hosts; i++)
            out[n++] = g->hosts[i];
        return n;
    }
    for (size_t i = 0; i < undone->host_count; i++)
        if (undone->hosts[i].phase != KD_HOST_PENDING)
            out[n++] = undone->hosts[i].name;
    return n;
}

static size_t rollback_hosts_max(const kd_deploy_t *undone)
{
    const Kdeploy__V1__BlueGreen *bg = undone->spec->blue_green;
    size_t n = undone->host_count > undone->standby_count ? undone->host_count
                                                         : undone->standby_count;

    /* Blue-green groups may differ in size: the rollback runs on the group
     * that served before, which can be larger than the one deployed. */
    if (bg && bg->blue && bg->blue->n_hosts > n)
        n = bg->blue->n_hosts;
    if (bg && bg->green && bg->green->n_hosts > n)
        n = bg->green->n_hosts;
    return n;
}

const char *kd_rollback_refusal(const kd_model_t *m, const kd_deploy_t *undone,
                                const char *rollback_id, bool ending_now)
{
    const kd_deploy_t *active =
        kd_model_active(m, undone->spec->application, undone->spec->group, rollback_id);

    if (undone->rollback_of[0])
        return "a rollback is not rolled back: deploy the revision you want instead";
    if (undone->rolled_back_by[0])
        return "this deployment has already been rolled back";
    if (!ending_now && !kd_deploy_finished(undone))
        return "the deployment is still running: stop it first";
    /* The undone one ending in this very round is still active in the
     * model: it does not count. */
    if (active && !(ending_now && active == undone))
        return "another deployment of this application and group is active";
    if (undone->wf->swap_after && !undone->swap_from[0])
        return "the first blue-green deployment of a group has no group to go back to";
    if (undone->wf->swap_after && undone->swap != KD_SWAP_DONE)
        return "traffic never moved to the new group: nothing to roll back";
    return NULL;
}

void kd_decide_rollback(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                        const kd_deploy_t *undone, const char *rollback_id,
                        const char *requested_by, const char *reason, bool ending_now)
{
    Kdeploy__V1__RollbackStarted rs = KDEPLOY__V1__ROLLBACK_STARTED__INIT;
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    const char *bad = kd_rollback_refusal(m, undone, rollback_id, ending_now);
    kd_spec_shell_t shell;
    char id[KD_UUID_LEN];
    kd_envelope_t env;
    char **hosts;
    size_t n;

    if (bad) {
        kd_decide_rejected(out, c, rollback_id, requested_by, bad);
        return;
    }
    if (!(hosts = calloc(rollback_hosts_max(undone) + 1, sizeof *hosts))) {
        out->failed = true;
        return;
    }
    n = rollback_hosts(undone, hosts);
    rs.rollback_of = undone->id;
    rs.rollback_deploy_id = (char *)rollback_id;
    rs.reason = (char *)reason;
    rs.n_hosts = n < KD_LISTED_HOSTS ? n : KD_LISTED_HOSTS;
    rs.hosts = hosts;
    rs.hosts_total = (uint32_t)n;
    kd_core_env(c, &env, id, undone->id);
    env.body_case = KD_BODY(ROLLBACK_STARTED);
    env.rollback_started = &rs;
    kd_info("%s: rolling back as %s (%s)", undone->id, rollback_id, reason);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, undone->id, &env);

    kd_spec_shell(&shell, undone->spec);
    a.spec = &shell.spec;
    a.requested_by = (char *)requested_by;
    a.rollback_of = undone->id;
    a.hosts_total = (uint32_t)n;
    a.status = STATUS(DEPLOYING);
    a.operation = KDEPLOY__V1__OPERATION__ROLLBACK;
    a.target_group = undone->swap_from;
    a.swap_from_group = undone->target_group;
    kd_core_env(c, &env, id, rollback_id);
    env.body_case = KD_BODY(ACCEPTED);
    env.accepted = &a;
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, rollback_id, &env);
    kd_decide_hosts(out, c, rollback_id, hosts, n, false);
    free(hosts);
}

void kd_decide_rollback_slices(kd_decisions_t *out, const kd_core_ctx_t *c, const kd_model_t *m,
                               const kd_deploy_t *d)
{
    const kd_deploy_t *undone = kd_model_find(m, d->rollback_of);
    char **hosts;
    size_t n;

    if (!undone || !(hosts = calloc(rollback_hosts_max(undone) + 1, sizeof *hosts)))
        return;
    n = rollback_hosts(undone, hosts);
    if (n == d->hosts_expected) {
        kd_info("%s: sending the rest of its host list again", d->id);
        kd_decide_hosts_from(out, c, d->id, hosts, n, d->hosts_received, false);
    }
    free(hosts);
}
