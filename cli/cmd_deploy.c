/* The operator's verbs: create, rollback, stop, pause, resume, status, list.
 * Each publishes a request (keyed by deploy id) or reads the deployments
 * topic; with --wait it follows the deployment to its end. */
#include "cmd_deploy.h"

#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "cli.h"
#include "cmd_group.h"
#include "cmd_hosts.h"
#include "follow.h"
#include "ids.h"
#include "log.h"
#include "lookup.h"
#include "outcome.h"
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
    bool rollback;      /* stop --rollback */
    bool spec_arg;      /* create: the spec may come without -f */
    int timeout_s;      /* 0: not given */
    int limit;
    /* create --group NAME: the group's spec with this revision. */
    const char *group;
    Kdeploy__V1__Revision revision;
} verb_opts_t;

/* How long create, rollback, stop, pause and resume wait for the planner's
 * answer when --timeout is not given. */
#define ANSWER_TIMEOUT_S 30

static void requested_by(char *out, size_t outsz)
{
    struct passwd *pw = getpwuid(getuid());
    char host[256] = "";

    gethostname(host, sizeof host - 1);
    snprintf(out, outsz, "%s@%s", pw ? pw->pw_name : "unknown", host);
}

static bool number_arg(const char *opt, const char *arg, int min, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (end == arg || *end || v < min || v > 1000000) {
        fprintf(stderr, "kdeploy: %s %s: expected a whole number from %d\n", opt, arg, min);
        return false;
    }
    *out = (int)v;
    return true;
}

/* The common options and the verbs' own. Returns -1 to go on, else the
 * exit code. A create's spec may be given without -f. */
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
        {"rollback", no_argument, NULL, 'B'},
        {"group", required_argument, NULL, 'G'},
        {"revision", required_argument, NULL, 'V'},
        {"sha256", required_argument, NULL, 'S'},
        {"md5", required_argument, NULL, 'M'},
        {"label", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "f:hX:", longopts, NULL)) != -1) {
        if (kd_cli_common_opt(&o->cli, opt, optarg))
            continue;
        switch (opt) {
        case 'f': o->file = optarg; break;
        case 'w': o->wait = true; break;
        case 'n': o->dry_run = true; break;
        case 'j': o->json = true; break;
        case 'r': o->reason = optarg; break;
        case 'B': o->rollback = true; break;
        case 't':
            if (!number_arg("--timeout", optarg, 1, &o->timeout_s))
                return KD_EXIT_USAGE;
            break;
        case 'l':
            if (!number_arg("--limit", optarg, 1, &o->limit))
                return KD_EXIT_USAGE;
            break;
        case 'G': o->group = optarg; break;
        case 'V': o->revision.url = optarg; break;
        case 'S': o->revision.sha256 = optarg; break;
        case 'M': o->revision.md5 = optarg; break;
        case 'L': o->revision.label = optarg; break;
        case 'h': printf("%s" KD_CLI_COMMON_HELP KD_EXIT_HELP, usage_text); return KD_EXIT_OK;
        default:
            kd_cli_bad_option("kdeploy", argc, argv, longopts);
            fprintf(stderr, "%s", usage_text);
            return KD_EXIT_USAGE;
        }
    }
    if (o->spec_arg && argc - optind == 1 && !o->file)
        o->file = argv[optind++]; /* `kdeploy create v1.yaml` */
    if (argc - optind != nargs) {
        fprintf(stderr, "%s", usage_text);
        return KD_EXIT_USAGE;
    }
    return -1;
}

static int setup(verb_opts_t *o, kd_bus_conf_t **conf)
{
    char err[1024];
    kd_status_t st;

    if ((st = kd_cli_setup(&o->cli, "kdeploy", conf, NULL, err, sizeof err)) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        /* Unreachable brokers are not the operator's typing. */
        return st == KD_EKAFKA ? KD_EXIT_NO_ANSWER : KD_EXIT_USAGE;
    }
    if (!o->cli.log_level && !o->cli.verbose)
        kd_log_setup("kdeploy", KD_LOG_WARN, o->cli.log_json);
    return -1;
}

/* The deployment an operator names, by its id or the start of it. A whole
 * id given to a request the planner answers (stop, pause, resume,
 * rollback) is sent as it is: the planner refuses an unknown one, and the
 * topics need not be read. */
static int resolve(const kd_bus_conf_t *conf, const char *given, bool for_request, char *full,
                   size_t fullsz)
{
    char err[4096];
    kd_status_t st;

    if (for_request && kd_uuid_valid(given)) {
        snprintf(full, fullsz, "%s", given);
        return -1;
    }
    st = kd_lookup_id(conf, given, full, fullsz, err, sizeof err);

    if (st == KD_OK)
        return -1;
    fprintf(stderr, "kdeploy: %s\n", err);
    return st == KD_ENOTFOUND || st == KD_ECONFLICT ? KD_EXIT_NOT_FOUND : KD_EXIT_NO_ANSWER;
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
        return KD_EXIT_NO_ANSWER;
    }
    return KD_EXIT_OK;
}

static void print_answer_json(const kd_envelope_t *req, const char *verb, const kd_answer_t *a)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "deploy_id", req->deploy_id, "request",
                          verb, "answer",
                          a->kind == KD_ANSWER_ACCEPTED  ? "accepted"
                          : a->kind == KD_ANSWER_REFUSED ? "refused" : "none",
                          "status", a->status, "reason", a->reason);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (text)
        printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(o);
}

/* Sends a request and waits for the planner's answer to it. Listening
 * starts before the request is sent, so a quick answer is not missed. */
static int request(const kd_bus_conf_t *conf, kd_envelope_t *env, const char *verb,
                   const verb_opts_t *o)
{
    int timeout_s = o->timeout_s ? o->timeout_s : ANSWER_TIMEOUT_S;
    kd_answer_wait_t *aw = NULL;
    kd_answer_t a = {.kind = KD_ANSWER_NONE};
    char err[1024];
    int rc;

    if (kd_answer_open(conf, env->deploy_id, &aw, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return KD_EXIT_NO_ANSWER;
    }
    if ((rc = publish(conf, env)) == KD_EXIT_OK &&
        kd_answer_wait(aw, env, timeout_s * 1000, &a, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = KD_EXIT_NO_ANSWER;
    }
    kd_answer_close(aw);
    if (rc != KD_EXIT_OK)
        return rc;
    if (o->json)
        print_answer_json(env, verb, &a);
    switch (a.kind) {
    case KD_ANSWER_NONE:
        fprintf(stderr, "kdeploy: no answer from the planner in %d s: is kdeploy-planner "
                        "running?\n", timeout_s);
        return KD_EXIT_NO_ANSWER;
    case KD_ANSWER_REFUSED:
        fprintf(stderr, "kdeploy: %s %s: %s\n", verb,
                env->body_case == KD_BODY(CREATE) || env->body_case == KD_BODY(ROLLBACK)
                    ? "rejected" : "refused", a.reason);
        return KD_EXIT_FAILED;
    default:
        return KD_EXIT_OK;
    }
}

/* The last word of a wait, on stderr, and its exit code. */
static int wait_end(const kd_wait_t *w, const char *id, Kdeploy__V1__DeploymentStatus want)
{
    const char *reason = w->reason[0] ? w->reason : "no reason given";
    /* How it ended before its rollback: failed, or stopped (stop --rollback). */
    const char *ended = w->summary[0] ? w->summary : "failed";
    bool stopped = w->summary[0] && strcmp(w->summary, "stopped") == 0;

    if (w->outcome == KD_WAIT_PAUSED) {
        fprintf(stderr, "kdeploy: %s is paused\n", id);
        return KD_EXIT_OK;
    }
    if (w->rollback_id[0] && strncmp(w->rollback_summary, "rollback: nothing", 17) == 0) {
        fprintf(stderr, "kdeploy: %s %s, nothing to roll back (%s); rollback %s: %s\n", id,
                ended, reason, w->rollback_id, w->rollback_summary + 10);
        return stopped && want == STATUS(STOPPED) ? KD_EXIT_OK : KD_EXIT_FAILED;
    }
    if (w->rollback_id[0]) {
        bool back = w->rollback_status == STATUS(ROLLBACK_SUCCEEDED);

        fprintf(stderr, "kdeploy: %s %s, %s (%s); rolled back as %s: %s\n", id, ended,
                back ? "rolled back" : "rollback failed", reason, w->rollback_id,
                kd_status_name_of(w->rollback_status));
        /* stop --rollback --wait asked for just this. */
        return stopped && back && want == STATUS(STOPPED) ? KD_EXIT_OK : KD_EXIT_FAILED;
    }
    /* Watching a rollback: its success is a rollback's. */
    if (w->is_rollback && want == STATUS(SUCCEEDED))
        want = STATUS(ROLLBACK_SUCCEEDED);
    if (w->status == want) {
        /* A rollback that found nothing to restore did not "succeed". */
        if (strncmp(w->summary, "rollback:", 9) == 0 || strstr(w->summary, "nothing to"))
            fprintf(stderr, "kdeploy: %s %s\n", id, w->summary);
        return KD_EXIT_OK;
    }
    fprintf(stderr, "kdeploy: %s ended %s%s%s\n", id,
            w->summary[0] ? w->summary : kd_status_name_of(w->status), w->reason[0] ? ": " : "",
            w->reason);
    return KD_EXIT_FAILED;
}

/* Follows a deployment and turns its end into the exit code: 0 only if it
 * succeeded (or, for pause and stop, got there). */
static int wait_for(const kd_bus_conf_t *conf, const char *id, const verb_opts_t *o,
                    bool until_paused, Kdeploy__V1__DeploymentStatus want)
{
    kd_wait_t w = {.deploy_id = id, .until_paused = until_paused, .follow_rollback = true,
                   .expect_rollback = o->rollback && want == STATUS(STOPPED),
                   .timeout_s = o->timeout_s, .out = o->json ? stdout : stderr,
                   .live = !o->json && isatty(STDERR_FILENO), .json = o->json};
    char err[1024];

    if (kd_follow_wait(conf, &w, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        return KD_EXIT_NO_ANSWER;
    }
    switch (w.outcome) {
    case KD_WAIT_REJECTED:
        fprintf(stderr, "kdeploy: %s was rejected: %s\n", id, w.reason);
        return KD_EXIT_FAILED;
    case KD_WAIT_TIMEOUT:
        fprintf(stderr, "kdeploy: gave up waiting for %s after %d s\n", id, o->timeout_s);
        return KD_EXIT_NO_ANSWER;
    default:
        return wait_end(&w, id, want);
    }
}

/* The hosts a plan deploys to, in order. */
static char *const *plan_hosts(const Kdeploy__V1__DeploymentSpec *spec, size_t *n)
{
    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN) {
        *n = spec->blue_green->blue->n_hosts;
        return spec->blue_green->blue->hosts;
    }
    *n = spec->n_hosts;
    return spec->hosts;
}

static void print_plan_json(const Kdeploy__V1__DeploymentSpec *spec)
{
    const kd_workflow_t *wf = kd_workflow_for(spec, false);
    json_t *steps = json_array(), *batches = json_array(), *o;
    size_t n, done = 0;
    char *const *hosts = plan_hosts(spec, &n);
    char *text;

    for (size_t i = 0; i < wf->count; i++)
        json_array_append_new(steps, json_string(kd_event_name(wf->steps[i])));
    if (wf->swap_after)
        json_array_append_new(steps, json_string("SwapTraffic"));
    for (size_t b = 0; done < n; b++) {
        size_t size = kd_spec_batch_size(spec, b, n);
        json_t *batch = json_array();

        for (size_t i = done; i < done + size && i < n; i++)
            json_array_append_new(batch, json_string(hosts[i]));
        json_array_append_new(batches, batch);
        done += size;
    }
    o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:b}", "application", spec->application,
                  "group", spec->group, "workflow", wf->name, "revision", spec->revision->url,
                  "steps", steps, "batches", batches, "failure_threshold",
                  (int)kd_spec_failure_threshold_for(spec, n), "auto_rollback",
                  spec->auto_rollback);
    if (o && (text = json_dumps(o, JSON_COMPACT))) {
        printf("%s\n", text);
        free(text);
    }
    json_decref(o);
}

static void print_plan(const Kdeploy__V1__DeploymentSpec *spec, bool json)
{
    const kd_workflow_t *wf = kd_workflow_for(spec, false);
    size_t n, done = 0;
    char *const *hosts = plan_hosts(spec, &n);
    uint32_t threshold = kd_spec_failure_threshold_for(spec, n);

    if (json) {
        print_plan_json(spec);
        return;
    }
    if (spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN)
        printf("blue-green: deploys to the idle group (blue the first time), then swaps %s\n",
               spec->load_balancer->service);
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
    printf("fails after %u failed host%s%s\n", threshold, threshold == 1 ? "" : "s",
           spec->auto_rollback ? ", then rolls back" : "");
}

int kd_cmd_create(int argc, char **argv)
{
    static const char usage[] =
        "usage: kdeploy create [-f] SPEC.yaml [--wait] [--dry-run] [--timeout S] [--json]\n"
        "       kdeploy create --group NAME --revision URL --sha256 HEX [--label L] [...]\n"
        "Submits a deployment and waits for the planner's answer: prints the deploy id\n"
        "once it is accepted, or the reason it was rejected. --wait then follows it and\n"
        "exits 0 only if it succeeded. --dry-run prints the per-host plan only, and the\n"
        "hosts no worker has announced. --group deploys a stored deployment group.\n"
        "--timeout S: how long to wait for the answer (30 s), and with --wait in all.\n";
    verb_opts_t o = {.spec_arg = true};
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
        return KD_EXIT_USAGE;
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
        return KD_EXIT_USAGE;
    }
    /* The planner checks again (anyone can write the topic); checking here
     * says so before anything is sent. */
    if (kd_spec_check(spec, err, sizeof err) != KD_OK) {
        fprintf(stderr, "%s: %s\nkdeploy: %s: not submitted\n", o.group ? o.group : o.file, err,
                o.group ? o.group : o.file);
        kd_spec_free(spec);
        kd_bus_conf_free(conf);
        return KD_EXIT_USAGE;
    }
    if (o.dry_run) {
        /* The hosts as the planner will find them: selected, or unknown. */
        /* The plan is printed whatever the hosts' check found, which then
         * decides the exit code. */
        if (conf || (rc = setup(&o, &conf)) < 0)
            rc = kd_cli_check_hosts(conf, spec) == KD_OK ? KD_EXIT_OK : KD_EXIT_FAILED;
        if (rc <= KD_EXIT_FAILED && (spec->n_hosts || !spec->n_host_selector))
            print_plan(spec, o.json);
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
                o.group ? o.group : o.file, kdeploy__v1__envelope__get_packed_size(&env),
                REQUEST_MAX_BYTES);
        kd_spec_free(spec);
        return KD_EXIT_USAGE;
    }
    if ((conf || (rc = setup(&o, &conf)) < 0) &&
        (rc = request(conf, &env, "create", &o)) == KD_EXIT_OK) {
        if (!o.json) {
            printf("%s\n", id);
            fflush(stdout);
        }
        if (o.wait)
            rc = wait_for(conf, id, &o, false, STATUS(SUCCEEDED));
    }
    kd_spec_free(spec);
    kd_bus_conf_free(conf);
    return rc;
}

int kd_cmd_rollback(int argc, char **argv)
{
    static const char usage[] =
        "usage: kdeploy rollback ID [--wait] [--reason TEXT] [--timeout S] [--json]\n"
        "Rolls a deployment back as a new deployment; prints the rollback's id once the\n"
        "planner accepted it, or the reason it was rejected. ID may be the start of an id.\n";
    verb_opts_t o = {0};
    Kdeploy__V1__RollbackDeployment r = KDEPLOY__V1__ROLLBACK_DEPLOYMENT__INIT;
    kd_bus_conf_t *conf = NULL;
    char id[KD_UUID_LEN], eid[KD_UUID_LEN], who[300], undone[256];
    kd_envelope_t env;
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0 ||
        (rc = resolve(conf, argv[optind], true, undone, sizeof undone)) >= 0) {
        kd_bus_conf_free(conf);
        return rc;
    }
    kd_uuid_new(id);
    requested_by(who, sizeof who);
    kd_envelope_init(&env, eid, id, "cli");
    r.rollback_of = undone;
    r.requested_by = who;
    r.reason = (char *)(o.reason ? o.reason : "requested by an operator");
    env.body_case = KD_BODY(ROLLBACK);
    env.rollback = &r;
    if ((rc = request(conf, &env, "rollback", &o)) == KD_EXIT_OK) {
        if (!o.json) {
            printf("%s\n", id);
            fflush(stdout);
        }
        if (o.wait)
            rc = wait_for(conf, id, &o, false, STATUS(ROLLBACK_SUCCEEDED));
    }
    kd_bus_conf_free(conf);
    return rc;
}

static void control_body(kd_envelope_t *env, const char *verb, const verb_opts_t *o,
                         char *who, Kdeploy__V1__StopDeployment *stop,
                         Kdeploy__V1__PauseDeployment *pause,
                         Kdeploy__V1__ResumeDeployment *resume)
{
    if (strcmp(verb, "stop") == 0) {
        stop->requested_by = who;
        stop->reason = (char *)(o->reason ? o->reason : "");
        stop->rollback = o->rollback;
        env->body_case = KD_BODY(STOP);
        env->stop = stop;
    } else if (strcmp(verb, "pause") == 0) {
        pause->requested_by = who;
        env->body_case = KD_BODY(PAUSE);
        env->pause = pause;
    } else {
        resume->requested_by = who;
        env->body_case = KD_BODY(RESUME);
        env->resume = resume;
    }
}

static int control(int argc, char **argv, const char *verb, const char *usage)
{
    verb_opts_t o = {0};
    Kdeploy__V1__StopDeployment stop = KDEPLOY__V1__STOP_DEPLOYMENT__INIT;
    Kdeploy__V1__PauseDeployment pause = KDEPLOY__V1__PAUSE_DEPLOYMENT__INIT;
    Kdeploy__V1__ResumeDeployment resume = KDEPLOY__V1__RESUME_DEPLOYMENT__INIT;
    kd_bus_conf_t *conf = NULL;
    char eid[KD_UUID_LEN], who[300], id[256];
    kd_envelope_t env;
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0 ||
        (rc = resolve(conf, argv[optind], true, id, sizeof id)) >= 0) {
        kd_bus_conf_free(conf);
        return rc;
    }
    if (o.rollback && strcmp(verb, "stop") != 0) {
        fprintf(stderr, "kdeploy: --rollback goes with stop only\n");
        kd_bus_conf_free(conf);
        return KD_EXIT_USAGE;
    }
    requested_by(who, sizeof who);
    kd_envelope_init(&env, eid, id, "cli");
    control_body(&env, verb, &o, who, &stop, &pause, &resume);
    if ((rc = request(conf, &env, verb, &o)) == KD_EXIT_OK && o.wait)
        rc = wait_for(conf, id, &o, strcmp(verb, "pause") == 0,
                      strcmp(verb, "stop") == 0 ? STATUS(STOPPED) : STATUS(SUCCEEDED));
    kd_bus_conf_free(conf);
    return rc;
}

int kd_cmd_stop(int argc, char **argv)
{
    return control(argc, argv, "stop",
                   "usage: kdeploy stop ID [--reason TEXT] [--rollback] [--wait] [--timeout S]"
                   " [--json]\n"
                   "Stops a deployment: no new host starts, hosts in flight finish their\n"
                   "workflow, then it ends stopped. --rollback then rolls back what it changed.\n"
                   "Waits for the planner's answer; --wait follows it to its end.\n");
}

int kd_cmd_pause(int argc, char **argv)
{
    return control(argc, argv, "pause",
                   "usage: kdeploy pause ID [--wait] [--timeout S] [--json]\n"
                   "Pauses a deployment: no new host starts until resume; hosts in flight\n"
                   "finish. Waits for the planner's answer; --wait until it is paused.\n");
}

int kd_cmd_resume(int argc, char **argv)
{
    return control(argc, argv, "resume",
                   "usage: kdeploy resume ID [--wait] [--timeout S] [--json]\n"
                   "Resumes a paused deployment. Waits for the planner's answer; --wait\n"
                   "follows it to its end.\n");
}

int kd_cmd_watch(int argc, char **argv)
{
    static const char usage[] =
        "usage: kdeploy watch ID [--timeout S] [--json]\n"
        "Follows a deployment (and the rollback that follows it) to its end: on a terminal\n"
        "a progress bar and a line per host in flight, else one line per event (--json:\n"
        "one JSON object per event). Exits 0 only if it succeeded. ID may be the start\n"
        "of an id; an unknown id fails at once.\n";
    verb_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    char id[256];
    int rc;

    if ((rc = parse(argc, argv, &o, usage, 1)) < 0 && (rc = setup(&o, &conf)) < 0 &&
        (rc = resolve(conf, argv[optind], false, id, sizeof id)) < 0)
        rc = wait_for(conf, id, &o, false, STATUS(SUCCEEDED));
    kd_bus_conf_free(conf);
    return rc;
}

/* A deployment requested but not (or not yet) accepted. */
static int status_unaccepted(const kd_notes_t *notes, const char *id, bool json)
{
    const char *why = kd_notes_rejected(notes, id);

    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i}", "deploy_id", id, "status",
                              why ? "rejected" : "requested", "outcome",
                              why ? "rejected" : "requested, not answered yet", "reason",
                              why ? why : "", "exit_code", why ? KD_EXIT_FAILED : KD_EXIT_OK);
        char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(o);
    } else if (why) {
        printf("deployment  %s\n  status      rejected\n  reason      %s\n", id, why);
    } else {
        printf("deployment  %s\n  status      requested, not answered by a planner yet\n", id);
    }
    return why && !json ? KD_EXIT_FAILED : KD_EXIT_OK;
}

int kd_cmd_status(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy status ID [--json]\n"
                                "Shows a deployment and each of its hosts. ID may be the start\n"
                                "of an id. Exits 0 if it succeeded or is still pending, deploying\n"
                                "or paused; 1 if it failed, was rolled back, stopped or rejected.\n"
                                "With --json it exits 0 once the deployment is found, and the\n"
                                "object's exit_code says which of those it would be.\n";
    verb_opts_t o = {0};
    kd_bus_conf_t *conf = NULL;
    kd_model_t *m = kd_model_new();
    kd_notes_t *notes = kd_notes_new();
    const kd_deploy_t *d;
    char err[1024], id[256];
    int rc;

    if (!m || !notes) {
        rc = KD_EXIT_FAILED;
    } else if ((rc = parse(argc, argv, &o, usage, 1)) >= 0 || (rc = setup(&o, &conf)) >= 0 ||
               (rc = resolve(conf, argv[optind], false, id, sizeof id)) >= 0) {
        ;
    } else if (kd_follow_load(conf, m, notes, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = KD_EXIT_NO_ANSWER;
    } else if (!(d = kd_model_find(m, id))) {
        rc = status_unaccepted(notes, id, o.json);
    } else {
        /* --json is for scripts, which read the outcome from the object
         * (exit_code): a deployment found is a success of the command. */
        if (o.json)
            kd_follow_print_json(stdout, notes, d, true);
        else
            kd_follow_print_status(stdout, notes, d);
        rc = o.json ? KD_EXIT_OK : kd_outcome_exit(d);
    }
    kd_notes_free(notes);
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

static void print_row(const kd_notes_t *notes, const kd_deploy_t *d)
{
    const Kdeploy__V1__DeploymentSpec *spec = kd_deploy_spec(d);
    char outcome[256], started[32], took[32];
    time_t t = (time_t)(kd_deploy_accepted_ms(d) / 1000);
    int64_t end = kd_deploy_finished_ms(d) ? kd_deploy_finished_ms(d) : kd_now_ms();
    struct tm tm;

    localtime_r(&t, &tm);
    strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S", &tm);
    kd_duration_text(end - kd_deploy_accepted_ms(d), took, sizeof took);
    if (!kd_deploy_finished_ms(d))
        snprintf(took + strlen(took), sizeof took - strlen(took), "+");
    printf("%-8.8s  %-12s %-10s %-10s %6zu  %s  %-8s %s\n", kd_deploy_id(d), spec->application,
           spec->group,
           spec->revision && spec->revision->label && *spec->revision->label
               ? spec->revision->label : "-",
           kd_deploy_host_count(d), started, took,
           kd_outcome_text(notes, d, outcome, sizeof outcome));
}

static void print_list(kd_model_t *m, const kd_notes_t *notes, const verb_opts_t *o)
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
    /* Said on stderr: a script reading the table gets no row. */
    if (!o->json && !n)
        fprintf(stderr, "no deployments yet (kdeploy create -f SPEC starts one)\n");
    if (!o->json && n)
        printf("%-8s  %-12s %-10s %-10s %6s  %-19s  %-8s %s\n", "ID", "APPLICATION", "GROUP",
               "REVISION", "HOSTS", "STARTED", "TOOK", "STATUS");
    for (i = 0; i < n && (int)i < o->limit; i++) {
        if (o->json)
            kd_follow_print_json(stdout, notes, all[i], true);
        else
            print_row(notes, all[i]);
    }
    free(all);
}

int kd_cmd_list(int argc, char **argv)
{
    static const char usage[] = "usage: kdeploy list [--limit N] [--json]\n"
                                "Lists recent deployments, newest first (--json: one object per\n"
                                "line). Ids are shown short: any unambiguous start of an id\n"
                                "will do where a command takes one.\n";
    verb_opts_t o = {.limit = 20};
    kd_bus_conf_t *conf = NULL;
    kd_model_t *m = kd_model_new();
    kd_notes_t *notes = kd_notes_new();
    char err[1024];
    int rc;

    if (!m || !notes) {
        rc = KD_EXIT_FAILED;
    } else if ((rc = parse(argc, argv, &o, usage, 0)) >= 0 || (rc = setup(&o, &conf)) >= 0) {
        ;
    } else if (kd_follow_load(conf, m, notes, err, sizeof err) != KD_OK) {
        fprintf(stderr, "kdeploy: %s\n", err);
        rc = KD_EXIT_NO_ANSWER;
    } else {
        print_list(m, notes, &o);
        rc = KD_EXIT_OK;
    }
    kd_notes_free(notes);
    kd_model_free(m);
    kd_bus_conf_free(conf);
    return rc;
}
