/* The Install step: copying per the `files` section, exists policies,
 * symlinks, cleanup of the previous install, permissions and the manifest.
 * Everything happens under a scratch directory, with a prefix standing for
 * the host's root. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"
#include "install.h"

static char g_base[PATH_MAX];     /* this run's scratch directory */
static char g_dir[PATH_MAX];      /* the current test's directory */
static char g_bundle[PATH_MAX];   /* the unpacked revision */
static char g_host[PATH_MAX];     /* the prefix: the simulated host's root */
static char g_manifest[PATH_MAX]; /* where installs write their manifest */
static char g_err[1024];

/* A path under the test dir, the bundle or the host; rotating buffers so a
 * few can be used in one expression. */
static const char *under(const char *base, const char *rel)
{
    static char bufs[8][PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 8];
    int n = snprintf(b, PATH_MAX, "%s%s", base, rel);

    CHECK(n >= 0 && n < PATH_MAX);
    return b;
}
#define B(rel) under(g_bundle, "/" rel)
#define H(rel) under(g_host, rel)
#define T(rel) under(g_dir, "/" rel)

static void mkdirs(const char *path)
{
    char buf[PATH_MAX];

    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    mkdir(buf, 0755);
}

static void parent_dirs(const char *path)
{
    char buf[PATH_MAX];
    char *slash;

    snprintf(buf, sizeof buf, "%s", path);
    if ((slash = strrchr(buf, '/')) != NULL && slash != buf) {
        *slash = '\0';
        mkdirs(buf);
    }
}

static void put(const char *path, const char *text, mode_t mode)
{
    FILE *f;

    parent_dirs(path);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The file's text ("" when missing), in a rotating buffer. */
static const char *slurp(const char *path)
{
    static char bufs[4][65536];
    static unsigned next;
    char *b = bufs[next++ % 4];
    FILE *f = fopen(path, "r");
    size_t n = 0;

    b[0] = '\0';
    if (!f)
        return b;
    n = fread(b, 1, 65535, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh test directory with an empty bundle and host. */
static void setup(const char *name)
{
    tu_pathf(g_dir, "%s/%s", g_base, name);
    tu_pathf(g_bundle, "%s/bundle", g_dir);
    tu_pathf(g_host, "%s/host", g_dir);
    tu_pathf(g_manifest, "%s/manifest", g_dir);
    mkdirs(g_bundle);
    mkdirs(g_host);
    g_err[0] = '\0';
}

static kd_install_opts_t opts(kd_file_exists_t policy, const char *previous)
{
    kd_install_opts_t o = {g_bundle, g_host, policy, g_manifest, previous};

    return o;
}

static kd_status_t install1(const char *src, const char *dst, kd_file_exists_t policy,
                            const char *previous)
{
    kd_appspec_file_t f = {(char *)src, (char *)dst, 1};
    kd_install_opts_t o = opts(policy, previous);

    return kd_install_run(&f, 1, NULL, 0, &o, g_err, sizeof g_err);
}

/* "K <host path>\n", as the manifest lists an entry. */
static const char *entry(char kind, const char *rel)
{
    static char bufs[4][PATH_MAX + 4];
    static unsigned next;
    char *b = bufs[next++ % 4];
    int n = snprintf(b, PATH_MAX + 4, "%c %s%s\n", kind, g_host, rel);

    CHECK(n >= 0 && n < PATH_MAX + 4);
    return b;
}

static bool has_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    while (d && (e = readdir(d)) != NULL)
        found |= strncmp(e->d_name, ".kdtmp", 6) == 0;
    if (d)
        closedir(d);
    return found;
}

static void test_file_source_goes_to_destination_basename(void)
{
    struct stat src, dst;
    kd_status_t st;

    setup("file");
    put(B("bin/run.sh"), "#!/bin/sh\necho hi\n", 0751);
    st = install1("bin/run.sh", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/app/run.sh")), "#!/bin/sh\necho hi\n");
    CHECK(mode_of(H("/opt/app/run.sh")) == 0751);
    CHECK(stat(B("bin/run.sh"), &src) == 0 && stat(H("/opt/app/run.sh"), &dst) == 0);
    CHECK(src.st_mtim.tv_sec == dst.st_mtim.tv_sec);
    CHECK(!exists(H("/opt/app/bin")));
    CHECK(!has_temp_files(H("/opt/app")));
    /* Missing parents are created and listed, parents first. */
    CHECK(mode_of(H("/opt")) == 0755);
    CHECK(strncmp(slurp(g_manifest), "# kdeploy install manifest v1\n", 30) == 0);
    CHECK_CONTAINS(slurp(g_manifest), entry('d', "/opt"));
    CHECK_CONTAINS(slurp(g_manifest), entry('d', "/opt/app"));
    CHECK_CONTAINS(slurp(g_manifest), entry('f', "/opt/app/run.sh"));
    CHECK(strstr(slurp(g_manifest), entry('d', "/opt")) <
          strstr(slurp(g_manifest), entry('f', "/opt/app/run.sh")));
}

static void test_directory_source_copies_its_contents(void)
{
    kd_status_t st;

    setup("dir");
    put(B("app/a.txt"), "a", 0644);
    put(B("app/sub/b.txt"), "b", 0600);
    put(B("app/sub/deep/c.txt"), "c", 0644);
    chmod(B("app/sub"), 0750);
    st = install1("app/", "/srv/www/", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/srv/www/a.txt")), "a");
    CHECK_STREQ(slurp(H("/srv/www/sub/b.txt")), "b");
    CHECK_STREQ(slurp(H("/srv/www/sub/deep/c.txt")), "c");
    CHECK(mode_of(H("/srv/www/sub/b.txt")) == 0600);
    CHECK(mode_of(H("/srv/www/sub")) == 0750);
    CHECK(!exists(H("/srv/www/app")));
    CHECK_CONTAINS(slurp(g_manifest), entry('d', "/srv/www/sub/deep"));
    CHECK_CONTAINS(slurp(g_manifest), entry('f', "/srv/www/sub/deep/c.txt"));
}

static void test_root_source_copies_the_whole_bundle(void)
{
    kd_status_t st;

    setup("root");
    put(B("appspec.yml"), "version: 0.0\n", 0644);
    put(B("app/a.txt"), "a", 0644);
    st = install1("/", "/opt/all", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/all/appspec.yml")), "version: 0.0\n");
    CHECK_STREQ(slurp(H("/opt/all/app/a.txt")), "a");
    st = install1("", "/opt/again", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/again/app/a.txt")), "a");
}

static void test_fail_policy_writes_nothing_and_names_the_file(void)
{
    kd_status_t st;

    setup("fail");
    put(B("app/a.txt"), "new", 0644);
    put(B("app/b.txt"), "new", 0644);
    put(B("app/new/c.txt"), "new", 0644);
    put(H("/opt/app/b.txt"), "old", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_FAIL, NULL);
    CHECK(st == KD_ECONFLICT);
    CHECK_CONTAINS(g_err, H("/opt/app/b.txt"));
    CHECK_STREQ(slurp(H("/opt/app/b.txt")), "old");
    CHECK(!exists(H("/opt/app/a.txt")));
    CHECK(!exists(H("/opt/app/new")));
    CHECK(!exists(g_manifest));
}

static void test_overwrite_and_unset_policies_replace(void)
{
    kd_status_t st;

    setup("overwrite");
    put(B("app/a.txt"), "new", 0644);
    put(H("/opt/app/a.txt"), "old", 0600);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_OVERWRITE, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/app/a.txt")), "new");
    CHECK(mode_of(H("/opt/app/a.txt")) == 0644);
    CHECK_CONTAINS(slurp(g_manifest), entry('f', "/opt/app/a.txt"));
    /* /opt/app was already there: not ours, never listed. */
    CHECK(strstr(slurp(g_manifest), entry('d', "/opt/app")) == NULL);

    put(H("/opt/app/a.txt"), "older", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/app/a.txt")), "new");
}

static void test_keep_policy_keeps_the_existing_file(void)
{
    kd_status_t st;

    setup("keep");
    put(B("app/a.txt"), "new", 0644);
    put(B("app/b.txt"), "new", 0644);
    put(H("/opt/app/a.txt"), "old", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_KEEP, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/app/a.txt")), "old");
    CHECK_STREQ(slurp(H("/opt/app/b.txt")), "new");
    CHECK(strstr(slurp(g_manifest), entry('f', "/opt/app/a.txt")) == NULL);
    CHECK_CONTAINS(slurp(g_manifest), entry('f', "/opt/app/b.txt"));
}

static void test_symlinks_are_preserved(void)
{
    char target[PATH_MAX];
    ssize_t n;
    kd_status_t st;

    setup("symlink");
    put(B("app/real.txt"), "real", 0644);
    CHECK(symlink("real.txt", B("app/link")) == 0);
    CHECK(symlink("/nonexistent/elsewhere", B("app/dangling")) == 0);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    n = readlink(H("/opt/app/link"), target, sizeof target - 1);
    CHECK(n == 8);
    target[n > 0 ? n : 0] = '\0';
    CHECK_STREQ(target, "real.txt");
    CHECK_STREQ(slurp(H("/opt/app/link")), "real");
    n = readlink(H("/opt/app/dangling"), target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    CHECK_STREQ(target, "/nonexistent/elsewhere");
    CHECK_CONTAINS(slurp(g_manifest), entry('l', "/opt/app/link"));
    /* A link named as the source is copied as a link too. */
    st = install1("app/link", "/opt/one", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    n = readlink(H("/opt/one/link"), target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    CHECK_STREQ(target, "real.txt");
}

static void test_previous_install_is_cleaned_up(void)
{
    char m1[PATH_MAX];
    kd_status_t st;

    setup("cleanup");
    snprintf(m1, sizeof m1, "%s", g_manifest);
    put(B("app/one.txt"), "1", 0644);
    put(B("app/only1/z.txt"), "z", 0644);
    put(B("app/shared/s.txt"), "s", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    put(H("/opt/app/shared/foreign.txt"), "theirs", 0644);

    /* Revision 2, from a new bundle, with its own manifest. */
    rm_tree(g_bundle);
    put(B("app/two.txt"), "2", 0644);
    tu_pathf(g_manifest, "%s/manifest2", g_dir);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_FAIL, m1);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(!exists(H("/opt/app/one.txt")));
    CHECK(!exists(H("/opt/app/only1")));
    CHECK(!exists(H("/opt/app/shared/s.txt")));
    CHECK_STREQ(slurp(H("/opt/app/shared/foreign.txt")), "theirs");
    CHECK_STREQ(slurp(H("/opt/app/two.txt")), "2");
    /* /opt/app was created by revision 1; it stays ours. */
    CHECK_CONTAINS(slurp(g_manifest), entry('d', "/opt/app"));

    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(!exists(H("/opt/app/two.txt")));
    CHECK(exists(H("/opt/app/shared/foreign.txt")));
    CHECK(!exists(g_manifest));
    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK(st == KD_OK);
}

static void test_empty_created_dirs_are_removed(void)
{
    kd_status_t st;

    setup("rmdirs");
    put(B("app/a/b/c.txt"), "c", 0644);
    st = install1("app", "/opt/x/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(!exists(H("/opt")));
    CHECK(exists(g_host));
}

static void test_previous_revision_files_are_not_conflicts(void)
{
    kd_status_t st;

    setup("noconflict");
    put(B("app/a.txt"), "v1", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_FAIL, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    put(B("app/a.txt"), "v2", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_FAIL, g_manifest);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/app/a.txt")), "v2");
    CHECK_CONTAINS(slurp(g_manifest), entry('f', "/opt/app/a.txt"));
    CHECK_CONTAINS(slurp(g_manifest), entry('d', "/opt/app"));
}

static void test_paths_escaping_are_refused(void)
{
    kd_status_t st;

    setup("escape");
    put(T("outside/secret.txt"), "secret", 0644);
    put(B("app/a.txt"), "a", 0644);
    CHECK(symlink(T("outside"), B("linkdir")) == 0);
    CHECK(symlink(T("outside/secret.txt"), B("linkfile")) == 0);

    st = install1("../outside/secret.txt", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EREFUSED);
    CHECK_CONTAINS(g_err, "..");
    st = install1("linkdir/secret.txt", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EREFUSED);
    CHECK_CONTAINS(g_err, "outside the bundle");
    st = install1("linkdir", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EREFUSED);
    st = install1("linkfile", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EREFUSED);
    st = install1("app", "/opt/../../escaped", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EREFUSED);
    st = install1("app", "relative/dir", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EINVAL);
    st = install1("missing", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_ENOTFOUND);
    CHECK(!exists(H("/opt")));
    CHECK(!exists(T("escaped")));
    CHECK(!exists(g_manifest));
}

static void test_two_sources_for_one_destination_are_refused(void)
{
    kd_appspec_file_t f[2] = {{(char *)"a/x.txt", (char *)"/opt", 1},
                              {(char *)"b/x.txt", (char *)"/opt", 2}};
    kd_install_opts_t o;
    kd_status_t st;

    setup("dup");
    put(B("a/x.txt"), "a", 0644);
    put(B("b/x.txt"), "b", 0644);
    o = opts(KD_FILE_EXISTS_UNSET, NULL);
    st = kd_install_run(f, 2, NULL, 0, &o, g_err, sizeof g_err);
    CHECK(st == KD_EINVAL);
    CHECK_CONTAINS(g_err, H("/opt/x.txt"));
    CHECK(!exists(H("/opt/x.txt")));
}

static void test_without_a_prefix_destinations_are_used_as_given(void)
{
    kd_appspec_file_t f = {(char *)"app", NULL, 1};
    kd_install_opts_t o;
    kd_status_t st;

    setup("noprefix");
    put(B("app/a.txt"), "a", 0644);
    f.destination = (char *)T("real/dest");
    o = opts(KD_FILE_EXISTS_UNSET, NULL);
    o.prefix = NULL;
    st = kd_install_run(&f, 1, NULL, 0, &o, g_err, sizeof g_err);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(T("real/dest/a.txt")), "a");
    CHECK_CONTAINS(slurp(g_manifest), T("real/dest/a.txt"));
    st = kd_install_remove(g_manifest, NULL, g_err, sizeof g_err);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(!exists(T("real")));
    CHECK(exists(g_dir));
}

/* Installs bundle dir app/ to /opt/app with one permissions entry. */
static kd_status_t install_with_perm(const kd_appspec_permission_t *perm)
{
    kd_appspec_file_t f = {(char *)"app", (char *)"/opt/app", 1};
    kd_install_opts_t o = opts(KD_FILE_EXISTS_UNSET, NULL);

    return kd_install_run(&f, 1, perm, 1, &o, g_err, sizeof g_err);
}

static void perm_bundle(const char *name)
{
    setup(name);
    put(B("app/a.sh"), "a", 0644);
    put(B("app/skip.sh"), "s", 0644);
    put(B("app/readme.txt"), "r", 0644);
    put(B("app/sub/c.sh"), "c", 0644);
}

static void test_permissions_mode_on_files_only(void)
{
    kd_appspec_permission_t p = {.object = (char *)"/opt/app", .mode = 0600,
                                 .type = KD_PERM_TYPE_FILE};
    kd_status_t st;

    perm_bundle("perm-files");
    st = install_with_perm(&p);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(mode_of(H("/opt/app/a.sh")) == 0600);
    CHECK(mode_of(H("/opt/app/sub/c.sh")) == 0600);
    CHECK(mode_of(H("/opt/app/sub")) == 0755);
    CHECK(mode_of(H("/opt/app")) == 0755);
}

static void test_permissions_mode_on_directories_only(void)
{
    kd_appspec_permission_t p = {.object = (char *)"/opt", .mode = 0750,
                                 .type = KD_PERM_TYPE_DIRECTORY};
    kd_status_t st;

    perm_bundle("perm-dirs");
    st = install_with_perm(&p);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(mode_of(H("/opt/app")) == 0750);
    CHECK(mode_of(H("/opt/app/sub")) == 0750);
    CHECK(mode_of(H("/opt")) == 0755); /* the object itself is left alone */
    CHECK(mode_of(H("/opt/app/a.sh")) == 0644);
}

static void test_permissions_pattern_and_except(void)
{
    char *except[] = {(char *)"skip.*"};
    kd_appspec_permission_t p = {.object = (char *)"/opt/app/", .pattern = (char *)"*.sh",
                                 .except = except, .except_count = 1, .mode = 0700};
    kd_status_t st;

    perm_bundle("perm-pattern");
    st = install_with_perm(&p);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(mode_of(H("/opt/app/a.sh")) == 0700);
    CHECK(mode_of(H("/opt/app/skip.sh")) == 0644);
    CHECK(mode_of(H("/opt/app/readme.txt")) == 0644);
    CHECK(mode_of(H("/opt/app/sub/c.sh")) == 0644); /* a pattern names direct children */
}

static void test_permissions_on_a_file_object(void)
{
    kd_appspec_permission_t p = {.object = (char *)"/opt/app/a.sh", .mode = 04751};
    kd_appspec_permission_t bad = {.object = (char *)"/opt/app/a.sh", .pattern = (char *)"*",
                                   .mode = 0700};
    kd_status_t st;

    perm_bundle("perm-file");
    st = install_with_perm(&p);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(mode_of(H("/opt/app/a.sh")) == 04751);
    CHECK(mode_of(H("/opt/app/skip.sh")) == 0644);
    st = install_with_perm(&bad);
    CHECK(st == KD_EINVAL);
    CHECK_CONTAINS(g_err, "/opt/app/a.sh");
}

static void test_permissions_owner_and_group(void)
{
    kd_appspec_permission_t p = {.object = (char *)"/opt/app", .owner = (char *)"nobody",
                                 .group = (char *)"nogroup", .mode = -1};
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    struct stat st;
    kd_status_t rc;

    if (getuid() != 0 || !pw || !gr) {
        fprintf(stderr, "skip: owner/group test needs root, nobody and nogroup\n");
        return;
    }
    perm_bundle("perm-owner");
    rc = install_with_perm(&p);
    CHECK_MSG(rc == KD_OK, "%s", g_err);
    CHECK(lstat(H("/opt/app/a.sh"), &st) == 0);
    CHECK(st.st_uid == pw->pw_uid && st.st_gid == gr->gr_gid);
    CHECK(lstat(H("/opt/app/sub"), &st) == 0);
    CHECK(st.st_uid == pw->pw_uid && st.st_gid == gr->gr_gid);
    CHECK(mode_of(H("/opt/app/a.sh")) == 0644);
    CHECK(lstat(H("/opt/app"), &st) == 0);
    CHECK(st.st_uid == 0);
}

static void test_permissions_unknown_owner_is_an_error(void)
{
    kd_appspec_permission_t p = {.object = (char *)"/opt/app", .owner = (char *)"kd-no-such-user",
                                 .mode = -1};
    kd_appspec_permission_t g = {.object = (char *)"/opt/app", .group = (char *)"kd-no-such-group",
                                 .mode = -1};
    kd_status_t st;

    perm_bundle("perm-unknown");
    st = install_with_perm(&p);
    CHECK(st == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "kd-no-such-user");
    CHECK(!exists(H("/opt/app")));
    st = install_with_perm(&g);
    CHECK(st == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "kd-no-such-group");
}

static void test_manifest_is_written_when_install_fails_midway(void)
{
    FILE *f;
    kd_status_t st;

    setup("midway");
    put(B("app/a.txt"), "a", 0644);
    put(B("app/x"), "x", 0644);
    /* The previous install claims a file at x, but a non-empty directory
     * stands there now: the cleanup keeps it and writing x fails. */
    put(H("/opt/app/x/foreign.txt"), "theirs", 0644);
    f = fopen(T("previous"), "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "# kdeploy install manifest v1\nf %s\n", H("/opt/app/x"));
        fclose(f);
    }
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, T("previous"));
    CHECK(st == KD_EIO);
    CHECK_CONTAINS(g_err, H("/opt/app/x"));
    CHECK_STREQ(slurp(H("/opt/app/a.txt")), "a");
    CHECK_CONTAINS(slurp(g_manifest), entry('f', "/opt/app/a.txt"));
    CHECK(strstr(slurp(g_manifest), entry('f', "/opt/app/x")) == NULL);
    CHECK(!has_temp_files(H("/opt/app")));
    /* The cleanup then takes away what was written. */
    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK(!exists(H("/opt/app/a.txt")));
    CHECK(exists(H("/opt/app/x/foreign.txt")));
}

static void test_remove_refuses_paths_outside_the_prefix(void)
{
    FILE *f;
    kd_status_t st;

    setup("remove-outside");
    put(T("outside.txt"), "keep me", 0644);
    put(H("/opt/mine.txt"), "mine", 0644);
    f = fopen(g_manifest, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "f %s\nf %s\n", H("/opt/mine.txt"), T("outside.txt"));
        fclose(f);
    }
    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK(st == KD_EREFUSED);
    CHECK_CONTAINS(g_err, T("outside.txt"));
    CHECK(exists(T("outside.txt")));
    CHECK(exists(H("/opt/mine.txt")));
    CHECK(exists(g_manifest));

    f = fopen(g_manifest, "w");
    if (f) {
        fprintf(f, "f %s/../outside.txt\n", g_host);
        fclose(f);
    }
    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK(st == KD_EREFUSED);
    CHECK(exists(T("outside.txt")));
}

/* A hook user replaces an installed directory with a symlink to a root-only
 * directory: the next install neither writes, chmods nor deletes there, and
 * names the symlink. */
static void test_symlinked_directory_is_refused(void)
{
    kd_appspec_permission_t p = {.object = (char *)"/opt/app", .mode = 0775,
                                 .type = KD_PERM_TYPE_DIRECTORY};
    kd_install_opts_t o;
    kd_appspec_file_t f = {(char *)"app", (char *)"/opt/app", 1};
    kd_status_t st;

    setup("symlink-dir");
    put(B("app/data/run.txt"), "v1", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    put(T("secret/run.txt"), "root's", 0600);
    chmod(T("secret"), 0700);
    rm_tree(H("/opt/app/data"));
    CHECK(symlink(T("secret"), H("/opt/app/data")) == 0);
    put(B("app/data/run.txt"), "v2", 0644);
    o = opts(KD_FILE_EXISTS_UNSET, g_manifest);
    st = kd_install_run(&f, 1, &p, 1, &o, g_err, sizeof g_err);
    CHECK(st == KD_EREFUSED);
    CHECK_CONTAINS(g_err, H("/opt/app/data"));
    CHECK_CONTAINS(g_err, "symlink");
    CHECK_STREQ(slurp(T("secret/run.txt")), "root's");
    CHECK(mode_of(T("secret")) == 0700);
    CHECK(mode_of(T("secret/run.txt")) == 0600);
    CHECK(!has_temp_files(T("secret")));
}

/* The same planted symlink must not make the cleanup of the previous
 * install delete through it, even when the new revision installs nothing
 * there. */
static void test_cleanup_does_not_follow_a_planted_symlink(void)
{
    kd_status_t st;

    setup("symlink-cleanup");
    put(B("app/data/run.txt"), "v1", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    put(T("secret/run.txt"), "root's", 0600);
    rm_tree(H("/opt/app/data"));
    CHECK(symlink(T("secret"), H("/opt/app/data")) == 0);
    rm_tree(B("app/data"));
    put(B("app/other.txt"), "v2", 0644);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, g_manifest);
    CHECK(st == KD_EREFUSED);
    CHECK_CONTAINS(g_err, H("/opt/app/data"));
    CHECK_STREQ(slurp(T("secret/run.txt")), "root's");
    st = kd_install_remove(g_manifest, g_host, g_err, sizeof g_err);
    CHECK(st == KD_EREFUSED);
    CHECK_STREQ(slurp(T("secret/run.txt")), "root's");
}

/* A directory on the way owned by a user the permissions do not name is
 * refused; once the permissions name that user, it is walked. */
static void test_foreign_owned_directory_is_refused(void)
{
    struct passwd *pw = getpwnam("nobody");
    kd_appspec_permission_t p = {.object = (char *)"/opt/app", .owner = (char *)"nobody",
                                 .mode = -1};
    kd_status_t st;

    if (getuid() != 0 || !pw) {
        fprintf(stderr, "skip: foreign owner test needs root and nobody\n");
        return;
    }
    setup("foreign-owner");
    put(B("app/data/run.txt"), "v1", 0644);
    mkdirs(H("/opt/app/data"));
    CHECK(chown(H("/opt/app/data"), pw->pw_uid, (gid_t)-1) == 0);
    st = install1("app", "/opt/app", KD_FILE_EXISTS_UNSET, NULL);
    CHECK(st == KD_EREFUSED);
    CHECK_CONTAINS(g_err, H("/opt/app/data"));
    CHECK(!exists(H("/opt/app/data/run.txt")));
    st = install_with_perm(&p);
    CHECK_MSG(st == KD_OK, "%s", g_err);
    CHECK_STREQ(slurp(H("/opt/app/data/run.txt")), "v1");
}

int main(void)
{
    const char *tmp = getenv("KD_TEST_TMP");

    snprintf(g_base, sizeof g_base, "%s/install-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    mkdirs(tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        return 1;
    }
    umask(022);
    RUN(test_file_source_goes_to_destination_basename);
    RUN(test_directory_source_copies_its_contents);
    RUN(test_root_source_copies_the_whole_bundle);
    RUN(test_fail_policy_writes_nothing_and_names_the_file);
    RUN(test_overwrite_and_unset_policies_replace);
    RUN(test_keep_policy_keeps_the_existing_file);
    RUN(test_symlinks_are_preserved);
    RUN(test_previous_install_is_cleaned_up);
    RUN(test_empty_created_dirs_are_removed);
    RUN(test_previous_revision_files_are_not_conflicts);
    RUN(test_paths_escaping_are_refused);
    RUN(test_two_sources_for_one_destination_are_refused);
    RUN(test_without_a_prefix_destinations_are_used_as_given);
    RUN(test_permissions_mode_on_files_only);
    RUN(test_permissions_mode_on_directories_only);
    RUN(test_permissions_pattern_and_except);
    RUN(test_permissions_on_a_file_object);
    RUN(test_permissions_owner_and_group);
    RUN(test_permissions_unknown_owner_is_an_error);
    RUN(test_manifest_is_written_when_install_fails_midway);
    RUN(test_remove_refuses_paths_outside_the_prefix);
    RUN(test_symlinked_directory_is_refused);
    RUN(test_cleanup_does_not_follow_a_planted_symlink);
    RUN(test_foreign_owned_directory_is_refused);
    rm_tree(g_base);
    return check_summary();
}
