/* acls with libacl and contexts with libselinux (see acl.h). */
#include "acl.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <acl/libacl.h>
#ifdef KD_HAVE_SELINUX
#include <selinux/context.h>
#include <selinux/selinux.h>
#endif

#define NAME_BUF 16384

/* ---- names ---- */

static bool all_digits(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* A user or group name (or a number, as setfacl takes) to its id. */
static kd_status_t name_to_id(const char *name, bool group, id_t *id, char *err, size_t errsz)
{
    char *buf = malloc(NAME_BUF);
    struct passwd pw, *pwp = NULL;
    struct group gr, *grp = NULL;
    int rc;

    if (all_digits(name)) {
        free(buf);
        *id = (id_t)strtoul(name, NULL, 10);
        return KD_OK;
    }
    if (!buf)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (group) {
        rc = getgrnam_r(name, &gr, buf, NAME_BUF, &grp);
        if (grp)
            *id = grp->gr_gid;
    } else {
        rc = getpwnam_r(name, &pw, buf, NAME_BUF, &pwp);
        if (pwp)
            *id = pwp->pw_uid;
    }
    free(buf);
    if (group ? grp != NULL : pwp != NULL)
        return KD_OK;
    return kd_err(err, errsz, KD_EINVAL, "acl: no such %s '%s'%s%s", group ? "group" : "user",
                  name, rc ? ": " : "", rc ? strerror(rc) : "");
}

/* ---- building an ACL ---- */

static acl_tag_t tag_of(kd_ace_type_t type, bool named)
{
    switch (type) {
    case KD_ACE_USER:
        return named ? ACL_USER : ACL_USER_OBJ;
    case KD_ACE_GROUP:
        return named ? ACL_GROUP : ACL_GROUP_OBJ;
    case KD_ACE_MASK:
        return ACL_MASK;
    case KD_ACE_OTHER:
        return ACL_OTHER;
    }
    return ACL_UNDEFINED_TAG;
}

static int add_entry(acl_t *acl, acl_tag_t tag, const id_t *qualifier, unsigned perms)
{
    acl_entry_t e;
    acl_permset_t ps;

    if (acl_create_entry(acl, &e) != 0 || acl_set_tag_type(e, tag) != 0 ||
        (qualifier && acl_set_qualifier(e, qualifier) != 0) || acl_get_permset(e, &ps) != 0 ||
        acl_clear_perms(ps) != 0)
        return -1;
    if (((perms & KD_ACE_READ) && acl_add_perm(ps, ACL_READ) != 0) ||
        ((perms & KD_ACE_WRITE) && acl_add_perm(ps, ACL_WRITE) != 0) ||
        ((perms & KD_ACE_EXECUTE) && acl_add_perm(ps, ACL_EXECUTE) != 0))
        return -1;
    return acl_set_permset(e, ps);
}

/* What the appspec gives for one kind of entry (default or not). */
typedef struct given {
    bool user_obj, group_obj, other, mask, named;
    unsigned group_obj_perms;
} given_t;

static void note(given_t *g, const kd_appspec_ace_t *a)
{
    bool named = a->name && *a->name;

    g->named |= named;
    g->mask |= a->type == KD_ACE_MASK;
    g->other |= a->type == KD_ACE_OTHER;
    g->user_obj |= a->type == KD_ACE_USER && !named;
    if (a->type == KD_ACE_GROUP && !named) {
        g->group_obj = true;
        g->group_obj_perms = a->perms;
    }
}

/* The entries of one ACL (is_default picks which), completed from mode as
 * the agent completes them. */
static kd_status_t build(const kd_appspec_ace_t *aces, size_t count, bool is_default,
                         mode_t mode, acl_t *out, const char *what, char *err, size_t errsz)
{
    unsigned u = (mode >> 6) & 7, g = (mode >> 3) & 7, o = mode & 7;
    acl_t acl = acl_init((int)count + 4);
    given_t have = {0};
    kd_status_t st = KD_OK;
    id_t id;

    if (!acl)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    for (size_t i = 0; i < count && st == KD_OK; i++) {
        const kd_appspec_ace_t *a = &aces[i];
        bool named = a->name && *a->name;

        if (a->is_default != is_default)
            continue;
        note(&have, a);
        if (named && (st = name_to_id(a->name, a->type == KD_ACE_GROUP, &id, err, errsz)) != KD_OK)
            break;
        if (add_entry(&acl, tag_of(a->type, named), named ? &id : NULL, a->perms) != 0)
            st = kd_err(err, errsz, KD_EIO, "acl on %s: %s", what, strerror(errno));
    }
    /* The base entries come from the mode unless given (defaults only). */
    if (st == KD_OK && ((!have.user_obj && add_entry(&acl, ACL_USER_OBJ, NULL, u) != 0) ||
                        (!have.group_obj && add_entry(&acl, ACL_GROUP_OBJ, NULL, g) != 0) ||
                        (!have.other && add_entry(&acl, ACL_OTHER, NULL, o) != 0) ||
                        (have.named && !have.mask &&
                         add_entry(&acl, ACL_MASK, NULL,
                                   is_default && have.group_obj ? have.group_obj_perms : g) != 0)))
        st = kd_err(err, errsz, KD_EIO, "acl on %s: %s", what, strerror(errno));
    if (st == KD_OK && acl_valid(acl) != 0)
        st = kd_err(err, errsz, KD_EINVAL, "acl on %s: the entries do not make a valid ACL "
                    "(an entry given twice?)", what);
    if (st != KD_OK) {
        acl_free(acl);
        return st;
    }
    *out = acl;
    return KD_OK;
}

static bool any_default(const kd_appspec_ace_t *aces, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (aces[i].is_default)
            return true;
    return false;
}

/* libacl sets a default ACL by path only: the descriptor's /proc entry
 * names the very file already opened, so no path is resolved again. */
static int set_default(int fd, acl_t acl)
{
    char proc[64];

    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return acl_set_file(proc, ACL_TYPE_DEFAULT, acl);
}

kd_status_t kd_acl_apply_fd(int fd, bool is_dir, const kd_appspec_ace_t *aces, size_t count,
                            const char *what, char *err, size_t errsz)
{
    acl_t access = NULL, dflt = NULL;
    struct stat st;
    kd_status_t rc;

    if (!is_dir && any_default(aces, count))
        return kd_err(err, errsz, KD_EINVAL,
                      "acl on %s: a default (d:) entry applies to directories only, as in "
                      "CodeDeploy", what);
    if (fstat(fd, &st) != 0)
        return kd_err(err, errsz, KD_EIO, "acl on %s: %s", what, strerror(errno));
    if ((rc = build(aces, count, false, st.st_mode, &access, what, err, errsz)) != KD_OK)
        return rc;
    if (is_dir && any_default(aces, count) &&
        (rc = build(aces, count, true, st.st_mode, &dflt, what, err, errsz)) != KD_OK)
        goto out;
    if (acl_set_fd(fd, access) != 0 || (dflt && set_default(fd, dflt) != 0))
        rc = kd_err(err, errsz, errno == ENOTSUP ? KD_EIO : KD_EINVAL, "acl on %s: %s%s", what,
                    strerror(errno),
                    errno == ENOTSUP ? " (the file system does not support ACLs)" : "");
out:
    acl_free(access);
    if (dflt)
        acl_free(dflt);
    return rc;
}

/* ---- SELinux ---- */

#ifdef KD_HAVE_SELINUX
static kd_status_t relabel(int fd, const kd_appspec_context_t *ctx, const char *what, char *err,
                           size_t errsz)
{
    char *old = NULL;
    context_t con;
    kd_status_t rc = KD_OK;

    if (fgetfilecon(fd, &old) < 0)
        return kd_err(err, errsz, KD_EIO, "context of %s: %s", what, strerror(errno));
    if (!(con = context_new(old))) {
        freecon(old);
        return kd_err(err, errsz, KD_EINVAL, "context of %s: cannot read '%s'", what, old);
    }
    freecon(old);
    if ((ctx->user && context_user_set(con, ctx->user) != 0) ||
        context_type_set(con, ctx->type) != 0 ||
        (ctx->range && context_range_set(con, ctx->range) != 0))
        rc = kd_err(err, errsz, KD_EINVAL, "context of %s: bad user, type or range", what);
    else if (fsetfilecon(fd, context_str(con)) != 0)
        rc = kd_err(err, errsz, KD_EINVAL, "context of %s: cannot set '%s': %s", what,
                    context_str(con), strerror(errno));
    context_free(con);
    return rc;
}
#endif

kd_status_t kd_selinux_apply_fd(int fd, const kd_appspec_context_t *ctx, const char *what,
                                char *err, size_t errsz)
{
    if (!ctx || !ctx->type)
        return kd_err(err, errsz, KD_EINVAL, "context of %s: no type", what);
#ifdef KD_HAVE_SELINUX
    if (is_selinux_enabled() > 0)
        return relabel(fd, ctx, what, err, errsz);
#else
    (void)fd;
#endif
    return kd_err(err, errsz, KD_EFAILED,
                  "context %s on %s: SELinux is not enabled on this host, so the context cannot "
                  "be set (CodeDeploy fails here too); remove `context` from the appspec for "
                  "hosts without SELinux", ctx->type, what);
}

/* ---- one permission entry ---- */

bool kd_perm_has_extras(const kd_appspec_permission_t *pm)
{
    return pm && (pm->acls || pm->context);
}

kd_status_t kd_perm_extras_apply_at(int dirfd, const char *name,
                                    const kd_appspec_permission_t *pm, char *err, size_t errsz)
{
    struct stat st;
    kd_status_t rc = KD_OK;
    int fd;

    if (!kd_perm_has_extras(pm))
        return KD_OK;
    fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", name,
                      errno == ELOOP ? "a symbolic link: acls and context are not set through "
                                       "links" : strerror(errno));
    if (fstat(fd, &st) != 0)
        rc = kd_err(err, errsz, KD_EIO, "%s: %s", name, strerror(errno));
    if (rc == KD_OK && pm->acls)
        rc = kd_acl_apply_fd(fd, S_ISDIR(st.st_mode), pm->acls, pm->acl_count, name, err, errsz);
    if (rc == KD_OK && pm->context)
        rc = kd_selinux_apply_fd(fd, pm->context, name, err, errsz);
    close(fd);
    return rc;
}
