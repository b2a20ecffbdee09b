#include "safedir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct kd_safedir {
    int base_fd;
    char base[PATH_MAX]; /* "" for / */
    size_t base_len;
    uid_t *owners;
    size_t nowners;
    /* The last parent walked to: installs go parents first, so most walks
     * start here rather than at the base. */
    int last_fd;
    char last[PATH_MAX];
};

static bool owner_ok(const kd_safedir_t *d, uid_t uid)
{
    if (uid == 0 || uid == geteuid())
        return true;
    for (size_t i = 0; i < d->nowners; i++)
        if (d->owners[i] == uid)
            return true;
    return false;
}

kd_status_t kd_safedir_open(const char *base, const uid_t *owners, size_t nowners,
                            kd_safedir_t **out, char *err, size_t errsz)
{
    kd_safedir_t *d = calloc(1, sizeof *d);
    const char *shown = base && *base ? base : "/";
    struct stat st;

    if (!d || (nowners && !(d->owners = malloc(nowners * sizeof *owners)))) {
        free(d);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    if (nowners)
        memcpy(d->owners, owners, nowners * sizeof *owners);
    d->nowners = nowners;
    d->base_fd = -1;
    d->last_fd = -1;
    d->base_len = base && strcmp(base, "/") != 0 ? strlen(base) : 0;
    if (d->base_len >= sizeof d->base) {
        kd_safedir_free(d);
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", base);
    }
    memcpy(d->base, base ? base : "", d->base_len);
    d->base[d->base_len] = '\0';
    if ((d->base_fd = open(shown, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        kd_status_t st2 = kd_err(err, errsz, errno == ENOENT ? KD_ENOTFOUND : KD_EIO, "%s: %s",
                                 shown, strerror(errno));

        kd_safedir_free(d);
        return st2;
    }
    if (fstat(d->base_fd, &st) != 0 || (st.st_uid != 0 && st.st_uid != geteuid())) {
        kd_safedir_free(d);
        return kd_err(err, errsz, KD_EREFUSED, "%s: not owned by root or the worker's user",
                      shown);
    }
    *out = d;
    return KD_OK;
}

void kd_safedir_free(kd_safedir_t *d)
{
    if (!d)
        return;
    if (d->base_fd >= 0)
        close(d->base_fd);
    if (d->last_fd >= 0)
        close(d->last_fd);
    free(d->owners);
    free(d);
}

void kd_safedir_forget(kd_safedir_t *d)
{
    if (d->last_fd >= 0)
        close(d->last_fd);
    d->last_fd = -1;
    d->last[0] = '\0';
}

/* Why openat(O_NOFOLLOW|O_DIRECTORY) failed on name, as a status and a
 * message naming the component (path up to end). */
static kd_status_t step_failed(int dirfd, const char *name, const char *path, size_t end,
                               int saved, char *err, size_t errsz)
{
    struct stat st;

    if (saved == ENOENT)
        return kd_err(err, errsz, KD_ENOTFOUND, "%.*s: does not exist", (int)end, path);
    if ((saved == ELOOP || saved == ENOTDIR) &&
        fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode))
            return kd_err(err, errsz, KD_EREFUSED,
                          "%.*s is a symlink: refusing to follow it as root", (int)end, path);
        return kd_err(err, errsz, KD_ECONFLICT, "%.*s: is not a directory", (int)end, path);
    }
    return kd_err(err, errsz, KD_EIO, "%.*s: %s", (int)end, path, strerror(saved));
}

/* Opens one component below dirfd; checks its owner. */
static kd_status_t step_into(const kd_safedir_t *d, int dirfd, const char *path, size_t start,
                             size_t end, int *out, char *err, size_t errsz)
{
    char name[NAME_MAX + 1];
    struct stat st;
    int fd = -1;

    if (end - start > NAME_MAX)
        return kd_err(err, errsz, KD_EINVAL, "%.*s: name too long", (int)end, path);
    memcpy(name, path + start, end - start);
    name[end - start] = '\0';
    if ((fd = openat(dirfd, name, DIR_FLAGS)) < 0)
        return step_failed(dirfd, name, path, end, errno, err, errsz);
    if (fstat(fd, &st) != 0 || !owner_ok(d, st.st_uid)) {
        close(fd);
        return kd_err(err, errsz, KD_EREFUSED,
                      "%.*s is owned by uid %u, not by root or an owner the permissions name: "
                      "refusing to write below it", (int)end, path, (unsigned)st.st_uid);
    }
    *out = fd;
    return KD_OK;
}

/* Walks components [from, plen) of path starting at fd (which is consumed). */
static kd_status_t walk(kd_safedir_t *d, int fd, const char *path, size_t from, size_t plen,
                        int *out, char *err, size_t errsz)
{
    size_t i = from;

    while (i < plen) {
        size_t s = i + 1, e = s;
        int next;
        kd_status_t st;

        while (e < plen && path[e] != '/')
            e++;
        if (e == s || (e - s == 1 && path[s] == '.') ||
            (e - s == 2 && path[s] == '.' && path[s + 1] == '.')) {
            close(fd);
            return kd_err(err, errsz, KD_EINVAL, "%s: not a normalized path", path);
        }
        if ((st = step_into(d, fd, path, s, e, &next, err, errsz)) != KD_OK) {
            close(fd);
            return st;
        }
        close(fd);
        fd = next;
        i = e;
    }
    *out = fd;
    return KD_OK;
}

kd_status_t kd_safedir_parent(kd_safedir_t *d, const char *path, int *dirfd, const char **leaf,
                              char *err, size_t errsz)
{
    const char *slash = strrchr(path, '/');
    size_t plen, llen = strlen(d->last), from = d->base_len;
    int start, fd = -1;
    kd_status_t st;

    if (!slash || strncmp(path, d->base, d->base_len) != 0 ||
        (size_t)(slash - path) < d->base_len || path[d->base_len] != '/' ||
        slash[1] == '\0')
        return kd_err(err, errsz, KD_EINVAL, "%s: not a path below the install prefix", path);
    plen = (size_t)(slash - path);
    *leaf = slash + 1;
    if (plen == d->base_len) {
        *dirfd = d->base_fd;
        return KD_OK;
    }
    if (d->last_fd >= 0 && llen == plen && strncmp(path, d->last, plen) == 0) {
        *dirfd = d->last_fd;
        return KD_OK;
    }
    start = d->base_fd;
    if (d->last_fd >= 0 && llen < plen && strncmp(path, d->last, llen) == 0 && path[llen] == '/') {
        start = d->last_fd;
        from = llen;
    }
    if ((start = fcntl(start, F_DUPFD_CLOEXEC, 0)) < 0)
        return kd_err(err, errsz, KD_EIO, "dup: %s", strerror(errno));
    if ((st = walk(d, start, path, from, plen, &fd, err, errsz)) != KD_OK)
        return st;
    if (d->last_fd >= 0)
        close(d->last_fd);
    d->last_fd = fd;
    memcpy(d->last, path, plen);
    d->last[plen] = '\0';
    *dirfd = fd;
    return KD_OK;
}

kd_status_t kd_safedir_lstat(kd_safedir_t *d, const char *path, struct stat *st, char *err,
                             size_t errsz)
{
    const char *leaf;
    int fd = -1;
    kd_status_t rc;

    if (strcmp(path, d->base_len ? d->base : "/") == 0)
        return fstat(d->base_fd, st) == 0 ? KD_OK
                                          : kd_err(err, errsz, KD_EIO, "%s: %s", path,
                                                   strerror(errno));
    if ((rc = kd_safedir_parent(d, path, &fd, &leaf, err, errsz)) != KD_OK)
        return rc;
    if (fstatat(fd, leaf, st, AT_SYMLINK_NOFOLLOW) == 0)
        return KD_OK;
    if (errno == ENOENT)
        return kd_err(err, errsz, KD_ENOTFOUND, "%s: does not exist", path);
    return kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
}

kd_status_t kd_safedir_open_same(kd_safedir_t *d, const char *path, int dir, dev_t dev,
                                 ino_t ino, int *fd, char *err, size_t errsz)
{
    const char *leaf;
    struct stat st;
    int pfd, f;
    kd_status_t rc;

    if ((rc = kd_safedir_parent(d, path, &pfd, &leaf, err, errsz)) != KD_OK)
        return rc;
    f = openat(pfd, leaf, (dir ? DIR_FLAGS : O_RDONLY | O_NOFOLLOW | O_CLOEXEC) | O_NONBLOCK |
                              O_NOCTTY);
    if (f < 0)
        return step_failed(pfd, leaf, path, strlen(path), errno, err, errsz);
    if (fstat(f, &st) != 0 || st.st_dev != dev || st.st_ino != ino) {
        close(f);
        return kd_err(err, errsz, KD_EREFUSED,
                      "%s was replaced since this install wrote it: not touching it", path);
    }
    *fd = f;
    return KD_OK;
}
