#include "traffic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "ids.h"
#include "log.h"
#include "utf8.h"

#define TRAFFIC_POLL_MS 200
/* Room for a driver's words on a failure, HAProxy's answer among them. */
#define TRAFFIC_ERROR_MAX 4096

typedef Kdeploy__V1__TrafficCommand traffic_cmd_t;
typedef Kdeploy__V1__TrafficResult traffic_result_t;

static const char *action_name(Kdeploy__V1__TrafficAction action)
{
    switch (action) {
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK: return "block";
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW: return "allow";
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP: return "swap";
    default: return "unknown action";
    }
}

static const char *status_name(Kdeploy__V1__StepStatus status)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&kdeploy__v1__step_status__descriptor, (int)status);

    return v ? v->name : "?";
}

/* A killed command timed out; every other failure is a failure. */
static Kdeploy__V1__StepStatus outcome(kd_status_t st)
{
    if (st == KD_OK)
        return KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED;
    if (st == KD_ETIMEDOUT)
        return KDEPLOY__V1__STEP_STATUS__STEP_TIMED_OUT;
    return KDEPLOY__V1__STEP_STATUS__STEP_FAILED;
}

static kd_status_t dispatch(const kd_traffic_t *t, const traffic_cmd_t *cmd, char *err,
                            size_t errsz)
{
    const kd_lb_driver_t *d = t->driver;

    switch (cmd->action) {
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_BLOCK:
        return d->block(t->driver_state, cmd->server_group, cmd->host, cmd->timeout_s, err,
                        errsz);
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_ALLOW:
        return d->allow(t->driver_state, cmd->server_group, cmd->host, cmd->timeout_s, err,
                        errsz);
    case KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP:
        return d->swap(t->driver_state, cmd->service, cmd->from_group, cmd->to_group,
                       cmd->timeout_s, err, errsz);
    default:
        return kd_err(err, errsz, KD_EINVAL, "unknown traffic action %d", (int)cmd->action);
    }
}

kd_status_t kd_traffic_apply(const kd_traffic_t *t, const traffic_cmd_t *cmd,
                             traffic_result_t *r, char *errbuf, size_t errsz)
{
    int64_t started = kd_mono_ms();
    kd_status_t st;

    errbuf[0] = '\0';
    st = dispatch(t, cmd, errbuf, errsz);
    /* No result for a change cut short by a stop: the journal keeps only its
     * start, nothing is committed, and it is applied again after a restart. */
    if (st == KD_ESTOPPED)
        return st;
    if (st == KD_OK)
        errbuf[0] = '\0';
    /* HAProxy's answers are bytes; protobuf strings must be UTF-8. */
    kd_utf8_sanitize(errbuf);
    r->traffic_id = cmd->traffic_id;
    r->action = cmd->action;
    r->event = cmd->event;
    r->status = outcome(st);
    r->server_group = cmd->server_group;
    r->host = cmd->host;
    r->service = cmd->service;
    r->from_group = cmd->from_group;
    r->to_group = cmd->to_group;
    r->error = errbuf;
    r->duration_ms = kd_mono_ms() - started; /* monotonic: a clock step is no duration */
    r->replayed = 0;
    r->driver = (char *)t->driver->name;
    return KD_OK;
}

static kd_status_t publish_result(const kd_traffic_t *t, const char *deploy_id,
                                  const traffic_result_t *r, char *err, size_t errsz)
{
    char id[KD_UUID_LEN];
    kd_envelope_t env;

    kd_envelope_init(&env, id, deploy_id, kd_producer_self(t->producer));
    env.body_case = KD_BODY(TRAFFIC_RESULT);
    env.traffic_result = (traffic_result_t *)r;
    /* Waits for the broker: the offset is committed only after this. */
    return kd_producer_send(t->producer, KD_TOPIC_RESULTS, deploy_id, &env, true, err, errsz);
}

static kd_status_t journal_result(const kd_traffic_t *t, const traffic_result_t *r, char *err,
                                  size_t errsz)
{
    size_t len = kdeploy__v1__traffic_result__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);
    kd_status_t st;

    if (!buf)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    kdeploy__v1__traffic_result__pack(r, buf);
    st = kd_journal_finish(t->journal, r->traffic_id, buf, len, err, errsz);
    free(buf);
    return st;
}

/* s made safe for a log line: control characters replaced, cut short. The
 * fields come off the bus, and a newline in one would forge a log line. */
static const char *printable(const char *s, char *buf, size_t bufsz)
{
    size_t n = 0;

    for (; s[n] && n + 1 < bufsz; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    buf[n] = '\0';
    return buf;
}

static void log_command(const traffic_cmd_t *cmd, const char *tid)
{
    char a[128], b[128], c[128];

    if (cmd->action == KDEPLOY__V1__TRAFFIC_ACTION__TRAFFIC_SWAP)
        kd_info("%s: swap %s from %s to %s", tid, printable(cmd->service, a, sizeof a),
                *cmd->from_group ? printable(cmd->from_group, b, sizeof b) : "(any)",
                printable(cmd->to_group, c, sizeof c));
    else
        kd_info("%s: %s %s/%s", tid, action_name(cmd->action),
                printable(cmd->server_group, a, sizeof a), printable(cmd->host, b, sizeof b));
}

/* Journals the start, applies, journals the result, publishes it. */
static kd_status_t apply_and_publish(const kd_traffic_t *t, const char *deploy_id,
                                     const traffic_cmd_t *cmd, char *err, size_t errsz)
{
    traffic_result_t r = KDEPLOY__V1__TRAFFIC_RESULT__INIT;
    char *why = malloc(TRAFFIC_ERROR_MAX), tid[256], shown[1024];
    kd_status_t st;

    if (!why)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    /* Durable before the change, so a restart knows it was under way. */
    if ((st = kd_journal_start(t->journal, cmd->traffic_id, err, errsz)) != KD_OK)
        goto out;
    printable(cmd->traffic_id, tid, sizeof tid);
    log_command(cmd, tid);
    if ((st = kd_traffic_apply(t, cmd, &r, why, TRAFFIC_ERROR_MAX)) != KD_OK) {
        st = kd_err(err, errsz, st, "%s: %s", tid, why);
        goto out;
    }
    kd_info("%s: %s%s%s (%lld ms)", tid, status_name(r.status), *why ? ": " : "",
            printable(why, shown, sizeof shown), (long long)r.duration_ms);
    kd_lb_metrics_change(t->metrics, &r);
    /* Journal, then publish: a crash between them brings the command again,
     * and the journal answers it with this result. */
    if ((st = journal_result(t, &r, err, errsz)) != KD_OK)
        goto out;
    st = publish_result(t, deploy_id, &r, err, errsz);
out:
    free(why);
    return st;
}

static kd_status_t handle_traffic(const kd_traffic_t *t, const kd_envelope_t *env, char *err,
                                  size_t errsz)
{
    const traffic_cmd_t *cmd = env->traffic;
    traffic_result_t *recorded = NULL;
    kd_buf_t bytes = KD_BUF_INIT(1024 * 1024);
    kd_journal_state_t state;
    char tid[256];
    kd_status_t st;

    if (!*cmd->traffic_id || !env->deploy_id || !*env->deploy_id)
        return kd_err(err, errsz, KD_EPROTO, "traffic command without a traffic id or deploy id");
    st = kd_journal_lookup(t->journal, cmd->traffic_id, &state, &bytes, err, errsz);
    if (st == KD_OK && state == KD_JOURNAL_FINISHED &&
        !(recorded = kdeploy__v1__traffic_result__unpack(NULL, bytes.len,
                                                         (const uint8_t *)kd_buf_str(&bytes))))
        st = kd_err(err, errsz, KD_EIO, "corrupt journal entry for %s",
                    printable(cmd->traffic_id, tid, sizeof tid));
    kd_buf_free(&bytes);
    if (st != KD_OK)
        return st;
    if (recorded) {
        kd_info("%s: already done: publishing its recorded result",
                printable(cmd->traffic_id, tid, sizeof tid));
        recorded->replayed = 1;
        kd_lb_metrics_replay(t->metrics);
        st = publish_result(t, env->deploy_id, recorded, err, errsz);
        kdeploy__v1__traffic_result__free_unpacked(recorded, NULL);
        return st;
    }
    /* Unlike a worker's hook, a change sets a state (a server drained, a
     * backend chosen): applying it twice is harmless. */
    if (state == KD_JOURNAL_STARTED)
        kd_warn("%s: cut short earlier (lbctl stopped or crashed): applying it again",
                printable(cmd->traffic_id, tid, sizeof tid));
    return apply_and_publish(t, env->deploy_id, cmd, err, errsz);
}

/* One message. Returns an error only when the bus or the disk fails, or
 * KD_ESTOPPED (then nothing is committed: the command comes again); a
 * malformed, foreign or unverified message is logged and skipped. */
static kd_status_t handle_message(const kd_traffic_t *t, kd_consumer_t *c, kd_message_t *m,
                                  char *err, size_t errsz)
{
    kd_envelope_t *env = NULL;
    char why[1024] = "";
    kd_status_t st = kd_message_decode(c, m, &env, why, sizeof why);

    if (st == KD_OK && env->body_case != KD_BODY(TRAFFIC))
        st = kd_err(why, sizeof why, KD_EPROTO, "a %s event on the traffic topic",
                    kd_envelope_type(env));
    if (st == KD_OK) /* an old command replayed moves no traffic */
        st = kd_command_fresh(c, env, why, sizeof why);
    if (st == KD_OK) {
        st = handle_traffic(t, env, why, sizeof why);
        if (st != KD_OK && st != KD_EPROTO) {
            kd_envelope_free(env);
            return kd_err(err, errsz, st, "%s", why);
        }
    }
    if (st != KD_OK) {
        kd_error("skipping the message at %s partition %d offset %lld: %s",
                 kd_topic_suffix(m->topic), m->partition, (long long)m->offset, why);
        kd_lb_metrics_skipped(t->metrics);
    }
    kd_envelope_free(env);
    /* Skipped messages are committed too: a bad one must not come back on
     * every restart. */
    return kd_consumer_commit(c, m, err, errsz);
}

kd_status_t kd_traffic_run(const kd_traffic_t *t, char *err, size_t errsz)
{
    kd_topic_t topic = KD_TOPIC_TRAFFIC;
    /* A group: its members share the partitions, so each command is applied
     * by one of them. An lbctl that must see every command needs a group of
     * its own. */
    kd_consumer_opts_t opts = {
        .group_id = t->group_id ? t->group_id : KD_LB_DEFAULT_GROUP,
        .topics = &topic,
        .topic_count = 1,
    };
    kd_consumer_t *c = NULL;
    kd_status_t st;

    if ((st = kd_consumer_new(t->conf, &opts, &c, err, errsz)) != KD_OK)
        return st;
    kd_info("reading %s as group %s, driver %s", kd_topic_suffix(topic), opts.group_id,
            t->driver->name);
    while (!*t->stop) {
        kd_message_t *m = NULL;

        if ((st = kd_consumer_poll(c, TRAFFIC_POLL_MS, &m, err, errsz)) != KD_OK)
            break;
        if (m)
            st = handle_message(t, c, m, err, errsz);
        kd_message_free(m);
        if (st != KD_OK)
            break;
    }
    if (st == KD_ESTOPPED) {
        kd_info("stopped during a change: it is applied again after a restart");
        st = KD_OK;
    }
    kd_consumer_free(c);
    return st;
}
