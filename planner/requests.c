/* Requests from operators: create, stop, pause, resume and rollback. Each
 * gets one answer on the deployments topic naming it (in_reply_to): its
 * acceptance or the status it asked for, or a rejection (create, rollback)
 * or refusal (stop, pause, resume, control.c) saying why not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "core_int.h"
#include "log.h"
#include "spec_check.h"

#define REQUESTED_BY_MAX 256
/* Unknown hosts named in a rejection: the first few, then a count. */
#define UNKNOWN_SHOWN 5

/* Blue-green: deploy to the group that is not serving; the first time,
 * to blue. */
static void pick_blue_green(const kd_model_t *m, const Kdeploy__V1__DeploymentSpec *spec,
                            Kdeploy__V1__DeploymentAccepted *a)
{
    const char *live = kd_model_live_group(m, spec->application, spec->group);
    const Kdeploy__V1__BlueGreen *bg = spec->blue_green;

    a->target_group = live && strcmp(live, bg->blue->server_group) == 0
                          ? bg->green->server_group : bg->blue->server_group;
    a->swap_from_group = (char *)(live ? live : "");
}

/* The host lists a request's deployment is made of: the hosts deployed to
 * and, blue-green, the other group (what a rollback will check). */
typedef struct host_lists {
    char *const *hosts;
    size_t n;
    char *const *standby;
    size_t nstandby;
} host_lists_t;

/* target_group: the blue-green group deployed to (ignored for rolling). */
static host_lists_t host_lists(const Kdeploy__V1__DeploymentSpec *spec, const char *target_group)
{
    host_lists_t l = {spec->hosts, spec->n_hosts, NULL, 0};

    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN) {
        const Kdeploy__V1__BlueGreen *bg = spec->blue_green;
        bool blue = strcmp(target_group, bg->blue->server_group) == 0;
        const Kdeploy__V1__BlueGreenGroup *t = blue ? bg->blue : bg->green;
        const Kdeploy__V1__BlueGreenGroup *o = blue ? bg->green : bg->blue;

        l = (host_lists_t){t->hosts, t->n_hosts, o->hosts, o->n_hosts};
    }
    return l;
}

/* Their slices, from the given positions on (0 for all of them). */
static void decide_slices(kd_decisions_t *out, const kd_core_ctx_t *c, const char *deploy_id,
                          const host_lists_t *l, size_t from, size_t from_standby)
{
    kd_decide_hosts_from(out, c, deploy_id, l->hosts, l->n, from, false);
    kd_decide_hosts_from(out, c, deploy_id, l->standby, l->nstandby, from_standby, true);
}

/* The host slices of d not applied yet, from the request that made it. */
static void resend_slices(const kd_core_ctx_t *c, const kd_deploy_t *d,
                          const Kdeploy__V1__DeploymentSpec *spec, kd_decisions_t *out)
{
    host_lists_t l = host_lists(spec, d->target_group);

    if (l.n != d->hosts_expected || l.nstandby != d->standby_expected)
        return; /* not the request this deployment was made from */
    kd_info("%s: sending the rest of its host list again", d->id);
    decide_slices(out, c, d->id, &l, d->hosts_received, d->standby_count);
}

/* "role=web,zone=a": a selector as the spec file reads, for messages. */
static void selector_str(const Kdeploy__V1__DeploymentSpec *spec, char *buf, size_t bufsz)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < spec->n_host_selector && used < bufsz; i++) {
        int n = snprintf(buf + used, bufsz - used, "%s%s=%s", i ? "," : "",
                         spec->host_selector[i]->key, spec->host_selector[i]->value);

        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* A request the planner cannot answer yet: the hosts topic may hold
 * announcements it has not read (a worker started just before the create).
 * Said once: the daemon asks again with the topic read (KD_HOSTS_READ). */
static bool wait_for_hosts(const kd_core_ctx_t *c, const kd_envelope_t *req, kd_decisions_t *out)
{
    if (c->hosts_read != KD_HOSTS_MAYBE_BEHIND)
        return false;
    kd_info("%s: names hosts not announced yet: reading the hosts topic to its end first",
            req->deploy_id);
    out->wait_for_hosts = true;
    return true;
}

/* A rolling spec's label selector, resolved against the hosts announced so
 * far into *resolved (the spec, with the hosts found, sorted by id; *names
 * is the caller's to free). False when decided otherwise: rejected (no
 * host matches), deferred, or out of memory. */
static bool select_hosts(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                         Kdeploy__V1__DeploymentSpec *resolved, const char ***names,
                         kd_decisions_t *out)
{
    const Kdeploy__V1__CreateDeployment *cr = req->create;
    char sel[KD_LABEL_MAX * (2 * KD_LABEL_LEN_MAX + 2) + 1], why[sizeof sel + 256];
    size_t n = 0;

    /* Chosen from every announcement made before the create, not from
     * those read so far: a worker started just before is one of them. */
    if (wait_for_hosts(c, req, out))
        return false;
    if (kd_model_select_hosts(m, (const Kdeploy__V1__HostLabel *const *)cr->spec->host_selector,
                              cr->spec->n_host_selector, names, &n) != KD_OK) {
        out->failed = true;
        return false;
    }
    selector_str(cr->spec, sel, sizeof sel);
    if (n == 0) {
        snprintf(why, sizeof why, "hosts.labels: no announced host has the labels %s "
                 "(kdeploy hosts --label shows which do)", sel);
        kd_decide_rejected(out, c, req->deploy_id, cr->requested_by, why);
    }
    if (n == 0 || n > KD_SPEC_MAX_HOSTS) {
        if (n)
            kd_decide_rejected(out, c, req->deploy_id, cr->requested_by,
                               "hosts.labels: selects more than the most hosts a deployment "
                               "may have");
        return false;
    }
    kd_info("%s: labels %s select %zu host(s)", req->deploy_id, sel, n);
    *resolved = *cr->spec;
    resolved->hosts = (char **)*names;
    resolved->n_hosts = n;
    return true;
}

/* Appends the hosts of list no worker has announced to the message. */
static size_t unknown_in(const kd_model_t *m, char *const *hosts, size_t n, kd_buf_t *names,
                         size_t unknown)
{
    for (size_t i = 0; i < n; i++) {
        if (kd_model_host_known(m, hosts[i]))
            continue;
        if (unknown < UNKNOWN_SHOWN)
            kd_buf_printf(names, "%s%s", unknown ? ", " : "", hosts[i]);
        unknown++;
    }
    return unknown;
}

/* Every host the spec names must have been announced by a worker, unless
 * the spec allows unknown hosts (then the deployment waits for them, and
 * fails at the host timeout). False when rejected or deferred. */
static bool hosts_announced(const kd_model_t *m, const kd_core_ctx_t *c,
                            const kd_envelope_t *req, const Kdeploy__V1__DeploymentSpec *spec,
                            kd_decisions_t *out)
{
    kd_buf_t names = KD_BUF_INIT(4096), why = KD_BUF_INIT(8192);
    const Kdeploy__V1__BlueGreen *bg = spec->blue_green;
    size_t unknown;

    if (c->hosts_read == KD_HOSTS_UNCHECKED || spec->allow_unknown_hosts)
        return true;
    unknown = unknown_in(m, spec->hosts, spec->n_hosts, &names, 0);
    if (bg && bg->blue && bg->green) {
        unknown = unknown_in(m, bg->blue->hosts, bg->blue->n_hosts, &names, unknown);
        unknown = unknown_in(m, bg->green->hosts, bg->green->n_hosts, &names, unknown);
    }
    if (unknown && !wait_for_hosts(c, req, out)) {
        kd_buf_printf(&why, "%zu host%s never announced by a worker: %s%s; start %s worker%s, "
                      "fix the spec, or set allow_unknown_hosts: true to wait for %s",
                      unknown, unknown == 1 ? "" : "s", kd_buf_str(&names),
                      unknown > UNKNOWN_SHOWN ? ", ..." : "", unknown == 1 ? "its" : "their",
                      unknown == 1 ? "" : "s", unknown == 1 ? "it" : "them");
        kd_decide_rejected(out, c, req->deploy_id, req->create->requested_by,
                           why.len ? kd_buf_str(&why) : "hosts never announced");
    }
    kd_buf_free(&names);
    kd_buf_free(&why);
    return unknown == 0;
}

/* resend_slices for a spec whose hosts a label selector chose: chosen
 * again the same way (sorted ids), which gives the same list unless the
 * fleet changed meanwhile (then resend_slices sends nothing). */
static void resend_resolved(const kd_model_t *m, const kd_core_ctx_t *c, const kd_deploy_t *d,
                            const Kdeploy__V1__DeploymentSpec *spec, kd_decisions_t *out)
{
    Kdeploy__V1__DeploymentSpec resolved;
    const char **names = NULL;
    size_t n = 0;

    if (!spec->n_host_selector) {
        resend_slices(c, d, spec, out);
        return;
    }
    if (kd_model_select_hosts(m, (const Kdeploy__V1__HostLabel *const *)spec->host_selector,
                              spec->n_host_selector, &names, &n) != KD_OK) {
        out->failed = true;
        return;
    }
    resolved = *spec;
    resolved.hosts = (char **)names;
    resolved.n_hosts = n;
    resend_slices(c, d, &resolved, out);
    free(names);
}

/* The accepted event of a create that passed every check, then its host
 * lists in slices; spec holds the hosts (a selector's resolved). */
static void accept(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                   const Kdeploy__V1__DeploymentSpec *spec, kd_decisions_t *out)
{
    const Kdeploy__V1__CreateDeployment *cr = req->create;
    Kdeploy__V1__DeploymentAccepted a = KDEPLOY__V1__DEPLOYMENT_ACCEPTED__INIT;
    kd_spec_shell_t shell;
    host_lists_t lists;
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_spec_shell(&shell, spec);
    a.spec = &shell.spec;
    a.requested_by = cr->requested_by;
    a.rollback_of = "";
    a.status = STATUS(DEPLOYING);
    a.operation = KDEPLOY__V1__OPERATION__UPDATE;
    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        pick_blue_green(m, spec, &a);
    lists = host_lists(spec, a.target_group);
    a.hosts_total = (uint32_t)lists.n;
    a.standby_total = (uint32_t)lists.nstandby;
    kd_core_env(c, &env, id, req->deploy_id);
    env.body_case = KD_BODY(ACCEPTED);
    env.accepted = &a;
    kd_info("%s: accepted: %s/%s to %u host(s), requested by %s", req->deploy_id,
            spec->application, spec->group, a.hosts_total, cr->requested_by);
    kd_decide(out, KD_TOPIC_DEPLOYMENTS, req->deploy_id, &env);
    /* The host lists follow in slices (same key: in order, before
     * anything else of this deployment). */
    decide_slices(out, c, req->deploy_id, &lists, 0, 0);
}

static void create(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                   kd_decisions_t *out)
{
    const Kdeploy__V1__CreateDeployment *cr = req->create;
    const kd_deploy_t *active, *d;
    char why[512];
    /* A label selector's spec, with the hosts it selected. */
    Kdeploy__V1__DeploymentSpec resolved;
    const char **names = NULL;

    if ((d = kd_model_find(m, req->deploy_id))) {
        /* A repeated request: already taken — unless the planner stopped
         * between its acceptance and the last slice of its hosts, which
         * come again from the request. */
        if (!kd_deploy_complete(d) && kd_spec_check(cr->spec, why, sizeof why) == KD_OK)
            resend_resolved(m, c, d, cr->spec, out);
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
    if (!cr->spec->n_host_selector) {
        if (hosts_announced(m, c, req, cr->spec, out))
            accept(m, c, req, cr->spec, out);
        return;
    }
    /* Selected hosts are announced ones: nothing unknown to check. */
    if (select_hosts(m, c, req, &resolved, &names, out))
        accept(m, c, req, &resolved, out);
    free(names);
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

/* A request seen again (a planner restarted before committing it, or a
 * client sending one twice) whose answer is on the deployments topic: not
 * answered a second time, so that nobody gets two different answers. A
 * create whose deployment exists is taken again, to resend the host slices
 * a stopped planner did not publish (which answers nothing). */
static bool answered_before(const kd_model_t *m, const kd_envelope_t *req)
{
    if (!kd_model_answered(m, req->event_id))
        return false;
    return req->body_case != KD_BODY(CREATE) || !kd_model_find(m, req->deploy_id);
}

static void decide_request(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                           kd_decisions_t *out)
{
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
    case KD_BODY(RESUME): kd_core_control(m, c, req, out); break;
    case KD_BODY(ROLLBACK): rollback(m, c, req, out); break;
    default:
        kd_warn("%s: a %s event on the requests topic: ignored", req->deploy_id,
                kd_envelope_type(req));
    }
}

void kd_core_request(const kd_model_t *m, const kd_core_ctx_t *c, const kd_envelope_t *req,
                     kd_decisions_t *out)
{
    size_t from = out->count;

    if (!req->deploy_id || !*req->deploy_id) {
        kd_warn("a %s request with no deploy id: ignored", kd_envelope_type(req));
        return;
    }
    if (answered_before(m, req)) {
        kd_info("%s: %s request %s was answered before: not again", req->deploy_id,
                kd_envelope_type(req), req->event_id);
        return;
    }
    decide_request(m, c, req, out);
    kd_decisions_answer(out, from, req);
}

void kd_core_reject(const kd_core_ctx_t *c, const kd_envelope_t *req, const char *reason,
                    kd_decisions_t *out)
{
    const char *by = req->body_case == KD_BODY(CREATE)     ? req->create->requested_by
                     : req->body_case == KD_BODY(ROLLBACK) ? req->rollback->requested_by
                                                           : "";
    size_t from = out->count;

    kd_decide_rejected(out, c, req->deploy_id, by, reason);
    kd_decisions_answer(out, from, req);
}
