/* A bundle against its appspec: where hook scripts are, and whether every
 * script and files source is there (see appspec.h). Only the public
 * accessors are used: this is the bundle's side, not the parser's. */
#include "appspec.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fsutil.h"

#define MISSING_MAX_BYTES (64u << 10)

kd_status_t kd_appspec_script_path(const kd_appspec_t *spec, const kd_appspec_script_t *s,
                                   const char *root, const char *prefix, char *path,
                                   size_t pathsz)
{
    const char *loc = s ? s->location : NULL;

    if (!spec || !loc || !root)
        return KD_EINVAL;
    if (loc[0] == '/' && kd_appspec_format(spec) == KD_APPSPEC_JD)
        return kd_pathf(path, pathsz, "%s%s", prefix ? prefix : "", loc);
    while (*loc == '/')
        loc++;
    return kd_pathf(path, pathsz, "%s/%s", root, loc);
}

/* Adds "FILE:LINE: FIELD: missing from the bundle" to b when rel (under
 * root) does not exist. A link counts as present: it is not followed. */
static size_t need(kd_buf_t *b, const kd_appspec_t *spec, const char *root, const char *rel,
                   int line, const char *field)
{
    char path[PATH_MAX];
    struct stat st;

    while (*rel == '/')
        rel++;
    if (kd_pathf(path, sizeof path, "%s/%s", root, rel) != KD_OK) {
        (void)kd_buf_printf(b, "%s:%d: %s: path too long\n", kd_appspec_path(spec), line, field);
        return 1;
    }
    if (lstat(path, &st) == 0)
        return 0;
    (void)kd_buf_printf(b, "%s:%d: %s: '%s' is missing from the bundle\n",
                        kd_appspec_path(spec), line, field, rel);
    return 1;
}

kd_status_t kd_appspec_check_bundle(const kd_appspec_t *spec, const char *root, char *err,
                                    size_t errsz)
{
    kd_buf_t b = KD_BUF_INIT(MISSING_MAX_BYTES);
    const kd_appspec_file_t *files;
    const kd_appspec_script_t *scripts;
    char field[160];
    size_t missing = 0, n;
    kd_status_t st = KD_OK;

    if (!spec || !root)
        return kd_err(err, errsz, KD_EINVAL, "no appspec or bundle root");
    files = kd_appspec_files(spec, &n);
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof field, "files[%zu].source", i);
        missing += need(&b, spec, root, files[i].source, files[i].line, field);
    }
    for (int ev = KD_EVENT_NONE + 1; ev < KD_EVENT_MAX; ev++) {
        scripts = kd_appspec_hook(spec, (kd_event_t)ev, &n);
        for (size_t i = 0; i < n; i++) {
            const kd_appspec_script_t *s = &scripts[i];

            /* A JD absolute location names an installed file, not a bundle one. */
            if (!s->location ||
                (s->location[0] == '/' && kd_appspec_format(spec) == KD_APPSPEC_JD))
                continue;
            snprintf(field, sizeof field, "hooks.%s[%zu].location",
                     kd_event_name((kd_event_t)ev), i);
            missing += need(&b, spec, root, s->location, s->line, field);
        }
    }
    if (missing && b.len) {
        b.data[--b.len] = '\0';
        st = kd_err(err, errsz, KD_EINVAL, "%s", kd_buf_str(&b));
    } else if (missing) {
        st = kd_err(err, errsz, KD_EINVAL, "%s: %zu scripts or sources missing from the bundle",
                    kd_appspec_path(spec), missing);
    }
    kd_buf_free(&b);
    return st;
}
