/* The appspec parser: both formats' documented shapes, every refusal, the
 * error lines ("FILE:LINE: FIELD: message"), finding the file in a bundle,
 * and `kdeploy validate`. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appspec.h"
#include "appspec_int.h"
#include "buf.h"
#include "check.h"
#include "testutil.h"
#include "cmd_validate.h"
#include "fsutil.h"

static char tmp[PATH_MAX];
static char data_dir[PATH_MAX];
static char errbuf[32768];

#define AWS_HEAD "version: 0.0\nos: linux\n"

/* A fresh directory under tmp for one case. */
static void new_dir(char *dir, size_t dirsz)
{
    static int n;

    CHECK(kd_pathf(dir, dirsz, "%s/case%d", tmp, n++) == KD_OK);
    CHECK(mkdir(dir, 0755) == 0);
}

/* Writes text as NAME in a fresh directory and parses it. */
static kd_status_t load_as(const char *name, const char *text, kd_appspec_t **out)
{
    char dir[PATH_MAX], path[PATH_MAX];

    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/%s", dir, name) == KD_OK);
    tu_write_text(path, text);
    errbuf[0] = '\0';
    return kd_appspec_load_file(path, out, errbuf, sizeof errbuf);
}

static size_t count_lines(const char *s)
{
    size_t n = *s ? 1 : 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The file is refused and the errors hold needle. */
#define EXPECT_ERR(name, text, needle)                                        \
    do {                                                                      \
        kd_appspec_t *s_ = NULL;                                              \
        CHECK(load_as((name), (text), &s_) == KD_EINVAL);                     \
        CHECK(s_ == NULL);                                                    \
        CHECK_CONTAINS(errbuf, (needle));                                     \
        kd_appspec_free(s_);                                                  \
    } while (0)

#define EXPECT_AWS_ERR(text, needle) EXPECT_ERR("appspec.yml", AWS_HEAD text, needle)
#define EXPECT_JD_ERR(text, needle) EXPECT_ERR("jdcloud-codedeploy.yml", text, needle)

/* The file is accepted. */
#define EXPECT_OK(name, text)                                                 \
    do {                                                                      \
        kd_appspec_t *s_ = NULL;                                              \
        CHECK_MSG(load_as((name), (text), &s_) == KD_OK, "%s", errbuf);       \
        kd_appspec_free(s_);                                                  \
    } while (0)

/* The file is accepted with a warning that holds needle. */
#define EXPECT_WARN(name, text, needle)                                       \
    do {                                                                      \
        kd_appspec_t *s_ = NULL;                                              \
        CHECK_MSG(load_as((name), (text), &s_) == KD_OK, "%s", errbuf);       \
        CHECK_CONTAINS(kd_appspec_warnings(s_), (needle));                    \
        kd_appspec_free(s_);                                                  \
    } while (0)

#define EXPECT_AWS_WARN(text, needle) EXPECT_WARN("appspec.yml", AWS_HEAD text, needle)

static kd_appspec_t *load_fixture(const char *bundle)
{
    char dir[PATH_MAX];
    kd_appspec_t *spec = NULL;

    CHECK(kd_pathf(dir, sizeof dir, "%s/%s", data_dir, bundle) == KD_OK);
    CHECK_MSG(kd_appspec_load_dir(dir, &spec, errbuf, sizeof errbuf) == KD_OK, "%s", errbuf);
    return spec;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = s ? strlen(s) : 0, m = strlen(tail);

    return n >= m && strcmp(s + n - m, tail) == 0;
}

static void check_script(const kd_appspec_script_t *s, const char *location, const char *command,
                         unsigned timeout, const char *runas, int line)
{
    CHECK_MSG((s->location == NULL) == (location == NULL), "location %s", s->location);
    if (location)
        CHECK_STREQ(s->location, location);
    CHECK_MSG((s->command == NULL) == (command == NULL), "command %s", s->command);
    if (command)
        CHECK_STREQ(s->command, command);
    CHECK_MSG(s->timeout_s == timeout, "timeout %u != %u", s->timeout_s, timeout);
    CHECK_MSG((s->runas == NULL) == (runas == NULL), "runas %s", s->runas);
    if (runas)
        CHECK_STREQ(s->runas, runas);
    CHECK_MSG(s->line == line, "line %d != %d", s->line, line);
}

static void check_aws_permissions(const kd_appspec_t *spec)
{
    size_t n;
    const kd_appspec_permission_t *p = kd_appspec_permissions(spec, &n);

    CHECK(n == 2);
    if (n != 2)
        return;
    CHECK_STREQ(p[0].object, "/var/www/html");
    CHECK_STREQ(p[0].pattern, "*.html");
    CHECK(p[0].except_count == 1);
    CHECK_STREQ(p[0].except[0], "private.html");
    CHECK_STREQ(p[0].owner, "www-data");
    CHECK_STREQ(p[0].group, "www-data");
    CHECK(p[0].mode == 0644);
    CHECK(p[0].type == KD_PERM_TYPE_FILE);
    CHECK(p[0].line == 11);
    CHECK_STREQ(p[1].object, "/opt/sample/scripts");
    CHECK(p[1].pattern == NULL && p[1].except_count == 0 && p[1].except == NULL);
    CHECK(p[1].owner == NULL && p[1].group == NULL);
    CHECK(p[1].mode == 0755);
    CHECK(p[1].type == 0);
    CHECK(p[1].line == 19);
}

static int run_validate(const char *arg1, const char *arg2);

static void test_aws_sample_every_accessor(void)
{
    kd_appspec_t *spec = load_fixture("aws");
    const kd_appspec_script_t *s;
    const kd_appspec_file_t *f;
    size_t n;

    CHECK(spec != NULL);
    if (!spec)
        return;
    CHECK(kd_appspec_format(spec) == KD_APPSPEC_AWS);
    CHECK_STREQ(kd_appspec_format_name(kd_appspec_format(spec)), "AWS");
    CHECK(ends_with(kd_appspec_path(spec), "/aws/appspec.yml"));
    CHECK(kd_appspec_file_exists(spec) == KD_FILE_EXISTS_KEEP);

    f = kd_appspec_files(spec, &n);
    CHECK(n == 2);
    CHECK_STREQ(f[0].source, "app/index.html");
    CHECK_STREQ(f[0].destination, "/var/www/html");
    CHECK(f[0].line == 5);
    CHECK_STREQ(f[1].source, "scripts");
    CHECK_STREQ(f[1].destination, "/opt/sample/scripts");
    CHECK(f[1].line == 7);

    check_aws_permissions(spec);

    s = kd_appspec_hook(spec, KD_EVENT(ApplicationStop), &n);
    CHECK(n == 1);
    check_script(&s[0], "scripts/stop_server.sh", NULL, 300, "root", 23);
    s = kd_appspec_hook(spec, KD_EVENT(BeforeInstall), &n);
    CHECK(n == 1);
    check_script(&s[0], "scripts/install_dependencies.sh", NULL, 3600, NULL, 27);
    s = kd_appspec_hook(spec, KD_EVENT(AfterInstall), &n);
    CHECK(n == 2);
    check_script(&s[0], "scripts/configure.sh", NULL, 60, NULL, 29);
    check_script(&s[1], "scripts/warm_cache.sh", NULL, 3600, "www-data", 31);
    s = kd_appspec_hook(spec, KD_EVENT(ApplicationStart), &n);
    CHECK(n == 1);
    check_script(&s[0], "scripts/start_server.sh", NULL, 300, NULL, 34);
    s = kd_appspec_hook(spec, KD_EVENT(ValidateService), &n);
    CHECK(n == 1);
    check_script(&s[0], "scripts/check.sh", NULL, 30, NULL, 37);
    /* An empty list, events without an entry, and values that are no event. */
    CHECK(kd_appspec_hook(spec, KD_EVENT(BeforeBlockTraffic), &n) == NULL && n == 0);
    CHECK(kd_appspec_hook(spec, KD_EVENT(AfterAllowTraffic), &n) == NULL && n == 0);
    CHECK(kd_appspec_hook(spec, KD_EVENT(Install), &n) == NULL && n == 0);
    CHECK(kd_appspec_hook(spec, KD_EVENT_NONE, &n) == NULL && n == 0);
    CHECK(kd_appspec_hook(spec, (kd_event_t)KD_EVENT_MAX, &n) == NULL && n == 0);
    CHECK(kd_appspec_env(spec, &n) == NULL && n == 0);
    kd_appspec_free(spec);
}

static void test_jd_sample_every_accessor(void)
{
    kd_appspec_t *spec = load_fixture("jd");
    const kd_appspec_script_t *s;
    const kd_appspec_file_t *f;
    const kd_appspec_permission_t *p;
    const kd_appspec_env_t *e;
    size_t n;

    CHECK(spec != NULL);
    if (!spec)
        return;
    CHECK(kd_appspec_format(spec) == KD_APPSPEC_JD);
    CHECK_STREQ(kd_appspec_format_name(kd_appspec_format(spec)), "JD Cloud");
    CHECK(ends_with(kd_appspec_path(spec), "/jd/jdcloud-codedeploy.yml"));
    CHECK(kd_appspec_file_exists(spec) == KD_FILE_EXISTS_UNSET);

    f = kd_appspec_files(spec, &n);
    CHECK(n == 2);
    CHECK_STREQ(f[0].source, "config/sql.txt");
    CHECK_STREQ(f[0].destination, "/home/config/sql");
    CHECK_STREQ(f[1].source, "/");
    CHECK_STREQ(f[1].destination, "/home/config");
    CHECK(f[0].line == 4 && f[1].line == 6);

    s = kd_appspec_hook(spec, KD_EVENT(ApplicationStop), &n);
    CHECK(n == 1);
    check_script(&s[0], NULL, "/opt/Control/stop.sh", 10, NULL, 10);
    s = kd_appspec_hook(spec, KD_EVENT(AfterInstall), &n);
    CHECK(n == 2);
    check_script(&s[0], NULL, "/opt/Control/Test1.sh", 100, "root", 12);
    check_script(&s[1], "scripts/test2.sh", NULL, 100, NULL, 15);
    s = kd_appspec_hook(spec, KD_EVENT(ApplicationStart), &n);
    CHECK(n == 1);
    check_script(&s[0], NULL, "systemctl start sample", 60, NULL, 18);
    s = kd_appspec_hook(spec, KD_EVENT(ValidateService), &n);
    CHECK(n == 1);
    check_script(&s[0], NULL, "curl -fsS http://127.0.0.1:8080/health", 10, NULL, 21);
    CHECK(kd_appspec_hook(spec, KD_EVENT(BeforeInstall), &n) == NULL && n == 0);

    p = kd_appspec_permissions(spec, &n);
    CHECK(n == 1);
    CHECK_STREQ(p[0].object, "/home/config/soft");
    CHECK_STREQ(p[0].pattern, "**");
    CHECK(p[0].except_count == 1);
    CHECK_STREQ(p[0].except[0], "function.php");
    CHECK_STREQ(p[0].owner, "admin");
    CHECK_STREQ(p[0].group, "admin");
    CHECK(p[0].mode == 0777);
    CHECK(p[0].type == KD_PERM_TYPE_FILE);
    CHECK(p[0].line == 23);

    e = kd_appspec_env(spec, &n);
    CHECK(n == 2);
    CHECK_STREQ(e[0].name, "php_path");
    CHECK_STREQ(e[0].value, "/home/config/soft/php/bin");
    CHECK_STREQ(e[1].name, "APP_ENV");
    CHECK_STREQ(e[1].value, "production");
    kd_appspec_free(spec);
}

/* The AWS agent's own cases: no hooks or files; partial hooks. */
static void test_aws_defaults(void)
{
    kd_appspec_t *spec = NULL;
    const kd_appspec_script_t *s;
    size_t n;

    CHECK(load_as("appspec.yml", AWS_HEAD, &spec) == KD_OK);
    CHECK(kd_appspec_files(spec, &n) == NULL && n == 0);
    CHECK(kd_appspec_permissions(spec, &n) == NULL && n == 0);
    for (int ev = KD_EVENT_NONE + 1; ev < KD_EVENT_MAX; ev++)
        CHECK(kd_appspec_hook(spec, (kd_event_t)ev, &n) == NULL && n == 0);
    CHECK(kd_appspec_file_exists(spec) == KD_FILE_EXISTS_UNSET);
    kd_appspec_free(spec);
    spec = NULL;

    CHECK(load_as("appspec.yml",
                  AWS_HEAD "hooks:\n"
                           "  BeforeInstall:\n"
                           "    - location: test_location\n"
                           "    - location: test_location_lt\n"
                           "      timeout: 30\n"
                           "    - location: test_location_lr\n"
                           "      runas: foo3\n",
                  &spec) == KD_OK);
    s = kd_appspec_hook(spec, KD_EVENT(BeforeInstall), &n);
    CHECK(n == 3);
    if (n == 3) {
        check_script(&s[0], "test_location", NULL, 3600, NULL, 5);
        check_script(&s[1], "test_location_lt", NULL, 30, NULL, 6);
        check_script(&s[2], "test_location_lr", NULL, 3600, "foo3", 8);
    }
    kd_appspec_free(spec);

    /* Sections present but empty are empty sections. */
    EXPECT_OK("appspec.yml", AWS_HEAD "files:\npermissions:\nhooks:\n");
    EXPECT_OK("jdcloud-codedeploy.yml", "files: []\nhooks: {}\nenv:\n");
    /* The agent's version is the number 0.0 (and 0, which Ruby finds equal);
     * JD's limit is inclusive. */
    EXPECT_OK("appspec.yml", "version: 0\nos: linux\nhooks:\n  ValidateService:\n"
                             "    - location: a.sh\n      timeout: 3600\n");
    EXPECT_OK("jdcloud-codedeploy.yml", "files:\nhooks:\n  ValidateService:\n"
                                        "    - command: true\n      timeout: 86400\n");
}

static void test_empty_file(void)
{
    EXPECT_ERR("appspec.yml", "", "appspec.yml:1: (document): the file is empty");
    EXPECT_ERR("jdcloud-codedeploy.yml", "", "jdcloud-codedeploy.yml:1: (document): the file is empty");
    EXPECT_ERR("appspec.yml", "# only a comment\n\n", "the file is empty");
    EXPECT_ERR("appspec.yml", "- a\n- b\n", "appspec.yml:1: (document): expected a mapping");
    EXPECT_ERR("appspec.yml", "just text\n", "expected a mapping");
}

static void test_version_and_os(void)
{
    EXPECT_ERR("appspec.yml", "os: linux\n", "appspec.yml:1: version: missing (required)");
    EXPECT_ERR("appspec.yml", "version: invalid\nos: linux\n",
               "appspec.yml:1: version: unsupported version 'invalid'");
    EXPECT_ERR("appspec.yml", "version: 0.1\nos: linux\n", "version: unsupported version '0.1'");
    EXPECT_ERR("appspec.yml", "version: 1.0\nos: linux\n", "version: unsupported version");
    EXPECT_ERR("appspec.yml", "version: \"0.0\"\nos: linux\n",
               "appspec.yml:1: version: \"0.0\" in quotes is a string, and CodeDeploy wants the "
               "number");
    EXPECT_ERR("appspec.yml", "version:\nos: linux\n", "appspec.yml:1: version: needs a value");
    EXPECT_ERR("appspec.yml", "version: 0.0\n", "appspec.yml:1: os: missing (required)");
    EXPECT_ERR("appspec.yml", "version: 0.0\nos: unsupported\n",
               "appspec.yml:2: os: unsupported os 'unsupported'");
    EXPECT_ERR("appspec.yml", "version: 0.0\nos: windows\n", "os: unsupported os 'windows'");
    EXPECT_ERR("appspec.yml", "version: 0.0\nos: [linux]\n", "os: expected linux, not a list");
    /* JD: files is required; os, if given, is linux. */
    EXPECT_JD_ERR("hooks:\n", "jdcloud-codedeploy.yml:1: files: missing (required)");
    EXPECT_JD_ERR("os: windows\nfiles:\n", "jdcloud-codedeploy.yml:1: os: unsupported os");
}

static void test_files_errors(void)
{
    EXPECT_AWS_ERR("files:\n  - source: test_source\n",
                   "appspec.yml:4: files[0].destination: missing (required)");
    EXPECT_AWS_ERR("files:\n  - destination: /test_destination\n",
                   "appspec.yml:4: files[0].source: missing (required)");
    EXPECT_AWS_ERR("files:\n  - source: a\n    destination: /ok\n"
                   "  - source: b\n    destination: test_destination\n",
                   "appspec.yml:7: files[1].destination: must be an absolute path");
    EXPECT_AWS_ERR("files:\n  - source: ../etc\n    destination: /x\n",
                   "appspec.yml:4: files[0].source: must not contain a \"..\" component");
    EXPECT_AWS_ERR("files:\n  - source: a\n    destination: /opt/../etc\n",
                   "files[0].destination: must not contain");
    EXPECT_AWS_ERR("files:\n  - source: \"\"\n    destination: /x\n",
                   "files[0].source: must not be empty");
    EXPECT_AWS_ERR("files:\n  - source:\n    destination: /x\n", "files[0].source: needs a value");
    EXPECT_AWS_ERR("files:\n  source: a\n", "appspec.yml:4: files: expected a list");
    EXPECT_AWS_ERR("files:\n  - a\n", "appspec.yml:4: files[0]: expected a mapping");
    EXPECT_JD_ERR("files:\n  - source: a\n", "jdcloud-codedeploy.yml:2: files[0].destination");
}

static void test_script_location_and_command(void)
{
    /* AWS: a script is a location. */
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - timeout: 30\n",
                   "appspec.yml:5: hooks.AfterInstall[0].location: missing (required)");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - command: /bin/true\n",
                   "hooks.AfterInstall[0].location: missing (required)");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - location: \" \"\n",
                   "hooks.AfterInstall[0].location: must not be empty");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - location: \"\"\n",
                   "hooks.AfterInstall[0].location: must not be empty");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - location: ../../bin/sh\n",
                   "hooks.AfterInstall[0].location: must not contain");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - /opt/a.sh\n",
                   "appspec.yml:5: hooks.AfterInstall[0]: expected a mapping");
    /* The agent skips an empty hook entry; JD's is an error. */
    EXPECT_OK("appspec.yml", AWS_HEAD "hooks:\n  AfterInstall:\n");
    EXPECT_JD_ERR("files:\nhooks:\n  AfterInstall:\n",
                  "jdcloud-codedeploy.yml:3: hooks.AfterInstall: expected a list");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    location: a.sh\n",
                   "hooks.AfterInstall: expected a list");
    EXPECT_AWS_ERR("hooks:\n  AfterInstall:\n    - location: a.sh\n      runas: two words\n",
                   "hooks.AfterInstall[0].runas: must be a name without blanks");
    /* JD: a command or a location, exactly one. */
    EXPECT_JD_ERR("files:\nhooks:\n  ApplicationStart:\n    - timeout: 10\n",
                  "jdcloud-codedeploy.yml:4: hooks.ApplicationStart[0]: needs a command or a location");
    EXPECT_JD_ERR("files:\nhooks:\n  ApplicationStart:\n    - command: a\n      location: b\n",
                  "hooks.ApplicationStart[0]: has both command and location");
    EXPECT_JD_ERR("files:\nhooks:\n  ApplicationStart:\n    - command:\n",
                  "hooks.ApplicationStart[0].command: needs a value");
}

/* An AWS timeout is Ruby's to_i of the YAML value, then > 0. */
static void test_timeouts(void)
{
    const char *bad[] = {"foo", "-5", "0", "0.5", "true", "\"\"", "\"x30\""};
    const struct {
        const char *text;
        unsigned seconds;
        bool warns;
    } ok[] = {{"3600", 3600, false}, {"7200", 7200, false}, {"3.5", 3, true},
              {"1e3", 1, true}, {"+5", 5, true}, {"0x10", 16, true}, {"010", 8, true},
              {"\"300s\"", 300, true}, {"\" 42\"", 42, true}};
    char text[512];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text,
                 AWS_HEAD "hooks:\n  ApplicationStart:\n    - location: a.sh\n      timeout: %s\n",
                 bad[i]);
        EXPECT_ERR("appspec.yml", text,
                   "appspec.yml:6: hooks.ApplicationStart[0].timeout: must be a whole number "
                   "of seconds above 0");
    }
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        kd_appspec_t *spec = NULL;
        const kd_appspec_script_t *sc;
        size_t n = 0;

        snprintf(text, sizeof text,
                 AWS_HEAD "hooks:\n  ApplicationStart:\n    - location: a.sh\n      timeout: %s\n",
                 ok[i].text);
        CHECK_MSG(load_as("appspec.yml", text, &spec) == KD_OK, "%s: %s", ok[i].text, errbuf);
        sc = kd_appspec_hook(spec, KD_EVENT(ApplicationStart), &n);
        CHECK_MSG(n == 1 && sc[0].timeout_s == ok[i].seconds, "%s", ok[i].text);
        CHECK_MSG((kd_appspec_warning_count(spec) == 1) == ok[i].warns, "%s: %s", ok[i].text,
                  kd_appspec_warnings(spec));
        kd_appspec_free(spec);
    }
    EXPECT_AWS_ERR("hooks:\n  ApplicationStart:\n    - location: a.sh\n"
                   "      timeout: 99999999999999999999999\n",
                   "hooks.ApplicationStart[0].timeout: must be at most");
    EXPECT_JD_ERR("files:\nhooks:\n  ApplicationStart:\n    - command: a\n      timeout: 86401\n",
                  "jdcloud-codedeploy.yml:5: hooks.ApplicationStart[0].timeout: must be a whole "
                  "number of seconds from 1 to 86400, not '86401'");
    EXPECT_JD_ERR("files:\nhooks:\n  ApplicationStart:\n    - command: a\n      timeout: -1\n",
                  "hooks.ApplicationStart[0].timeout: must be a whole number");
    EXPECT_AWS_ERR("hooks:\n  ApplicationStart:\n    - location: a.sh\n      timeout: [30]\n",
                   "hooks.ApplicationStart[0].timeout: expected a number of seconds, not a list");
    EXPECT_AWS_ERR("hooks:\n  ApplicationStart:\n    - location: a.sh\n      timeout: {s: 1}\n",
                   "timeout: expected a number of seconds, not a mapping");
    EXPECT_AWS_ERR("hooks:\n  ApplicationStart:\n    - location: a.sh\n      timeout:\n",
                   "timeout: needs a value");
}

static void test_events(void)
{
    const char *reserved[] = {"Install", "DownloadBundle", "BlockTraffic", "AllowTraffic",
                              "SwapTraffic"};
    char text[512], needle[256];

    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        snprintf(text, sizeof text, AWS_HEAD "hooks:\n  %s:\n    - location: a.sh\n",
                 reserved[i]);
        snprintf(needle, sizeof needle,
                 "appspec.yml:4: hooks.%s: warning: carried out by kdeploy itself, which runs no "
                 "scripts for it: it never runs in a workflow", reserved[i]);
        EXPECT_WARN("appspec.yml", text, needle);
        snprintf(text, sizeof text, "files:\nhooks:\n  %s:\n    - command: a\n", reserved[i]);
        EXPECT_ERR("jdcloud-codedeploy.yml", text, "runs no scripts for it");
    }
    /* The agent accepts any hook name (its tests use test_hook): a warning. */
    EXPECT_AWS_WARN("hooks:\n  test_hook:\n    - location: a.sh\n",
                    "appspec.yml:4: hooks.test_hook: warning: not a lifecycle event: it never "
                    "runs");
    EXPECT_AWS_WARN("hooks:\n  applicationstart:\n    - location: a.sh\n", "not a lifecycle event");
    EXPECT_AWS_WARN("hooks:\n  LIFECYCLE_EVENT_UNSPECIFIED:\n    - location: a.sh\n",
                    "not a lifecycle event");
    /* Its scripts are still checked, as the agent checks them. */
    EXPECT_AWS_ERR("hooks:\n  test_hook:\n    - timeout: 5\n",
                   "hooks.test_hook[0].location: missing (required)");
    EXPECT_JD_ERR("files:\nhooks:\n  test_hook:\n    - command: a\n",
                  "jdcloud-codedeploy.yml:3: hooks.test_hook: not a lifecycle event");
    EXPECT_AWS_ERR("hooks:\n  - ApplicationStart\n", "appspec.yml:4: hooks: expected a mapping");
    /* Every event that takes scripts is accepted, in both formats. */
    for (int ev = KD_EVENT_NONE + 1; ev < KD_EVENT_MAX; ev++) {
        if (!kd_event_allows_hooks((kd_event_t)ev))
            continue;
        snprintf(text, sizeof text, AWS_HEAD "hooks:\n  %s:\n    - location: a.sh\n",
                 kd_event_name((kd_event_t)ev));
        EXPECT_OK("appspec.yml", text);
        snprintf(text, sizeof text, "files:\nhooks:\n  %s:\n    - command: a\n",
                 kd_event_name((kd_event_t)ev));
        EXPECT_OK("jdcloud-codedeploy.yml", text);
    }
}

static void test_file_exists_behavior(void)
{
    const struct {
        const char *text;
        kd_file_exists_t policy;
    } ok[] = {
        {"DISALLOW", KD_FILE_EXISTS_FAIL},
        {"OVERWRITE", KD_FILE_EXISTS_OVERWRITE},
        {"RETAIN", KD_FILE_EXISTS_KEEP},
    };
    char text[256];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        kd_appspec_t *spec = NULL;

        snprintf(text, sizeof text, AWS_HEAD "file_exists_behavior: %s\n", ok[i].text);
        CHECK(load_as("appspec.yml", text, &spec) == KD_OK);
        CHECK(kd_appspec_file_exists(spec) == ok[i].policy);
        kd_appspec_free(spec);
    }
    EXPECT_AWS_ERR("file_exists_behavior: MERGE\n",
                   "appspec.yml:3: file_exists_behavior: must be DISALLOW, OVERWRITE or RETAIN, "
                   "not 'MERGE'");
    EXPECT_AWS_ERR("file_exists_behavior: overwrite\n", "file_exists_behavior: must be");
    EXPECT_AWS_ERR("file_exists_behavior:\n", "file_exists_behavior: needs a value");
    /* Not a key of JD's file; nor of a files entry. */
    EXPECT_JD_ERR("files:\nfile_exists_behavior: RETAIN\n",
                  "jdcloud-codedeploy.yml:2: file_exists_behavior: unknown key");
    EXPECT_AWS_WARN("files:\n  - source: a\n    destination: /b\n"
                    "    file_exists_behavior: RETAIN\n",
                    "files[0].file_exists_behavior: warning: ignored as CodeDeploy ignores it");
}

static void test_permission_errors(void)
{
    const struct {
        const char *mode;
        int value;
    } modes[] = {{"644", 0644}, {"\"0644\"", 0644}, {"4755", 04755}, {"7", 07}, {"'0'", 0},
                 {"0000", 0}, {"0644", 0420}, {"0777", 0511}};
    const char *bad_modes[] = {"abc", "8", "0789", "12345", "\"\"", "u+x", "-644", "6.44"};
    char text[512];

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        kd_appspec_t *spec = NULL;
        const kd_appspec_permission_t *p;
        size_t n = 0;

        snprintf(text, sizeof text, AWS_HEAD "permissions:\n  - object: /opt\n    mode: %s\n",
                 modes[i].mode);
        CHECK_MSG(load_as("appspec.yml", text, &spec) == KD_OK, "%s", errbuf);
        p = kd_appspec_permissions(spec, &n);
        CHECK(n == 1 && p[0].mode == modes[i].value);
        kd_appspec_free(spec);
    }
    for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
        snprintf(text, sizeof text, AWS_HEAD "permissions:\n  - object: /opt\n    mode: %s\n",
                 bad_modes[i]);
        EXPECT_ERR("appspec.yml", text, "appspec.yml:5: permissions[0].mode: must be 1 to 4 octal");
    }
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    type:\n      - file\n      - socket\n",
                   "appspec.yml:7: permissions[0].type[1]: must be file or directory, not 'socket'");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    type: file\n",
                   "permissions[0].type: expected a list");
    EXPECT_AWS_WARN("permissions:\n  - object: /opt\n    type: []\n",
                    "permissions[0].type: warning: an empty type list applies to nothing");
    EXPECT_JD_ERR("files:\npermissions:\n  - object: /opt\n    type: []\n",
                  "permissions[0].type: must list file, directory or both");
    /* An unquoted 0755 is YAML's octal 493: the agent reads "493" and fails. */
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    mode: 0755\n",
                   "appspec.yml:5: permissions[0].mode: unquoted 0755 is the YAML octal number "
                   "493, which CodeDeploy refuses");
    EXPECT_AWS_WARN("permissions:\n  - object: /opt\n    mode: 0644\n",
                    "appspec.yml:5: permissions[0].mode: warning: unquoted 0644 is the YAML octal "
                    "number 420, so CodeDeploy and kdeploy set mode 0420");
    EXPECT_AWS_ERR("permissions:\n  - pattern: test\n",
                   "appspec.yml:4: permissions[0].object: missing (required)");
    EXPECT_AWS_ERR("permissions:\n  - object: test\n",
                   "permissions[0].object: must be an absolute path");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    acls:\n      - u::rw\n",
                   "appspec.yml:6: permissions[0].acls[0]: 'u::rw' is a base acl entry: use mode");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    acls:\n      - 7\n",
                   "permissions[0].acls[0]: '7' is a number, not an acl entry");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    acls: u:bob:rw\n",
                   "permissions[0].acls: expected a list");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    context:\n      name: x\n",
                   "permissions[0].context.type: missing (required)");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    context:\n      type: t\n"
                   "      range: s0:c2.c1\n",
                   "appspec.yml:7: permissions[0].context.range: invalid category range 'c2.c1'");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    except: function.php\n",
                   "permissions[0].except: expected a list");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    except: [[a]]\n",
                   "permissions[0].except[0]: expected a string, not a list");
    EXPECT_AWS_ERR("permissions:\n  - object: /opt\n    owner: [root]\n",
                   "permissions[0].owner: expected a string");
}

static void test_permission_both_types_and_empty_pattern(void)
{
    kd_appspec_t *spec = NULL;
    const kd_appspec_permission_t *p;
    size_t n = 0;

    /* An empty pattern (JD's example) means all. */
    CHECK(load_as("jdcloud-codedeploy.yml",
                  "files:\npermissions:\n  - object: /opt\n    pattern: \"\"\n"
                  "    type: [file, directory]\n    except: []\n",
                  &spec) == KD_OK);
    p = kd_appspec_permissions(spec, &n);
    CHECK(n == 1 && p[0].pattern == NULL && p[0].mode == -1 && p[0].except_count == 0);
    CHECK(n == 1 && p[0].type == (KD_PERM_TYPE_FILE | KD_PERM_TYPE_DIRECTORY));
    kd_appspec_free(spec);
}

/* AWS keeps an empty pattern as a glob that matches nothing. */
static void test_aws_empty_pattern(void)
{
    kd_appspec_t *spec = NULL;
    const kd_appspec_permission_t *p;
    size_t n = 0;

    CHECK(load_as("appspec.yml", AWS_HEAD "permissions:\n  - object: /opt\n    pattern: \"\"\n",
                  &spec) == KD_OK);
    p = kd_appspec_permissions(spec, &n);
    CHECK(n == 1 && p[0].pattern && !*p[0].pattern);
    CHECK_CONTAINS(kd_appspec_warnings(spec), "permissions[0].pattern: warning: an empty pattern "
                                              "matches nothing");
    kd_appspec_free(spec);
}

/* Keys the agent never reads: a warning in an AWS appspec, an error in JD's. */
static void test_unknown_keys(void)
{
    kd_appspec_t *spec = NULL;
    size_t n = 0;

    EXPECT_AWS_WARN("foo: bar\n",
                    "appspec.yml:3: foo: warning: ignored as CodeDeploy ignores it (kdeploy "
                    "reads: version, os, files, permissions, hooks, file_exists_behavior)");
    EXPECT_AWS_WARN("hooks:\n  AfterInstall:\n    - location: a.sh\n      timout: 30\n",
                    "appspec.yml:6: hooks.AfterInstall[0].timout: warning: ignored as CodeDeploy "
                    "ignores it (kdeploy reads: location, timeout, runas, sudo)");
    EXPECT_AWS_WARN("files:\n  - source: a\n    destination: /b\n    mode: 644\n",
                    "appspec.yml:6: files[0].mode: warning: ignored as CodeDeploy ignores it");
    EXPECT_AWS_WARN("files:\n  - source: a\n    destination: /b\n    overwrite: true\n",
                    "appspec.yml:6: files[0].overwrite: warning: ignored");
    EXPECT_AWS_WARN("permissions:\n  - object: /opt\n    recursive: true\n",
                    "permissions[0].recursive: warning: ignored");
    EXPECT_AWS_WARN("env:\n  A: b\n", "appspec.yml:3: env: warning: ignored");
    /* sudo is the agent's: kept, and no warning. */
    CHECK(load_as("appspec.yml", AWS_HEAD "hooks:\n  AfterInstall:\n    - location: a.sh\n"
                  "      sudo: true\n      runas: bob\n", &spec) == KD_OK);
    CHECK(kd_appspec_warning_count(spec) == 0);
    CHECK(kd_appspec_hook(spec, KD_EVENT(AfterInstall), &n)[0].sudo);
    kd_appspec_free(spec);
    EXPECT_JD_ERR("files:\nenvironment:\n  A: b\n",
                  "jdcloud-codedeploy.yml:2: environment: unknown key (expected one of: version, "
                  "os, files, permissions, hooks, env)");
    EXPECT_AWS_WARN("<<: {a: 1}\n", "<<: warning: ignored");
    EXPECT_AWS_ERR("? [a]\n: b\n", "appspec.yml:3: (document): a key must be a plain string");
    /* Control bytes from the file do not break the one-error-a-line format. */
    EXPECT_AWS_WARN("\"bad\\tkey\\nx\": 1\n", "appspec.yml:3: bad?key?x: warning: ignored");
    EXPECT_JD_ERR("files:\n\"bad\\tkey\\nx\": 1\n",
                  "jdcloud-codedeploy.yml:2: bad?key?x: unknown key");
}

static void test_wrong_types_and_duplicates(void)
{
    EXPECT_AWS_ERR("files:\n  source: a\n  destination: /b\n", "files: expected a list");
    EXPECT_AWS_ERR("hooks: [a]\n", "hooks: expected a mapping of lifecycle events");
    EXPECT_AWS_ERR("permissions: /opt\n", "permissions: expected a list");
    EXPECT_AWS_ERR("files:\n  - source: [a]\n    destination: /b\n",
                   "files[0].source: expected a string, not a list");
    EXPECT_AWS_ERR("files:\n  - source: a\n    destination: {x: 1}\n",
                   "files[0].destination: expected a string, not a mapping");
    EXPECT_AWS_ERR("version: 0.0\n", "appspec.yml:3: version: duplicate key");
    EXPECT_AWS_ERR("hooks:\n  ApplicationStart:\n    - location: a.sh\n  ApplicationStart:\n"
                   "    - location: b.sh\n",
                   "appspec.yml:6: hooks.ApplicationStart: duplicate key");
    EXPECT_JD_ERR("files:\nenv: [A]\n", "jdcloud-codedeploy.yml:2: env: expected a mapping");
    EXPECT_JD_ERR("files:\nenv:\n  A: 1\n  A: 2\n", "jdcloud-codedeploy.yml:4: env.A: duplicate key");
    EXPECT_JD_ERR("files:\nenv:\n  1A: x\n", "env.1A: is not a variable name");
    EXPECT_JD_ERR("files:\nenv:\n  A-B: x\n", "env.A-B: is not a variable name");
    EXPECT_JD_ERR("files:\nenv:\n  A:\n", "env.A: needs a value");
    EXPECT_JD_ERR("files:\nenv:\n  A: [x]\n", "env.A: expected a string, not a list");
    EXPECT_JD_ERR("files:\nversion: [1]\n", "version: expected a version string, not a list");
    {
        kd_appspec_t *spec = NULL;
        const kd_appspec_env_t *e;
        size_t n = 0;

        /* Values are taken as written: numbers and empty strings too. */
        CHECK(load_as("jdcloud-codedeploy.yml", "files:\nenv:\n  PORT: 8080\n  EMPTY: \"\"\n",
                      &spec) == KD_OK);
        e = kd_appspec_env(spec, &n);
        CHECK(n == 2);
        if (n == 2) {
            CHECK_STREQ(e[0].name, "PORT");
            CHECK_STREQ(e[0].value, "8080");
            CHECK_STREQ(e[1].name, "EMPTY");
            CHECK_STREQ(e[1].value, "");
        }
        kd_appspec_free(spec);
    }
}

static void test_yaml_syntax_errors(void)
{
    EXPECT_AWS_ERR("files: x: y\n", "appspec.yml:3: yaml: mapping values are not allowed");
    EXPECT_AWS_ERR("hooks:\n\tApplicationStart: []\n",
                   "appspec.yml:4: yaml: found character that cannot start any token");
    EXPECT_AWS_ERR("files:\n  - source: a\n   destination: /b\n",
                   "appspec.yml:5: yaml: did not find expected '-' indicator");
    EXPECT_AWS_ERR("hooks:\n  ApplicationStart:\n    - location: a\n      timeout: [1\n",
                   "appspec.yml:6: yaml: did not find expected ',' or ']' (while parsing a flow "
                   "sequence, line 6)");
    EXPECT_AWS_ERR("files: \"abc\n", "appspec.yml:3: yaml: found unexpected end of stream");
    EXPECT_AWS_ERR("files: *nowhere\n", "appspec.yml:3: yaml: alias 'nowhere': YAML anchors and "
                   "aliases are not allowed");
    EXPECT_AWS_ERR("x: \xff\xfe\n", "appspec.yml:3: yaml: invalid leading UTF-8 octet");
    EXPECT_AWS_ERR("---\nversion: 0.0\n", "appspec.yml:3: (document): a second YAML document");
    EXPECT_JD_ERR("files:\n  - source: a\n    destination: /b\n  - source: [c\n",
                  "jdcloud-codedeploy.yml:4: yaml:");
    /* A syntax error is the only error reported: nothing else is read. */
    CHECK(count_lines(errbuf) == 1);
}

static void test_multiple_errors_together(void)
{
    char path[PATH_MAX];
    kd_appspec_t *spec = NULL;

    CHECK(kd_pathf(path, sizeof path, "%s/invalid/appspec.yml", data_dir) == KD_OK);
    CHECK(kd_appspec_load_file(path, &spec, errbuf, sizeof errbuf) == KD_EINVAL);
    CHECK(spec == NULL);
    CHECK_CONTAINS(errbuf, "invalid/appspec.yml:3: os: unsupported os 'windows'");
    CHECK_CONTAINS(errbuf, "invalid/appspec.yml:6: files[0].destination: must be an absolute path");
    CHECK_CONTAINS(errbuf, "invalid/appspec.yml:9: hooks.BeforeInstall[0].location: missing");
    CHECK_CONTAINS(errbuf, "invalid/appspec.yml:12: hooks.ApplicationStart[0].timeout:");
    CHECK_MSG(count_lines(errbuf) == 4, "%s", errbuf);
    CHECK(errbuf[strlen(errbuf) - 1] != '\n');

    EXPECT_JD_ERR("version: 1.0\nfiles:\n  - source: a\nhooks:\n  Install:\n    - command: x\n"
                  "  ApplicationStart:\n    - timeout: 0\npermissions:\n  - object: rel\n"
                  "    mode: 999\nenv:\n  bad-name: 1\n",
                  "jdcloud-codedeploy.yml:3: files[0].destination: missing (required)");
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:5: hooks.Install:");
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:8: hooks.ApplicationStart[0].timeout:");
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:8: hooks.ApplicationStart[0]: needs a command");
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:10: permissions[0].object: must be an absolute");
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:11: permissions[0].mode: must be 1 to 4");
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:13: env.bad-name: is not a variable name");
    CHECK_MSG(count_lines(errbuf) == 7, "%s", errbuf);

    /* A small error buffer gets a truncated list, never an overflow. */
    {
        char small[48];

        CHECK(kd_appspec_load_file(path, &spec, small, sizeof small) == KD_EINVAL);
        CHECK(strlen(small) == sizeof small - 1);
    }
}

/* A bundle holding only NAME; checks it is found and read in its format. */
static void check_found(const char *name, const char *text, kd_appspec_format_t format)
{
    char dir[PATH_MAX], path[PATH_MAX], found[PATH_MAX];
    kd_appspec_t *spec = NULL;

    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/%s", dir, name) == KD_OK);
    tu_write_text(path, text);
    CHECK(kd_appspec_find(dir, found, sizeof found) == KD_OK);
    CHECK_STREQ(found, path);
    CHECK_MSG(kd_appspec_load_dir(dir, &spec, errbuf, sizeof errbuf) == KD_OK, "%s: %s", name,
              errbuf);
    CHECK(kd_appspec_format(spec) == format);
    CHECK_STREQ(kd_appspec_path(spec), path);
    kd_appspec_free(spec);
}

static void test_load_dir_finds_each_name(void)
{
    const char *aws = AWS_HEAD, *jd = "files:\n";
    char dir[PATH_MAX], path[PATH_MAX], found[8];
    kd_appspec_t *spec = NULL;

    check_found("jdcloud-codedeploy.yml", jd, KD_APPSPEC_JD);
    check_found("appspec.yml", aws, KD_APPSPEC_AWS);
    check_found("appspec.yaml", aws, KD_APPSPEC_AWS);
    check_found("appSpec.yml", jd, KD_APPSPEC_JD);
    for (size_t i = 0; kd_appspec_names[i]; i++)
        CHECK(i < 4);

    /* JD's name comes first when a bundle holds two. */
    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/appspec.yml", dir) == KD_OK);
    tu_write_text(path, aws);
    CHECK(kd_pathf(path, sizeof path, "%s/jdcloud-codedeploy.yml", dir) == KD_OK);
    tu_write_text(path, jd);
    CHECK(kd_appspec_load_dir(dir, &spec, errbuf, sizeof errbuf) == KD_OK);
    CHECK(kd_appspec_format(spec) == KD_APPSPEC_JD);
    kd_appspec_free(spec);
    spec = NULL;
    memcpy(found, "same", 5);
    CHECK(kd_appspec_find(dir, found, sizeof found) == KD_EINVAL); /* does not fit */
    CHECK_STREQ(found, "same");

    /* An invalid appspec in a bundle is reported under its own name. */
    CHECK(kd_pathf(path, sizeof path, "%s/bad", dir) == KD_OK);
    CHECK(mkdir(path, 0755) == 0);
    CHECK(kd_pathf(path, sizeof path, "%s/bad/appspec.yaml", dir) == KD_OK);
    tu_write_text(path, "version: 0.0\n");
    CHECK(kd_pathf(path, sizeof path, "%s/bad", dir) == KD_OK);
    CHECK(kd_appspec_load_dir(path, &spec, errbuf, sizeof errbuf) == KD_EINVAL);
    CHECK_CONTAINS(errbuf, "bad/appspec.yaml:1: os: missing (required)");
}

static void test_load_dir_finds_none(void)
{
    char dir[PATH_MAX], path[PATH_MAX], found[PATH_MAX] = "unchanged";
    kd_appspec_t *spec = NULL;

    CHECK(kd_pathf(dir, sizeof dir, "%s/none", data_dir) == KD_OK);
    CHECK(kd_appspec_find(dir, found, sizeof found) == KD_ENOTFOUND);
    CHECK_STREQ(found, "unchanged");
    CHECK(kd_appspec_load_dir(dir, &spec, errbuf, sizeof errbuf) == KD_ENOTFOUND);
    CHECK(spec == NULL);
    CHECK_CONTAINS(errbuf, "no appspec (looked for jdcloud-codedeploy.yml, appspec.yml");

    /* Other spellings and a directory of the right name do not count. */
    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/AppSpec.yml", dir) == KD_OK);
    tu_write_text(path, AWS_HEAD);
    CHECK(kd_pathf(path, sizeof path, "%s/appspec.yml", dir) == KD_OK);
    CHECK(mkdir(path, 0755) == 0);
    CHECK(kd_appspec_load_dir(dir, &spec, errbuf, sizeof errbuf) == KD_ENOTFOUND);
    CHECK(kd_pathf(path, sizeof path, "%s/missing", dir) == KD_OK);
    CHECK(kd_appspec_load_dir(path, &spec, errbuf, sizeof errbuf) == KD_ENOTFOUND);
    CHECK(kd_appspec_load_file(path, &spec, errbuf, sizeof errbuf) == KD_ENOTFOUND);
    CHECK(spec == NULL);
}

static void test_fixture_bundles_and_sniffing(void)
{
    kd_appspec_t *spec = load_fixture("jd-old");

    CHECK(kd_appspec_format(spec) == KD_APPSPEC_JD);
    kd_appspec_free(spec);
    spec = load_fixture("aws-yaml");
    CHECK(kd_appspec_format(spec) == KD_APPSPEC_AWS);
    kd_appspec_free(spec);
    spec = NULL;
    /* Any other name: AWS if it has an os key, else JD. */
    CHECK(load_as("my-spec.yml", AWS_HEAD, &spec) == KD_OK);
    CHECK(kd_appspec_format(spec) == KD_APPSPEC_AWS);
    kd_appspec_free(spec);
    spec = NULL;
    CHECK(load_as("my-spec.yml", "files:\nenv:\n  A: b\n", &spec) == KD_OK);
    CHECK(kd_appspec_format(spec) == KD_APPSPEC_JD);
    kd_appspec_free(spec);
    CHECK_STREQ(kd_appspec_format_name(0), "?");
    kd_appspec_free(NULL);
}

/* Aliases are refused before any tree is built: a few lines of nested
 * aliases would otherwise stand for millions of nodes. */
static void test_aliases_refused(void)
{
    EXPECT_AWS_ERR("hooks:\n  AfterInstall: &s\n    - location: a.sh\n  ApplicationStart: *s\n",
                   "appspec.yml:4: yaml: anchor 's': YAML anchors and aliases are not allowed");
    EXPECT_AWS_ERR("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
                   "yaml: anchor 'a'");
    CHECK(count_lines(errbuf) == 1);
}

/* Duplicates are found with a hash set: a mapping of 20,000 keys, the last
 * one repeated, is refused naming that key (this took seconds per file with
 * the pairwise check). */
static void test_duplicates_in_a_large_mapping(void)
{
    kd_buf_t text = KD_BUF_INIT(1u << 20);
    kd_appspec_t *spec = NULL;

    CHECK(kd_buf_appends(&text, "files:\nenv:\n") == KD_OK);
    for (int i = 0; i < 20000; i++)
        CHECK(kd_buf_printf(&text, "  V%d: x\n", i) == KD_OK);
    CHECK(kd_buf_appends(&text, "  V19999: y\n") == KD_OK);
    CHECK(load_as("jdcloud-codedeploy.yml", kd_buf_str(&text), &spec) == KD_EINVAL);
    CHECK_CONTAINS(errbuf, "jdcloud-codedeploy.yml:20003: env.V19999: duplicate key");
    CHECK(count_lines(errbuf) == 1);
    kd_buf_free(&text);
}

static void check_ace(const char *text, bool is_default, kd_ace_type_t type, const char *name,
                      unsigned perms)
{
    kd_appspec_ace_t ace = {0};
    char why[256] = "";

    CHECK_MSG(kd_appspec_ace_parse(text, &ace, why, sizeof why) == KD_OK, "%s: %s", text, why);
    CHECK_MSG(ace.is_default == is_default && ace.type == type && ace.perms == perms, "%s", text);
    CHECK_STREQ(ace.name ? ace.name : "(null)", name);
    free(ace.name);
}

/* The agent's ACL entry grammar, case by case from its tests. */
static void test_acl_entries(void)
{
    const char *bad[] = {"7", "d:u:bob:7:rwx", "invalid:u:bob:7", "d:invalid:bob:7",
                         "d:d:bob:7", "mask:name:rwx", "d:other:name:rwx", "user:bob:rwxd",
                         "u::7", "g::7", "o::7", "user:bob:rwxrwxrwxrwxrwxrwx7"};
    kd_appspec_ace_t ace = {0};
    char why[256];

    check_ace("u:henry:7", false, KD_ACE_USER, "henry", 7);
    check_ace("d:g:manager:rw", true, KD_ACE_GROUP, "manager", 6);
    check_ace("d:u:bob:rwx", true, KD_ACE_USER, "bob", 7);
    check_ace("default:g:dev:rw", true, KD_ACE_GROUP, "dev", 6);
    check_ace("d:bob:rwx", true, KD_ACE_USER, "bob", 7);
    check_ace("default::rw", true, KD_ACE_USER, "", 6);
    check_ace("m::7", false, KD_ACE_MASK, "", 7);
    check_ace("mask::7", false, KD_ACE_MASK, "", 7);
    check_ace("g:dev:7", false, KD_ACE_GROUP, "dev", 7);
    check_ace("u:mask:7", false, KD_ACE_USER, "mask", 7);
    check_ace("u:other:7", false, KD_ACE_USER, "other", 7);
    check_ace("bob:0", false, KD_ACE_USER, "bob", 0);
    check_ace("m:7", false, KD_ACE_MASK, "", 7);
    check_ace("mask:", false, KD_ACE_MASK, "", 0);
    check_ace("d:o:3", true, KD_ACE_OTHER, "", 3);
    check_ace("d:m:7", true, KD_ACE_MASK, "", 7);
    check_ace("d::3", true, KD_ACE_USER, "", 3);
    check_ace("d:g::4", true, KD_ACE_GROUP, "", 4);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(kd_appspec_ace_parse(bad[i], &ace, why, sizeof why) == KD_EINVAL, "%s", bad[i]);
    CHECK(ace.name == NULL);
}

static void test_selinux_ranges(void)
{
    const char *ok[] = {"s5", "s3-s5:c0.c7,c13", "s0:c0.c1,c15,c7.c9", "s0:c1023", "s0-s0"};
    const char *bad[] = {"s3-s2:c0", "s3-:c0", ":c0", "s", "s0-s-1", "sd3", "d3", "s0:c2.c1",
                         "s0:c2.", "s0:", "s0:c", "s0:c-1", "s0:c1024", "s0:cd3", "s0:d3",
                         "s0:c0.c2,c1", ""};
    char why[256];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        CHECK_MSG(kd_appspec_range_check(ok[i], why, sizeof why) == KD_OK, "%s: %s", ok[i], why);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(kd_appspec_range_check(bad[i], why, sizeof why) == KD_EINVAL, "%s", bad[i]);
}

/* acls and context are parsed into the permission. */
static void test_acls_and_context_parsed(void)
{
    kd_appspec_t *spec = NULL;
    const kd_appspec_permission_t *p;
    size_t n = 0;

    CHECK(load_as("appspec.yml", AWS_HEAD "permissions:\n  - object: /srv/a\n    acls:\n"
                  "      - u:henry:7\n      - d:g:manager:rw\n    context:\n      name: user_u\n"
                  "      type: unconfined_t\n      range: s3-s5:c0.c7,c13\n"
                  "  - object: /srv/b\n    acls: []\n", &spec) == KD_OK);
    p = kd_appspec_permissions(spec, &n);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(p[0].acl_count == 2 && p[0].acls[1].is_default);
        CHECK_STREQ(p[0].acls[1].name, "manager");
        CHECK(p[0].context != NULL);
        if (p[0].context) {
            CHECK_STREQ(p[0].context->user, "user_u");
            CHECK_STREQ(p[0].context->type, "unconfined_t");
            CHECK_STREQ(p[0].context->range, "s3-s5:c0.c7,c13");
        }
        CHECK(p[1].acls != NULL && p[1].acl_count == 0 && p[1].context == NULL);
    }
    kd_appspec_free(spec);
}

/* A bundle: every hook script and files source must be in it. An AWS
 * location is in the bundle even with a leading "/", as the agent joins it
 * to the archive root. */
static void test_check_bundle(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    kd_appspec_t *spec = NULL;

    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/appspec.yml", dir) == KD_OK);
    tu_write_text(path, AWS_HEAD "files:\n  - source: app\n    destination: /srv\n"
                     "hooks:\n  ApplicationStop:\n    - location: stop.sh\n"
                     "  ApplicationStart:\n    - location: /bin/start.sh\n");
    CHECK(kd_appspec_load_file(path, &spec, errbuf, sizeof errbuf) == KD_OK);
    CHECK(kd_appspec_check_bundle(spec, dir, errbuf, sizeof errbuf) == KD_EINVAL);
    CHECK_CONTAINS(errbuf, "appspec.yml:4: files[0].source: 'app' is missing from the bundle");
    CHECK_CONTAINS(errbuf,
                   "appspec.yml:8: hooks.ApplicationStop[0].location: 'stop.sh' is missing");
    CHECK_CONTAINS(errbuf, "appspec.yml:10: hooks.ApplicationStart[0].location: 'bin/start.sh' is");
    CHECK(run_validate(dir, NULL) == 1);
    CHECK(kd_pathf(path, sizeof path, "%s/app", dir) == KD_OK && mkdir(path, 0755) == 0);
    CHECK(kd_pathf(path, sizeof path, "%s/stop.sh", dir) == KD_OK);
    tu_write_text(path, "true\n");
    CHECK(kd_pathf(path, sizeof path, "%s/bin", dir) == KD_OK && mkdir(path, 0755) == 0);
    CHECK(kd_pathf(path, sizeof path, "%s/bin/start.sh", dir) == KD_OK);
    tu_write_text(path, "true\n");
    CHECK_MSG(kd_appspec_check_bundle(spec, dir, errbuf, sizeof errbuf) == KD_OK, "%s", errbuf);
    CHECK(run_validate(dir, NULL) == 0);
    kd_appspec_free(spec);
}

/* An archive is unpacked as the worker unpacks it, then checked alike. */
static void test_validate_archive(void)
{
    char dir[PATH_MAX], path[PATH_MAX], archive[PATH_MAX], cmd[3 * PATH_MAX];

    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/appspec.yml", dir) == KD_OK);
    tu_write_text(path, AWS_HEAD "hooks:\n  ApplicationStart:\n    - location: start.sh\n");
    CHECK(kd_pathf(archive, sizeof archive, "%s.tar.gz", dir) == KD_OK);
    snprintf(cmd, sizeof cmd, "tar -C '%s' -czf '%s' .", dir, archive);
    CHECK(system(cmd) == 0);
    CHECK(run_validate(archive, NULL) == 1);
    CHECK(kd_pathf(path, sizeof path, "%s/start.sh", dir) == KD_OK);
    tu_write_text(path, "true\n");
    CHECK(system(cmd) == 0);
    CHECK(run_validate(archive, NULL) == 0);
    /* Not an archive at all. */
    tu_write_text(archive, "not a tarball\n");
    CHECK(run_validate(archive, NULL) == 1);
}

/* --strict turns warnings into a failure. */
static void test_validate_strict(void)
{
    char dir[PATH_MAX], path[PATH_MAX];

    new_dir(dir, sizeof dir);
    CHECK(kd_pathf(path, sizeof path, "%s/appspec.yml", dir) == KD_OK);
    tu_write_text(path,
               AWS_HEAD "files:\n  - source: /\n    destination: /srv\n    overwrite: true\n");
    CHECK(run_validate(path, NULL) == 0);
    CHECK(run_validate("--strict", path) == 1);
    tu_write_text(path, AWS_HEAD "files:\n  - source: /\n    destination: /srv\n");
    CHECK(run_validate("--strict", path) == 0);
}

static int run_validate(const char *arg1, const char *arg2)
{
    char *argv[] = {(char *)"validate", (char *)arg1, (char *)arg2, NULL};
    int argc = arg2 ? 3 : arg1 ? 2 : 1;

    return kd_cmd_validate(argc, argv);
}

static void test_validate_command(void)
{
    char path[PATH_MAX];

    CHECK(run_validate("--help", NULL) == 0);
    CHECK(run_validate(NULL, NULL) == 2);
    CHECK(run_validate("a", "b") == 2);
    CHECK(run_validate("--bogus", NULL) == 2);
    CHECK(kd_pathf(path, sizeof path, "%s/aws", data_dir) == KD_OK);
    CHECK(run_validate(path, NULL) == 0);
    CHECK(kd_pathf(path, sizeof path, "%s/jd/jdcloud-codedeploy.yml", data_dir) == KD_OK);
    CHECK(run_validate(path, NULL) == 0);
    CHECK(kd_pathf(path, sizeof path, "%s/invalid", data_dir) == KD_OK);
    CHECK(run_validate(path, NULL) == 1);
    CHECK(kd_pathf(path, sizeof path, "%s/none", data_dir) == KD_OK);
    CHECK(run_validate(path, NULL) == 1);
    CHECK(kd_pathf(path, sizeof path, "%s/no-such-file.yml", tmp) == KD_OK);
    CHECK(run_validate(path, NULL) == 1);
}

int main(void)
{
    const char *base = getenv("KD_TEST_TMP"), *src = getenv("KD_SOURCE_DIR");
    char err[256];

    if (kd_pathf(tmp, sizeof tmp, "%s/appspec-XXXXXX", base ? base : "/tmp") != KD_OK ||
        !mkdtemp(tmp)) {
        fprintf(stderr, "cannot make a scratch directory\n");
        return 1;
    }
    if (kd_pathf(data_dir, sizeof data_dir, "%s/tests/data/appspec", src ? src : ".") != KD_OK)
        return 1;
    RUN(test_aws_sample_every_accessor);
    RUN(test_jd_sample_every_accessor);
    RUN(test_aws_defaults);
    RUN(test_empty_file);
    RUN(test_version_and_os);
    RUN(test_files_errors);
    RUN(test_script_location_and_command);
    RUN(test_timeouts);
    RUN(test_events);
    RUN(test_file_exists_behavior);
    RUN(test_permission_errors);
    RUN(test_permission_both_types_and_empty_pattern);
    RUN(test_unknown_keys);
    RUN(test_aws_empty_pattern);
    RUN(test_wrong_types_and_duplicates);
    RUN(test_yaml_syntax_errors);
    RUN(test_multiple_errors_together);
    RUN(test_load_dir_finds_each_name);
    RUN(test_load_dir_finds_none);
    RUN(test_fixture_bundles_and_sniffing);
    RUN(test_validate_command);
    RUN(test_aliases_refused);
    RUN(test_duplicates_in_a_large_mapping);
    RUN(test_acl_entries);
    RUN(test_selinux_ranges);
    RUN(test_acls_and_context_parsed);
    RUN(test_check_bundle);
    RUN(test_validate_archive);
    RUN(test_validate_strict);
    kd_remove_tree(tmp, err, sizeof err);
    return check_summary();
}
