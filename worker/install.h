/* The Install step: copies a revision's files from the unpacked bundle to
 * their destinations per the appspec `files` section, then applies the
 * `permissions` section, with AWS CodeDeploy agent semantics (JD the same).
 *
 * Every install writes a manifest listing what it put on disk, so the next
 * install on the host (or an explicit removal) can take it away again. The
 * manifest is a text file, one entry a line, paths as written on disk
 * (including the prefix):
 *     # kdeploy install manifest v1
 *     d /opt/app            a directory the install created
 *     f /opt/app/run.sh     a regular file it wrote
 *     l /opt/app/current    a symlink it wrote
 * Names containing a newline are refused, so no escaping is needed. */
#ifndef KD_INSTALL_H
#define KD_INSTALL_H

#include <stddef.h>

#include "appspec.h"
#include "status.h"

typedef struct kd_install_opts {
    /* The unpacked revision; `files` sources are relative to it. Required. */
    const char *bundle_root;
    /* NULL or "": none. Otherwise an existing absolute directory under which
     * every destination and permissions object is placed (prefix + path), so
     * several simulated hosts can share one machine. */
    const char *prefix;
    /* For destination files the previous revision did not install:
     * FAIL: the step fails naming the file and nothing is written;
     * OVERWRITE (and UNSET): the file is replaced;
     * KEEP: the existing file stays (and is not listed in the manifest). */
    kd_file_exists_t policy;
    /* Where this install's manifest is written (temp file + rename). Required. */
    const char *manifest_path;
    /* The manifest of the previous install on this host; NULL or a missing
     * file means none. May be the same path as manifest_path. */
    const char *previous_manifest;
    /* NULL, or called once everything is written, before the last sync,
     * when the install succeeded: a record the caller writes there, on the
     * manifest's file system (data synced, then renamed), is made durable
     * by that same sync. */
    kd_status_t (*before_sync)(void *opaque, char *err, size_t errsz);
    void *opaque;
} kd_install_opts_t;

/* Installs a revision. In order:
 *  1. plans every copy and checks it without writing: sources stay inside
 *     the bundle root (no `..`, no symlinked path leading out), destinations
 *     are absolute without `..`, no two sources share a destination, owners
 *     and groups of `permissions` exist, and existing destination files
 *     follow o->policy (files the previous revision installed are never a
 *     conflict). Any failure here returns with nothing on disk changed;
 *  2. removes what previous_manifest lists (see kd_install_remove; the
 *     previous manifest file itself is left for the caller);
 *  3. writes the manifest of everything it is about to write, then copies:
 *     a source file goes to destination/basename(source); a source directory
 *     has its contents copied recursively into destination; source "/" (or
 *     "") is the whole bundle, the appspec file included. Missing parent
 *     directories are created. Regular files keep their mode bits and mtime
 *     and appear atomically (temp file in the same directory + rename);
 *     symlinks are recreated with the same target, never followed. Files
 *     and links are written under temporary names first; one syncfs per
 *     file system makes the manifest and their data durable, then they are
 *     renamed;
 *  4. applies `permissions` (as the AWS agent) to what this install wrote:
 *     an object that is a file written here gets owner/group/mode itself (if
 *     type allows files; a pattern or except on a file object is an error);
 *     an object that is a directory gives them to the files and created
 *     directories below it (never to the object itself) whose path relative
 *     to the object matches `pattern` (NULL or "**": everything at any depth;
 *     otherwise fnmatch with FNM_PATHNAME, so "*.sh" means direct children)
 *     and no `except` glob, filtered by `type` (0: both). Symlinks and files
 *     kept by KEEP are never changed. Objects naming nothing written by this
 *     install are ignored. chown (when owner or group is set) comes before
 *     chmod (when mode >= 0) so setuid bits survive;
 *  5. rewrites the manifest to list exactly what was written. This also
 *     happens when step 3 or 4 fails midway, so a later cleanup removes the
 *     partial install. Then (on success) before_sync, and one more syncfs
 *     per file system: all of it is durable when this returns.
 * Every path under the prefix is reached by directory descriptors from a
 * descriptor of the prefix (see safedir.h): a component that is a symlink,
 * or a directory owned by anyone but root, the worker's user or an owner
 * the permissions name, is refused (KD_EREFUSED, naming it) before or while
 * writing, and nothing outside the prefix is touched; permissions change
 * only the very inodes this install wrote.
 * Returns KD_OK; KD_EINVAL (bad input), KD_EREFUSED (unsafe path),
 * KD_ENOTFOUND (missing source, prefix, user or group), KD_ECONFLICT
 * (existing destination under FAIL, or a file where a directory must go),
 * KD_EIO or KD_ENOMEM, with the path in err. Nothing is logged. */
kd_status_t kd_install_run(const kd_appspec_file_t *files, size_t nfiles,
                           const kd_appspec_permission_t *perms, size_t nperms,
                           const kd_install_opts_t *o, char *err, size_t errsz);

/* Removes an install: the files and symlinks the manifest lists, then the
 * directories it lists that are now empty, deepest first (a directory still
 * holding anything is kept, silently), then the manifest file itself.
 * Entries already gone are skipped. When prefix is non-empty every listed
 * path must lie under it (KD_EREFUSED otherwise, before removing anything).
 * Removal walks by descriptors too: a symlinked directory on the way is
 * refused, a symlink standing where a file was is removed, not followed.
 * A missing manifest means nothing to remove: KD_OK. */
kd_status_t kd_install_remove(const char *manifest_path, const char *prefix, char *err,
                              size_t errsz);

#endif
