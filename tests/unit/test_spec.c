/* The deployment spec file: read strictly, every error with its file, line
 * and field, all errors at once; and the batch sizes concurrency gives. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "check.h"
#include "fsutil.h"
#include "spec.h"
#include "spec_check.h"

typedef Kdeploy__V1__DeploymentSpec spec_t;

#define SHA256 "006c63357725b859a5318525811c41a6e3d772b10921291d6104d205f7b7ba9b"
#define MD5 "913a7c9bd1bb8d09a663549e799dc58b"

/* Lines 1-6 of a valid rolling spec; cases add from line 7 on. */
#define BASE                                                                  \
    "application: shop\n"                                                     \
    "group: web\n"                                                            \
    "hosts: [web-01, web-02, web-03]\n"                                       \
    "revision:\n"                                                             \
    "  url: https://artifacts.example/shop.tgz\n"                             \
    "  sha256: " SHA256 "\n"

/* Lines 1-5 of a valid spec with no hosts; cases add from line 6 on. */
#define HEAD                                                                  \
    "application: shop\n"                                                     \
    "group: web\n"                                                            \
    "revision:\n"                                                             \
    "  url: file:///srv/shop.zip\n"                                           \
    "  md5: " MD5 "\n"

/* Lines 6-11 of a valid blue-green spec after HEAD. */
#define BLUE_GREEN                                                            \
    "strategy: blue_green\n"                                                  \
    "load_balancer: {service: shop}\n"                                        \
    "blue_green:\n"                                                           \
    "  blue: {server_group: blue, hosts: [b1, b2]}\n"                         \
    "  green:\n"                                                              \
    "    server_group: green\n"                                               \
    "    hosts: [g1, g2]\n"

static kd_status_t parse(const char *text, spec_t **out, char *err, size_t errsz)
{
    return kd_spec_parse("spec.yaml", text, strlen(text), out, err, errsz);
}

static size_t count_lines(const char *s)
{
    size_t n = *s ? 1 : 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void fixture(char *out, size_t outsz, const char *name)
{
    const char *src = getenv("KD_SOURCE_DIR");

    snprintf(out, outsz, "%s/tests/data/spec/%s", src ? src : ".", name);
}

static void test_full_example(void)
{
    char path[4096], err[2048] = "";
    spec_t *spec = NULL;

    fixture(path, sizeof path, "full.yaml");
    CHECK_MSG(kd_spec_load_file(path, &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    CHECK_STREQ(spec->application, "shop");
    CHECK_STREQ(spec->group, "web");
    CHECK(spec->n_hosts == 3);
    if (spec->n_hosts == 3) {
        CHECK_STREQ(spec->hosts[0], "web-01");
        CHECK_STREQ(spec->hosts[1], "web-02");
        CHECK_STREQ(spec->hosts[2], "web-03");
    }
    CHECK(spec->revision != NULL);
    if (spec->revision) {
        CHECK_STREQ(spec->revision->url, "https://artifacts.example/shop-2.4.tar.gz");
        CHECK_STREQ(spec->revision->sha256, SHA256); /* lower-cased */
        CHECK_STREQ(spec->revision->md5, "");
        CHECK_STREQ(spec->revision->label, "2.4");
    }
    CHECK(spec->strategy == KDEPLOY__V1__STRATEGY__ROLLING);
    CHECK(spec->n_concurrency == 1);
    if (spec->n_concurrency == 1) {
        CHECK(spec->concurrency[0]->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS);
        CHECK(spec->concurrency[0]->hosts == 2);
    }
    CHECK(spec->failure_threshold == 1);
    CHECK(spec->auto_rollback);
    CHECK(spec->file_exists == KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_OVERWRITE);
    CHECK(!spec->ignore_stop_failures);
    CHECK(spec->scripts != NULL);
    if (spec->scripts) {
        CHECK_STREQ(spec->scripts->stop, "systemctl stop shop\n");
        CHECK_STREQ(spec->scripts->start, "systemctl start shop");
        CHECK_STREQ(spec->scripts->check, "curl -fsS http://localhost:8080/health");
    }
    CHECK(spec->host_timeout_s == 300);
    CHECK(spec->deployment_timeout_s == 3600);
    CHECK(spec->load_balancer != NULL);
    if (spec->load_balancer) {
        CHECK_STREQ(spec->load_balancer->server_group, "web");
        CHECK_STREQ(spec->load_balancer->service, "");
    }
    CHECK(spec->blue_green == NULL);
    CHECK(kd_spec_batch_size(spec, 0, 3) == 2);
    CHECK(kd_spec_batch_size(spec, 1, 3) == 2);
    kd_spec_free(spec);
}

/* The parsed spec survives the wire: pack, unpack, same values. */
static void test_round_trip(void)
{
    char path[4096], err[1024] = "";
    spec_t *spec = NULL, *back;
    uint8_t *bytes;
    size_t len;

    fixture(path, sizeof path, "blue_green.yaml");
    CHECK_MSG(kd_spec_load_file(path, &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    len = kdeploy__v1__deployment_spec__get_packed_size(spec);
    bytes = malloc(len);
    CHECK(bytes != NULL);
    if (bytes) {
        kdeploy__v1__deployment_spec__pack(spec, bytes);
        back = kdeploy__v1__deployment_spec__unpack(NULL, len, bytes);
        CHECK(back != NULL);
        if (back) {
            CHECK_STREQ(back->revision->md5, MD5);
            CHECK(back->n_concurrency == 2);
            CHECK(back->blue_green && back->blue_green->green->n_hosts == 3);
            kd_spec_free(back);
        }
        free(bytes);
    }
    kd_spec_free(spec);
}

static void test_defaults(void)
{
    static const char text[] = BASE;
    char err[1024] = "";
    spec_t *spec = NULL, zero = KDEPLOY__V1__DEPLOYMENT_SPEC__INIT;

    CHECK_MSG(parse(text, &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    CHECK(spec->strategy == KDEPLOY__V1__STRATEGY__ROLLING);
    CHECK(spec->n_concurrency == 1 &&
          spec->concurrency[0]->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS &&
          spec->concurrency[0]->hosts == 1);
    CHECK(spec->failure_threshold == 1);
    CHECK(!spec->auto_rollback);
    CHECK(spec->file_exists == KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_UNSPECIFIED);
    CHECK(!spec->ignore_stop_failures);
    CHECK(spec->scripts == NULL);
    CHECK(spec->host_timeout_s == 300);
    CHECK(spec->deployment_timeout_s == 3600);
    CHECK(spec->load_balancer == NULL);
    CHECK(spec->blue_green == NULL);
    CHECK_STREQ(spec->revision->label, "");
    CHECK_STREQ(spec->revision->md5, "");
    kd_spec_free(spec);

    /* A spec from the wire may carry zeros: the getters read the defaults. */
    CHECK(kd_spec_strategy(&zero) == KDEPLOY__V1__STRATEGY__ROLLING);
    /* Unset stays unset: the worker resolves it with the appspec. */
    CHECK(kd_spec_file_exists(&zero) == KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_UNSPECIFIED);
    CHECK(kd_spec_failure_threshold(&zero) == 1);
    CHECK(kd_spec_host_timeout_s(&zero) == 300);
    CHECK(kd_spec_deployment_timeout_s(&zero) == 3600);
    CHECK(kd_spec_batch_size(&zero, 0, 10) == 1);
    CHECK(kd_spec_batch_size(&zero, 7, 10) == 1);
    CHECK(kd_spec_batch_size(NULL, 0, 10) == 1);
    CHECK(kd_spec_batch_size(&zero, 0, 0) == 0);
    CHECK_STREQ(kd_spec_strategy_name(zero.strategy), "rolling");
    CHECK_STREQ(kd_spec_strategy_name(KDEPLOY__V1__STRATEGY__BLUE_GREEN), "blue_green");
    CHECK_STREQ(kd_spec_file_exists_name(zero.file_exists), "unset");
    CHECK_STREQ(kd_spec_file_exists_name(KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_KEEP), "keep");
    kd_spec_free(NULL);
    CHECK(kd_spec_parse("none.yaml", NULL, 0, &spec, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "none.yaml:1: the file is empty");
}

static void test_other_values(void)
{
    static const char text[] = BASE
        "  label: 2.4\n"
        "concurrency: 25%\n"
        "failure_threshold: 3\n"
        "auto_rollback: Yes\n"
        "ignore_stop_failures: yes\n"
        "file_exists: keep\n"
        "scripts: {start: ./run.sh}\n"
        "timeouts: {host: 60}\n"
        "load_balancer:\n"
        "  server_group: web.backend\n";
    char err[1024] = "", buf[16];
    spec_t *spec = NULL;

    CHECK_MSG(parse(text, &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    CHECK_STREQ(spec->revision->label, "2.4");
    CHECK(spec->concurrency[0]->value_case == KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT);
    CHECK(spec->concurrency[0]->percent == 25);
    CHECK_STREQ(kd_spec_concurrency_str(spec->concurrency[0], buf, sizeof buf), "25%");
    CHECK(spec->failure_threshold == 3);
    CHECK(spec->auto_rollback && spec->ignore_stop_failures);
    CHECK(spec->file_exists == KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_KEEP);
    CHECK_STREQ(spec->scripts->start, "./run.sh");
    CHECK_STREQ(spec->scripts->stop, "");
    CHECK(spec->host_timeout_s == 60);
    CHECK(spec->deployment_timeout_s == 3600);
    CHECK_STREQ(spec->load_balancer->server_group, "web.backend");
    kd_spec_free(spec);
}

/* Each case holds one mistake; the message must name its line and field. */
static const struct bad_case {
    const char *text;
    const char *want;
} bad_cases[] = {
    {BASE "colour: blue\n", "spec.yaml:7: colour: unknown key"},
    {BASE "  sah256: abc\n", "spec.yaml:7: revision.sah256: unknown key (did you mean sha256?)"},
    {BASE "scripts:\n  stp: x\n", "spec.yaml:8: scripts.stp: unknown key (did you mean stop?)"},
    {BASE "concurency: 2\n", "spec.yaml:7: concurency: unknown key (did you mean concurrency?)"},
    {BASE "failure_treshold: 2\n", "spec.yaml:7: failure_treshold: unknown key (did you mean failure_threshold?)"},
    /* Hosts selected by labels, named deployment configs. */
    {HEAD "hosts: {labels: {}}\n", "spec.yaml:6: hosts.labels: expected 1 to 32 labels, not 0"},
    {HEAD "hosts:\n  labels: {role: \"we b\"}\n", "spec.yaml:7: hosts.labels.role: \"we b\" is not a label value"},
    {HEAD "hosts:\n  labels: {-role: web}\n", "spec.yaml:7: hosts.labels: \"-role\" is not a label name"},
    {HEAD "hosts:\n  labels: {role: [web]}\n", "spec.yaml:7: hosts.labels.role: expected a label value, not a list"},
    {HEAD "hosts:\n  labels: web\n", "spec.yaml:7: hosts.labels: expected a mapping of keys to values"},
    {HEAD "hosts:\n  labels:\n    role: web\n    role: db\n", "spec.yaml:9: hosts.labels.role: given twice"},
    {HEAD "hosts: {labels: {role: web}}\n" BLUE_GREEN, "spec.yaml:6: hosts: not allowed with strategy blue_green"},
    {BASE "allow_unknown_hosts: perhaps\n", "spec.yaml:7: allow_unknown_hosts: expected true or false"},
    {BASE "deployment_config: TwoAtATime\n", "spec.yaml:7: deployment_config: expected OneAtATime, HalfAtATime or AllAtOnce, not \"TwoAtATime\""},
    {BASE "deployment_config: OneAtATime\nconcurrency: 2\n", "spec.yaml:8: concurrency: not allowed with deployment_config, which sets the batch size"},
    {BASE "minimum_healthy_hosts: 1\nfailure_threshold: 2\n", "spec.yaml:8: failure_threshold: not allowed with minimum_healthy_hosts"},
    {BASE "deployment_config: AllAtOnce\nminimum_healthy_hosts: 1\n", "spec.yaml:8: minimum_healthy_hosts: give deployment_config or minimum_healthy_hosts, not both"},
    {BASE "minimum_healthy_hosts: 100%\n", "spec.yaml:7: minimum_healthy_hosts: expected a number of hosts (0 or more) or a percentage from 0% to 99%"},
    {BASE "minimum_healthy_hosts: -1\n", "spec.yaml:7: minimum_healthy_hosts: expected a number of hosts"},
    {BASE "minimum_healthy_hosts: 3\n", "spec.yaml:7: minimum_healthy_hosts: 3 leaves none of the 3 hosts listed to deploy to"},
    {BASE "strategy: {a: b}\n", "spec.yaml:7: strategy: expected rolling or blue_green, not a mapping"},
    {BASE "strategy: canary\n", "spec.yaml:7: strategy: expected rolling or blue_green, not \"canary\""},
    {BASE "failure_threshold: abc\n", "spec.yaml:7: failure_threshold: expected a whole number from 1"},
    {BASE "failure_threshold: 0\n", "spec.yaml:7: failure_threshold: expected a whole number from 1"},
    {BASE "failure_threshold: [1]\n", "spec.yaml:7: failure_threshold: expected a positive whole number, not a list"},
    {BASE "failure_threshold: 4\n", "spec.yaml:7: failure_threshold: 4 is more than the 3 hosts listed"},
    {BASE "timeouts: {host: -5}\n", "spec.yaml:7: timeouts.host: expected a whole number from 1"},
    {BASE "timeouts:\n  deployment: 4294967296\n", "spec.yaml:8: timeouts.deployment: expected a whole number"},
    {BASE "timeouts: {host: 7200}\n", "spec.yaml:7: timeouts.host: 7200 is longer than timeouts.deployment (3600)"},
    {BASE "timeouts: 5\n", "spec.yaml:7: timeouts: expected a mapping of keys to values, not a single value"},
    {BASE "auto_rollback: maybe\n", "spec.yaml:7: auto_rollback: expected true or false, not \"maybe\""},
    {BASE "ignore_stop_failures: 1\n", "spec.yaml:7: ignore_stop_failures: expected true or false"},
    {BASE "file_exists: replace\n", "spec.yaml:7: file_exists: expected fail, overwrite or keep, not \"replace\""},
    {BASE "concurrency: 0\n", "spec.yaml:7: concurrency: expected a number of hosts (1 or more) or a percentage"},
    {BASE "concurrency: abc\n", "spec.yaml:7: concurrency: expected a number of hosts"},
    {BASE "concurrency: 0%\n", "spec.yaml:7: concurrency: expected"},
    {BASE "concurrency: 101%\n", "spec.yaml:7: concurrency: expected"},
    {BASE "concurrency: 12.5%\n", "spec.yaml:7: concurrency: expected"},
    {BASE "concurrency: []\n", "spec.yaml:7: concurrency: a ramp must list at least one value"},
    {BASE "concurrency: {hosts: 2}\n", "spec.yaml:7: concurrency: expected a number of hosts or a percentage, not a mapping"},
    {BASE "concurrency: [1, \"10%\", x]\n", "spec.yaml:7: concurrency[2]: expected"},
    {BASE "concurrency:\n  - 1\n  - 200%\n", "spec.yaml:9: concurrency[1]: expected"},
    {BASE "concurrency:\n  - 1\n  - [2]\n", "spec.yaml:9: concurrency[1]: expected a number of hosts or a percentage, not a list"},
    {BASE "group: api\n", "spec.yaml:7: group: duplicate key (first at line 2)"},
    {BASE "  url: http://other/x.tgz\n", "spec.yaml:7: revision.url: duplicate key (first at line 5)"},
    {BASE "  label:\n", "spec.yaml:7: revision.label: no value given"},
    {BASE "  label: \"a\\0b\"\n", "spec.yaml:7: revision.label: contains a NUL byte"},
    {BASE "  md5: " MD5 "\n", "spec.yaml:7: revision.md5: give revision.sha256 or revision.md5, not both"},
    {BASE "scripts: {stop: [a]}\n", "spec.yaml:7: scripts.stop: expected the text of a script, not a list"},
    {BASE "? [a]\n: b\n", "spec.yaml:7: keys must be plain words, not a list"},
    {BASE "load_balancer: {server_group: web, service: shop}\n", "spec.yaml:7: load_balancer.service: only used with strategy blue_green"},
    {BASE "load_balancer: {}\n", "spec.yaml:7: load_balancer.server_group: is required"},
    {BASE "load_balancer: {server_group: \"a b\"}\n", "spec.yaml:7: load_balancer.server_group: \"a b\" may hold only"},
    {BASE "blue_green: {}\n", "spec.yaml:7: blue_green: only allowed with strategy blue_green"},
    {"group: web\nhosts: [a]\nrevision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:1: application: is required"},
    {"application: shop\nhosts: [a]\nrevision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:1: group: is required"},
    {"application: shop\ngroup: web\nhosts: [a]\n", "spec.yaml:1: revision: is required"},
    {"application: shop\ngroup: web\nrevision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:1: hosts: is required for a rolling deployment"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision: x\n",
     "spec.yaml:4: revision: expected a mapping of keys to values, not a single value"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  md5: " MD5 "\n",
     "spec.yaml:4: revision.url: is required"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  url: http://x/y\n",
     "spec.yaml:4: revision.sha256: is required (or revision.md5)"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  url: ftp://x/y\n  md5: " MD5 "\n",
     "spec.yaml:5: revision.url: \"ftp://x/y\" is not an http://, https:// or file:// URL"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  url: https://\n  md5: " MD5 "\n",
     "spec.yaml:5: revision.url: nothing follows https://"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  url: \"http://x/a b\"\n  md5: " MD5 "\n",
     "spec.yaml:5: revision.url: must not hold spaces"},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  url: http://x/y\n  sha256: 9f2c\n",
     "spec.yaml:6: revision.sha256: expected 64 hex digits, not \"9f2c\""},
    {"application: shop\ngroup: web\nhosts: [a]\nrevision:\n  url: http://x/y\n"
     "  md5: 913a7c9bd1bb8d09a663549e799dc58g\n",
     "spec.yaml:6: revision.md5: expected 32 hex digits"},
    {"application: shop/app\n" "group: web\n" "hosts: [a]\n" "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:1: application: \"shop/app\" may hold only letters, digits, '.', '_' and '-'"},
    {"application: ..\n" "group: web\n" "hosts: [a]\n" "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:1: application: \"..\" must not start with '.'"},
    {"application: shop\n" "group: \"\"\n" "hosts: [a]\n" "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:2: group: must not be empty"},
    {"application: shop\n" "group: web\n" "hosts: []\n" "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:3: hosts: must list at least one host"},
    {"application: shop\n" "group: web\n" "hosts: web-01\n" "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:3: hosts: expected a list of host names or {labels: {...}}, not a single value"},
    {"application: shop\n" "group: web\n" "hosts:\n  - web-01\n  - web-02\n  - web-01\n"
     "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:6: hosts[2]: \"web-01\" is listed twice (first at line 4)"},
    {"application: shop\n" "group: web\n" "hosts:\n  - web-01\n  - {name: x}\n"
     "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:5: hosts[1]: expected a host name, not a mapping"},
    {"application: shop\n" "group: web\n" "hosts: [a, \"b c\"]\n"
     "revision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:3: hosts[1]: \"b c\" may hold only"},
    /* Whole-file mistakes. */
    {"", "spec.yaml:1: the file is empty"},
    {"# nothing but a comment\n\n", "spec.yaml:1: the file is empty"},
    {"- a\n- b\n", "spec.yaml:1: expected a mapping of keys to values, not a list"},
    {"hello\n", "spec.yaml:1: expected a mapping of keys to values, not a single value"},
    {BASE "---\nfoo: 1\n", "spec.yaml:7: only one YAML document is allowed"},
    {"application: shop\ngroup: web\nhosts: [a, b\nrevision: x\n", "spec.yaml:4: did not find expected ',' or ']'"},
    {"application: shop\n  group: web\n", "spec.yaml:2: mapping values are not allowed in this context"},
    {"application: &app shop\ngroup: *app\nhosts: [a]\nrevision: {url: http://x/y, md5: " MD5 "}\n",
     "spec.yaml:2: aliases (*app) are not supported"},
    /* Blue-green. */
    {HEAD "hosts: [a]\n" BLUE_GREEN,
     "spec.yaml:6: hosts: not allowed with strategy blue_green"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n",
     "spec.yaml:1: blue_green: is required for strategy blue_green"},
    {HEAD "strategy: blue_green\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1]}\n  green: {server_group: green, hosts: [g1]}\n",
     "spec.yaml:1: load_balancer.service: is required for strategy blue_green"},
    {HEAD "strategy: blue_green\nload_balancer: {server_group: x, service: shop}\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1]}\n  green: {server_group: green, hosts: [g1]}\n",
     "spec.yaml:7: load_balancer.server_group: not used with strategy blue_green"},
    {HEAD "strategy: blue_green\nload_balancer: {}\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1]}\n  green: {server_group: green, hosts: [g1]}\n",
     "spec.yaml:7: load_balancer.service: is required"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1]}\n",
     "spec.yaml:8: blue_green.green: is required"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n"
     "blue_green:\n  blue: {hosts: [b1]}\n  green: {server_group: green, hosts: [g1]}\n",
     "spec.yaml:9: blue_green.blue.server_group: is required"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1]}\n  green: {server_group: green, hosts: []}\n",
     "spec.yaml:10: blue_green.green.hosts: must list at least one host"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n"
     "blue_green:\n  blue: {server_group: web, hosts: [b1]}\n  green: {server_group: web, hosts: [g1]}\n",
     "spec.yaml:10: blue_green.green.server_group: \"web\" is also blue's server group"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1, b2]}\n  green:\n    server_group: green\n"
     "    hosts:\n      - g1\n      - b2\n",
     "spec.yaml:14: blue_green.green.hosts[1]: \"b2\" is also in blue_green.blue.hosts"},
    {HEAD "strategy: blue_green\nload_balancer: {service: shop}\n"
     "blue_green:\n  blue: {server_group: blue, hosts: [b1]}\n  green: {server_group: green, hosts: [g1]}\n"
     "  purple: {}\n",
     "spec.yaml:11: blue_green.purple: unknown key"},
    {HEAD "failure_threshold: 3\n" BLUE_GREEN,
     "spec.yaml:6: failure_threshold: 3 is more than the 2 hosts of the smaller blue_green group"},
};

static void test_bad_specs(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *c = &bad_cases[i];
        char err[2048] = "";
        spec_t *spec = NULL;
        kd_status_t st = parse(c->text, &spec, err, sizeof err);

        CHECK_MSG(st == KD_EINVAL, "case %zu (%s): status %s", i, c->want, kd_status_name(st));
        CHECK_MSG(spec == NULL, "case %zu", i);
        CHECK_MSG(strstr(err, c->want) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, err, c->want);
        /* One mistake, one message: nothing reported twice or by accident. */
        CHECK_MSG(count_lines(err) == 1, "case %zu: more than one error: \"%s\"", i, err);
        kd_spec_free(spec);
    }
}

/* All mistakes are reported together, sorted by line. */
static void test_multiple_errors(void)
{
    char path[4096], err[4096] = "";
    spec_t *spec = NULL;
    const char *p2, *p4, *p6, *p7, *p9a, *p10, *p11;

    fixture(path, sizeof path, "errors.yaml");
    CHECK(kd_spec_load_file(path, &spec, err, sizeof err) == KD_EINVAL);
    CHECK(spec == NULL);
    p2 = strstr(err, "errors.yaml:2: application: \"shop app\" may hold only");
    p4 = strstr(err, "errors.yaml:4: hosts[1]: \"web-01\" is listed twice");
    p6 = strstr(err, "errors.yaml:6: revision.url: \"ftp://");
    p7 = strstr(err, "errors.yaml:7: revision.sha256: expected 64 hex digits");
    p9a = strstr(err, "errors.yaml:9: concurrency[1]: expected");
    p10 = strstr(err, "errors.yaml:10: auto_rollback: expected true or false");
    p11 = strstr(err, "errors.yaml:11: colour: unknown key");
    CHECK_MSG(p2 && p4 && p6 && p7 && p9a && p10 && p11, "%s", err);
    CHECK_MSG(p2 < p4 && p4 < p6 && p6 < p7 && p7 < p9a && p9a < p10 && p10 < p11, "%s", err);
    CHECK_MSG(count_lines(err) == 7, "%s", err);
    CHECK(strstr(err, path) == err); /* the file as the caller named it */
}

static void test_too_many_errors(void)
{
    kd_buf_t text = KD_BUF_INIT(0);
    char err[65536] = "";
    spec_t *spec = NULL;

    CHECK(kd_buf_appends(&text, BASE "scripts:\n") == KD_OK);
    for (int i = 0; i < 150; i++)
        CHECK(kd_buf_printf(&text, "  bad%d: x\n", i) == KD_OK);
    CHECK(kd_spec_parse("many.yaml", kd_buf_str(&text), text.len, &spec, err, sizeof err) ==
          KD_EINVAL);
    CHECK(count_lines(err) == 101);
    CHECK_CONTAINS(err, "many.yaml:8: scripts.bad0: unknown key");
    CHECK_CONTAINS(err, "many.yaml: 50 more errors not shown");
    /* A small buffer gets the start of the list, still NUL-terminated. */
    CHECK(kd_spec_parse("many.yaml", kd_buf_str(&text), text.len, &spec, err, 16) == KD_EINVAL);
    CHECK(strlen(err) == 15);
    kd_buf_free(&text);
}

static void test_blue_green(void)
{
    char path[4096], err[1024] = "";
    spec_t *spec = NULL;
    static const char inline_text[] = HEAD "concurrency: 1\n" BLUE_GREEN;

    fixture(path, sizeof path, "blue_green.yaml");
    CHECK_MSG(kd_spec_load_file(path, &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    CHECK(spec->strategy == KDEPLOY__V1__STRATEGY__BLUE_GREEN);
    CHECK(spec->n_hosts == 0);
    CHECK_STREQ(spec->revision->url, "file:///srv/bundles/shop-2.5.zip");
    CHECK_STREQ(spec->revision->md5, MD5);
    CHECK_STREQ(spec->revision->sha256, "");
    CHECK(spec->failure_threshold == 2);
    CHECK(spec->load_balancer && !*spec->load_balancer->server_group);
    CHECK_STREQ(spec->load_balancer->service, "shop");
    CHECK(spec->blue_green && spec->blue_green->blue && spec->blue_green->green);
    if (spec->blue_green && spec->blue_green->blue && spec->blue_green->green) {
        const Kdeploy__V1__BlueGreenGroup *b = spec->blue_green->blue, *g = spec->blue_green->green;

        CHECK_STREQ(b->server_group, "blue");
        CHECK(b->n_hosts == 2);
        CHECK_STREQ(b->hosts[0], "b1");
        CHECK_STREQ(b->hosts[1], "b2");
        CHECK_STREQ(g->server_group, "green");
        CHECK(g->n_hosts == 3);
        CHECK_STREQ(g->hosts[2], "g3");
    }
    /* [1, "50%"] over the 3 green hosts: 1, then 2, 2. */
    CHECK(kd_spec_batch_size(spec, 0, 3) == 1);
    CHECK(kd_spec_batch_size(spec, 1, 3) == 2);
    CHECK(kd_spec_batch_size(spec, 2, 3) == 2);
    kd_spec_free(spec);
    spec = NULL;
    CHECK_MSG(parse(inline_text, &spec, err, sizeof err) == KD_OK, "%s", err);
    kd_spec_free(spec);
}

static size_t batch_of(const char *concurrency, size_t batch, size_t hosts)
{
    kd_buf_t text = KD_BUF_INIT(0);
    char err[1024] = "";
    spec_t *spec = NULL;
    size_t n = 0;

    if (kd_buf_printf(&text, "%sconcurrency: %s\n", BASE, concurrency) != KD_OK)
        return 0;
    if (kd_spec_parse("batch.yaml", kd_buf_str(&text), text.len, &spec, err, sizeof err) == KD_OK)
        n = kd_spec_batch_size(spec, batch, hosts);
    else
        fprintf(stderr, "%s\n", err);
    kd_spec_free(spec);
    kd_buf_free(&text);
    return n;
}

static void test_batch_sizes(void)
{
    /* Percentages round up, never below one host. */
    CHECK(batch_of("25%", 0, 3) == 1);
    CHECK(batch_of("50%", 0, 3) == 2);
    CHECK(batch_of("100%", 0, 3) == 3);
    CHECK(batch_of("1%", 0, 1000) == 10);
    CHECK(batch_of("1%", 0, 1001) == 11);
    CHECK(batch_of("\"33%\"", 0, 1) == 1);
    /* A count larger than the hosts is capped. */
    CHECK(batch_of("5", 0, 3) == 3);
    CHECK(batch_of("2", 4, 3) == 2);
    CHECK(batch_of("4294967295", 0, 7) == 7);
    /* The ramp's k-th value; the last one repeats. */
    CHECK(batch_of("[1, \"10%\", \"50%\"]", 0, 20) == 1);
    CHECK(batch_of("[1, \"10%\", \"50%\"]", 1, 20) == 2);
    CHECK(batch_of("[1, \"10%\", \"50%\"]", 2, 20) == 10);
    CHECK(batch_of("[1, \"10%\", \"50%\"]", 3, 20) == 10);
    CHECK(batch_of("[1, \"10%\", \"50%\"]", 99, 20) == 10);
    CHECK(batch_of("[1, 10%, 50%]", 1, 20) == 2);
    CHECK(batch_of("[1, \"10%\", \"50%\"]", 1, 0) == 0);
}

/* What a spec from the wire may hold that the parser never makes. */
static void test_batch_size_wire_values(void)
{
    Kdeploy__V1__Concurrency c = KDEPLOY__V1__CONCURRENCY__INIT, *list[1] = {&c};
    spec_t spec = KDEPLOY__V1__DEPLOYMENT_SPEC__INIT;
    char buf[16];

    spec.n_concurrency = 1;
    spec.concurrency = list;
    CHECK(kd_spec_batch_size(&spec, 0, 5) == 1); /* value not set */
    CHECK_STREQ(kd_spec_concurrency_str(&c, buf, sizeof buf), "1");
    c.value_case = KDEPLOY__V1__CONCURRENCY__VALUE_HOSTS;
    c.hosts = 0;
    CHECK(kd_spec_batch_size(&spec, 0, 5) == 1);
    c.value_case = KDEPLOY__V1__CONCURRENCY__VALUE_PERCENT;
    c.percent = 250;
    CHECK(kd_spec_batch_size(&spec, 0, 5) == 5);
    c.percent = 0;
    CHECK(kd_spec_batch_size(&spec, 0, 5) == 1);
}

static void test_load_file_errors(void)
{
    const char *tmp = getenv("KD_TEST_TMP");
    char dir[4096], path[4200], err[1024] = "";
    spec_t *spec = NULL;
    kd_buf_t big = KD_BUF_INIT(0);

    CHECK(kd_spec_load_file("/nonexistent/spec.yaml", &spec, err, sizeof err) == KD_ENOTFOUND);
    CHECK_CONTAINS(err, "/nonexistent/spec.yaml");
    CHECK(spec == NULL);
    snprintf(dir, sizeof dir, "%s/spec-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/big.yaml", dir);
    CHECK(kd_buf_appends(&big, BASE "scripts:\n  start: |\n") == KD_OK);
    while (big.len <= 5 * 1024 * 1024)
        if (kd_buf_appends(&big, "    echo padding padding padding padding padding padding\n") !=
            KD_OK)
            break;
    CHECK(kd_write_file_atomic(path, big.data, big.len, 0644, err, sizeof err) == KD_OK);
    CHECK(kd_spec_load_file(path, &spec, err, sizeof err) == KD_ETOOLARGE);
    CHECK_CONTAINS(err, path);
    CHECK(spec == NULL);
    kd_buf_free(&big);
    CHECK(kd_remove_tree(dir, err, sizeof err) == KD_OK);
}

static void test_label_selector(void)
{
    static const char text[] = HEAD
        "hosts:\n"
        "  labels: {role: web, zone: eu-west/a}\n"
        "allow_unknown_hosts: true\n";
    char err[1024] = "";
    spec_t *spec = NULL;

    CHECK_MSG(parse(text, &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    CHECK(spec->n_hosts == 0);
    CHECK(spec->n_host_selector == 2);
    CHECK_STREQ(spec->host_selector[0]->key, "role");
    CHECK_STREQ(spec->host_selector[0]->value, "web");
    CHECK_STREQ(spec->host_selector[1]->key, "zone");
    CHECK_STREQ(spec->host_selector[1]->value, "eu-west/a");
    CHECK(spec->allow_unknown_hosts);
    /* The planner's own check takes it too; with a list as well, not. */
    CHECK_MSG(kd_spec_check(spec, err, sizeof err) == KD_OK, "%s", err);
    kd_spec_free(spec);
}

static void test_label_grammar(void)
{
    char key[KD_LABEL_LEN_MAX + 1], value[KD_LABEL_LEN_MAX + 1], err[256];
    char long_key[80];

    CHECK(kd_label_parse("role=web", key, value, err, sizeof err) == KD_OK);
    CHECK_STREQ(key, "role");
    CHECK_STREQ(value, "web");
    CHECK(kd_label_parse("topology.kubernetes.io/zone=eu-1a", key, value, err, sizeof err) ==
          KD_OK);
    CHECK(kd_label_parse("role", key, value, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "expected KEY=VALUE");
    CHECK(kd_label_parse("=web", key, value, err, sizeof err) == KD_EINVAL);
    CHECK(kd_label_parse("role=", key, value, err, sizeof err) == KD_EINVAL);
    CHECK(kd_label_parse("role=a b", key, value, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "the value must be");
    CHECK(kd_label_parse(".role=web", key, value, err, sizeof err) == KD_EINVAL);
    memset(long_key, 'k', 64);
    memcpy(long_key + 64, "=v", 3);
    CHECK(kd_label_parse(long_key, key, value, err, sizeof err) == KD_EINVAL);
    memcpy(long_key + 63, "=v", 3);
    CHECK(kd_label_parse(long_key, key, value, err, sizeof err) == KD_OK);
}

static void test_named_configs(void)
{
    static const struct {
        const char *line;
        size_t hosts, batch;
        uint32_t threshold;
    } cases[] = {
        {"deployment_config: OneAtATime\n", 10, 1, 1},
        {"deployment_config: HalfAtATime\n", 10, 5, 6},
        {"deployment_config: HalfAtATime\n", 3, 1, 2},  /* 2 must stay healthy */
        {"deployment_config: AllAtOnce\n", 10, 10, 10}, /* fails only if all fail */
        {"minimum_healthy_hosts: 2\n", 10, 8, 9},
        {"minimum_healthy_hosts: 75%\n", 10, 2, 3},     /* 7.5 rounded up: 8 */
        {"minimum_healthy_hosts: 0\n", 4, 4, 4},
        {"minimum_healthy_hosts: 9\n", 4, 1, 1},        /* more than the fleet */
    };

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[512], err[1024] = "";
        spec_t *spec = NULL;

        snprintf(text, sizeof text, HEAD "hosts: {labels: {role: web}}\n%s", cases[i].line);
        CHECK_MSG(parse(text, &spec, err, sizeof err) == KD_OK, "case %zu: %s", i, err);
        if (!spec)
            continue;
        CHECK(kd_spec_has_named_config(spec));
        CHECK(spec->n_concurrency == 0 && spec->failure_threshold == 0);
        CHECK_MSG(kd_spec_batch_size(spec, 0, cases[i].hosts) == cases[i].batch,
                  "case %zu: batch %zu", i, kd_spec_batch_size(spec, 0, cases[i].hosts));
        CHECK_MSG(kd_spec_failure_threshold_for(spec, cases[i].hosts) == cases[i].threshold,
                  "case %zu: threshold %u", i,
                  kd_spec_failure_threshold_for(spec, cases[i].hosts));
        CHECK_MSG(kd_spec_check(spec, err, sizeof err) == KD_OK, "case %zu: %s", i, err);
        kd_spec_free(spec);
    }
}

/* Without a named config, the threshold is the spec's own. */
static void test_threshold_without_config(void)
{
    char err[1024] = "";
    spec_t *spec = NULL;

    CHECK_MSG(parse(BASE "failure_threshold: 2\n", &spec, err, sizeof err) == KD_OK, "%s", err);
    if (!spec)
        return;
    CHECK(!kd_spec_has_named_config(spec));
    CHECK(kd_spec_failure_threshold_for(spec, 3) == 2);
    spec->n_concurrency = 0; /* a wire spec with none: one host a batch */
    CHECK(kd_spec_batch_size(spec, 0, 3) == 1);
    spec->n_concurrency = 1;
    kd_spec_free(spec);
}

/* A group file is a spec without its revision. */
static void test_group_files(void)
{
    static const char group[] =
        "application: shop\n"
        "group: web\n"
        "hosts: {labels: {role: web}}\n"
        "deployment_config: HalfAtATime\n";
    char err[1024] = "";
    spec_t *spec = NULL;

    CHECK_MSG(kd_spec_parse_group("g.yaml", group, strlen(group), &spec, err, sizeof err) ==
                  KD_OK, "%s", err);
    if (spec)
        CHECK(spec->revision == NULL);
    kd_spec_free(spec);
    spec = NULL;
    CHECK(kd_spec_parse_group("g.yaml", BASE, strlen(BASE), &spec, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "g.yaml:4: revision: a group holds no revision");
    static const char typo[] = "application: shop\ngroup: web\nhots: [a]\n";

    CHECK(kd_spec_parse_group("g.yaml", typo, strlen(typo), &spec, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "g.yaml:3: hots: unknown key (did you mean hosts?)");
    CHECK_CONTAINS(err, "g.yaml:1: hosts: is required for a rolling deployment");
    CHECK(kd_spec_parse_group("g.yaml", "application: a\ngroup: b\nhosts: {lables: {r: w}}\n", 48,
                              &spec, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "g.yaml:3: hosts.lables: unknown key (did you mean labels?)");
    /* The same file is not a spec: a spec needs its revision. */
    CHECK(kd_spec_parse("g.yaml", group, strlen(group), &spec, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "g.yaml:1: revision: is required");
}

int main(void)
{
    RUN(test_full_example);
    RUN(test_round_trip);
    RUN(test_defaults);
    RUN(test_other_values);
    RUN(test_bad_specs);
    RUN(test_multiple_errors);
    RUN(test_too_many_errors);
    RUN(test_blue_green);
    RUN(test_batch_sizes);
    RUN(test_batch_size_wire_values);
    RUN(test_load_file_errors);
    RUN(test_label_selector);
    RUN(test_label_grammar);
    RUN(test_named_configs);
    RUN(test_threshold_without_config);
    RUN(test_group_files);
    return check_summary();
}
