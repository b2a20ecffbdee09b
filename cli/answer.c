#include "answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "model.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name

struct kd_answer_wait {
    kd_consumer_t *c;
};

kd_status_t kd_answer_open(const kd_bus_conf_t *conf, const char *deploy_id,
                           kd_answer_wait_t **out, char *err, size_t errsz)
{
    kd_topic_t topic = KD_TOPIC_DEPLOYMENTS;
    /* Answers are keyed by the deployment's id like every event of it: one
     * partition holds them, and only what comes after now matters. */
    kd_consumer_opts_t o = {.topics = &topic, .topic_count = 1, .partition_key = deploy_id,
                            .from_end = true};
    kd_answer_wait_t *w = calloc(1, sizeof *w);
    kd_status_t st;

    if (!w)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if ((st = kd_consumer_new(conf, &o, &w->c, err, errsz)) != KD_OK) {
        free(w);
        return st;
    }
    *out = w;
    return KD_OK;
}

void kd_answer_close(kd_answer_wait_t *w)
{
    if (!w)
        return;
    kd_consumer_free(w->c);
    free(w);
}

/* The status change a control request asks for, when an older planner
 * answers it without in_reply_to. */
static bool asked_for(const kd_envelope_t *req, Kdeploy__V1__DeploymentStatus st)
{
    switch (req->body_case) {
    case KD_BODY(PAUSE): return st == STATUS(PAUSED);
    case KD_BODY(RESUME): return st == STATUS(DEPLOYING);
    case KD_BODY(STOP): return st == STATUS(STOPPING) || st == STATUS(STOPPED);
    default: return false;
    }
}

static bool is_answer(const kd_envelope_t *req, const kd_envelope_t *env)
{
    bool creates = req->body_case == KD_BODY(CREATE) || req->body_case == KD_BODY(ROLLBACK);

    if (env->in_reply_to && *env->in_reply_to)
        return strcmp(env->in_reply_to, req->event_id) == 0;
    if (strcmp(env->deploy_id, req->deploy_id) != 0)
        return false;
    switch (env->body_case) {
    case KD_BODY(ACCEPTED): return creates;
    case KD_BODY(REJECTED): return true;
    case KD_BODY(STATUS_CHANGED): return asked_for(req, env->status_changed->status);
    default: return false;
    }
}

static void take(const kd_envelope_t *env, kd_answer_t *out)
{
    out->kind = KD_ANSWER_ACCEPTED;
    switch (env->body_case) {
    case KD_BODY(ACCEPTED):
        snprintf(out->status, sizeof out->status, "%s",
                 kd_status_name_of(env->accepted->status ? env->accepted->status
                                                         : STATUS(DEPLOYING)));
        break;
    case KD_BODY(STATUS_CHANGED):
        snprintf(out->status, sizeof out->status, "%s",
                 kd_status_name_of(env->status_changed->status));
        break;
    case KD_BODY(REJECTED):
        out->kind = KD_ANSWER_REFUSED;
        snprintf(out->reason, sizeof out->reason, "%s", env->rejected->reason);
        break;
    case KD_BODY(REQUEST_REFUSED):
        out->kind = KD_ANSWER_REFUSED;
        snprintf(out->reason, sizeof out->reason, "%s", env->request_refused->reason);
        break;
    default:
        break;
    }
}

kd_status_t kd_answer_wait(kd_answer_wait_t *w, const kd_envelope_t *request, int timeout_ms,
                           kd_answer_t *out, char *err, size_t errsz)
{
    int64_t deadline = kd_mono_ms() + timeout_ms;
    kd_status_t st = KD_OK;

    memset(out, 0, sizeof *out);
    out->kind = KD_ANSWER_NONE;
    while (st == KD_OK && out->kind == KD_ANSWER_NONE && kd_mono_ms() < deadline) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;

        if ((st = kd_consumer_poll(w->c, 100, &m, err, errsz)) != KD_OK || !m)
            continue;
        /* Other deployments share the partition: their events are not
         * decoded. The header is not signed, the decoded body decides. */
        if (strcmp(m->deploy_id, request->deploy_id) == 0 &&
            kd_message_decode(w->c, m, &env, NULL, 0) == KD_OK && is_answer(request, env))
            take(env, out);
        kd_envelope_free(env);
        kd_message_free(m);
    }
    return st;
}
