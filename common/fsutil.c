#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return kd_err(err, errsz, KD_EIO, "mkdir %s: %s", buf, strerror(errno));
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

kd_status_t kd_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                 char *err, size_t errsz)
{
    char tmp[PATH_MAX];
    int fd;
    kd_status_t st;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", path);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", tmp, strerror(errno));
    st = write_all(fd, data, len);
    if (st == KD_OK && fsync(fd) != 0)
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
