/* The step journal and the worker's cache layout. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "check.h"
#include "fsutil.h"
#include "journal.h"
#include "utf8.h"

static char dir[PATH_MAX];

static void test_journal_states(void)
{
    char jdir[PATH_MAX + 16], err[256];
    kd_journal_t *j = NULL;
    kd_journal_state_t state;
    kd_buf_t result = KD_BUF_INIT(0);
    const char *step = "d-1/web-01/ApplicationStart/1";

    snprintf(jdir, sizeof jdir, "%s/journal", dir);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j)
        return;
    CHECK(kd_journal_lookup(j, step, &state, NULL, err, sizeof err) == KD_OK);
    CHECK(state == KD_JOURNAL_NONE);
    CHECK(kd_journal_start(j, step, err, sizeof err) == KD_OK);
    CHECK(kd_journal_lookup(j, step, &state, NULL, err, sizeof err) == KD_OK);
    CHECK(state == KD_JOURNAL_STARTED);
    CHECK(kd_journal_finish(j, step, "\x08\x01result", 8, err, sizeof err) == KD_OK);
    CHECK(kd_journal_lookup(j, step, &state, &result, err, sizeof err) == KD_OK);
    CHECK(state == KD_JOURNAL_FINISHED);
    CHECK(result.len == 8 && memcmp(result.data, "\x08\x01result", 8) == 0);
    /* Another step id, even one differing in a slash, is another entry. */
    CHECK(kd_journal_lookup(j, "d-1/web-01/ApplicationStart/2", &state, NULL, err, sizeof err) == KD_OK);
    CHECK(state == KD_JOURNAL_NONE);
    kd_journal_close(j);
    /* The journal survives a reopen: it is on disk. */
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    CHECK(kd_journal_lookup(j, step, &state, NULL, err, sizeof err) == KD_OK);
    CHECK(state == KD_JOURNAL_FINISHED);
    kd_journal_close(j);
    kd_buf_free(&result);
}

/* A journal directory someone else could write, or planted as a symlink,
 * is refused: its entries decide which hooks run again. */
static void test_journal_dir_must_be_private(void)
{
    char jdir[PATH_MAX + 16], link[PATH_MAX + 16], err[512];
    kd_journal_t *j = NULL;

    snprintf(jdir, sizeof jdir, "%s/open-journal", dir);
    CHECK(mkdir(jdir, 0777) == 0 && chmod(jdir, 0777) == 0);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_EREFUSED);
    CHECK_CONTAINS(err, "mode 0777");
    snprintf(link, sizeof link, "%s/link-journal", dir);
    CHECK(symlink(jdir, link) == 0);
    CHECK(kd_journal_open(link, &j, err, sizeof err) == KD_EREFUSED);
    CHECK_CONTAINS(err, "symlink");
    if (geteuid() == 0) {
        snprintf(jdir, sizeof jdir, "%s/foreign-journal", dir);
        CHECK(mkdir(jdir, 0700) == 0 && chown(jdir, 65534, (gid_t)-1) == 0);
        CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_EREFUSED);
        CHECK_CONTAINS(err, "owned by uid 65534");
    }
    snprintf(jdir, sizeof jdir, "%s/new-journal", dir);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    kd_journal_close(j);
}

static void test_cache_names(void)
{
    char out[PATH_MAX], err[256];

    CHECK(kd_cache_name_ok("shop"));
    CHECK(kd_cache_name_ok("0b1c2d3e-0000-4000-8000-000000000001"));
    CHECK(!kd_cache_name_ok(".."));
    CHECK(!kd_cache_name_ok("a/b"));
    CHECK(!kd_cache_name_ok(""));
    CHECK(!kd_cache_name_ok(".hidden"));
    CHECK(kd_cache_deploy_dir("/r", "shop", "web", "d1", out, sizeof out, err, sizeof err) == KD_OK);
    CHECK_STREQ(out, "/r/app-shop/group-web/deploy-d1");
    CHECK(kd_cache_deploy_dir("/r", "shop", "../etc", "d1", out, sizeof out, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "group");
}

static void test_installed_and_prune(void)
{
    char root[PATH_MAX + 16], id[64], err[256], path[PATH_MAX + 64];
    const char *ids[] = {"d1", "d2", "d3", "d4"};

    snprintf(root, sizeof root, "%s/root", dir);
    CHECK(kd_cache_installed_get(root, "shop", "web", id, sizeof id, err, sizeof err) == KD_ENOTFOUND);
    for (int i = 0; i < 4; i++) {
        char d[PATH_MAX];

        kd_cache_deploy_dir(root, "shop", "web", ids[i], d, sizeof d, err, sizeof err);
        CHECK(kd_mkdirs(d, 0755, err, sizeof err) == KD_OK);
        usleep(20000); /* distinct mtimes: pruning goes by age */
    }
    CHECK(kd_cache_installed_set(root, "shop", "web", "d1", err, sizeof err) == KD_OK);
    CHECK(kd_cache_installed_get(root, "shop", "web", id, sizeof id, err, sizeof err) == KD_OK);
    CHECK_STREQ(id, "d1");
    /* Keep 1: the newest (d4) stays, and the installed one (d1) always. */
    CHECK(kd_cache_prune(root, "shop", "web", 1, "d3", err, sizeof err) == KD_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/app-shop/group-web/deploy-%s", root, ids[i]);
        CHECK_MSG((access(path, F_OK) == 0) == (i != 1), "%s", path);
    }
}

static void test_utf8_sanitize(void)
{
    char a[] = "ok \xc3\xa9t\xc3\xa9";
    char b[] = "\xa9tail \xff\xfe end";
    char c[] = "cut \xe2\x82";

    kd_utf8_sanitize(a);
    CHECK_STREQ(a, "ok \xc3\xa9t\xc3\xa9");
    kd_utf8_sanitize(b);
    CHECK_STREQ(b, "tail ?? end");
    kd_utf8_sanitize(c);
    CHECK_STREQ(c, "cut ??");
}

int main(void)
{
    const char *tmp = getenv("KD_TEST_TMP");
    char err[256];

    snprintf(dir, sizeof dir, "%s/journalXXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    RUN(test_journal_states);
    RUN(test_journal_dir_must_be_private);
    RUN(test_cache_names);
    RUN(test_installed_and_prune);
    RUN(test_utf8_sanitize);
    kd_remove_tree(dir, err, sizeof err);
    return check_summary();
}
