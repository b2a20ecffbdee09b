/* `kdeploy hosts`: every agent's last word on the hosts topic (compacted
 * by host id): alive or stopped, its version, the revision each of its
 * application groups runs, and when it was last heard from. */
#include "cmd_hosts.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "envelope.h"
#include "ids.h"

/* host id -> its latest status as JSON, in first-seen order. */
static void remember(json_t *hosts, const kd_envelope_t *env)
{
    const Kdeploy__V1__HostStatus *hs = env->host_status;
    json_t *installed = json_array();
    json_t *o;

    for (size_t i = 0; i < hs->n_installed; i++)
        json_array_append_new(installed, json_pack("{s:s, s:s, s:s}", "application",
                                                   hs->installed[i]->application, "group",
                                                   hs->installed[i]->group, "deploy_id",
                                                   hs->installed[i]->deploy_id));
    o = json_pack("{s:s, s:b, s:s, s:s, s:i, s:I, s:o}", "host", hs->host, "alive", hs->alive,
                  "agent_version", hs->agent_version, "hostname", hs->hostname, "pid", hs->pid,
                  "last_seen_ms", (json_int_t)env->ts_ms, "installed", installed);
    if (o)
        json_object_set_new(hosts, hs->host, o);
}

static kd_status_t read_hosts(const kd_bus_conf_t *conf, json_t *hosts, char *err, size_t errsz)
{
    kd_topic_t topic = KD_TOPIC_HOSTS;
    kd_consumer_opts_t o = {.topics = &topic, .topic_count = 1, .read_all = true};
    kd_consumer_t *c = NULL;
    kd_status_t st = kd_consumer_new(conf, &o, &c, err, errsz);
    int64_t deadline = kd_mono_ms() + 30000;

    while (st == KD_OK && !kd_consumer_at_end(c) && kd_mono_ms() < deadline) {
        kd_message_t *m = NULL;
        kd_envelope_t *env = NULL;

        if ((st = kd_consumer_poll(c, 100, &m, err, errsz)) == KD_OK && m &&
            kd_message_decode(c, m, &env, NULL, 0) == KD_OK &&
            env->body_case == KD_BODY(HOST_STATUS))
            remember(hosts, env);
        kd_envelope_free(env);
        kd_message_free(m);
    }
    kd_consumer_free(c);
    return st;
}

static void print_host(json_t *h, bool as_json)
{
    char ts[32];
    time_t t = (time_t)(json_integer_value(json_object_get(h, "last_seen_ms")) / 1000);
    struct tm tm;
    size_t i;
    json_t *rev;

    if (as_json) {
        char *text = json_dumps(h, JSON_COMPACT);

        printf("%s\n", text);
        free(text);
        return;
    }
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%-16s %-8s %-8s %s ", json_string_value(json_object_get(h, "host")),
           json_is_true(json_object_get(h, "alive")) ? "alive" : "stopped",
           json_string_value(json_object_get(h, "agent_version")), ts);
    json_array_foreach(json_object_get(h, "installed"), i, rev)
        printf(" %s/%s=%s", json_string_value(json_object_get(rev, "application")),
               json_string_value(json_object_get(rev, "group")),
               json_string_value(json_object_get(rev, "deploy_id")));
    printf("\n");
}

int kd_cmd_hosts(int argc, char **argv)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char usage[] = "usage: kdeploy hosts [--json]\n"
                                "Lists the agents on the hosts topic: alive or stopped, version,\n"
                                "last seen, and the deployment each application group runs.\n";
    kd_cli_common_t cli = {0};
    kd_bus_conf_t *conf = NULL;
    json_t *hosts = json_object(), *h;
    const char *key;
    bool as_json = false;
    char err[1024];
    int opt, rc = 1;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&cli, opt, optarg))
            continue;
        if (opt == 'j') {
            as_json = true;
            continue;
        }
        printf("%s" KD_CLI_COMMON_HELP, usage);
        json_decref(hosts);
        return opt == 'h' ? 0 : 2;
    }
    if (kd_cli_setup(&cli, "kdeploy", &conf, NULL, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = 2;
    } else if (read_hosts(conf, hosts, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
    } else {
        json_object_foreach(hosts, key, h)
            print_host(h, as_json);
        rc = 0;
    }
    json_decref(hosts);
    kd_bus_conf_free(conf);
    return rc;
}
