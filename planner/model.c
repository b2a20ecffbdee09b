#include "model_int.h"
#include "spec_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name

/* A host's last announcement; the key is the name stored after it. */
typedef struct seen_host {
    int64_t alive_ms;
    /* Its labels as announced, "key\0value\0" n_labels times (NULL: none):
     * what a spec's host selector is matched against. */
    char *labels;
    size_t n_labels;
    struct seen_host *next;  /* every host ever announced, for selections */
    char name[];
} seen_host_t;

kd_model_t *kd_model_new(void)
{
    kd_model_t *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->by_id = kd_ptrmap_new();
    m->installed = kd_strmap_new();
    m->live = kd_strmap_new();
    m->seen = kd_ptrmap_new();
    m->answered = kd_strmap_new();
    if (!m->by_id || !m->installed || !m->live || !m->seen || !m->answered) {
        kd_model_free(m);
        return NULL;
    }
    return m;
}

static void free_deploy(kd_deploy_t *d)
{
    for (size_t i = 0; i < d->host_count; i++) {
        free(d->hosts[i].name);
        free(d->hosts[i].previous_id);
        free(d->hosts[i].restore_id);
        free(d->hosts[i].error);
    }
    free(d->hosts);
    for (size_t i = 0; i < d->standby_count; i++)
        free(d->standby[i]);
    free(d->standby);
    kd_ptrmap_free(d->host_index);
    if (d->spec)
        kdeploy__v1__deployment_spec__free_unpacked(d->spec, NULL);
    free(d->id);
    free(d->rollback_of);
    free(d->rolled_back_by);
    free(d->requested_by);
    free(d->target_group);
    free(d->swap_from);
    free(d->stop_by);
    free(d->stop_reason);
    free(d);
}

void kd_model_free(kd_model_t *m)
{
    if (!m)
        return;
    while (m->head) {
        kd_deploy_t *next = m->head->next;

        free_deploy(m->head);
        m->head = next;
    }
    kd_ptrmap_free(m->by_id);
    kd_strmap_free(m->installed);
    kd_strmap_free(m->live);
    while (m->seen_list) {
        struct seen_host *next = m->seen_list->next;

        free(m->seen_list->labels);
        free(m->seen_list);
        m->seen_list = next;
    }
    kd_ptrmap_free(m->seen);
    kd_strmap_free(m->answered);
    free(m);
}

/* ---- reading ---- */

const kd_deploy_t *kd_model_find(const kd_model_t *m, const char *deploy_id)
{
    return deploy_id ? kd_ptrmap_get(m->by_id, deploy_id) : NULL;
}

const kd_deploy_t *kd_model_first(const kd_model_t *m) { return m->head; }
const kd_deploy_t *kd_model_next(const kd_deploy_t *d) { return d->next; }
size_t kd_model_count(const kd_model_t *m) { return m->count; }

const kd_deploy_t *kd_model_active(const kd_model_t *m, const char *app, const char *group,
                                   const char *except_id)
{
    /* Newest first, and finished ones are the bulk of a long history: the
     * active one, if any, is near the head. */
    for (const kd_deploy_t *d = m->head; d; d = d->next)
        if (!kd_deploy_finished(d) && strcmp(d->spec->application, app) == 0 &&
            strcmp(d->spec->group, group) == 0 && (!except_id || strcmp(d->id, except_id) != 0))
            return d;
    return NULL;
}

/* "app/group/host" (or "app/group/" for the service): heap-allocated, so
 * no name length can truncate two keys into one. NULL on ENOMEM. */
static char *host_key(const char *app, const char *group, const char *host)
{
    char *key = NULL;

    return asprintf(&key, "%s/%s/%s", app, group, host ? host : "") < 0 ? NULL : key;
}

const char *kd_model_installed(const kd_model_t *m, const char *app, const char *group,
                               const char *host)
{
    char *key = host_key(app, group, host);
    const char *id = key ? kd_strmap_get(m->installed, key) : NULL;

    free(key);
    return id;
}


int64_t kd_model_host_alive_ms(const kd_model_t *m, const char *host)
{
    const seen_host_t *sh = host ? kd_ptrmap_get(m->seen, host) : NULL;

    return sh ? sh->alive_ms : 0;
}

bool kd_model_host_known(const kd_model_t *m, const char *host)
{
    return host && kd_ptrmap_get(m->seen, host) != NULL;
}

size_t kd_model_host_count(const kd_model_t *m)
{
    return kd_ptrmap_count(m->seen);
}

/* The value of the host's label key, or NULL. */
static const char *label_of(const seen_host_t *sh, const char *key)
{
    const char *p = sh->labels;

    for (size_t i = 0; i < sh->n_labels; i++) {
        const char *value = p + strlen(p) + 1;

        if (strcmp(p, key) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

static bool selected(const seen_host_t *sh, const Kdeploy__V1__HostLabel *const *sel, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = label_of(sh, sel[i]->key);

        if (!v || strcmp(v, sel[i]->value) != 0)
            return false;
    }
    return true;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

kd_status_t kd_model_select_hosts(const kd_model_t *m, const Kdeploy__V1__HostLabel *const *sel,
                                  size_t n, const char ***out, size_t *count)
{
    const char **names;
    size_t k = 0;

    *out = NULL;
    *count = 0;
    if (!(names = malloc((kd_ptrmap_count(m->seen) + 1) * sizeof *names)))
        return KD_ENOMEM;
    for (const seen_host_t *sh = m->seen_list; sh; sh = sh->next)
        if (selected(sh, sel, n))
            names[k++] = sh->name;
    qsort(names, k, sizeof *names, name_cmp);
    *out = names;
    *count = k;
    return KD_OK;
}

/* Keeps the host's announced labels; ones that break the grammar are
 * dropped (the hosts topic is as untrusted as any). */
static void keep_labels(seen_host_t *sh, const Kdeploy__V1__HostStatus *hs)
{
    size_t bytes = 0, n = 0;
    char *buf, *p;

    for (size_t i = 0; i < hs->n_labels && i < KD_LABEL_MAX; i++)
        if (kd_label_key_valid(hs->labels[i]->key) && kd_label_value_valid(hs->labels[i]->value))
            bytes += strlen(hs->labels[i]->key) + strlen(hs->labels[i]->value) + 2;
    if (bytes && !(buf = malloc(bytes)))
        return; /* out of memory: the old labels stay */
    free(sh->labels);
    sh->labels = NULL;
    sh->n_labels = 0;
    if (!bytes)
        return;
    p = buf;
    for (size_t i = 0; i < hs->n_labels && i < KD_LABEL_MAX; i++) {
        const Kdeploy__V1__HostLabel *l = hs->labels[i];
        size_t kl, vl;

        if (!kd_label_key_valid(l->key) || !kd_label_value_valid(l->value))
            continue;
        kl = strlen(l->key) + 1;
        vl = strlen(l->value) + 1;
        memcpy(p, l->key, kl);
        memcpy(p + kl, l->value, vl);
        p += kl + vl;
        n++;
    }
    sh->labels = buf;
    sh->n_labels = n;
}

static void apply_host_status(kd_model_t *m, const Kdeploy__V1__HostStatus *hs, int64_t ts)
{
    seen_host_t *sh;
    size_t len;

    if (!kd_host_id_valid(hs->host))
        return;
    len = strlen(hs->host);
    if (!(sh = kd_ptrmap_get(m->seen, hs->host))) {
        if (!(sh = calloc(1, sizeof *sh + len + 1)))
            return;
        memcpy(sh->name, hs->host, len + 1);
        if (kd_ptrmap_set(m->seen, sh->name, sh) != KD_OK) {
            free(sh);
            return;
        }
        sh->next = m->seen_list;
        m->seen_list = sh;
    }
    sh->alive_ms = hs->alive ? ts : 0;
    keep_labels(sh, hs);
}

const char *kd_model_live_group(const kd_model_t *m, const char *app, const char *group)
{
    char *key = host_key(app, group, NULL);
    const char *live = key ? kd_strmap_get(m->live, key) : NULL;

    free(key);
    return live;
}

bool kd_model_answered(const kd_model_t *m, const char *event_id)
{
    return event_id && *event_id && kd_strmap_get(m->answered, event_id) != NULL;
}

const char *kd_deploy_id(const kd_deploy_t *d) { return d->id; }
const Kdeploy__V1__DeploymentSpec *kd_deploy_spec(const kd_deploy_t *d) { return d->spec; }
const kd_workflow_t *kd_deploy_workflow(const kd_deploy_t *d) { return d->wf; }
Kdeploy__V1__DeploymentStatus kd_deploy_status(const kd_deploy_t *d) { return d->status; }
bool kd_deploy_finished(const kd_deploy_t *d) { return d->finished_ms != 0; }
bool kd_deploy_paused(const kd_deploy_t *d) { return d->paused; }
bool kd_deploy_stopping(const kd_deploy_t *d) { return d->stopping; }
const char *kd_deploy_rollback_of(const kd_deploy_t *d) { return d->rollback_of; }
const char *kd_deploy_rolled_back_by(const kd_deploy_t *d) { return d->rolled_back_by; }
const char *kd_deploy_requested_by(const kd_deploy_t *d) { return d->requested_by; }
const char *kd_deploy_target_group(const kd_deploy_t *d) { return d->target_group; }
const char *kd_deploy_swap_from(const kd_deploy_t *d) { return d->swap_from; }
int64_t kd_deploy_accepted_ms(const kd_deploy_t *d) { return d->accepted_ms; }
int64_t kd_deploy_finished_ms(const kd_deploy_t *d) { return d->finished_ms; }

void kd_deploy_counts(const kd_deploy_t *d, kd_host_counts_t *out)
{
    out->total = d->host_count;
    out->running = d->running;
    out->in_flight = d->in_flight;
    out->succeeded = d->succeeded;
    out->failed = d->failed;
    out->skipped = d->skipped;
    out->pending = d->host_count - d->running - d->succeeded - d->failed - d->skipped;
}

size_t kd_deploy_host_count(const kd_deploy_t *d)
{
    return d->host_count;
}

static void view_of(const kd_deploy_t *d, const kd_dhost_t *h, kd_host_view_t *out)
{
    out->name = h->name;
    out->phase = h->phase;
    out->step = h->step >= 0 ? d->wf->steps[h->step] : KD_EVENT_NONE;
    out->in_flight = h->in_flight;
    out->batch = h->batch;
    out->started_ms = h->started_ms;
    out->sent_ms = h->sent_ms;
    out->error = h->error ? h->error : "";
}

void kd_deploy_host_at(const kd_deploy_t *d, size_t i, kd_host_view_t *out)
{
    view_of(d, &d->hosts[i], out);
}

bool kd_deploy_complete(const kd_deploy_t *d)
{
    return d->hosts_received >= d->hosts_expected && d->standby_count >= d->standby_expected;
}

const kd_dhost_t *kd_deploy_host(const kd_deploy_t *d, const char *name)
{
    return name ? kd_ptrmap_get(d->host_index, name) : NULL;
}

bool kd_deploy_host_find(const kd_deploy_t *d, const char *name, kd_host_view_t *out)
{
    const kd_dhost_t *h = kd_deploy_host(d, name);

    if (h)
        view_of(d, h, out);
    return h != NULL;
}

const char *kd_status_name_of(Kdeploy__V1__DeploymentStatus st)
{
    static const char *const names[] = {
        "unknown", "pending", "deploying", "succeeded", "failed", "rolling back",
        "rollback succeeded", "rollback failed", "stopped", "paused", "stopping",
    };

    return (size_t)st < sizeof names / sizeof names[0] ? names[st] : "unknown";
}

const char *kd_host_phase_name(kd_host_phase_t phase)
{
    static const char *const names[] = {"pending", "running", "succeeded", "failed", "skipped"};

    return (size_t)phase < sizeof names / sizeof names[0] ? names[phase] : "unknown";
}

/* ---- applying ---- */

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void set_str(char **field, const char *value)
{
    char *copy = dup_or_empty(value);

    if (copy) {
        free(*field);
        *field = copy;
    }
}

/* A host enters the ready list when it waits for a decision (started, or
 * its step answered) and leaves it when the decision is applied. */
static void ready_push(kd_deploy_t *d, kd_dhost_t *h)
{
    if (h->ready)
        return;
    h->ready = true;
    h->ready_next = NULL;
    h->ready_prev = d->ready_tail;
    if (d->ready_tail)
        d->ready_tail->ready_next = h;
    else
        d->ready_head = h;
    d->ready_tail = h;
}

static void ready_remove(kd_deploy_t *d, kd_dhost_t *h)
{
    if (!h->ready)
        return;
    if (h->ready_prev)
        h->ready_prev->ready_next = h->ready_next;
    else
        d->ready_head = h->ready_next;
    if (h->ready_next)
        h->ready_next->ready_prev = h->ready_prev;
    else
        d->ready_tail = h->ready_prev;
    h->ready = false;
    h->ready_prev = h->ready_next = NULL;
}

static kd_dhost_t *host_mut(kd_deploy_t *d, const char *name)
{
    return name ? kd_ptrmap_get(d->host_index, name) : NULL;
}

/* A copy of the spec the deployment owns, through the wire format. */
static Kdeploy__V1__DeploymentSpec *copy_spec(const Kdeploy__V1__DeploymentSpec *spec)
{
    size_t len = kdeploy__v1__deployment_spec__get_packed_size(spec);
    uint8_t *buf = malloc(len ? len : 1);
    Kdeploy__V1__DeploymentSpec *copy;

    if (!buf)
        return NULL;
    kdeploy__v1__deployment_spec__pack(spec, buf);
    copy = kdeploy__v1__deployment_spec__unpack(NULL, len, buf);
    free(buf);
    return copy;
}

/* Appends names to the deployment's hosts (within the capacity allocated
 * at acceptance). */
static bool add_hosts(kd_deploy_t *d, char *const *names, size_t n, size_t capacity)
{
    for (size_t i = 0; i < n && d->host_count < capacity; i++) {
        kd_dhost_t *h = &d->hosts[d->host_count];

        /* A name listed twice is one host: the planner refuses such
         * requests, and the model never counts a host twice whatever an
         * event says. */
        if (!names[i] || kd_ptrmap_get(d->host_index, names[i]))
            continue;
        if (!(h->name = strdup(names[i])) || !(h->error = strdup("")))
            return false;
        h->step = -1;
        if (kd_ptrmap_set(d->host_index, h->name, h) != KD_OK)
            return false;
        d->host_count++;
    }
    return true;
}

static void apply_accepted(kd_model_t *m, const kd_envelope_t *env)
{
    const Kdeploy__V1__DeploymentAccepted *a = env->accepted;
    /* Listed inline (small, or an older planner's event) or announced. */
    size_t capacity = a->n_hosts ? a->n_hosts : a->hosts_total;
    kd_deploy_t *d;

    if (!a->spec || !a->spec->application || !a->spec->group || !env->deploy_id ||
        kd_model_find(m, env->deploy_id) || capacity > KD_SPEC_MAX_HOSTS ||
        a->standby_total > KD_SPEC_MAX_HOSTS)
        return;
    if (!(d = calloc(1, sizeof *d)))
        return;
    d->id = strdup(env->deploy_id);
    d->spec = copy_spec(a->spec);
    d->rollback_of = dup_or_empty(a->rollback_of);
    d->rolled_back_by = strdup("");
    d->requested_by = dup_or_empty(a->requested_by);
    d->hosts = calloc(capacity ? capacity : 1, sizeof *d->hosts);
    d->standby = calloc(a->standby_total ? a->standby_total : 1, sizeof *d->standby);
    d->host_index = kd_ptrmap_new();
    d->target_group = dup_or_empty(a->target_group);
    d->swap_from = dup_or_empty(a->swap_from_group);
    d->stop_by = strdup("");
    d->stop_reason = strdup("");
    if (!d->id || !d->spec || !d->rollback_of || !d->rolled_back_by || !d->requested_by ||
        !d->hosts || !d->standby || !d->host_index || !d->target_group || !d->swap_from ||
        !d->stop_by || !d->stop_reason ||
        !add_hosts(d, a->hosts, a->n_hosts, capacity) ||
        kd_ptrmap_set(m->by_id, d->id, d) != KD_OK) {
        free_deploy(d);
        return;
    }
    d->hosts_expected = d->hosts_received = a->n_hosts;
    if (!a->n_hosts) {
        d->hosts_expected = a->hosts_total;
        d->standby_expected = a->standby_total;
    }
    d->status = a->status ? a->status : STATUS(DEPLOYING);
    d->wf = kd_workflow_for(d->spec, d->rollback_of[0] != '\0');
    d->batch = -1;
    d->accepted_ms = env->ts_ms;
    d->next = m->head;
    m->head = d;
    m->count++;
}

/* A slice of the host list: taken only in order, once. */
static void apply_deployment_hosts(kd_deploy_t *d, const Kdeploy__V1__DeploymentHosts *dh)
{
    if (dh->standby) {
        if (dh->first != d->standby_count)
            return;
        for (size_t i = 0; i < dh->n_hosts && d->standby_count < d->standby_expected; i++)
            if (dh->hosts[i] && (d->standby[d->standby_count] = strdup(dh->hosts[i])))
                d->standby_count++;
        return;
    }
    if (dh->first != d->hosts_received || d->hosts_received >= d->hosts_expected)
        return;
    add_hosts(d, dh->hosts, dh->n_hosts, d->hosts_expected);
    d->hosts_received += dh->n_hosts;
}

static void note_started(kd_deploy_t *d, const kd_dhost_t *h)
{
    size_t idx = (size_t)(h - d->hosts);

    if (idx + 1 > d->started)
        d->started = idx + 1;
}

static void apply_batch_started(kd_deploy_t *d, const Kdeploy__V1__BatchStarted *bs)
{
    const kd_dhost_t *first = bs->n_hosts ? kd_deploy_host(d, bs->hosts[0]) : NULL;

    if ((int)bs->batch <= d->batch)
        return;
    d->batch = (int)bs->batch;
    d->batch_first = first ? (size_t)(first - d->hosts) : d->started;
}

static void apply_host_started(kd_deploy_t *d, const Kdeploy__V1__HostStarted *hs, int64_t ts)
{
    kd_dhost_t *h = host_mut(d, hs->host);

    if (!h || h->phase != KD_HOST_PENDING)
        return;
    h->phase = KD_HOST_RUNNING;
    h->started_ms = ts;
    h->batch = hs->batch;
    set_str(&h->previous_id, hs->previous_deploy_id);
    set_str(&h->restore_id, hs->restore_deploy_id);
    d->running++;
    note_started(d, h);
    ready_push(d, h); /* its first step is to be decided */
}

static void apply_dispatched(kd_deploy_t *d, const Kdeploy__V1__StepDispatched *sd, int64_t ts)
{
    kd_dhost_t *h;
    int idx = -1;

    if (sd->event == KD_EVENT(SwapTraffic)) {
        d->swap = KD_SWAP_IN_FLIGHT;
        d->swap_attempt = sd->attempt;
        d->swap_sent_ms = ts;
        return;
    }
    if (!(h = host_mut(d, sd->host)) || h->phase != KD_HOST_RUNNING)
        return;
    /* Steps only move forward; a repeat of the current one is a resend. */
    for (size_t i = h->step < 0 ? 0 : (size_t)h->step; i < d->wf->count; i++)
        if (d->wf->steps[i] == sd->event) {
            idx = (int)i;
            break;
        }
    if (idx < 0)
        return;
    if (!h->in_flight)
        d->in_flight++;
    h->step = idx;
    h->attempt = sd->attempt;
    h->in_flight = true;
    h->result = KDEPLOY__V1__STEP_STATUS__STEP_STATUS_UNSPECIFIED;
    h->sent_ms = h->seen_ms = ts;
    ready_remove(d, h);
}

static void set_installed(kd_model_t *m, const kd_deploy_t *d, const kd_dhost_t *h)
{
    const char *id = d->rollback_of[0] ? h->restore_id : d->id;
    char *key;

    /* A blue-green rollback only checks and swaps back: nothing changes. */
    if ((d->rollback_of[0] && d->wf->swap_after) || !id || !*id)
        return;
    if ((key = host_key(d->spec->application, d->spec->group, h->name))) {
        kd_strmap_set(m->installed, key, id);
        free(key);
    }
}

static void apply_host_finished(kd_model_t *m, kd_deploy_t *d,
                                const Kdeploy__V1__HostFinished *hf, int64_t ts)
{
    kd_dhost_t *h = host_mut(d, hf->host);

    if (!h || (h->phase != KD_HOST_PENDING && h->phase != KD_HOST_RUNNING))
        return;
    if (h->phase == KD_HOST_RUNNING)
        d->running--;
    if (h->in_flight)
        d->in_flight--;
    h->in_flight = false;
    h->silent = hf->silent;
    h->finished_ms = ts;
    ready_remove(d, h);
    switch (hf->status) {
    case KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED:
        h->phase = KD_HOST_SUCCEEDED;
        d->succeeded++;
        set_installed(m, d, h);
        break;
    case KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED:
        h->phase = KD_HOST_SKIPPED;
        d->skipped++;
        break;
    default:
        h->phase = KD_HOST_FAILED;
        h->failed_step = hf->failed_step;
        set_str(&h->error, hf->error);
        d->failed++;
    }
    note_started(d, h);
}

static void apply_succeeded(kd_model_t *m, kd_deploy_t *d,
                            const Kdeploy__V1__DeploymentSucceeded *s, int64_t ts)
{
    char *key;

    d->status = d->rollback_of[0] ? STATUS(ROLLBACK_SUCCEEDED) : STATUS(SUCCEEDED);
    d->finished_ms = ts;
    if (s->live_group && *s->live_group) {
        d->swap = KD_SWAP_DONE;
        if ((key = host_key(d->spec->application, d->spec->group, NULL))) {
            kd_strmap_set(m->live, key, s->live_group);
            free(key);
        }
    }
}

static void apply_failed(kd_deploy_t *d, int64_t ts)
{
    d->halted = true;
    d->finished_ms = ts;
    d->status = d->rollback_of[0] ? STATUS(ROLLBACK_FAILED) : STATUS(FAILED);
    if (d->swap == KD_SWAP_IN_FLIGHT)
        d->swap = KD_SWAP_FAILED;
}

static void apply_status(kd_deploy_t *d, const Kdeploy__V1__DeploymentStatusChanged *sc,
                         int64_t ts)
{
    Kdeploy__V1__DeploymentStatus st = sc->status;

    switch (st) {
    case STATUS(PAUSED):
    case STATUS(DEPLOYING):
        /* A stop is not undone by a pause or resume (the planner refuses
         * them; another's event could still say so). */
        if (d->stopping)
            return;
        d->paused = st == STATUS(PAUSED);
        break;
    case STATUS(STOPPING):
        /* It supersedes a pause: no host starts either way, and the end
         * comes once the hosts in flight have finished. */
        d->paused = false;
        d->stopping = true;
        d->stop_rollback = sc->rollback;
        set_str(&d->stop_by, sc->requested_by);
        set_str(&d->stop_reason, sc->reason);
        break;
    case STATUS(STOPPED):
        d->halted = true;
        d->finished_ms = ts;
        break;
    case STATUS(ROLLING_BACK):
    case STATUS(ROLLBACK_SUCCEEDED):
    case STATUS(ROLLBACK_FAILED):
        break; /* a status of the undone deployment, set by its rollback */
    default:
        return;
    }
    d->status = st;
}

/* Does step_id name "<deploy>/<host>/<event>/<attempt>"? Compared piece by
 * piece: no buffer for a string whose length comes from the wire. */
static bool step_id_is(const char *step_id, const char *deploy, const char *host,
                       kd_event_t ev, uint32_t attempt)
{
    const char *parts[3] = {deploy, host, kd_event_name(ev)};
    const char *p = step_id;
    char num[16];

    if (!p)
        return false;
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]);

        if (strncmp(p, parts[i], n) != 0 || p[n] != '/')
            return false;
        p += n + 1;
    }
    snprintf(num, sizeof num, "%u", attempt);
    return strcmp(p, num) == 0;
}

/* The host whose in-flight step a result answers, or NULL for a stale or
 * repeated result. */
static kd_dhost_t *awaiting(kd_deploy_t *d, const char *host, const char *step_id)
{
    kd_dhost_t *h = host_mut(d, host);

    if (!h || !h->in_flight || h->phase != KD_HOST_RUNNING || h->step < 0)
        return NULL;
    return step_id_is(step_id, d->id, h->name, d->wf->steps[h->step], h->attempt) ? h : NULL;
}

static void apply_answer(kd_deploy_t *d, const char *host, const char *step_id,
                         Kdeploy__V1__StepStatus status, const char *error)
{
    kd_dhost_t *h = awaiting(d, host, step_id);

    if (!h)
        return;
    h->in_flight = false;
    d->in_flight--;
    h->result = status;
    set_str(&h->error, error);
    ready_push(d, h);
}

static void apply_swap_result(kd_deploy_t *d, const Kdeploy__V1__TrafficResult *t)
{
    const Kdeploy__V1__LoadBalancer *lb = d->spec->load_balancer;

    if (d->swap != KD_SWAP_IN_FLIGHT || !lb || !lb->service ||
        !step_id_is(t->traffic_id, d->id, lb->service, KD_EVENT(SwapTraffic), d->swap_attempt))
        return;
    d->swap = t->status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED ||
                      t->status == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED
                  ? KD_SWAP_DONE : KD_SWAP_FAILED;
}

/* Events of one deployment, by kind. */
static void apply_to(kd_model_t *m, kd_deploy_t *d, const kd_envelope_t *env)
{
    kd_dhost_t *h;

    switch (env->body_case) {
    case KD_BODY(DEPLOYMENT_HOSTS):
        apply_deployment_hosts(d, env->deployment_hosts);
        break;
    case KD_BODY(BATCH_STARTED):
        apply_batch_started(d, env->batch_started);
        break;
    case KD_BODY(HOST_STARTED):
        apply_host_started(d, env->host_started, env->ts_ms);
        break;
    case KD_BODY(STEP_DISPATCHED):
        apply_dispatched(d, env->step_dispatched, env->ts_ms);
        break;
    case KD_BODY(HOST_FINISHED):
        apply_host_finished(m, d, env->host_finished, env->ts_ms);
        break;
    case KD_BODY(SUCCEEDED):
        apply_succeeded(m, d, env->succeeded, env->ts_ms);
        break;
    case KD_BODY(FAILED):
        apply_failed(d, env->ts_ms);
        break;
    case KD_BODY(ROLLBACK_STARTED):
        set_str(&d->rolled_back_by, env->rollback_started->rollback_deploy_id);
        d->status = STATUS(ROLLING_BACK);
        break;
    case KD_BODY(STATUS_CHANGED):
        apply_status(d, env->status_changed, env->ts_ms);
        break;
    case KD_BODY(STEP_RESULT):
        apply_answer(d, env->step_result->host, env->step_result->step_id,
                     env->step_result->status, env->step_result->error);
        break;
    case KD_BODY(PROGRESS):
        if ((h = awaiting(d, env->progress->host, env->progress->step_id)))
            h->seen_ms = env->ts_ms;
        break;
    case KD_BODY(TRAFFIC_RESULT):
        if (env->traffic_result->event == KD_EVENT(SwapTraffic))
            apply_swap_result(d, env->traffic_result);
        else
            apply_answer(d, env->traffic_result->host, env->traffic_result->traffic_id,
                         env->traffic_result->status, env->traffic_result->error);
        break;
    default:
        break;
    }
}

void kd_model_apply(kd_model_t *m, const kd_envelope_t *env)
{
    kd_deploy_t *d;

    /* Whatever the event, it answers a request: a repeat of that request
     * (a planner restarted before committing it) is not answered again. */
    if (env->in_reply_to && *env->in_reply_to && strlen(env->in_reply_to) <= KD_REQUEST_ID_MAX)
        kd_strmap_set(m->answered, env->in_reply_to, "");
    if (env->body_case == KD_BODY(ACCEPTED)) {
        apply_accepted(m, env);
        return;
    }
    if (env->body_case == KD_BODY(HOST_STATUS)) {
        apply_host_status(m, env->host_status, env->ts_ms);
        return;
    }
    if (!env->deploy_id || !(d = kd_ptrmap_get(m->by_id, env->deploy_id)))
        return;
    /* Answers to a finished deployment change nothing: its hosts' last
     * word was said by its end. */
    if (kd_deploy_finished(d) && (env->body_case == KD_BODY(STEP_RESULT) ||
                                  env->body_case == KD_BODY(PROGRESS) ||
                                  env->body_case == KD_BODY(TRAFFIC_RESULT)))
        return;
    apply_to(m, d, env);
}
