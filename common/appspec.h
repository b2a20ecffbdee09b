/* The appspec: a revision's YAML file of files to install, permissions and
 * lifecycle hooks, in either of the two formats kdeploy reads unchanged:
 *   - JD Cloud's jdcloud-codedeploy.yml (or the older appSpec.yml);
 *   - AWS CodeDeploy's appspec.yml / appspec.yaml (version 0.0, os linux).
 * An AWS appspec is read as the AWS CodeDeploy agent reads it: what the agent
 * accepts is accepted, with the agent's meaning, and keys the agent ignores
 * give warnings instead of errors (docs/appspec.md lists each difference).
 * A JD appspec is read strictly. Every error and warning names the file,
 * line and field. */
#ifndef KD_APPSPEC_H
#define KD_APPSPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "event.h"
#include "status.h"

typedef struct kd_appspec kd_appspec_t;

typedef enum {
    KD_APPSPEC_AWS = 1,
    KD_APPSPEC_JD = 2
} kd_appspec_format_t;

/* What Install does with an existing destination file (wire values). */
typedef Kdeploy__V1__FileExistsPolicy kd_file_exists_t;
#define KD_FILE_EXISTS_UNSET KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_UNSPECIFIED
#define KD_FILE_EXISTS_FAIL KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_FAIL
#define KD_FILE_EXISTS_OVERWRITE KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_OVERWRITE
#define KD_FILE_EXISTS_KEEP KDEPLOY__V1__FILE_EXISTS_POLICY__FILE_EXISTS_KEEP

/* One script of a hook. Exactly one of location and command is set. */
typedef struct kd_appspec_script {
    char *location;      /* a script path: absolute, or relative to the bundle root */
    char *command;       /* JD `command:`: a command line, run as /bin/sh -c COMMAND */
    unsigned timeout_s;  /* JD default 10, AWS default 3600 */
    char *runas;         /* user to run as; NULL means the worker's own user
                          * (root, JD's documented default, where it runs as root) */
    bool sudo;           /* AWS `sudo: true`: the agent's way to reach runas;
                          * the worker is root and switches user itself */
    int line;            /* where it stands in the appspec */
} kd_appspec_script_t;

/* One `files` entry: source (relative to the bundle root; "/" is the whole
 * bundle) and an absolute destination directory. */
typedef struct kd_appspec_file {
    char *source;
    char *destination;
    int line;
} kd_appspec_file_t;

#define KD_PERM_TYPE_FILE 1u
#define KD_PERM_TYPE_DIRECTORY 2u

/* One entry of a permission's `acls`, as the agent reads it: [d[efault]:]
 * [u[ser]|g[roup]|m[ask]|o[ther]:][name:]perms. */
typedef enum {
    KD_ACE_USER = 1,
    KD_ACE_GROUP,
    KD_ACE_MASK,
    KD_ACE_OTHER
} kd_ace_type_t;

#define KD_ACE_READ 4u
#define KD_ACE_WRITE 2u
#define KD_ACE_EXECUTE 1u

typedef struct kd_appspec_ace {
    bool is_default;     /* a default ACL entry (directories only) */
    kd_ace_type_t type;
    char *name;          /* a user or group name; "" for the base entries */
    unsigned perms;      /* KD_ACE_* bits */
} kd_appspec_ace_t;

/* A permission's SELinux `context`: type is required, user and range
 * (s0[-s1][:c0[.c3],c5]) optional. */
typedef struct kd_appspec_context {
    char *user;
    char *type;
    char *range;
} kd_appspec_context_t;

/* One `permissions` entry (AWS semantics; JD uses the same keys). */
typedef struct kd_appspec_permission {
    char *object;          /* absolute path the entry applies to */
    char *pattern;         /* glob on names below object; NULL means "**" (all) */
    char **except;         /* names (globs) excluded */
    size_t except_count;
    char *owner;           /* NULL: unchanged */
    char *group;           /* NULL: unchanged */
    int mode;              /* permission bits (e.g. 0755), or -1: unchanged */
    unsigned type;         /* KD_PERM_TYPE_* bits; 0 means both */
    bool type_none;        /* AWS `type: []`: the entry applies to nothing */
    kd_appspec_ace_t *acls;  /* NULL when the entry has no acls */
    size_t acl_count;
    kd_appspec_context_t *context;  /* NULL when the entry has no context */
    int line;
} kd_appspec_permission_t;

typedef struct kd_appspec_env {
    char *name;
    char *value;
} kd_appspec_env_t;

/* Names looked for in a bundle root, in this order (NULL-terminated):
 * jdcloud-codedeploy.yml, appspec.yml, appspec.yaml, appSpec.yml. */
extern const char *const kd_appspec_names[];

/* Parses the appspec at path. On success *out owns the parsed spec (free it
 * with kd_appspec_free). On failure returns KD_EINVAL (or KD_EIO / KD_ENOMEM)
 * and writes every error found into err, one per line, each as
 * "FILE:LINE: FIELD: message" (FIELD a path such as
 * hooks.ApplicationStart[0].timeout; "yaml" for syntax errors). The format is
 * chosen by the file's name (appspec.yml/.yaml: AWS; jdcloud-codedeploy.yml,
 * appSpec.yml: JD); a file of any other name is read as AWS if it has an
 * `os` key, else as JD. Also KD_ENOTFOUND (no such file) and KD_ETOOLARGE
 * (over 1 MiB). *out is untouched on failure. */
kd_status_t kd_appspec_load_file(const char *path, kd_appspec_t **out, char *err, size_t errsz);

/* The warnings of a parsed spec, one per line as "FILE:LINE: FIELD: warning:
 * message" (keys CodeDeploy ignores, hooks that never run, readings that
 * surprise); "" when there are none. */
const char *kd_appspec_warnings(const kd_appspec_t *spec);
size_t kd_appspec_warning_count(const kd_appspec_t *spec);

/* Checks a bundle against its appspec: every hook script (`location`) and
 * every `files` source must exist under root (the bundle root). Returns
 * KD_EINVAL naming each one missing, one per line as "FILE:LINE: FIELD:
 * message". */
kd_status_t kd_appspec_check_bundle(const kd_appspec_t *spec, const char *root, char *err,
                                    size_t errsz);

/* Where a hook script's location points: under the bundle root for an AWS
 * appspec (the agent joins every location to the archive root, leading "/"
 * or not) and for a relative JD location; under prefix (may be NULL) for an
 * absolute JD location, which names an installed file. */
kd_status_t kd_appspec_script_path(const kd_appspec_t *spec, const kd_appspec_script_t *s,
                                   const char *root, const char *prefix, char *path,
                                   size_t pathsz);

/* Finds the appspec in a bundle directory by name and parses it. Returns
 * KD_ENOTFOUND when the directory holds none. */
kd_status_t kd_appspec_load_dir(const char *dir, kd_appspec_t **out, char *err, size_t errsz);

/* Finds the appspec file in dir: writes its full path into path (pathsz bytes).
 * Returns KD_ENOTFOUND when there is none. */
kd_status_t kd_appspec_find(const char *dir, char *path, size_t pathsz);

void kd_appspec_free(kd_appspec_t *spec);

kd_appspec_format_t kd_appspec_format(const kd_appspec_t *spec);
/* "AWS" or "JD Cloud" (a static string; "?" for other values). */
const char *kd_appspec_format_name(kd_appspec_format_t format);
/* The file the spec was read from. */
const char *kd_appspec_path(const kd_appspec_t *spec);

/* The scripts of one hook in order; *count is 0 when the hook has none. */
const kd_appspec_script_t *kd_appspec_hook(const kd_appspec_t *spec, kd_event_t ev, size_t *count);
const kd_appspec_file_t *kd_appspec_files(const kd_appspec_t *spec, size_t *count);
const kd_appspec_permission_t *kd_appspec_permissions(const kd_appspec_t *spec, size_t *count);
/* The `env:` map (JD), exported to every hook. */
const kd_appspec_env_t *kd_appspec_env(const kd_appspec_t *spec, size_t *count);
/* AWS file_exists_behavior (DISALLOW/OVERWRITE/RETAIN); KD_FILE_EXISTS_UNSET if absent. */
kd_file_exists_t kd_appspec_file_exists(const kd_appspec_t *spec);

#endif
