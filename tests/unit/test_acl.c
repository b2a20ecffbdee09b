/* worker/acl.c: an appspec's acls applied with libacl as the AWS agent
 * applies them (base entries from the mode, a mask from the group bits,
 * default entries on directories only), and SELinux contexts refused on a
 * host without SELinux. */
#include <fcntl.h>
#include <sys/acl.h>
#include <acl/libacl.h>

#include "acl.h"
#include "appspec_int.h"
#include "fsutil.h"
#include "testutil.h"

static char dir[PATH_MAX];
static char err[1024];

/* The perms of one entry of path's ACL (tag, and qualifier for named
 * entries), or -1 when it has none. */
static int entry_perms(const char *path, acl_type_t type, acl_tag_t tag, id_t id)
{
    acl_t acl = acl_get_file(path, type);
    acl_entry_t e;
    int which = ACL_FIRST_ENTRY, found = -1;

    if (!acl)
        return -1;
    while (acl_get_entry(acl, which, &e) == 1) {
        acl_tag_t t;
        acl_permset_t ps;

        which = ACL_NEXT_ENTRY;
        if (acl_get_tag_type(e, &t) != 0 || t != tag)
            continue;
        if (tag == ACL_USER || tag == ACL_GROUP) {
            id_t *q = acl_get_qualifier(e);
            bool same = q && *q == id;

            acl_free(q);
            if (!same)
                continue;
        }
        acl_get_permset(e, &ps);
        found = (acl_get_perm(ps, ACL_READ) ? 4 : 0) | (acl_get_perm(ps, ACL_WRITE) ? 2 : 0) |
                (acl_get_perm(ps, ACL_EXECUTE) ? 1 : 0);
    }
    acl_free(acl);
    return found;
}

static size_t parse_aces(const char *const *texts, kd_appspec_ace_t *aces)
{
    size_t n = 0;
    char why[256];

    for (; texts[n]; n++)
        CHECK_MSG(kd_appspec_ace_parse(texts[n], &aces[n], why, sizeof why) == KD_OK, "%s: %s",
                  texts[n], why);
    return n;
}

static void free_aces(kd_appspec_ace_t *aces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(aces[i].name);
}

/* A named user on a 0640 file: user:: and other:: from the mode, the mask
 * from the group bits, as the agent's setfacl --set does. */
static void test_named_user_on_file(void)
{
    const char *texts[] = {"u:nobody:rwx", NULL};
    kd_appspec_ace_t aces[2];
    char path[PATH_MAX];
    size_t n = parse_aces(texts, aces);
    int fd;

    tu_pathf(path, "%s/file", dir);
    tu_write_text(path, "x\n");
    CHECK(chmod(path, 0640) == 0);
    fd = open(path, O_RDONLY);
    CHECK_MSG(kd_acl_apply_fd(fd, false, aces, n, path, err, sizeof err) == KD_OK, "%s", err);
    close(fd);
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_USER, 65534) == 7);
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_USER_OBJ, 0) == 6);
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_MASK, 0) == 4);
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_OTHER, 0) == 0);
    free_aces(aces, n);
}

/* Default entries on a directory, completed like the access ones; the
 * default mask is the default group entry's. */
static void test_defaults_on_directory(void)
{
    const char *texts[] = {"d:g:nogroup:rx", "d:g::rw", "m::7", "u:nobody:r", NULL};
    kd_appspec_ace_t aces[5];
    char path[PATH_MAX];
    size_t n = parse_aces(texts, aces);
    int fd;

    tu_pathf(path, "%s/d", dir);
    CHECK(mkdir(path, 0750) == 0);
    fd = open(path, O_RDONLY | O_DIRECTORY);
    CHECK_MSG(kd_acl_apply_fd(fd, true, aces, n, path, err, sizeof err) == KD_OK, "%s", err);
    close(fd);
    CHECK(entry_perms(path, ACL_TYPE_DEFAULT, ACL_GROUP, 65534) == 5);
    CHECK(entry_perms(path, ACL_TYPE_DEFAULT, ACL_GROUP_OBJ, 0) == 6);
    CHECK(entry_perms(path, ACL_TYPE_DEFAULT, ACL_MASK, 0) == 6);
    CHECK(entry_perms(path, ACL_TYPE_DEFAULT, ACL_USER_OBJ, 0) == 7);
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_MASK, 0) == 7);
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_USER, 65534) == 4);
    free_aces(aces, n);
}

static void test_refusals(void)
{
    const char *dflt[] = {"d:u:nobody:rw", NULL};
    const char *twice[] = {"u:nobody:rw", "u:nobody:r", NULL};
    const char *unknown[] = {"u:no-such-user-kd:rw", NULL};
    kd_appspec_ace_t aces[3];
    char path[PATH_MAX], link[PATH_MAX];
    kd_appspec_permission_t pm = {0};
    size_t n;
    int fd;

    tu_pathf(path, "%s/f2", dir);
    tu_write_text(path, "x\n");
    fd = open(path, O_RDONLY);
    n = parse_aces(dflt, aces);
    CHECK(kd_acl_apply_fd(fd, false, aces, n, "f2", err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "applies to directories only");
    free_aces(aces, n);
    n = parse_aces(twice, aces);
    CHECK(kd_acl_apply_fd(fd, false, aces, n, "f2", err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "not make a valid ACL");
    free_aces(aces, n);
    n = parse_aces(unknown, aces);
    CHECK(kd_acl_apply_fd(fd, false, aces, n, "f2", err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "no such user 'no-such-user-kd'");
    free_aces(aces, n);
    close(fd);
    /* A link is never followed. */
    n = parse_aces(twice, aces);
    pm.acls = aces;
    pm.acl_count = 1;
    tu_pathf(link, "%s/link", dir);
    CHECK(symlink(path, link) == 0);
    CHECK(kd_perm_extras_apply_at(AT_FDCWD, link, &pm, err, sizeof err) == KD_EIO);
    CHECK_CONTAINS(err, "a symbolic link");
    CHECK(entry_perms(path, ACL_TYPE_ACCESS, ACL_USER, 65534) == -1);
    free_aces(aces, n);
}

/* On this host SELinux is off (or the build has no libselinux): a context
 * fails the Install, as the agent's semanage fails. */
static void test_context_without_selinux(void)
{
    kd_appspec_context_t ctx = {.type = (char *)"httpd_sys_content_t"};
    kd_appspec_permission_t pm = {.context = &ctx};
    char path[PATH_MAX];

    if (access("/sys/fs/selinux/enforce", F_OK) == 0) {
        printf("skip: SELinux is enabled here\n");
        return;
    }
    tu_pathf(path, "%s/f3", dir);
    tu_write_text(path, "x\n");
    CHECK(kd_perm_extras_apply_at(AT_FDCWD, path, &pm, err, sizeof err) == KD_EFAILED);
    CHECK_CONTAINS(err, "SELinux is not enabled on this host");
    CHECK(!kd_perm_has_extras(&(kd_appspec_permission_t){0}));
}

int main(void)
{
    char rmerr[256];

    if (tu_scratch(dir, "acl-") != 0)
        return 1;
    RUN(test_named_user_on_file);
    RUN(test_defaults_on_directory);
    RUN(test_refusals);
    RUN(test_context_without_selinux);
    kd_remove_tree(dir, rmerr, sizeof rmerr);
    return check_summary();
}
