#include "follow.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "ids.h"
#include "log.h"
#include "outcome.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name
#define ROLLBACK_GRACE_MS 10000

static kd_status_t reader(const kd_bus_conf_t *conf, bool with_results, kd_consumer_t **out,
                          char *err, size_t errsz)
{
    kd_topic_t topics[] = {KD_TOPIC_DEPLOYMENTS, KD_TOPIC_RESULTS};
    /* No group: an onlooker must not join the planner's group or commit, and
     * the model is rebuilt from every event, so it reads from the beginning. */
    kd_consumer_opts_t o = {.topics = topics, .topic_count = with_results ? 2 : 1,
                            .read_all = true};

    return kd_consumer_new(conf, &o, out, err, errsz);
}

/* Next envelope from the reader, or NULL (timeout, end, or a skipped bad
 * message). */
static kd_status_t next_event(kd_consumer_t *c, int timeout_ms, kd_envelope_t **env, char *err,
                              size_t errsz)
{
    kd_message_t *m = NULL;
    kd_status_t st = kd_consumer_poll(c, timeout_ms, &m, err, errsz);

    *env = NULL;
    /* A message that does not decode (or verify) is skipped: one bad message
     * must not end an operator's view of the log. */
    if (st == KD_OK && m && kd_message_decode(c, m, env, NULL, 0) != KD_OK)
        *env = NULL;
    kd_message_free(m);
    return st;
}

kd_status_t kd_follow_load(const kd_bus_conf_t *conf, kd_model_t *m, kd_notes_t *notes,
                           char *err, size_t errsz)
{
    kd_consumer_t *c = NULL;
    kd_status_t st = reader(conf, false, &c, err, errsz);
    /* The end is every partition's end: a partition that cannot be read
     * would keep this waiting for ever. */
    int64_t deadline = kd_mono_ms() + 30000;

    while (st == KD_OK && !kd_consumer_at_end(c)) {
        kd_envelope_t *env = NULL;

        if (kd_mono_ms() > deadline) {
            st = kd_err(err, errsz, KD_ETIMEDOUT, "the deployments topic could not be read");
            break;
        }
        if ((st = next_event(c, 100, &env, err, errsz)) == KD_OK && env) {
            kd_model_apply(m, env);
            if (notes)
                kd_notes_apply(notes, env);
        }
        kd_envelope_free(env);
    }
    kd_consumer_free(c);
    return st;
}

static void stamp(char *out, size_t outsz, int64_t ts_ms)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(out, outsz, "%H:%M:%S", &tm);
}

/* One event as a JSON line (watch --json): its type, time and the fields an
 * operator's script looks at. */
static void print_event_json(FILE *f, const kd_envelope_t *env)
{
    json_t *o = json_pack("{s:s, s:s, s:I}", "deploy_id", env->deploy_id, "kind",
                          kd_envelope_type(env), "ts", (json_int_t)env->ts_ms);
    char *text;

    switch (env->body_case) {
    case KD_BODY(HOST_FINISHED):
        json_object_set_new(o, "host", json_string(env->host_finished->host));
        json_object_set_new(o, "status", json_string(
            env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED ? "succeeded"
            : env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED ? "skipped"
                                                                                 : "failed"));
        json_object_set_new(o, "error", json_string(env->host_finished->error));
        break;
    case KD_BODY(STEP_DISPATCHED):
        json_object_set_new(o, "host", json_string(env->step_dispatched->host));
        json_object_set_new(o, "step", json_string(kd_event_name(env->step_dispatched->event)));
        break;
    case KD_BODY(FAILED):
        json_object_set_new(o, "reason", json_string(env->failed->reason));
        break;
    case KD_BODY(REJECTED):
        json_object_set_new(o, "reason", json_string(env->rejected->reason));
        break;
    case KD_BODY(STATUS_CHANGED):
        json_object_set_new(o, "status",
                            json_string(kd_status_name_of(env->status_changed->status)));
        json_object_set_new(o, "reason", json_string(env->status_changed->reason));
        json_object_set_new(o, "requested_by", json_string(env->status_changed->requested_by));
        break;
    case KD_BODY(ROLLBACK_STARTED):
        json_object_set_new(o, "rollback_deploy_id",
                            json_string(env->rollback_started->rollback_deploy_id));
        json_object_set_new(o, "reason", json_string(env->rollback_started->reason));
        break;
    default:
        break;
    }
    if (o && (text = json_dumps(o, JSON_COMPACT))) {
        fprintf(f, "%s\n", text);
        free(text);
    }
    json_decref(o);
    fflush(f);
}

static void print_event(FILE *f, const kd_envelope_t *env, const char *tag, bool json)
{
    char ts[16];

    if (!f)
        return;
    char hosts[32], skipped[64];

    if (json) {
        print_event_json(f, env);
        return;
    }
    if (env->body_case == KD_BODY(SUCCEEDED))
        snprintf(skipped, sizeof skipped, ", nothing to do on %s",
                 kd_hosts_text(env->succeeded->hosts_skipped, hosts, sizeof hosts));
    stamp(ts, sizeof ts, env->ts_ms);
    switch (env->body_case) {
    case KD_BODY(ACCEPTED):
        fprintf(f, "%s %saccepted: %s%s%s\n", ts, tag,
                kd_hosts_text(env->accepted->n_hosts ? env->accepted->n_hosts
                                                     : env->accepted->hosts_total,
                              hosts, sizeof hosts),
                env->accepted->rollback_of[0] ? ", rolling back " : "", env->accepted->rollback_of);
        break;
    case KD_BODY(BATCH_STARTED):
        fprintf(f, "%s %sbatch %u: %s\n", ts, tag, env->batch_started->batch + 1,
                kd_hosts_text(env->batch_started->hosts_total ? env->batch_started->hosts_total
                                                              : env->batch_started->n_hosts,
                              hosts, sizeof hosts));
        break;
    case KD_BODY(STEP_DISPATCHED):
        fprintf(f, "%s %s%-12s %s\n", ts, tag, env->step_dispatched->host,
                kd_event_name(env->step_dispatched->event));
        break;
    case KD_BODY(HOST_FINISHED):
        fprintf(f, "%s %s%-12s %s%s%s\n", ts, tag, env->host_finished->host,
                env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED ? "done"
                : env->host_finished->status == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED ? "skipped"
                : "FAILED",
                env->host_finished->error[0] ? ": " : "", env->host_finished->error);
        break;
    case KD_BODY(SUCCEEDED):
        fprintf(f, "%s %ssucceeded on %s in %.1f s%s\n", ts, tag,
                kd_hosts_text(env->succeeded->hosts_succeeded, hosts, sizeof hosts),
                env->succeeded->duration_ms / 1000.0,
                env->succeeded->hosts_skipped ? skipped : "");
        break;
    case KD_BODY(FAILED):
        fprintf(f, "%s %sFAILED: %s\n", ts, tag, env->failed->reason);
        break;
    case KD_BODY(ROLLBACK_STARTED):
        fprintf(f, "%s %srolling back as %s%s%s\n", ts, tag,
                env->rollback_started->rollback_deploy_id,
                env->rollback_started->reason[0] ? ": " : "", env->rollback_started->reason);
        break;
    case KD_BODY(STATUS_CHANGED):
        fprintf(f, "%s %s%s%s%s%s%s%s\n", ts, tag, kd_status_name_of(env->status_changed->status),
                env->status_changed->reason[0] ? ": " : "", env->status_changed->reason,
                env->status_changed->requested_by[0] ? " (by " : "",
                env->status_changed->requested_by,
                env->status_changed->requested_by[0] ? ")" : "");
        break;
    case KD_BODY(REJECTED):
        fprintf(f, "%s %sREJECTED: %s\n", ts, tag, env->rejected->reason);
        break;
    default:
        break;
    }
    fflush(f);
}

/* Looks at one event for the followed deployment (and its rollback). */
static bool observe(kd_wait_t *w, kd_model_t *m, const kd_envelope_t *env)
{
    bool mine = strcmp(env->deploy_id, w->deploy_id) == 0;
    bool rollback = w->rollback_id[0] && strcmp(env->deploy_id, w->rollback_id) == 0;
    const kd_deploy_t *d;

    if (!mine && !rollback)
        return false;
    print_event(w->out, env, rollback ? "[rollback] " : "", w->json);
    if (env->body_case == KD_BODY(REJECTED)) {
        snprintf(w->reason, sizeof w->reason, "%s", env->rejected->reason);
        w->outcome = KD_WAIT_REJECTED;
        return true;
    }
    if (mine && env->body_case == KD_BODY(ROLLBACK_STARTED))
        snprintf(w->rollback_id, sizeof w->rollback_id, "%s", env->rollback_started->rollback_deploy_id);
    if (mine && env->body_case == KD_BODY(FAILED)) {
        snprintf(w->reason, sizeof w->reason, "%s", env->failed->reason);
        w->failed_ms = kd_mono_ms();
    }
    if (!(d = kd_model_find(m, w->deploy_id)))
        return false;
    w->status = kd_deploy_status(d);
    if (w->until_paused && kd_deploy_paused(d)) {
        w->outcome = KD_WAIT_PAUSED;
        return true;
    }
    if (!kd_deploy_finished(d))
        return false;
    kd_outcome_text(NULL, d, w->summary, sizeof w->summary);
    w->is_rollback = kd_deploy_rollback_of(d)[0] != '\0';
    if (w->follow_rollback && kd_deploy_spec(d)->auto_rollback &&
        !kd_deploy_workflow(d)->swap_after && !w->rollback_id[0] &&
        kd_deploy_status(d) == STATUS(FAILED))
        return false; /* its rollback is about to start */
    if (w->follow_rollback && w->rollback_id[0]) {
        const kd_deploy_t *r = kd_model_find(m, w->rollback_id);

        if (!r || !kd_deploy_finished(r))
            return false;
        w->rollback_status = kd_deploy_status(r);
        kd_outcome_text(NULL, r, w->rollback_summary, sizeof w->rollback_summary);
    }
    w->outcome = KD_WAIT_ENDED;
    return true;
}

/* ---- the live view ---- */

static int view_lines; /* lines of the view on screen now */

/* Up one line and clear it, once per line drawn: the view is redrawn in
 * place below the lasting lines. */
static void view_erase(kd_wait_t *w)
{
    for (; view_lines > 0; view_lines--)
        fputs("\033[1A\033[2K", w->out);
}

static void view_host_lines(kd_wait_t *w, const kd_deploy_t *d, int64_t now)
{
    kd_host_counts_t n;
    int shown = 0, more = 0;

    kd_deploy_counts(d, &n);
    /* Hosts in flight are few and near the end of those started; the
     * count says when the rest need not be looked at. */
    for (size_t i = 0; i < n.total && (size_t)(shown + more) < n.running; i++) {
        kd_host_view_t h;

        kd_deploy_host_at(d, i, &h);
        if (h.phase != KD_HOST_RUNNING || h.step == KD_EVENT_NONE)
            continue;
        if (shown == 10) {
            more++;
            continue;
        }
        fprintf(w->out, "  %-16s %-20s %6.1fs\n", h.name, kd_event_name(h.step),
                (now - h.sent_ms) / 1000.0);
        shown++;
    }
    if (more)
        fprintf(w->out, "  ... and %d more\n", more);
    view_lines += shown + (more ? 1 : 0);
}

static void view_draw(kd_wait_t *w, kd_model_t *m)
{
    const kd_deploy_t *d = kd_model_find(m, w->rollback_id[0] ? w->rollback_id : w->deploy_id);
    const Kdeploy__V1__DeploymentSpec *spec;
    kd_host_counts_t n;
    char bar[31];
    size_t done;
    /* Wall clock, not monotonic: it is compared with the events' timestamps,
     * which the planner set. */
    int64_t now = kd_now_ms();

    if (!w->out || !w->live || !d)
        return;
    view_erase(w);
    spec = kd_deploy_spec(d);
    kd_deploy_counts(d, &n);
    done = n.succeeded + n.failed + n.skipped;
    for (size_t i = 0; i < 30; i++)
        bar[i] = n.total && i < 30 * done / n.total ? '#' : '.';
    bar[30] = '\0';
    fprintf(w->out, "%s%.8s %s/%s %-12s [%s] %zu/%zu hosts, %zu failed, %.0fs\n",
            w->rollback_id[0] ? "rollback " : "", kd_deploy_id(d), spec->application,
            spec->group, kd_status_name_of(kd_deploy_status(d)), bar, done, n.total, n.failed,
            (now - kd_deploy_accepted_ms(d)) / 1000.0);
    view_lines = 1;
    view_host_lines(w, d, now);
    fflush(w->out);
}

/* Events worth a permanent line in the live view. */
static bool lasting(const kd_envelope_t *env)
{
    switch (env->body_case) {
    case KD_BODY(STEP_DISPATCHED):
    case KD_BODY(BATCH_STARTED):
        return false;
    case KD_BODY(HOST_FINISHED):
        return env->host_finished->status != KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED;
    default:
        return true;
    }
}

/* A failed step's output, from the results topic. */
static void print_failure(kd_wait_t *w, const kd_envelope_t *env)
{
    const Kdeploy__V1__StepResult *r = env->step_result;
    const char *tail = r->output_tail, *p;
    int lines = 0;

    if (r->status == KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED ||
        r->status == KDEPLOY__V1__STEP_STATUS__STEP_SKIPPED || !w->out)
        return;
    /* The last ten lines of output are enough to see why. A final newline
     * ends a line, it does not start one (p[1]); the loop stops one before
     * the eleventh newline from the end, hence p + 2 below. */
    for (p = tail + strlen(tail); p > tail && lines <= 10; p--)
        if (*p == '\n' && p[1])
            lines++;
    fprintf(w->out, "  %s %s failed (exit %d): %s\n", r->host, kd_event_name(r->event),
            r->exit_code, r->error);
    for (const char *line = p == tail ? tail : p + 2; *line;) {
        size_t n = strcspn(line, "\n");

        fprintf(w->out, "    | %.*s\n", (int)n, line);
        line += n + (line[n] == '\n');
    }
}

static bool followed(const kd_wait_t *w, const char *deploy_id)
{
    return strcmp(deploy_id, w->deploy_id) == 0 ||
           (w->rollback_id[0] && strcmp(deploy_id, w->rollback_id) == 0);
}

/* One event: applied, shown, and whether the wait is over. */
static bool take(kd_wait_t *w, kd_model_t *m, const kd_envelope_t *env, kd_topic_t topic)
{
    bool done = false;
    FILE *out = w->out;

    if (topic == KD_TOPIC_RESULTS) {
        if (env->body_case == KD_BODY(STEP_RESULT) && followed(w, env->deploy_id)) {
            view_erase(w);
            print_failure(w, env);
        }
        return false;
    }
    /* Every deployment's events go into the model, not only the followed
     * one's: a rollback's (another key, so another partition) may be read
     * before the event that names it. */
    kd_model_apply(m, env);
    if (w->live && followed(w, env->deploy_id)) {
        view_erase(w);
        if (!lasting(env))
            w->out = NULL; /* shown in the view instead */
    }
    done = observe(w, m, env);
    w->out = out;
    return done;
}

kd_status_t kd_follow_wait(const kd_bus_conf_t *conf, kd_wait_t *w, char *err, size_t errsz)
{
    kd_model_t *m = kd_model_new();
    kd_consumer_t *c = NULL;
    kd_status_t st = m ? reader(conf, true, &c, err, errsz) : KD_ENOMEM;
    /* Monotonic: a clock step on the operator's machine does not end the
     * wait early or late. */
    int64_t deadline = w->timeout_s ? kd_mono_ms() + (int64_t)w->timeout_s * 1000 : 0;
    bool done = false;

    w->outcome = KD_WAIT_TIMEOUT;
    view_lines = 0; /* nothing of a previous wait is on screen: the last one erased it */
    while (st == KD_OK && !done) {
        kd_message_t *msg = NULL;
        kd_envelope_t *env = NULL;

        if (deadline && kd_mono_ms() > deadline)
            break;
        if ((st = kd_consumer_poll(c, 200, &msg, err, errsz)) != KD_OK)
            break;
        /* Results of other deployments are not even decoded. */
        if (msg && (msg->topic != KD_TOPIC_RESULTS || followed(w, msg->deploy_id)) &&
            kd_message_decode(c, msg, &env, NULL, 0) == KD_OK)
            done = take(w, m, env, msg->topic);
        /* The planner starts an automatic rollback right after the failure;
         * when none comes (nothing to undo), the wait is over. */
        if (!done && w->failed_ms && !w->rollback_id[0] &&
            kd_mono_ms() - w->failed_ms > ROLLBACK_GRACE_MS) {
            w->outcome = KD_WAIT_ENDED;
            done = true;
        }
        if (!done)
            view_draw(w, m);
        kd_envelope_free(env);
        kd_message_free(msg);
    }
    view_erase(w);
    kd_consumer_free(c);
    kd_model_free(m);
    return st;
}

static void stamp_full(char *out, size_t outsz, int64_t ts_ms)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%d %H:%M:%S", &tm);
}

/* From acceptance to the end, or to now while it runs. */
static int64_t took_ms(const kd_deploy_t *d)
{
    int64_t end = kd_deploy_finished_ms(d) ? kd_deploy_finished_ms(d) : kd_now_ms();

    return kd_deploy_accepted_ms(d) ? end - kd_deploy_accepted_ms(d) : -1;
}

static const char *label_of(const Kdeploy__V1__DeploymentSpec *spec)
{
    return spec->revision && spec->revision->label && *spec->revision->label
               ? spec->revision->label : "-";
}

static void print_hosts_table(FILE *f, const kd_deploy_t *d, size_t total)
{
    char dur[32];
    int64_t now = kd_now_ms();

    fprintf(f, "\n  %-20s %-10s %-20s %-8s %s\n", "HOST", "STATUS", "STEP", "RUNNING", "ERROR");
    for (size_t i = 0; i < total; i++) {
        kd_host_view_t h;

        kd_deploy_host_at(d, i, &h);
        /* How long its current step has run, while it is in flight. */
        if (h.in_flight && h.sent_ms)
            kd_duration_text(now - h.sent_ms, dur, sizeof dur);
        else
            snprintf(dur, sizeof dur, "-");
        fprintf(f, "  %-20s %-10s %-20s %-8s %s\n", h.name, kd_host_phase_name(h.phase),
                h.step != KD_EVENT_NONE ? kd_event_name(h.step) : "-", dur,
                *h.error ? h.error : "");
    }
}

void kd_follow_print_status(FILE *f, const kd_notes_t *notes, const kd_deploy_t *d)
{
    const Kdeploy__V1__DeploymentSpec *spec = kd_deploy_spec(d);
    const kd_workflow_t *wf = kd_deploy_workflow(d);
    const char *reason = kd_notes_reason(notes, kd_deploy_id(d));
    const char *by = kd_notes_reason_by(notes, kd_deploy_id(d));
    kd_host_counts_t n;
    char ts[32], outcome[256], dur[32], hosts[32];

    stamp_full(ts, sizeof ts, kd_deploy_accepted_ms(d));
    kd_deploy_counts(d, &n);
    fprintf(f, "deployment  %s\n  application %s, group %s, %s\n  revision    %s (%s)\n"
               "  status      %s\n",
            kd_deploy_id(d), spec->application, spec->group, wf->name, label_of(spec),
            spec->revision ? spec->revision->url : "", kd_outcome_text(notes, d, outcome,
                                                                      sizeof outcome));
    if (*reason || *by)
        fprintf(f, "  reason      %s%s%s%s\n", *reason ? reason : "-", *by ? " (by " : "", by,
                *by ? ")" : "");
    fprintf(f, "  started     %s by %s\n  %-11s %s\n", ts, kd_deploy_requested_by(d),
            kd_deploy_finished_ms(d) ? "took" : "running", kd_duration_text(took_ms(d), dur,
                                                                            sizeof dur));
    fprintf(f, "  hosts       %s: %zu succeeded, %zu failed, %zu skipped, %zu running, "
               "%zu pending\n", kd_hosts_text(n.total, hosts, sizeof hosts), n.succeeded,
            n.failed, n.skipped, n.running, n.pending);
    if (kd_deploy_rollback_of(d)[0])
        fprintf(f, "  rollback of %s\n", kd_deploy_rollback_of(d));
    if (kd_deploy_rolled_back_by(d)[0])
        fprintf(f, "  rolled back by %s\n", kd_deploy_rolled_back_by(d));
    if (wf->swap_after)
        fprintf(f, "  traffic     %s -> %s\n",
                kd_deploy_swap_from(d)[0] ? kd_deploy_swap_from(d) : "(none)",
                kd_deploy_target_group(d));
    print_hosts_table(f, d, n.total);
}

void kd_follow_print_json(FILE *f, const kd_notes_t *notes, const kd_deploy_t *d,
                          bool with_hosts)
{
    const Kdeploy__V1__DeploymentSpec *spec = kd_deploy_spec(d);
    json_t *hosts = json_array(), *o;
    kd_host_counts_t n;
    char *text, outcome[256];

    kd_deploy_counts(d, &n);
    for (size_t i = 0; with_hosts && i < n.total; i++) {
        kd_host_view_t h;

        kd_deploy_host_at(d, i, &h);
        json_array_append_new(hosts, json_pack("{s:s, s:s, s:s, s:s}", "host", h.name,
                                               "status", kd_host_phase_name(h.phase), "step",
                                               h.step != KD_EVENT_NONE ? kd_event_name(h.step) : "",
                                               "error", h.error));
    }
    /* status: the model's status name (stable, for scripts); outcome: what
     * happened, as status and list print it. */
    o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I,"
                  " s:I, s:o}",
                  "deploy_id", kd_deploy_id(d), "application", spec->application, "group",
                  spec->group, "workflow", kd_deploy_workflow(d)->name, "status",
                  kd_status_name_of(kd_deploy_status(d)), "outcome",
                  kd_outcome_text(notes, d, outcome, sizeof outcome), "paused",
                  kd_deploy_paused(d), "rollback_of", kd_deploy_rollback_of(d), "revision",
                  spec->revision ? spec->revision->url : "", "revision_label",
                  spec->revision && spec->revision->label ? spec->revision->label : "",
                  "reason", kd_notes_reason(notes, kd_deploy_id(d)), "reason_by",
                  kd_notes_reason_by(notes, kd_deploy_id(d)), "accepted_ms",
                  (json_int_t)kd_deploy_accepted_ms(d), "finished_ms",
                  (json_int_t)kd_deploy_finished_ms(d), "duration_ms", (json_int_t)took_ms(d),
                  "host_count", (json_int_t)n.total, "hosts", hosts);
    if (o) {
        json_object_set_new(o, "requested_by", json_string(kd_deploy_requested_by(d)));
        json_object_set_new(o, "rolled_back_by", json_string(kd_deploy_rolled_back_by(d)));
        json_object_set_new(o, "exit_code", json_integer(kd_outcome_exit(d)));
    }
    if (!with_hosts && o)
        json_object_del(o, "hosts");
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text)
        fprintf(f, "%s\n", text);
    free(text);
    json_decref(o);
}
