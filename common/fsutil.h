/* Small file-system helpers with errors as values. */
#ifndef KD_FSUTIL_H
#define KD_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "status.h"

/* mkdir -p: creates path and its missing parents with mode. */
kd_status_t kd_mkdirs(const char *path, mode_t mode, char *err, size_t errsz);
/* Reads a whole file into buf (bounded by buf's max). KD_ENOTFOUND if absent. */
kd_status_t kd_read_file(const char *path, kd_buf_t *buf, char *err, size_t errsz);
/* Writes data to path through a temporary file, fsync and rename, so that
 * readers see the old content or the new, never a part. */
kd_status_t kd_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                 char *err, size_t errsz);
/* snprintf for paths: KD_EINVAL when the result would not fit. */
kd_status_t kd_pathf(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* rm -rf; a missing path is not an error. */
kd_status_t kd_remove_tree(const char *path, char *err, size_t errsz);

#endif
