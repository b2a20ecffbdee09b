/* Walking a tree that others may write, by directory descriptors.
 *
 * The worker runs as root, and what it installs may be handed to hook
 * users (appspec `permissions`). Such a user can replace a directory it
 * owns with a symlink to anywhere; a root walking by path strings would
 * then write, chmod or delete there. A safedir walks every path from a
 * descriptor of its base, one component at a time, with
 * O_NOFOLLOW|O_DIRECTORY, and refuses (naming the component):
 *  - a component that is a symlink;
 *  - a directory owned by anyone but root, the worker's user or one of the
 *    owners given (the users the install's own permissions name).
 * Operations then act on the descriptor of the parent (openat, mkdirat,
 * unlinkat, renameat), so nothing swapped afterwards can redirect them. */
#ifndef KD_SAFEDIR_H
#define KD_SAFEDIR_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "status.h"

typedef struct kd_safedir kd_safedir_t;

/* Opens base ("" or NULL: "/"), which must be an existing directory owned
 * by root or the worker's user; a symlink in base itself is followed (the
 * operator chose it). owners (nowners entries, may be NULL) are accepted
 * as owners of directories below base. Paths given later are full paths:
 * base followed by "/rel". */
kd_status_t kd_safedir_open(const char *base, const uid_t *owners, size_t nowners,
                            kd_safedir_t **out, char *err, size_t errsz);
void kd_safedir_free(kd_safedir_t *d);

/* Walks to path's parent: *dirfd receives its descriptor (owned by d,
 * valid until the next call) and *leaf the last component (a pointer into
 * path). KD_ENOTFOUND when a component is missing; KD_EREFUSED for a
 * symlinked or foreign-owned component; KD_ECONFLICT for a component that
 * is not a directory; KD_EINVAL for a path outside the base or the base
 * itself. */
kd_status_t kd_safedir_parent(kd_safedir_t *d, const char *path, int *dirfd, const char **leaf,
                              char *err, size_t errsz);

/* Forgets the directory walked to last; call it after removing a
 * directory, whose descriptor would otherwise be reused. */
void kd_safedir_forget(kd_safedir_t *d);

/* lstat by descriptors: KD_ENOTFOUND when path or a parent is missing.
 * The base itself may be given. */
kd_status_t kd_safedir_lstat(kd_safedir_t *d, const char *path, struct stat *st, char *err,
                             size_t errsz);

/* Opens path (O_NOFOLLOW; directories with O_DIRECTORY when dir is set)
 * for fchmod/fchown, refusing it unless it is still the inode (dev, ino)
 * that was written: a path swapped for a hard link or a symlink since is
 * never touched. Returns the descriptor (the caller closes it). */
kd_status_t kd_safedir_open_same(kd_safedir_t *d, const char *path, int dir, dev_t dev,
                                 ino_t ino, int *fd, char *err, size_t errsz);

#endif
