/* The operator's verbs: create, rollback, stop, pause, resume, status, list.
 * Each publishes a request (keyed by deploy id) or reads the deployments
 * topic; with --wait it follows the deployment to its end. */
#include "cmd_deploy.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_group.h"
#include "cmd_hosts.h"
#include "follow.h"
#include "ids.h"
#include "log.h"
#include "spec.h"
#include "spec_check.h"
#include "workflow.h"

#define STATUS(name) KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_##name
/* Kafka's default message.max.bytes (1 MB) less room for headers. */
#define REQUEST_MAX_BYTES 1000000

typedef struct verb_opts {
    kd_cli_common_t cli;
    const char *file;
    const char *reason;
    bool wait;
    bool dry_run;
    bool json;
    int timeout_s;
    int limit;
    /* create --group NAME: the group's spec with this revision. */
    const char *group;
    Kdeploy__V1__Revision revision;
} verb_opts_t;

static void requested_by(char *out, size_t outsz)
{
    struct passwd *pw = getpwuid(getuid());
    char host[256] = "";

    gethostname(host, sizeof host - 1);
    snprintf(out, outsz, "%s@%s", pw ? pw->pw_name : "unknown", host);
}

static int parse(int argc, char **argv, verb_opts_t *o, const char *usage_text, int nargs)
{
    static const struct option longopts[] = {
        KD_CLI_COMMON_LONGOPTS,
        {"file", required_argument, NULL, 'f'},
        {"wait", no_argument, NULL, 'w'},
        {"dry-run", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"reason", required_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"limit", required_argument, NULL, 'l'},
        {"group", required_argument, NULL, 'G'},
        {"revision", required_argument, NULL, 'R'},
        {"sha256", required_argument, NULL, 'S'},
        {"md5", required_argument, NULL, 'M'},
        {"label", required_argument, NULL, 'L'},
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
        case 'w': o->wait = true; break;
        case 'n': o->dry_run = true; break;
        case 'j': o->json = true; break;
        case 'r': o->reason = optarg; break;
        case 't': o->timeout_s = (int)strtol(optarg, NULL, 10); break;
        case 'l': o->limit = (int)strtol(optarg, NULL, 10); break;
        case 'G': o->group = optarg; break;
        case 'R': o->revision.url = optarg; break;
        case 'S': o->revision.sha256 = optarg; break;
        case 'M': o->revision.md5 = optarg; break;
        case 'L': o->revision.label = optarg; break;
        case 'h': printf("%s" KD_CLI_COMMON_HELP, usage_text); return 0;
        default: fprintf(stderr, "%s", usage_text); return 2;
        }
    }
    if (argc - optind != nargs) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    return -1;
}

static int setup(verb_opts_t *o, kd_bus_conf_t **conf)
{
    char err[1024];

    if (kd_cli_setup(&o->cli, "kdeploy", conf, NULL, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return 2;
    }
    if (!o->cli.log_level)
        kd_log_setup("kdeploy", KD_LOG_WARN, o->cli.log_json);
    return -1;
}

static int publish(const kd_bus_conf_t *conf, kd_envelope_t *env)
{
    kd_producer_t *p = NULL;
    char err[1024];
    kd_status_t st = kd_producer_new(conf, "cli", &p, err, sizeof err);

    if (st == KD_OK) {
        env->producer = (char *)kd_producer_self(p);
        st = kd_producer_send(p, KD_TOPIC_REQUESTS, env->deploy_id, env, true, err, sizeof err);
    }
    kd_producer_free(p);
    if (st != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return 1;
    }
    return 0;
}

/* Follows a deployment and turns its end into the exit code: 0 only if it
 * succeeded (or, for pause and stop, got there). */
static int wait_for(const kd_bus_conf_t *conf, const char *id, const verb_opts_t *o,
                    bool until_paused, Kdeploy__V1__DeploymentStatus want)
{
    kd_wait_t w = {.deploy_id = id, .until_paused = until_paused, .follow_rollback = true,
                   .timeout_s = o->timeout_s, .out = stderr, .live = isatty(STDERR_FILENO)};
    char err[1024];

    if (kd_follow_wait(conf, &w, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return 1;
    }
    switch (w.outcome) {
    case KD_WAIT_REJECTED:
        fprintf(stderr, "kdeploy: %s was rejected: %s\n", id, w.reason);
        return 1;
    case KD_WAIT_TIMEOUT:
        fprintf(stderr, "kdeploy: gave up waiting for %s after %d s\n", id, o->timeout_s);
        return 1;
    case KD_WAIT_PAUSED:
        fprintf(stderr, "kdeploy: %s is paused\n", id);
        return 0;
    default:
        break;
    }
    if (w.status == want && !w.rollback_id[0])
        return 0;
    if (w.rollback_id[0])
        fprintf(stderr, "kdeploy: %s failed (%s); rolled back as %s: %s\n", id, w.reason,
                w.rollback_id, kd_status_name_of(w.rollback_status));
    else
        fprintf(stderr, "kdeploy: %s ended %s%s%s\n", id, kd_status_name_of(w.status),
                w.reason[0] ? ": " : "", w.reason);
    return w.status == want ? 0 : 1;
}

static void print_plan(const Kdeploy__V1__DeploymentSpec *spec)
{
    const kd_workflow_t *wf = kd_workflow_for(spec, false);
    char *const *hosts = spec->hosts;
    size_t n = spec->n_hosts, done = 0;

    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN) {
        printf("blue-green: deploys to the idle group (blue the first time), then swaps %s\n",
               spec->load_balancer->service);
        hosts = spec->blue_green->blue->hosts;
        n = spec->blue_green->blue->n_hosts;
    }
    printf("%s/%s: %s of %s\nsteps per host:", spec->application, spec->group, wf->name,
           spec->revision->url);
    for (size_t i = 0; i < wf->count; i++)
        printf(" %s", kd_event_name(wf->steps[i]));
    printf("%s\n", wf->swap_after ? ", then SwapTraffic" : "");
    for (size_t b = 0; done < n; b++) {
        size_t size = kd_spec_batch_size(spec, b, n);

        printf("batch %zu:", b + 1);
        for (size_t i = done; i < done + size && i < n; i++)
            printf(" %s", hosts[i]);
        printf("\n");
        done += size;
    }
    printf("fails after %u failed host(s)%s\n", kd_spec_failure_threshold_for(spec, n),
           spec->auto_rollback ? ", then rolls back" : "");
}

int kd_cmd_create(int argc, char **argv)
{
    static const char usage[] =
        "usage: kdeploy create -f SPEC.yaml [--wait] [--dry-run] [--timeout S]\n"
        "       kdeploy create --group NAME --revision URL --sha256 HEX [--label L] [...]\n"
        "Submits a deployment; prints its id as the first line. With --wait, follows it\n"
        "and exits 0 only if it succeeded. --dry-run prints the per-host plan only, and\n"
        "the hosts no worker has announced. --group deploys a stored deployment group.\n";
    verb_opts_t o = {0};
    Kdeploy__V1__DeploymentSpec *spec = NULL;
    Kdeploy__V1__CreateDeployment c = KDEPLOY__V1__CREATE_DEPLOYMENT__INIT;
    kd_bus_conf_t *conf = NULL;
    char err[8192], id[KD_UUID_LEN], eid[KD_UUID_LEN], who[300];
    kd_envelope_t env;
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 0)) >= 0)
        return rc;
    if (!o.file == !o.group) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    if (o.group && (rc = setup(&o, &conf)) >= 0)
        return rc;
    if (o.group ? kd_group_spec(conf, o.group, &o.revision, &spec, err, sizeof err) != KD_OK
                : kd_spec_load_file(o.file, &spec, err, sizeof err) != KD_OK) {
        kd_bus_conf_free(conf);
        if (o.group) {
            fprintf(stderr, "kdeploy: create --group %s: %s\n", o.group, err);
            return 1;
        }
        fprintf(stderr, "%s", err);
        fprintf(stderr, "%skdeploy: %s: not submitted\n", err[strlen(err) - 1] == '\n' ? "" : "\n",
                o.file);
        return 1;
    }
    /* The planner checks again (anyone can write the topic); checking here
     * says so before anything is sent. */
    if (kd_spec_check(spec, err, sizeof err) != KD_OK) {
        fprintf(stderr, "%s: %s\nkdeploy: %s: not submitted\n", o.group ? o.group : o.file, err,
                o.group ? o.group : o.file);
        kd_spec_free(spec);
        kd_bus_conf_free(conf);
        return 1;
    }
    if (o.dry_run) {
        /* The hosts as the planner will find them: selected, or unknown. */
        /* The plan is printed whatever the hosts' check found, which then
         * decides the exit code. */
        if (conf || (rc = setup(&o, &conf)) < 0)
            rc = kd_cli_check_hosts(conf, spec) == KD_OK ? 0 : 1;
        if (rc <= 1 && (spec->n_hosts || !spec->n_host_selector))
            print_plan(spec);
        kd_spec_free(spec);
        kd_bus_conf_free(conf);
        return rc;
    }
    kd_uuid_new(id);
    requested_by(who, sizeof who);
    kd_envelope_init(&env, eid, id, "cli");
    c.spec = spec;
    c.requested_by = who;
    env.body_case = KD_BODY(CREATE);
    env.create = &c;
    if (kdeploy__v1__envelope__get_packed_size(&env) > REQUEST_MAX_BYTES) {
        fprintf(stderr, "kdeploy: %s: the request would be %zu bytes, over the %d bytes a Kafka "
                        "message holds by default: split the hosts over several deployments\n",
                o.file, kdeploy__v1__envelope__get_packed_size(&env), REQUEST_MAX_BYTES);
        kd_spec_free(spec);
        return 1;
    }
    if (conf || (rc = setup(&o, &conf)) < 0) {
        if ((rc = publish(conf, &env)) == 0) {
            printf("%s\n", id);
            fflush(stdout);
            if (o.wait)
                rc = wait_for(conf, id, &o, false, STATUS(SUCCEEDED));
        }
    }
    kd_spec_free(spec);
    kd_bus_conf_free(conf);
    return rc;
}

int kd_cmd_rollback(int argc, char **argv)
{
    static const char usage[] =
        "usage: kdeploy rollback ID [--wait] [--reason TEXT]\n"
        "Rolls a deployment back as a new deployment; prints the rollback's id.\n";
    verb_opts_t o = {0};
    Kdeploy__V1__RollbackDeployment r = KDEPLOY__V1__ROLLBACK_DEPLOYMENT__INIT;
    kd_bus_conf_t *conf = NULL;
    char id[KD_UUID_LEN], eid[KD_UUID_LEN], who[300];
    kd_envelope_t env;
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0)
        return rc;
    kd_uuid_new(id);
    requested_by(who, sizeof who);
    kd_envelope_init(&env, eid, id, "cli");
    r.rollback_of = argv[optind];
    r.requested_by = who;
    r.reason = (char *)(o.reason ? o.reason : "requested by an operator");
    env.body_case = KD_BODY(ROLLBACK);
    env.rollback = &r;
    if ((rc = publish(conf, &env)) == 0) {
        printf("%s\n", id);
        fflush(stdout);
        if (o.wait)
            rc = wait_for(conf, id, &o, false, STATUS(ROLLBACK_SUCCEEDED));
    }
    kd_bus_conf_free(conf);
    return rc;
}

static int control(int argc, char **argv, const char *verb)
{
    char usage[256];
    verb_opts_t o = {0};
    Kdeploy__V1__StopDeployment stop = KDEPLOY__V1__STOP_DEPLOYMENT__INIT;
    Kdeploy__V1__PauseDeployment pause = KDEPLOY__V1__PAUSE_DEPLOYMENT__INIT;
    Kdeploy__V1__ResumeDeployment resume = KDEPLOY__V1__RESUME_DEPLOYMENT__INIT;
    kd_bus_conf_t *conf = NULL;
    char eid[KD_UUID_LEN], who[300];
    kd_envelope_t env;
    int rc;

    snprintf(usage, sizeof usage, "usage: kdeploy %s ID [--wait]\n", verb);
    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0)
        return rc;
    requested_by(who, sizeof who);
    kd_envelope_init(&env, eid, argv[optind], "cli");
    if (strcmp(verb, "stop") == 0) {
        stop.requested_by = who;
        stop.reason = (char *)(o.reason ? o.reason : "");
        env.body_case = KD_BODY(STOP);
        env.stop = &stop;
    } else if (strcmp(verb, "pause") == 0) {
        pause.requested_by = who;
        env.body_case = KD_BODY(PAUSE);
        env.pause = &pause;
    } else {
        resume.requested_by = who;
        env.body_case = KD_BODY(RESUME);
        env.resume = &resume;
    }
    if ((rc = publish(conf, &env)) == 0 && o.wait)
        rc = wait_for(conf, argv[optind], &o, strcmp(verb, "pause") == 0,
                      strcmp(verb, "stop") == 0 ? STATUS(STOPPED) : STATUS(SUCCEEDED));
    kd_bus_conf_free(conf);
    return rc;
}

int kd_cmd_watch(int argc, char **argv)
{
    static const char usage[] =
        "usage: kdeploy watch ID [--timeout S]\n"
        "Follows a deployment (and the rollback that follows it) to its end: on a terminal\n"
        "a progress bar and a line per host in flight, else one line per event. Exits 0\n"
        "only if it succeeded.\n";
    verb_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0)
        return rc;
    rc = wait_for(conf, argv[optind], &o, false, STATUS(SUCCEEDED));
    kd_bus_conf_free(conf);
    return rc;
}

int kd_cmd_stop(int argc, char **argv) { return control(argc, argv, "stop"); }
int kd_cmd_pause(int argc, char **argv) { return control(argc, argv, "pause"); }
int kd_cmd_resume(int argc, char **argv) { return control(argc, argv, "resume"); }

int kd_cmd_status(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy status ID [--json]\n"
                                "Shows a deployment and each of its hosts.\n";
    verb_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_model_t *m = kd_model_new();
    const kd_deploy_t *d;
    char err[1024];
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0) {
        kd_model_free(m);
        return rc;
    }
    if (kd_follow_load(conf, m, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = 1;
    } else if (!(d = kd_model_find(m, argv[optind]))) {
        fprintf(stderr, "kdeploy: no deployment %s\n", argv[optind]);
        rc = 1;
    } else {
        if (o.json)
            kd_follow_print_json(stdout, d);
        else
            kd_follow_print_status(stdout, d);
        rc = 0;
    }
    kd_model_free(m);
    kd_bus_conf_free(conf);
    return rc;
}

static int newest_first(const void *a, const void *b)
{
    int64_t x = kd_deploy_accepted_ms(*(const kd_deploy_t *const *)a);
    int64_t y = kd_deploy_accepted_ms(*(const kd_deploy_t *const *)b);

    return x < y ? 1 : x > y ? -1 : 0;
}

static void print_list(kd_model_t *m, const verb_opts_t *o)
{
    size_t n = kd_model_count(m), i = 0;
    const kd_deploy_t **all;

    if (!(all = calloc(n + 1, sizeof *all)))
        return;
    for (const kd_deploy_t *d = kd_model_first(m); d && i < n; d = kd_model_next(d))
        all[i++] = d;
    n = i;
    /* The topic's partitions interleave: order by when each was accepted. */
    qsort(all, n, sizeof *all, newest_first);
    for (i = 0; i < n && (int)i < o->limit; i++) {
        const kd_deploy_t *d = all[i];

        if (o->json)
            kd_follow_print_json(stdout, d);
        else
            printf("%s  %-10s %-10s %-20s %zu hosts%s%s\n", kd_deploy_id(d),
                   kd_deploy_spec(d)->application, kd_deploy_spec(d)->group,
                   kd_status_name_of(kd_deploy_status(d)), kd_deploy_host_count(d),
                   kd_deploy_rollback_of(d)[0] ? "  rollback of " : "", kd_deploy_rollback_of(d));
    }
    free(all);
}

int kd_cmd_list(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy list [--limit N] [--json]\n"
                                "Lists recent deployments, newest first.\n";
    verb_opts_t o = {.limit = 20};
    kd_bus_conf_t *conf = NULL;
    kd_model_t *m = kd_model_new();
    char err[1024];
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 0)) >= 0 || (rc = setup(&o, &conf)) >= 0) {
        kd_model_free(m);
        return rc;
    }
    if (kd_follow_load(conf, m, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = 1;
    } else {
        print_list(m, &o);
        rc = 0;
    }
    kd_model_free(m);
    kd_bus_conf_free(conf);
    return rc;
}
