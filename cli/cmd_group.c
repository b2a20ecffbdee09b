/* `kdeploy group`: deployment groups defined once, on the compacted groups
 * topic (key: the group's name). A group is a deployment spec without its
 * revision; `kdeploy create --group NAME --revision URL --sha256 HEX` adds
 * one and submits it as any create, which the planner checks as any. */
#include "cmd_group.h"

#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "spec.h"
#include "spec_check.h"
#include "topic_read.h"

/* Stands for the revision when a group file is checked as a spec. */
#define PLACEHOLDER_URL "file:///group-check"
#define PLACEHOLDER_SHA256 "0000000000000000000000000000000000000000000000000000000000000000"

typedef Kdeploy__V1__DeploymentSpec spec_t;

/* ---- the groups topic ---------------------------------------------------- */

/* Called for every record in order: g is NULL for a tombstone (deleted). */
typedef void (*group_fn)(void *arg, const char *name, const Kdeploy__V1__DeploymentGroup *g);

typedef struct group_read {
    group_fn fn;
    void *arg;
} group_read_t;

static void group_record(void *arg, kd_consumer_t *c, const kd_message_t *m)
{
    const group_read_t *r = arg;
    kd_envelope_t *env = NULL;

    if (!kd_name_valid(m->key))
        return;
    if (!m->value || !m->len)
        r->fn(r->arg, m->key, NULL);
    else if (kd_message_decode(c, m, &env, NULL, 0) == KD_OK &&
             env->body_case == KD_BODY(DEPLOYMENT_GROUP) && env->deployment_group->spec &&
             strcmp(env->deployment_group->name, m->key) == 0)
        r->fn(r->arg, m->key, env->deployment_group);
    kd_envelope_free(env);
}

static kd_status_t read_groups(const kd_bus_conf_t *conf, group_fn fn, void *arg, char *err,
                               size_t errsz)
{
    group_read_t r = {fn, arg};

    return kd_cli_read_topic(conf, KD_TOPIC_GROUPS, group_record, &r, err, errsz);
}

/* A deep copy, through the wire form: the spec outlives the message. */
static spec_t *spec_copy(const spec_t *spec)
{
    size_t len = kdeploy__v1__deployment_spec__get_packed_size(spec);
    uint8_t *buf = malloc(len ? len : 1);
    spec_t *copy = NULL;

    if (buf) {
        kdeploy__v1__deployment_spec__pack(spec, buf);
        copy = kdeploy__v1__deployment_spec__unpack(NULL, len, buf);
    }
    free(buf);
    return copy;
}

/* The latest definition of one group, while the topic is read. */
typedef struct find {
    const char *name;
    spec_t *spec;  /* owned; NULL: no such group (or deleted) */
    char *updated_by;
} find_t;

static void find_one(void *arg, const char *name, const Kdeploy__V1__DeploymentGroup *g)
{
    find_t *f = arg;

    if (strcmp(name, f->name) != 0)
        return;
    kd_spec_free(f->spec);
    free(f->updated_by);
    f->spec = g ? spec_copy(g->spec) : NULL;
    f->updated_by = g ? strdup(g->updated_by) : NULL;
}

static kd_status_t find_group(const kd_bus_conf_t *conf, find_t *f, char *err, size_t errsz)
{
    kd_status_t st = read_groups(conf, find_one, f, err, errsz);

    if (st == KD_OK && !f->spec)
        st = kd_err(err, errsz, KD_ENOTFOUND,
                    "no deployment group named %s (kdeploy group list shows them)", f->name);
    return st;
}

/* ---- a group as JSON (list, show) ---------------------------------------- */

static json_t *selector_json(const spec_t *spec)
{
    json_t *labels = json_object();

    for (size_t i = 0; i < spec->n_host_selector; i++)
        json_object_set_new(labels, spec->host_selector[i]->key,
                            json_string(spec->host_selector[i]->value));
    return json_pack("{s:o}", "labels", labels);
}

static json_t *hosts_json(char *const *hosts, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(hosts[i]));
    return a;
}

static void targets_json(json_t *o, const spec_t *spec)
{
    const Kdeploy__V1__BlueGreen *bg = spec->blue_green;

    if (spec->n_host_selector)
        json_object_set_new(o, "hosts", selector_json(spec));
    else if (spec->n_hosts)
        json_object_set_new(o, "hosts", hosts_json(spec->hosts, spec->n_hosts));
    if (bg && bg->blue && bg->green)
        json_object_set_new(
            o, "blue_green",
            json_pack("{s:{s:s, s:o}, s:{s:s, s:o}}", "blue", "server_group",
                      bg->blue->server_group, "hosts", hosts_json(bg->blue->hosts, bg->blue->n_hosts),
                      "green", "server_group", bg->green->server_group, "hosts",
                      hosts_json(bg->green->hosts, bg->green->n_hosts)));
    if (spec->load_balancer && *spec->load_balancer->server_group)
        json_object_set_new(o, "load_balancer",
                            json_pack("{s:s}", "server_group", spec->load_balancer->server_group));
    else if (spec->load_balancer && *spec->load_balancer->service)
        json_object_set_new(o, "load_balancer",
                            json_pack("{s:s}", "service", spec->load_balancer->service));
}

static void pace_json(json_t *o, const spec_t *spec)
{
    const Kdeploy__V1__HealthyHosts *h = spec->minimum_healthy_hosts;
    char buf[32];

    if (spec->deployment_config)
        json_object_set_new(o, "deployment_config",
                            json_string(kd_spec_config_name(spec->deployment_config)));
    if (h && h->value_case == KDEPLOY__V1__HEALTHY_HOSTS__VALUE_HOSTS)
        json_object_set_new(o, "minimum_healthy_hosts", json_integer(h->hosts));
    else if (h && h->value_case == KDEPLOY__V1__HEALTHY_HOSTS__VALUE_PERCENT) {
        snprintf(buf, sizeof buf, "%u%%", h->percent);
        json_object_set_new(o, "minimum_healthy_hosts", json_string(buf));
    }
    if (spec->n_concurrency == 1) {
        json_object_set_new(o, "concurrency",
                            json_string(kd_spec_concurrency_str(spec->concurrency[0], buf,
                                                                sizeof buf)));
    } else if (spec->n_concurrency) {
        json_t *ramp = json_array();

        for (size_t i = 0; i < spec->n_concurrency; i++)
            json_array_append_new(ramp, json_string(kd_spec_concurrency_str(spec->concurrency[i],
                                                                            buf, sizeof buf)));
        json_object_set_new(o, "concurrency", ramp);
    }
    if (spec->failure_threshold)
        json_object_set_new(o, "failure_threshold", json_integer(spec->failure_threshold));
}

/* The group as its file would write it (a spec's keys, no revision). */
static json_t *group_json(const char *name, const spec_t *spec, const char *updated_by)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "application", spec->application,
                          "group", spec->group, "strategy",
                          kd_spec_strategy_name(kd_spec_strategy(spec)));

    if (!o)
        return NULL;
    targets_json(o, spec);
    pace_json(o, spec);
    json_object_set_new(o, "auto_rollback", json_boolean(spec->auto_rollback));
    json_object_set_new(o, "allow_unknown_hosts", json_boolean(spec->allow_unknown_hosts));
    json_object_set_new(o, "ignore_stop_failures", json_boolean(spec->ignore_stop_failures));
    if (spec->file_exists)
        json_object_set_new(o, "file_exists",
                            json_string(kd_spec_file_exists_name(spec->file_exists)));
    json_object_set_new(o, "timeouts", json_pack("{s:i, s:i}", "host",
                                                 (int)kd_spec_host_timeout_s(spec), "deployment",
                                                 (int)kd_spec_deployment_timeout_s(spec)));
    if (spec->scripts) {
        json_t *sc = json_object();

        if (*spec->scripts->stop)
            json_object_set_new(sc, "stop", json_string(spec->scripts->stop));
        if (*spec->scripts->start)
            json_object_set_new(sc, "start", json_string(spec->scripts->start));
        if (*spec->scripts->check)
            json_object_set_new(sc, "check", json_string(spec->scripts->check));
        json_object_set_new(o, "scripts", sc);
    }
    if (updated_by)
        json_object_set_new(o, "updated_by", json_string(updated_by));
    return o;
}

/* ---- printing a group as YAML -------------------------------------------- */

static void print_scalar(json_t *v)
{
    char *text;

    if (json_is_string(v) && *json_string_value(v) &&
        strspn(json_string_value(v), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                     "0123456789._/-%") == strlen(json_string_value(v))) {
        printf("%s", json_string_value(v));
        return;
    }
    /* A JSON string or number is a YAML one too, escapes and all. */
    text = json_dumps(v, JSON_ENCODE_ANY);
    printf("%s", text ? text : "\"\"");
    free(text);
}

/* Mappings as indented blocks, lists of scalars in flow style: a file
 * `kdeploy group set` takes back. */
static void print_yaml(json_t *o, int indent)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v) {
        printf("%*s%s:", indent, "", k);
        if (json_is_object(v)) {
            printf("\n");
            print_yaml(v, indent + 2);
            continue;
        }
        printf(" ");
        if (json_is_array(v)) {
            size_t i;
            json_t *item;

            printf("[");
            json_array_foreach(v, i, item) {
                printf("%s", i ? ", " : "");
                print_scalar(item);
            }
            printf("]");
        } else {
            print_scalar(v);
        }
        printf("\n");
    }
}

/* ---- verbs ---------------------------------------------------------------- */

typedef struct group_opts {
    kd_cli_common_t cli;
    const char *file;
    bool json;
} group_opts_t;

static int parse(int argc, char **argv, group_opts_t *o, const char *usage, int nargs)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "f:hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&o->cli, opt, optarg))
            continue;
        switch (opt) {
        case 'f': o->file = optarg; break;
        case 'j': o->json = true; break;
        case 'h': printf("%s" KD_CLI_COMMON_HELP, usage); return 0;
        default: fprintf(stderr, "%s", usage); return 2;
        }
    }
    if (argc - optind != nargs) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (nargs && !kd_name_valid(argv[optind])) {
        fprintf(stderr, "kdeploy: group: \"%s\" is not a group name (1 to 128 letters, digits, "
                        "'.', '_' or '-')\n", argv[optind]);
        return 2;
    }
    return -1;
}

static int setup(group_opts_t *o, kd_bus_conf_t **conf)
{
    char err[1024];
    kd_status_t st;

    if ((st = kd_cli_setup(&o->cli, "kdeploy", conf, NULL, err, sizeof err)) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        /* As every verb: unreachable brokers are not the operator's typing. */
        return st == KD_EKAFKA ? 3 : 2;
    }
    if (!o->cli.log_level)
        kd_log_setup("kdeploy", KD_LOG_WARN, o->cli.log_json);
    return -1;
}

static void whoami(char *out, size_t outsz)
{
    struct passwd *pw = getpwuid(getuid());
    char host[256] = "";

    gethostname(host, sizeof host - 1);
    snprintf(out, outsz, "%s@%s", pw ? pw->pw_name : "unknown", host);
}

/* The group file, read as a spec without revision, then checked as the
 * planner checks a spec (with a placeholder revision). */
static kd_status_t load_group(const char *path, spec_t **out, char *err, size_t errsz)
{
    Kdeploy__V1__Revision placeholder = KDEPLOY__V1__REVISION__INIT;
    char why[1024];
    kd_status_t st = kd_spec_load_group_file(path, out, err, errsz);

    if (st != KD_OK)
        return st;
    placeholder.url = PLACEHOLDER_URL;
    placeholder.sha256 = PLACEHOLDER_SHA256;
    (*out)->revision = &placeholder;
    st = kd_spec_check(*out, why, sizeof why);
    (*out)->revision = NULL;
    if (st != KD_OK) {
        kd_spec_free(*out);
        *out = NULL;
        return kd_err(err, errsz, st, "%s: %s", path, why);
    }
    return KD_OK;
}

static int group_set(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy group set NAME -f GROUP.yaml\n"
                                "Stores (or replaces) a deployment group: a spec without its "
                                "revision.\n";
    Kdeploy__V1__DeploymentGroup g = KDEPLOY__V1__DEPLOYMENT_GROUP__INIT;
    group_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_producer_t *p = NULL;
    spec_t *spec = NULL;
    char err[8192], eid[KD_UUID_LEN], who[300];
    kd_envelope_t env;
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0)
        return rc;
    if (!o.file) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (load_group(o.file, &spec, err, sizeof err) != KD_OK) {
        fprintf(stderr, "%s%skdeploy: %s: not stored\n", err,
                err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n", o.file);
        return 1;
    }
    if ((rc = setup(&o, &conf)) < 0) {
        whoami(who, sizeof who);
        g.name = argv[optind];
        g.spec = spec;
        g.updated_by = who;
        kd_envelope_init(&env, eid, "", "cli");
        env.body_case = KD_BODY(DEPLOYMENT_GROUP);
        env.deployment_group = &g;
        rc = 1;
        if (kd_producer_new(conf, "cli", &p, err, sizeof err) == KD_OK) {
            env.producer = (char *)kd_producer_self(p);
            if (kd_producer_send(p, KD_TOPIC_GROUPS, g.name, &env, true, err, sizeof err) == KD_OK)
                rc = 0;
        }
        if (rc)
            fprintf(stderr, "kdeploy: %s\n", err);
        else
            printf("group %s stored\n", g.name);
    }
    kd_producer_free(p);
    kd_spec_free(spec);
    kd_bus_conf_free(conf);
    return rc;
}

static void list_one(void *arg, const char *name, const Kdeploy__V1__DeploymentGroup *g)
{
    json_t *all = arg;

    if (g)
        json_object_set_new(all, name, group_json(name, g->spec, g->updated_by));
    else
        json_object_del(all, name);
}

static void print_list(json_t *all)
{
    const char *name;
    json_t *g;

    printf("%-20s  %-24s  %-10s  %-28s  %s\n", "NAME", "APPLICATION/GROUP", "STRATEGY", "HOSTS",
           "PACE");
    json_object_foreach(all, name, g) {
        kd_buf_t app = KD_BUF_INIT(0), hosts = KD_BUF_INIT(0);
        json_t *h = json_object_get(g, "hosts");
        json_t *pace = json_object_get(g, "deployment_config");

        kd_buf_printf(&app, "%s/%s", json_string_value(json_object_get(g, "application")),
                      json_string_value(json_object_get(g, "group")));
        if (json_is_array(h)) {
            kd_buf_printf(&hosts, "%zu listed", json_array_size(h));
        } else if (json_is_object(h)) {
            const char *k;
            json_t *v;
            bool first = true;

            json_object_foreach(json_object_get(h, "labels"), k, v) {
                kd_buf_printf(&hosts, "%s%s=%s", first ? "labels " : ",", k, json_string_value(v));
                first = false;
            }
        } else {
            kd_buf_printf(&hosts, "blue/green");
        }
        if (!pace)
            pace = json_object_get(g, "minimum_healthy_hosts");
        if (!pace)
            pace = json_object_get(g, "concurrency");
        printf("%-20s  %-24s  %-10s  %-28s  ", name, kd_buf_str(&app),
               json_string_value(json_object_get(g, "strategy")), kd_buf_str(&hosts));
        if (pace && !json_is_array(pace))
            print_scalar(pace);
        else
            printf("%s", pace ? "ramp" : "1");
        printf("\n");
        kd_buf_free(&app);
        kd_buf_free(&hosts);
    }
    printf("%zu group%s\n", json_object_size(all), json_object_size(all) == 1 ? "" : "s");
}

static int group_list(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy group list [--json]\n"
                                "Lists the deployment groups.\n";
    group_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    json_t *all = json_object();
    char err[1024];
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 0)) < 0 && (rc = setup(&o, &conf)) < 0) {
        rc = 1;
        if (read_groups(conf, list_one, all, err, sizeof err) != KD_OK) {
            fprintf(stderr, "kdeploy: %s\n", err);
        } else if (o.json) {
            json_t *arr = json_array();
            const char *name;
            json_t *g;
            char *text;

            json_object_foreach(all, name, g)
                json_array_append(arr, g);
            text = json_dumps(arr, JSON_COMPACT);
            printf("%s\n", text ? text : "[]");
            free(text);
            json_decref(arr);
            rc = 0;
        } else {
            print_list(all);
            rc = 0;
        }
    }
    json_decref(all);
    kd_bus_conf_free(conf);
    return rc;
}

static int group_show(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy group show NAME [--json]\n"
                                "Prints a deployment group as its file would write it.\n";
    group_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    find_t f = {0};
    char err[1024];
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0)
        return rc;
    f.name = argv[optind];
    if (find_group(conf, &f, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = 1;
    } else {
        json_t *g = group_json(f.name, f.spec, f.updated_by);

        if (o.json) {
            char *text = json_dumps(g, JSON_COMPACT);

            printf("%s\n", text ? text : "{}");
            free(text);
        } else {
            json_object_del(g, "name");
            json_object_del(g, "updated_by");
            printf("# deployment group %s, stored by %s\n", f.name,
                   f.updated_by ? f.updated_by : "?");
            print_yaml(g, 0);
        }
        json_decref(g);
        rc = 0;
    }
    kd_spec_free(f.spec);
    free(f.updated_by);
    kd_bus_conf_free(conf);
    return rc;
}

static int group_delete(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy group delete NAME\n"
                                "Deletes a deployment group (deployments made from it stay).\n";
    group_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_producer_t *p = NULL;
    find_t f = {0};
    char err[1024];
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0)
        return rc;
    f.name = argv[optind];
    rc = 1;
    if (find_group(conf, &f, err, sizeof err) == KD_OK &&
        kd_producer_new(conf, "cli", &p, err, sizeof err) == KD_OK &&
        kd_producer_send_tombstone(p, KD_TOPIC_GROUPS, f.name, err, sizeof err) == KD_OK)
        rc = 0;
    if (rc)
        fprintf(stderr, "kdeploy: %s\n", err);
    else
        printf("group %s deleted\n", f.name);
    kd_producer_free(p);
    kd_spec_free(f.spec);
    free(f.updated_by);
    kd_bus_conf_free(conf);
    return rc;
}

/* The verb's index: the first argument that is neither an option nor an
 * option's value (`kdeploy --brokers B group set` arrives as `group
 * --brokers B set`); 0 if none. */
static int verb_index(int argc, char **argv)
{
    static const char *const with_value[] = {"--brokers", "--config", "--topic-prefix",
                                             "--log-level", "-X", "-f", "--file", NULL};

    for (int i = 1; i < argc; i++) {
        bool takes = false;

        if (argv[i][0] != '-')
            return i;
        for (size_t k = 0; with_value[k]; k++)
            takes |= strcmp(argv[i], with_value[k]) == 0;
        i += takes;
    }
    return 0;
}

int kd_cmd_group(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } verbs[] = {{"set", group_set}, {"list", group_list}, {"show", group_show},
                 {"delete", group_delete}};
    static const char *const names[] = {"set", "list", "show", "delete", NULL};
    int v = verb_index(argc, argv);
    const char *near;
    char *verb;

    if (!v) {
        printf("usage: kdeploy group set NAME -f GROUP.yaml | list | show NAME | delete NAME\n"
               "Deployment groups: a spec without its revision, stored once, deployed with\n"
               "kdeploy create --group NAME --revision URL --sha256 HEX.\n");
        return argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? 0
                                                                                          : 2;
    }
    /* The verb takes the place of argv[0]: its options are all the rest. */
    verb = argv[v];
    memmove(argv + 1, argv, (size_t)v * sizeof *argv);
    argv[1] = verb;
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (strcmp(verb, verbs[i].name) == 0)
            return verbs[i].fn(argc - 1, argv + 1);
    near = kd_did_you_mean(verb, names);
    fprintf(stderr, "kdeploy: group: unknown verb '%s'%s%s%s (set, list, show or delete)\n",
            verb, near ? ", did you mean '" : "", near ? near : "", near ? "'?" : "");
    return 2;
}

kd_status_t kd_group_spec(const kd_bus_conf_t *conf, const char *name,
                          const Kdeploy__V1__Revision *revision, spec_t **out, char *err,
                          size_t errsz)
{
    find_t f = {.name = name};
    kd_status_t st;

    if (!kd_name_valid(name))
        return kd_err(err, errsz, KD_EINVAL, "\"%s\" is not a group name", name);
    if ((st = find_group(conf, &f, err, errsz)) != KD_OK)
        return st;
    free(f.updated_by);
    if (!(f.spec->revision = malloc(sizeof *f.spec->revision))) {
        kd_spec_free(f.spec);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    kdeploy__v1__revision__init(f.spec->revision);
    f.spec->revision->url = strdup(revision->url ? revision->url : "");
    f.spec->revision->sha256 = strdup(revision->sha256 ? revision->sha256 : "");
    f.spec->revision->md5 = strdup(revision->md5 ? revision->md5 : "");
    f.spec->revision->label = strdup(revision->label ? revision->label : "");
    if (!f.spec->revision->url || !f.spec->revision->sha256 || !f.spec->revision->md5 ||
        !f.spec->revision->label) {
        kd_spec_free(f.spec);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    *out = f.spec;
    return KD_OK;
}
