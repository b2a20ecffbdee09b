/* kd-test-send: publishes one hand-made envelope through kdeploy's bus, for
 * tests that check what other clients and services see on the topics, and
 * for attacks on a worker: unsigned, forged, expired or replayed steps.
 *   kd-test-send --brokers B --topic steps --key web-01 --deploy-id D \
 *                --kind step|step_result|create --host H --event NAME \
 *                [--signing-key PEM] [--expires-ms MS] [--application A]
 *                [--group G] [--revision-deploy-id D] [--hosts H1,H2,...]
 *   kd-test-send --brokers B --topic requests --key D --deploy-id D --kind stop [--rollback]
 * --kind create and stop send a request straight to the requests topic, past
 * the CLI's checks: the planner must check it on its own. Prints the event id
 * of what it sent. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "event.h"
#include "ids.h"

typedef struct send_opts {
    const char *brokers, *topic, *key, *deploy_id, *kind, *host, *event, *prefix;
    const char *signing_key, *application, *group, *revision_deploy_id, *hosts;
    long long expires_ms;
    int rollback;  /* a stop request: roll back once stopped */
} send_opts_t;

static int topic_parse(const char *name, kd_topic_t *out)
{
    for (int t = 0; t < KD_TOPIC_COUNT; t++)
        if (strcmp(name, kd_topic_suffix((kd_topic_t)t)) == 0) {
            *out = (kd_topic_t)t;
            return 0;
        }
    return -1;
}

static int send_one(const send_opts_t *o, kd_topic_t topic)
{
    char err[512] = "out of memory", id[KD_UUID_LEN], step_id[512];
    kd_bus_conf_t *conf = kd_bus_conf_new();
    kd_producer_t *p = NULL;
    kd_envelope_t env;
    Kdeploy__V1__StepCommand step = KDEPLOY__V1__STEP_COMMAND__INIT;
    Kdeploy__V1__StepResult result = KDEPLOY__V1__STEP_RESULT__INIT;
    Kdeploy__V1__CreateDeployment create = KDEPLOY__V1__CREATE_DEPLOYMENT__INIT;
    Kdeploy__V1__DeploymentSpec spec = KDEPLOY__V1__DEPLOYMENT_SPEC__INIT;
    Kdeploy__V1__Revision revision = KDEPLOY__V1__REVISION__INIT;
    char *host_list = NULL, **hosts = NULL;
    Kdeploy__V1__StopDeployment stop = KDEPLOY__V1__STOP_DEPLOYMENT__INIT;
    kd_event_t ev = KD_EVENT(ApplicationStart);
    int rc = 1;

    if (o->event && !kd_event_parse(o->event, &ev)) {
        fprintf(stderr, "unknown event %s\n", o->event);
        goto out;
    }
    kd_bus_conf_set(conf, "brokers", o->brokers, err, sizeof err);
    if (o->prefix)
        kd_bus_conf_set(conf, "topic_prefix", o->prefix, err, sizeof err);
    if (kd_bus_conf_env_defaults(conf, err, sizeof err) != KD_OK)
        goto fail;
    if (o->signing_key && kd_bus_conf_set(conf, "signing_key", o->signing_key, err,
                                          sizeof err) != KD_OK)
        goto fail;
    if (kd_producer_new(conf, "test", &p, err, sizeof err) != KD_OK)
        goto fail;
    kd_envelope_init(&env, id, o->deploy_id, kd_producer_self(p));
    snprintf(step_id, sizeof step_id, "%s/%s/%s/1", o->deploy_id, o->host, kd_event_name(ev));
    if (strcmp(o->kind, "step") == 0) {
        step.step_id = step_id;
        step.host = (char *)o->host;
        step.event = ev;
        step.attempt = 1;
        step.expires_ms = o->expires_ms;
        step.application = (char *)(o->application ? o->application : "");
        step.group = (char *)(o->group ? o->group : "");
        step.revision_deploy_id = (char *)(o->revision_deploy_id ? o->revision_deploy_id : "");
        env.body_case = KD_BODY(STEP);
        env.step = &step;
    } else if (strcmp(o->kind, "create") == 0) {
        /* The host list as given, however hostile: split on commas only. */
        size_t n = 1;

        host_list = strdup(o->hosts ? o->hosts : o->host);
        for (const char *c = host_list; c && *c; c++)
            n += *c == ',';
        if (!host_list || !(hosts = calloc(n, sizeof *hosts)))
            goto fail;
        for (char *h = host_list, *next; h; h = next) {
            next = strchr(h, ',');
            if (next)
                *next++ = '\0';
            hosts[spec.n_hosts++] = h;
        }
        revision.url = "file:///nonexistent.tar.gz";
        revision.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
        spec.application = (char *)(o->application ? o->application : "shop");
        spec.group = (char *)(o->group ? o->group : "web");
        spec.hosts = hosts;
        spec.revision = &revision;
        create.spec = &spec;
        create.requested_by = "kd-test-send";
        env.body_case = KD_BODY(CREATE);
        env.create = &create;
    } else if (strcmp(o->kind, "stop") == 0) {
        stop.requested_by = "kd-test-send";
        stop.reason = "test";
        stop.rollback = o->rollback != 0;
        env.body_case = KD_BODY(STOP);
        env.stop = &stop;
    } else {
        result.step_id = step_id;
        result.host = (char *)o->host;
        result.event = ev;
        result.status = KDEPLOY__V1__STEP_STATUS__STEP_SUCCEEDED;
        env.body_case = KD_BODY(STEP_RESULT);
        env.step_result = &result;
    }
    if (kd_producer_send(p, topic, o->key, &env, true, err, sizeof err) != KD_OK)
        goto fail;
    printf("%s\n", id);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "kd-test-send: %s\n", err);
out:
    free(hosts);
    free(host_list);
    kd_producer_free(p);
    kd_bus_conf_free(conf);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'}, {"topic", required_argument, NULL, 't'},
        {"key", required_argument, NULL, 'k'}, {"deploy-id", required_argument, NULL, 'd'},
        {"kind", required_argument, NULL, 'K'}, {"host", required_argument, NULL, 'H'},
        {"event", required_argument, NULL, 'e'}, {"topic-prefix", required_argument, NULL, 'p'},
        {"signing-key", required_argument, NULL, 's'}, {"expires-ms", required_argument, NULL, 'x'},
        {"application", required_argument, NULL, 'a'}, {"group", required_argument, NULL, 'g'},
        {"revision-deploy-id", required_argument, NULL, 'r'},
        {"hosts", required_argument, NULL, 'h'},
        {"rollback", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    send_opts_t o = {.topic = "steps", .key = "web-01", .deploy_id = "", .kind = "step",
                     .host = "web-01"};
    kd_topic_t topic;
    int opt;

    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'b': o.brokers = optarg; break;
        case 't': o.topic = optarg; break;
        case 'k': o.key = optarg; break;
        case 'd': o.deploy_id = optarg; break;
        case 'K': o.kind = optarg; break;
        case 'H': o.host = optarg; break;
        case 'e': o.event = optarg; break;
        case 'p': o.prefix = optarg; break;
        case 's': o.signing_key = optarg; break;
        case 'x': o.expires_ms = strtoll(optarg, NULL, 10); break;
        case 'a': o.application = optarg; break;
        case 'g': o.group = optarg; break;
        case 'r': o.revision_deploy_id = optarg; break;
        case 'h': o.hosts = optarg; break;
        case 'R': o.rollback = 1; break;
        default: return 2;
        }
    }
    if (!o.brokers || topic_parse(o.topic, &topic) != 0) {
        fprintf(stderr, "usage: kd-test-send --brokers B [--topic T] [--key K] ...\n");
        return 2;
    }
    return send_one(&o, topic);
}
