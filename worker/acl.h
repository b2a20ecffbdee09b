/* An appspec permission's `acls` and SELinux `context`, applied to one
 * installed file or directory the way the AWS agent applies them:
 *   - acls: the entries given, plus the base entries (user::, group::,
 *     other::) taken from the file's mode; a mask from the group bits when
 *     named entries come without one. Default entries (directories only)
 *     get the same completion, their mask from the default group entry.
 *     A default entry on a file is an error, as in the agent.
 *   - context: the SELinux user, type and range set on the file's label.
 *     On a host where SELinux is not enabled this is an error, as the
 *     agent's `semanage` fails there.
 * The entry points take an open descriptor, or a directory descriptor and
 * a name that is opened without following a link, so that a caller walking
 * the tree by descriptors never resolves a path string again. */
#ifndef KD_ACL_H
#define KD_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "appspec.h"
#include "status.h"

/* Sets aces (count of them; count 0 resets the ACL to the mode's) on fd,
 * an open file or directory (is_dir). what names it in errors. Returns
 * KD_OK, KD_EINVAL (a default entry on a file, an unknown user or group, an
 * ACL the kernel refuses) or KD_EIO (the file system has no ACLs). */
kd_status_t kd_acl_apply_fd(int fd, bool is_dir, const kd_appspec_ace_t *aces, size_t count,
                            const char *what, char *err, size_t errsz);

/* Sets the SELinux context on fd. KD_EFAILED when SELinux is not enabled on
 * this host (or the build has no libselinux); KD_EINVAL or KD_EIO when the
 * label cannot be set. */
kd_status_t kd_selinux_apply_fd(int fd, const kd_appspec_context_t *ctx, const char *what,
                                char *err, size_t errsz);

/* Applies pm's acls and context (whichever it has) to name in dirfd
 * (AT_FDCWD and an absolute path work too), opened with O_NOFOLLOW: a
 * symlink is refused. Nothing to do returns KD_OK at once. */
kd_status_t kd_perm_extras_apply_at(int dirfd, const char *name,
                                    const kd_appspec_permission_t *pm, char *err, size_t errsz);

/* True when pm has acls or a context to apply. */
bool kd_perm_has_extras(const kd_appspec_permission_t *pm);

#endif
