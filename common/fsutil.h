/* Small file-system helpers with errors as values. */
#ifndef KD_FSUTIL_H
#define KD_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "status.h"

/* mkdir -p: creates path and its missing parents with mode. An existing
 * component must be a directory (a symlink to one is followed: use
 * kd_dir_owned for a directory the worker must own). */
kd_status_t kd_mkdirs(const char *path, mode_t mode, char *err, size_t errsz);
/* A directory that belongs to this process's user: creates path (and its
 * missing parents, 0755) with mode, then checks, whether it was just made
 * or already there, that path itself is a directory and not a symlink,
 * owned by the effective user, and grants no group or other permission
 * beyond what mode grants and never write (KD_EREFUSED, naming what is
 * wrong, otherwise). So a directory planted by someone else in advance is
 * refused, not used. */
kd_status_t kd_dir_owned(const char *path, mode_t mode, char *err, size_t errsz);
/* Writes prefix followed by 16 random hex digits into out (a name for a
 * temporary file: not guessable, so it cannot be planted in advance). */
kd_status_t kd_temp_name(char *out, size_t outsz, const char *prefix);
/* fsync of the directory holding path, so a rename or create in it is
 * durable. */
kd_status_t kd_fsync_parent(const char *path, char *err, size_t errsz);
/* syncfs of the file system holding dir (a directory): everything written
 * there so far is durable on return, renames included. On this kind of
 * disk one syncfs after several writes costs less than an fsync of each
 * file and directory (docs/benchmarks.md); it also writes what other
 * processes left dirty on that file system. */
kd_status_t kd_syncfs(const char *dir, char *err, size_t errsz);
/* Reads a whole file into buf (bounded by buf's max). KD_ENOTFOUND if absent. */
kd_status_t kd_read_file(const char *path, kd_buf_t *buf, char *err, size_t errsz);
/* Writes data to path through a temporary file (random name, O_EXCL and
 * O_NOFOLLOW), fsync, rename and fsync of the directory, so that readers
 * see the old content or the new, never a part, and a power cut after the
 * return loses nothing. */
kd_status_t kd_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                                 char *err, size_t errsz);
/* As kd_write_file_atomic, without the fsync of the directory: the data is
 * durable before the rename, so after a crash path holds the old content
 * or all of the new; the caller makes the rename durable (kd_syncfs after
 * several such writes). */
kd_status_t kd_write_file_synced(const char *path, const void *data, size_t len, mode_t mode,
                                 char *err, size_t errsz);
/* As kd_write_file_atomic, without the fsyncs: readers see the old file or
 * the new, but a power cut may lose the write. For records that matter only
 * while the machine stays up (a running hook's process group dies with it). */
kd_status_t kd_write_file_replace(const char *path, const void *data, size_t len, mode_t mode,
                                  char *err, size_t errsz);
/* snprintf for paths: KD_EINVAL when the result would not fit. */
kd_status_t kd_pathf(char *out, size_t outsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The bytes of every regular file below path (symlinks not followed); a
 * missing path holds 0. */
kd_status_t kd_tree_bytes(const char *path, uint64_t *out, char *err, size_t errsz);
/* rm -rf; a missing path is not an error. */
kd_status_t kd_remove_tree(const char *path, char *err, size_t errsz);

#endif
