/* The step journal and the worker's cache layout. */
#include <limits.h>
#include <openssl/sha.h>
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

static kd_journal_t *reopen(kd_journal_t *j, const char *jdir)
{
    char err[256];

    kd_journal_close(j);
    j = NULL;
    CHECK_MSG(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK, "%s", err);
    return j;
}

static kd_journal_state_t state_of(kd_journal_t *j, const char *step)
{
    char err[256];
    kd_journal_state_t state = KD_JOURNAL_NONE;

    CHECK_MSG(kd_journal_lookup(j, step, &state, NULL, err, sizeof err) == KD_OK, "%s", err);
    return state;
}

/* The offset a host has done up to: none at first, the last one recorded
 * after a reopen. */
static void test_journal_offset(void)
{
    char jdir[PATH_MAX + 16], err[256];
    kd_journal_t *j = NULL;

    snprintf(jdir, sizeof jdir, "%s/offsets", dir);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j)
        return;
    CHECK(kd_journal_offset(j) == -1);
    CHECK(kd_journal_set_offset(j, 41, err, sizeof err) == KD_OK);
    CHECK(kd_journal_set_offset(j, 5000000000LL, err, sizeof err) == KD_OK);
    CHECK(kd_journal_offset(j) == 5000000000LL);
    j = reopen(j, jdir);
    CHECK(j && kd_journal_offset(j) == 5000000000LL);
    kd_journal_close(j);
}

/* Past the first preallocated chunk, every record is still read back. */
static void test_journal_grows(void)
{
    char jdir[PATH_MAX + 16], err[256], step[64];
    char *result = calloc(1, 4000);
    kd_journal_t *j = NULL;
    kd_buf_t got = KD_BUF_INIT(0);
    int n = 400; /* about 1.6 MB of records: two chunks */

    snprintf(jdir, sizeof jdir, "%s/grows", dir);
    CHECK(result && kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j || !result) {
        free(result);
        return;
    }
    for (int i = 0; i < n; i++) {
        snprintf(step, sizeof step, "d-%d/h/Install/1", i);
        memset(result, 'a' + i % 26, 4000);
        CHECK(kd_journal_finish(j, step, result, 4000, err, sizeof err) == KD_OK);
    }
    j = reopen(j, jdir);
    for (int i = 0; j && i < n; i += 97) {
        kd_journal_state_t state = KD_JOURNAL_NONE;

        snprintf(step, sizeof step, "d-%d/h/Install/1", i);
        kd_buf_reset(&got);
        CHECK(kd_journal_lookup(j, step, &state, &got, err, sizeof err) == KD_OK);
        CHECK(state == KD_JOURNAL_FINISHED && got.len == 4000 &&
              got.data[0] == 'a' + i % 26 && got.data[3999] == 'a' + i % 26);
    }
    kd_journal_close(j);
    kd_buf_free(&got);
    free(result);
}

/* A crash in the middle of an append leaves a torn record at the end: the
 * records before it stand, it is not one, and what is appended after the
 * restart is read back after the next. */
static void test_journal_torn_tail(void)
{
    char jdir[PATH_MAX + 16], log[PATH_MAX + 32], err[256];
    kd_journal_t *j = NULL;
    struct stat sb;
    FILE *f;
    long end;

    snprintf(jdir, sizeof jdir, "%s/torn", dir);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j)
        return;
    CHECK(kd_journal_start(j, "d/h/BeforeInstall/1", err, sizeof err) == KD_OK);
    CHECK(kd_journal_finish(j, "d/h/BeforeInstall/1", "R1", 2, err, sizeof err) == KD_OK);
    CHECK(kd_journal_start(j, "d/h/Install/1", err, sizeof err) == KD_OK);
    kd_journal_close(j);
    /* The record that follows the last whole one: a length, and bytes that
     * do not match its checksum. */
    snprintf(log, sizeof log, "%s/journal.log", jdir);
    CHECK(stat(log, &sb) == 0 && sb.st_size >= 1024 * 1024);
    f = fopen(log, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    /* Find the end: the first zero length. */
    for (end = 0;;) {
        unsigned char head[12];
        unsigned long len;

        CHECK(fseek(f, end, SEEK_SET) == 0 && fread(head, 1, 12, f) == 12);
        len = head[0] | head[1] << 8 | (unsigned long)head[2] << 16 | (unsigned long)head[3] << 24;
        if (len == 0)
            break;
        end += 12 + (long)len;
    }
    CHECK(fseek(f, end, SEEK_SET) == 0);
    CHECK(fwrite("\x30\x00\x00\x00garbage-garbage-garbage", 1, 27, f) == 27);
    fclose(f);
    j = reopen(NULL, jdir);
    CHECK(j && state_of(j, "d/h/BeforeInstall/1") == KD_JOURNAL_FINISHED);
    CHECK(j && state_of(j, "d/h/Install/1") == KD_JOURNAL_STARTED);
    CHECK(j && kd_journal_finish(j, "d/h/Install/1", "R2", 2, err, sizeof err) == KD_OK);
    j = reopen(j, jdir);
    CHECK(j && state_of(j, "d/h/Install/1") == KD_JOURNAL_FINISHED);
    kd_journal_close(j);
}

/* A journal written before the log (a file per entry, named by the step
 * id's hash) still answers for its steps. */
static void test_journal_reads_old_layout(void)
{
    char jdir[PATH_MAX + 16], path[PATH_MAX + 128], err[256];
    const char *step = "d-old/h/ApplicationStart/1";
    unsigned char md[32];
    char hex[41];
    kd_journal_t *j = NULL;
    kd_buf_t got = KD_BUF_INIT(0);
    kd_journal_state_t state = KD_JOURNAL_NONE;

    snprintf(jdir, sizeof jdir, "%s/old", dir);
    CHECK(mkdir(jdir, 0700) == 0);
    SHA256((const unsigned char *)step, strlen(step), md);
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(path, sizeof path, "%s/%s.result", jdir, hex);
    CHECK(kd_write_file_atomic(path, "OLD", 3, 0600, err, sizeof err) == KD_OK);
    CHECK(kd_journal_open(jdir, &j, err, sizeof err) == KD_OK);
    if (!j)
        return;
    CHECK(kd_journal_lookup(j, step, &state, &got, err, sizeof err) == KD_OK);
    CHECK(state == KD_JOURNAL_FINISHED && got.len == 3 && memcmp(got.data, "OLD", 3) == 0);
    kd_journal_close(j);
    kd_buf_free(&got);
}

/* Two processes (or two opens) on one journal would interleave records. */
static void test_journal_one_user(void)
{
    char jdir[PATH_MAX + 16], err[256];
    kd_journal_t *a = NULL, *b = NULL;

    snprintf(jdir, sizeof jdir, "%s/shared", dir);
    CHECK(kd_journal_open(jdir, &a, err, sizeof err) == KD_OK);
    CHECK(kd_journal_open(jdir, &b, err, sizeof err) == KD_EREFUSED);
    CHECK_CONTAINS(err, "in use");
    kd_journal_close(a);
    CHECK(kd_journal_open(jdir, &b, err, sizeof err) == KD_OK);
    kd_journal_close(b);
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
    RUN(test_journal_offset);
    RUN(test_journal_grows);
    RUN(test_journal_torn_tail);
    RUN(test_journal_reads_old_layout);
    RUN(test_journal_one_user);
    RUN(test_cache_names);
    RUN(test_installed_and_prune);
    RUN(test_utf8_sanitize);
    kd_remove_tree(dir, err, sizeof err);
    return check_summary();
}
