#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

kd_status_t kd_mkdirs(const char *path, mode_t mode, char *err, size_t errsz)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof buf)
        return kd_err(err, errsz, KD_EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;

            *p = '\0';
            if (mkdir(buf, mode) != 0) {
                struct stat st;

                if (errno != EEXIST)
                    return kd_err(err, errsz, KD_EIO, "mkdir %s: %s", buf, strerror(errno));
                if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                    return kd_err(err, errsz, KD_EIO, "%s: exists and is not a directory", buf);
            }
            *p = saved;
            if (!saved)
                break;
        }
    }
    return KD_OK;
}

kd_status_t kd_read_file(const char *path, kd_buf_t *buf, char *err, size_t errsz)
{
    char chunk[16384];
    ssize_t n;
    kd_status_t st = KD_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return kd_err(err, errsz, errno == ENOENT ? KD_ENOTFOUND : KD_EIO, "%s: %s", path,
                      strerror(errno));
    while ((n = read(fd, chunk, sizeof chunk)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            st = kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        if ((st = kd_buf_append(buf, chunk, (size_t)n)) != KD_OK) {
            st = kd_err(err, errsz, st, "%s: %s", path, kd_status_str(st));
            break;
        }
    }
    close(fd);
    return st;
}

static kd_status_t write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return KD_EIO;
        p += n;
        len -= (size_t)n;
    }
    return KD_OK;
}

kd_status_t kd_temp_name(char *out, size_t outsz, const char *prefix)
{
    unsigned char r[8];
    size_t got = 0;

    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return KD_EIO;
        got += (size_t)n;
    }
    return kd_pathf(out, outsz, "%s%02x%02x%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1], r[2],
                    r[3], r[4], r[5], r[6], r[7]);
}

kd_status_t kd_fsync_parent(const char *path, char *err, size_t errsz)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd, rc;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if (kd_pathf(dir, sizeof dir, "%.*s", (int)(slash - path), path) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", path);
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", dir, strerror(errno));
    rc = fsync(fd);
    close(fd);
    return rc == 0 ? KD_OK : kd_err(err, errsz, KD_EIO, "fsync %s: %s", dir, strerror(errno));
}

kd_status_t kd_syncfs(const char *dir, char *err, size_t errsz)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", dir, strerror(errno));
    rc = syncfs(fd) == 0 ? 0 : errno;
    close(fd);
    return rc == 0 ? KD_OK : kd_err(err, errsz, KD_EIO, "syncfs %s: %s", dir, strerror(rc));
}

/* A new temporary file next to path: random name, never an existing file
 * or a symlink someone placed there. */
static kd_status_t open_temp(const char *path, mode_t mode, char *tmp, size_t tmpsz, int *fd,
                             char *err, size_t errsz)
{
    char prefix[PATH_MAX];

    if (kd_pathf(prefix, sizeof prefix, "%s.tmp.", path) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", path);
    *fd = -1;
    for (int tries = 0; tries < 16; tries++) {
        if (kd_temp_name(tmp, tmpsz, prefix) != KD_OK)
            return kd_err(err, errsz, KD_EINVAL, "%s: path too long or no random bytes", path);
        if ((*fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)) >= 0)
            return KD_OK;
        if (errno != EEXIST)
            break;
    }
    return kd_err(err, errsz, KD_EIO, "%s: %s", tmp, strerror(errno));
}

/* How much of a replacement write_replace makes durable. */
enum { SYNC_NONE, SYNC_DATA, SYNC_DIR };

static kd_status_t write_replace(const char *path, const void *data, size_t len, mode_t mode,
                                 int sync, char *err, size_t errsz)
{
    char tmp[PATH_MAX];
    int fd = -1;
    kd_status_t st;

    if ((st = open_temp(path, mode, tmp, sizeof tmp, &fd, err, errsz)) != KD_OK)
        return st;
    st = write_all(fd, data, len);
    /* The mode asked for, whatever the umask. */
    if (st == KD_OK && (fchmod(fd, mode) != 0 || (sync >= SYNC_DATA && fsync(fd) != 0)))
        st = KD_EIO;
    if (close(fd) != 0)
        st = KD_EIO;
    if (st == KD_OK && rename(tmp, path) != 0)
        st = KD_EIO;
    if (st != KD_OK) {
        int saved = errno;

        unlink(tmp);
        return kd_err(err, errsz, st, "writing %s: %s", path, strerror(saved));
    }
    return sync >= SYNC_DIR ? kd_fsync_parent(path, err, errsz) : KD_OK;
}

kd_status_t kd_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                 char *err, size_t errsz)
{
    return write_replace(path, data, len, mode, SYNC_DIR, err, errsz);
}

kd_status_t kd_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                                  char *err, size_t errsz)
{
    return write_replace(path, data, len, mode, SYNC_NONE, err, errsz);
}

kd_status_t kd_write_file_synced(const char *path, const void *data, size_t len, mode_t mode,
                                 char *err, size_t errsz)
{
    return write_replace(path, data, len, mode, SYNC_DATA, err, errsz);
}

kd_status_t kd_dir_owned(const char *path, mode_t mode, char *err, size_t errsz)
{
    struct stat st;
    kd_status_t rc;
    const char *slash = strrchr(path, '/');

    if (slash && slash != path) {
        char parent[PATH_MAX];

        if (kd_pathf(parent, sizeof parent, "%.*s", (int)(slash - path), path) != KD_OK)
            return kd_err(err, errsz, KD_EINVAL, "%s: path too long", path);
        if ((rc = kd_mkdirs(parent, 0755, err, errsz)) != KD_OK)
            return rc;
    }
    if (mkdir(path, mode) == 0 && chmod(path, mode) != 0)
        return kd_err(err, errsz, KD_EIO, "chmod %s: %s", path, strerror(errno));
    if (lstat(path, &st) != 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    if (S_ISLNK(st.st_mode))
        return kd_err(err, errsz, KD_EREFUSED, "%s is a symlink: it must be a directory", path);
    if (!S_ISDIR(st.st_mode))
        return kd_err(err, errsz, KD_EREFUSED, "%s is not a directory", path);
    if (st.st_uid != geteuid())
        return kd_err(err, errsz, KD_EREFUSED, "%s is owned by uid %u, not by this user (uid %u)",
                      path, (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & 022) || (st.st_mode & 077 & ~mode))
        return kd_err(err, errsz, KD_EREFUSED, "%s has mode %04o: at most %04o is accepted",
                      path, (unsigned)(st.st_mode & 07777), (unsigned)(mode & 0755));
    return KD_OK;
}

kd_status_t kd_pathf(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= outsz ? KD_EINVAL : KD_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

kd_status_t kd_remove_tree(const char *path, char *err, size_t errsz)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? KD_OK : kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS) != 0)
        return kd_err(err, errsz, KD_EIO, "removing %s: %s", path, strerror(errno));
    return KD_OK;
}

kd_status_t kd_tree_bytes(const char *path, uint64_t *out, char *err, size_t errsz)
{
    char *const paths[] = {(char *)path, NULL};
    FTS *fts;
    FTSENT *e;
    uint64_t total = 0;

    *out = 0;
    if (access(path, F_OK) != 0)
        return errno == ENOENT ? KD_OK : kd_err(err, errsz, KD_EIO, "%s: %s", path,
                                                strerror(errno));
    /* fts, not nftw: no global state, so host threads may walk at once. */
    if (!(fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL)))
        return kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    while ((e = fts_read(fts)) != NULL)
        if (e->fts_info == FTS_F && e->fts_statp->st_size > 0)
            total += (uint64_t)e->fts_statp->st_size;
    fts_close(fts);
    *out = total;
    return KD_OK;
}
