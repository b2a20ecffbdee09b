/* The planner's view of the fleet at acceptance: hosts selected by the
 * labels their workers announced (sorted by host id, recorded in the
 * accepted deployment), hosts no worker announced rejected by name or
 * waited for, and a create deferred while the hosts topic may be unread. */
/* core_sim.h serves the core's tests; these use a part of it. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "core_sim.h"

#define SHA "sha256: 006c63357725b859a5318525811c41a6e3d772b10921291d6104d205f7b7ba9b\n"

/* A worker's announcement, labels as "k=v" strings, NULL-terminated. */
static void announce(sim_t *s, const char *host, bool alive, const char *const *labels)
{
    Kdeploy__V1__HostStatus hs = KDEPLOY__V1__HOST_STATUS__INIT;
    Kdeploy__V1__HostLabel l[8], *lp[8];
    char keys[8][64];
    kd_envelope_t env;
    char eid[KD_UUID_LEN];
    size_t n = 0;

    for (; labels && labels[n] && n < 8; n++) {
        const char *eq = strchr(labels[n], '=');

        kdeploy__v1__host_label__init(&l[n]);
        snprintf(keys[n], sizeof keys[n], "%.*s", (int)(eq - labels[n]), labels[n]);
        l[n].key = keys[n];
        l[n].value = (char *)eq + 1;
        lp[n] = &l[n];
    }
    kd_envelope_init(&env, eid, "", "worker@test");
    hs.host = (char *)host;
    hs.alive = alive;
    hs.agent_version = "test";
    hs.labels = lp;
    hs.n_labels = n;
    env.body_case = KD_BODY(HOST_STATUS);
    env.host_status = &hs;
    env.ts_ms = s->now;
    kd_model_apply(s->m, &env);
}

static void fleet(sim_t *s)
{
    static const char *const web_a[] = {"role=web", "zone=a", NULL};
    static const char *const web_b[] = {"role=web", "zone=b", NULL};
    static const char *const db[] = {"role=db", NULL};
    static const char *const bad[] = {"role=web", "bad key=x", NULL};

    announce(s, "web-3", true, web_b);
    announce(s, "web-1", true, web_a);
    announce(s, "db-1", true, db);
    announce(s, "web-2", false, web_a);  /* stopped: announced all the same */
    announce(s, "odd-1", true, bad);     /* the bad label is dropped, role=web kept */
    announce(s, "../x", true, web_a);    /* not a host id: ignored */
}

/* A create as the daemon makes it, with hosts_read as given. */
static kd_decisions_t *create_as(sim_t *s, const char *id, const char *yaml,
                                 kd_hosts_read_t read, kd_decisions_t *dec)
{
    Kdeploy__V1__DeploymentSpec *spec = sim_spec(yaml);
    Kdeploy__V1__CreateDeployment cr = KDEPLOY__V1__CREATE_DEPLOYMENT__INIT;
    kd_envelope_t env;
    char eid[KD_UUID_LEN];
    kd_core_ctx_t c;

    kd_envelope_init(&env, eid, id, "kdeploy@test");
    cr.spec = spec;
    cr.requested_by = "op@test";
    env.body_case = KD_BODY(CREATE);
    env.create = &cr;
    kd_decisions_init(dec);
    sim_ctx(s, &c);
    c.hosts_read = read;
    kd_core_request(s->m, &c, &env, dec);
    kd_spec_free(spec);
    return dec;
}

static void create_read(sim_t *s, const char *id, const char *yaml)
{
    kd_decisions_t dec;

    create_as(s, id, yaml, KD_HOSTS_READ, &dec);
    CHECK(!dec.wait_for_hosts);
    sim_execute(s, &dec);
}

/* A rolling spec of application shop, group web, over hosts. */
static char *spec_of(const char *hosts, const char *extra)
{
    char *yaml = NULL;

    if (asprintf(&yaml, "application: shop\ngroup: web\nhosts: %s\nrevision:\n"
                        "  url: https://a.example/shop.tgz\n  " SHA "%s",
                 hosts, extra ? extra : "") < 0)
        abort();
    return yaml;
}

static void test_selected_by_labels(void)
{
    char *yaml = spec_of("{labels: {role: web}}", NULL);
    kd_decisions_t dec;
    sim_t s;

    sim_init(&s);
    fleet(&s);
    /* Hosts may be announced that the planner has not read: it reads first. */
    create_as(&s, "d1", yaml, KD_HOSTS_MAYBE_BEHIND, &dec);
    CHECK(dec.wait_for_hosts && dec.count == 0);
    kd_decisions_clear(&dec);
    CHECK(kd_model_host_count(s.m) == 5);
    create_read(&s, "d1", yaml);
    CHECK_MSG(sim_find(&s, "hosts d1 0: [odd-1,web-1,web-2,web-3]", 0) >= 0,
              "the selection, sorted by host id, is the deployment's host list");
    CHECK(kd_deploy_host_count(kd_model_find(s.m, "d1")) == 4);
    CHECK(sim_find(&s, "db-1", 0) < 0);
    free(yaml);
    sim_free(&s);
}

static void test_all_labels_must_match(void)
{
    char *yaml = spec_of("{labels: {role: web, zone: a}}", NULL);
    sim_t s;

    sim_init(&s);
    fleet(&s);
    create_read(&s, "d1", yaml);
    CHECK(sim_find(&s, "hosts d1 0: [web-1,web-2]", 0) >= 0);
    free(yaml);
    sim_free(&s);
}

static void test_no_host_selected(void)
{
    char *yaml = spec_of("{labels: {role: cache, zone: a}}", NULL);
    kd_decisions_t dec;
    sim_t s;

    sim_init(&s);
    fleet(&s);
    /* The hosts topic may hold what the planner has not read: it reads first. */
    create_as(&s, "d1", yaml, KD_HOSTS_MAYBE_BEHIND, &dec);
    CHECK(dec.wait_for_hosts && dec.count == 0);
    kd_decisions_clear(&dec);
    /* Read to its end: rejected, naming the labels. */
    create_read(&s, "d1", yaml);
    CHECK(sim_find(&s, "rejected d1: hosts.labels: no announced host has the labels "
                       "role=cache,zone=a", 0) >= 0);
    CHECK(kd_model_find(s.m, "d1") == NULL);
    free(yaml);
    sim_free(&s);
}

static void test_unknown_hosts(void)
{
    char *one = spec_of("[web-1, ghost-1]", NULL);
    char *many = spec_of("[g1, g2, g3, web-1, g4, g5, g6, g7]", NULL);
    char *allowed = spec_of("[web-1, ghost-1]", "allow_unknown_hosts: true\n");
    kd_decisions_t dec;
    sim_t s;

    sim_init(&s);
    fleet(&s);
    create_as(&s, "d1", one, KD_HOSTS_MAYBE_BEHIND, &dec);
    CHECK(dec.wait_for_hosts && dec.count == 0);
    kd_decisions_clear(&dec);
    create_read(&s, "d1", one);
    CHECK(sim_find(&s, "rejected d1: 1 host never announced by a worker: ghost-1; start its "
                       "worker, fix the spec, or set allow_unknown_hosts: true", 0) >= 0);
    create_read(&s, "d2", many);
    CHECK(sim_find(&s, "rejected d2: 7 hosts never announced by a worker: g1, g2, g3, g4, g5, "
                       "...;", 0) >= 0);
    /* Allowed: accepted, waiting for the host. */
    create_read(&s, "d3", allowed);
    CHECK(sim_find(&s, "hosts d3 0: [web-1,ghost-1]", 0) >= 0);
    /* A caller that does not follow the hosts topic (tests, tools) checks nothing. */
    sim_free(&s);
    sim_init(&s);
    create_as(&s, "d4", one, KD_HOSTS_UNCHECKED, &dec);
    CHECK(!dec.wait_for_hosts);
    sim_execute(&s, &dec);
    CHECK(sim_find(&s, "hosts d4 0: [web-1,ghost-1]", 0) >= 0);
    free(one);
    free(many);
    free(allowed);
    sim_free(&s);
}

/* Announced later: known from then on, labels replaced by the newest. */
static void test_labels_follow_announcements(void)
{
    static const char *const db[] = {"role=db", NULL};
    char *yaml = spec_of("{labels: {role: db}}", NULL);
    sim_t s;

    sim_init(&s);
    fleet(&s);
    CHECK(!kd_model_host_known(s.m, "web-9"));
    announce(&s, "web-9", true, NULL);
    CHECK(kd_model_host_known(s.m, "web-9"));
    announce(&s, "web-1", true, db);
    create_read(&s, "d1", yaml);
    CHECK(sim_find(&s, "hosts d1 0: [db-1,web-1]", 0) >= 0);
    free(yaml);
    sim_free(&s);
}

static const char *fail_two(const char *deploy_id, const char *host, kd_event_t ev)
{
    (void)deploy_id;
    if (ev == KD_EVENT(ValidateService) && (strcmp(host, "h1") == 0 || strcmp(host, "h2") == 0))
        return "unhealthy";
    return NULL;
}

/* minimum_healthy_hosts 50% of 4: batches of 2, and the deployment fails
 * only once more than 2 hosts failed: 2 failed hosts are tolerated. */
static void test_minimum_healthy_in_the_core(void)
{
    char *yaml = spec_of("[h1, h2, h3, h4]", "minimum_healthy_hosts: 50%\n");
    char *strict = spec_of("[h1, h2, h3, h4]", "deployment_config: OneAtATime\n");
    char *all = spec_of("[h1, h2, h3, h4]", "deployment_config: AllAtOnce\n");
    sim_t s;

    sim_init(&s);
    sim_create(&s, "d1", yaml);
    sim_answer_all(&s, fail_two, 1000);
    CHECK(sim_find(&s, "batch d1 0: [h1,h2]", 0) >= 0);
    CHECK(sim_find(&s, "batch d1 1: [h3,h4]", 0) >= 0);
    CHECK_MSG(sim_status(&s, "d1") == KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_SUCCEEDED,
              "2 of 4 failed, 2 stayed healthy: %s", kd_status_name_of(sim_status(&s, "d1")));
    sim_free(&s);
    /* OneAtATime: the first failed host fails it; h2 never starts. */
    sim_init(&s);
    sim_create(&s, "d2", strict);
    sim_answer_all(&s, fail_two, 1000);
    CHECK(sim_find(&s, "batch d2 0: [h1]", 0) >= 0);
    CHECK(sim_find(&s, "started d2 h2", 0) < 0);
    CHECK(sim_status(&s, "d2") == KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_FAILED);
    sim_free(&s);
    /* AllAtOnce: one batch; succeeds unless every host failed. */
    sim_init(&s);
    sim_create(&s, "d3", all);
    sim_answer_all(&s, fail_two, 1000);
    CHECK(sim_find(&s, "batch d3 0: [h1,h2,h3,h4]", 0) >= 0);
    CHECK(sim_status(&s, "d3") == KDEPLOY__V1__DEPLOYMENT_STATUS__DEPLOYMENT_SUCCEEDED);
    sim_free(&s);
    free(yaml);
    free(strict);
    free(all);
}

int main(void)
{
    RUN(test_selected_by_labels);
    RUN(test_all_labels_must_match);
    RUN(test_no_host_selected);
    RUN(test_unknown_hosts);
    RUN(test_labels_follow_announcements);
    RUN(test_minimum_healthy_in_the_core);
    return check_summary();
}
