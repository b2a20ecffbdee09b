/* `kdeploy hosts`: every agent's last word on the hosts topic (compacted
 * by host id): alive or stopped, when it was last heard from, its version,
 * its labels, and the deployment each of its application groups runs.
 * --label filters by labels, as a spec's `hosts: {labels: ...}` selects. */
#include "cmd_hosts.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "ids.h"
#include "spec_check.h"
#include "topic_read.h"

/* A deploy id shown in a table: enough to tell deployments apart. */
#define SHORT_ID 8

/* The latest status of one host as JSON. */
static json_t *host_json(const kd_envelope_t *env)
{
    const Kdeploy__V1__HostStatus *hs = env->host_status;
    json_t *installed = json_array(), *labels = json_object();

    for (size_t i = 0; i < hs->n_installed; i++)
        json_array_append_new(installed, json_pack("{s:s, s:s, s:s}", "application",
                                                   hs->installed[i]->application, "group",
                                                   hs->installed[i]->group, "deploy_id",
                                                   hs->installed[i]->deploy_id));
    for (size_t i = 0; i < hs->n_labels; i++)
        json_object_set_new(labels, hs->labels[i]->key, json_string(hs->labels[i]->value));
    return json_pack("{s:s, s:b, s:s, s:s, s:i, s:I, s:o, s:o}", "host", hs->host, "alive",
                     hs->alive, "agent_version", hs->agent_version, "hostname", hs->hostname,
                     "pid", hs->pid, "last_seen_ms", (json_int_t)env->ts_ms, "labels", labels,
                     "installed", installed);
}

static void host_record(void *arg, kd_consumer_t *c, const kd_message_t *m)
{
    json_t *hosts = arg, *h;
    kd_envelope_t *env = NULL;

    if (kd_message_decode(c, m, &env, NULL, 0) == KD_OK &&
        env->body_case == KD_BODY(HOST_STATUS) && kd_host_id_valid(env->host_status->host) &&
        (h = host_json(env)))
        json_object_set_new(hosts, env->host_status->host, h);
    kd_envelope_free(env);
}

kd_status_t kd_cli_read_hosts(const kd_bus_conf_t *conf, json_t *hosts, char *err, size_t errsz)
{
    return kd_cli_read_topic(conf, KD_TOPIC_HOSTS, host_record, hosts, err, errsz);
}

/* --label KEY=VALUE filters, all of which a host must carry. */
typedef struct label_filter {
    char key[KD_LABEL_MAX][KD_LABEL_LEN_MAX + 1];
    char value[KD_LABEL_MAX][KD_LABEL_LEN_MAX + 1];
    size_t count;
} label_filter_t;

static bool matches(json_t *h, const label_filter_t *f)
{
    json_t *labels = json_object_get(h, "labels");

    for (size_t i = 0; i < f->count; i++) {
        const char *v = json_string_value(json_object_get(labels, f->key[i]));

        if (!v || strcmp(v, f->value[i]) != 0)
            return false;
    }
    return true;
}

static int by_host(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;

    return strcmp(json_string_value(json_object_get(*x, "host")),
                  json_string_value(json_object_get(*y, "host")));
}

/* The hosts that pass the filter, sorted by host id (a new array). */
static json_t *selected(json_t *hosts, const label_filter_t *f)
{
    size_t n = json_object_size(hosts), k = 0;
    json_t **v = calloc(n ? n : 1, sizeof *v), *out = json_array(), *h;
    const char *key;

    if (!v || !out) {
        free(v);
        json_decref(out);
        return NULL;
    }
    json_object_foreach(hosts, key, h)
        if (matches(h, f))
            v[k++] = h;
    qsort(v, k, sizeof *v, by_host);
    for (size_t i = 0; i < k; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

/* "role=web,zone=a", or "-" for none. */
static void labels_text(json_t *h, kd_buf_t *out)
{
    json_t *labels = json_object_get(h, "labels"), *v;
    const char *k;
    bool first = true;

    json_object_foreach(labels, k, v) {
        kd_buf_printf(out, "%s%s=%s", first ? "" : ",", k, json_string_value(v));
        first = false;
    }
    if (first)
        kd_buf_printf(out, "-");
}

/* "shop/web@1a2b3c4d shop/api@5e6f7a8b", or "-" when nothing is installed. */
static void runs_text(json_t *h, kd_buf_t *out)
{
    json_t *rev;
    size_t i;

    json_array_foreach(json_object_get(h, "installed"), i, rev)
        kd_buf_printf(out, "%s%s/%s@%.*s", i ? " " : "",
                      json_string_value(json_object_get(rev, "application")),
                      json_string_value(json_object_get(rev, "group")), SHORT_ID,
                      json_string_value(json_object_get(rev, "deploy_id")));
    if (!json_array_size(json_object_get(h, "installed")))
        kd_buf_printf(out, "-");
}

static void print_table(json_t *list)
{
    json_t *h;
    size_t i, width = 4;

    json_array_foreach(list, i, h) {
        size_t len = strlen(json_string_value(json_object_get(h, "host")));

        width = len > width ? len : width;
    }
    printf("%-*s  %-7s  %-19s  %-8s  %-24s  %s\n", (int)width, "HOST", "STATE", "LAST SEEN",
           "VERSION", "LABELS", "RUNS");
    json_array_foreach(list, i, h) {
        kd_buf_t labels = KD_BUF_INIT(0), runs = KD_BUF_INIT(0);
        time_t t = (time_t)(json_integer_value(json_object_get(h, "last_seen_ms")) / 1000);
        struct tm tm;
        char ts[32];

        localtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
        labels_text(h, &labels);
        runs_text(h, &runs);
        printf("%-*s  %-7s  %-19s  %-8s  %-24s  %s\n", (int)width,
               json_string_value(json_object_get(h, "host")),
               json_is_true(json_object_get(h, "alive")) ? "alive" : "stopped", ts,
               json_string_value(json_object_get(h, "agent_version")), kd_buf_str(&labels),
               kd_buf_str(&runs));
        kd_buf_free(&labels);
        kd_buf_free(&runs);
    }
    printf("%zu host%s\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s");
}

static int add_filter(label_filter_t *f, const char *text)
{
    char err[256];

    if (f->count == KD_LABEL_MAX) {
        fprintf(stderr, "kdeploy: hosts: at most %d --label filters\n", KD_LABEL_MAX);
        return -1;
    }
    if (kd_label_parse(text, f->key[f->count], f->value[f->count], err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: hosts: --label %s\n", err);
        return -1;
    }
    f->count++;
    return 0;
}

/* A selector as the hosts --label filter the CLI already matches with. */
static kd_status_t resolve_selector(json_t *hosts, Kdeploy__V1__DeploymentSpec *spec)
{
    label_filter_t *f = calloc(1, sizeof *f);
    json_t *list = NULL, *h;
    kd_buf_t sel = KD_BUF_INIT(0);
    kd_status_t st = KD_ENOMEM;
    size_t i;

    if (!f)
        return st;
    for (i = 0; i < spec->n_host_selector && i < KD_LABEL_MAX; i++) {
        snprintf(f->key[i], sizeof f->key[i], "%s", spec->host_selector[i]->key);
        snprintf(f->value[i], sizeof f->value[i], "%s", spec->host_selector[i]->value);
        kd_buf_printf(&sel, "%s%s=%s", i ? "," : "", f->key[i], f->value[i]);
    }
    f->count = i;
    if (!(list = selected(hosts, f)))
        goto out;
    st = KD_EINVAL;
    if (!json_array_size(list)) {
        fprintf(stderr, "kdeploy: hosts.labels: no announced host has the labels %s: the "
                        "planner would reject it\n", kd_buf_str(&sel));
        goto out;
    }
    st = KD_ENOMEM;
    if (!(spec->hosts = calloc(json_array_size(list), sizeof *spec->hosts)))
        goto out;
    json_array_foreach(list, i, h) {
        if (!(spec->hosts[i] = strdup(json_string_value(json_object_get(h, "host")))))
            goto out;
        spec->n_hosts = i + 1;
    }
    printf("labels %s select %zu host%s\n", kd_buf_str(&sel), spec->n_hosts,
           spec->n_hosts == 1 ? "" : "s");
    st = KD_OK;
out:
    kd_buf_free(&sel);
    json_decref(list);
    free(f);
    return st;
}

static size_t count_unknown(json_t *hosts, char *const *names, size_t n, kd_buf_t *shown,
                            size_t unknown)
{
    for (size_t i = 0; i < n; i++) {
        if (json_object_get(hosts, names[i]))
            continue;
        if (unknown < 5)
            kd_buf_printf(shown, "%s%s", unknown ? ", " : "", names[i]);
        unknown++;
    }
    return unknown;
}

kd_status_t kd_cli_check_hosts(const kd_bus_conf_t *conf, Kdeploy__V1__DeploymentSpec *spec)
{
    const Kdeploy__V1__BlueGreen *bg = spec->blue_green;
    json_t *hosts = json_object();
    kd_buf_t shown = KD_BUF_INIT(0);
    size_t unknown = 0;
    char err[1024];
    kd_status_t st;

    if (!hosts)
        return KD_ENOMEM;
    if ((st = kd_cli_read_hosts(conf, hosts, err, sizeof err)) != KD_OK) {
        fprintf(stderr, "kdeploy: cannot check the hosts: %s\n", err);
        goto out;
    }
    if (spec->n_host_selector && (st = resolve_selector(hosts, spec)) != KD_OK)
        goto out;
    unknown = count_unknown(hosts, spec->hosts, spec->n_hosts, &shown, 0);
    if (bg && bg->blue && bg->green) {
        unknown = count_unknown(hosts, bg->blue->hosts, bg->blue->n_hosts, &shown, unknown);
        unknown = count_unknown(hosts, bg->green->hosts, bg->green->n_hosts, &shown, unknown);
    }
    if (unknown)
        fprintf(stderr, "kdeploy: %zu host%s never announced by a worker: %s%s: %s\n", unknown,
                unknown == 1 ? "" : "s", kd_buf_str(&shown), unknown > 5 ? ", ..." : "",
                spec->allow_unknown_hosts ? "the deployment would wait for them "
                                            "(allow_unknown_hosts)"
                                          : "the planner would reject it");
    if (unknown && !spec->allow_unknown_hosts)
        st = KD_EINVAL;
out:
    kd_buf_free(&shown);
    json_decref(hosts);
    return st;
}

int kd_cmd_hosts(int argc, char **argv)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"json", no_argument, NULL, 'j'},
        {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char usage[] =
        "usage: kdeploy hosts [--label KEY=VALUE]... [--json]\n"
        "Lists the agents on the hosts topic: alive or stopped, last seen, version,\n"
        "labels, and the deployment each application group runs.\n"
        "  --label KEY=VALUE  only hosts with this label (repeatable: all must match)\n"
        "  --json             the same as a JSON array, one object per host\n";
    label_filter_t *filter = calloc(1, sizeof *filter);
    kd_cli_common_t cli = {0};
    kd_bus_conf_t *conf = NULL;
    json_t *hosts = json_object(), *list = NULL;
    bool as_json = false;
    char err[1024];
    kd_status_t st;
    int opt, rc = 2;

    if (!filter || !hosts)
        goto out;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&cli, opt, optarg))
            continue;
        if (opt == 'j') {
            as_json = true;
            continue;
        }
        if (opt == 'l' && add_filter(filter, optarg) == 0)
            continue;
        if (opt != 'l')
            printf("%s" KD_CLI_COMMON_HELP, usage);
        rc = opt == 'h' ? 0 : 2;
        goto out;
    }
    rc = 1;
    if ((st = kd_cli_setup(&cli, "kdeploy", &conf, NULL, err, sizeof err)) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        /* As every verb: unreachable brokers are not the operator's typing. */
        rc = st == KD_EKAFKA ? 3 : 2;
    } else if (kd_cli_read_hosts(conf, hosts, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
    } else if ((list = selected(hosts, filter))) {
        if (as_json) {
            char *text = json_dumps(list, JSON_COMPACT);

            printf("%s\n", text ? text : "[]");
            free(text);
        } else {
            print_table(list);
        }
        rc = 0;
    }
out:
    json_decref(list);
    json_decref(hosts);
    kd_bus_conf_free(conf);
    free(filter);
    return rc;
}
