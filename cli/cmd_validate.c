#include "cmd_validate.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appspec.h"
#include "bundle.h"
#include "fsutil.h"

/* Room for many error lines: the parser reports all it finds. */
#define VALIDATE_ERR_BYTES (64u << 10)

static const char usage[] =
    "usage: kdeploy validate [--strict] [--json] PATH\n"
    "Checks an appspec. PATH is one of:\n"
    "  - the appspec file itself (the file alone is checked);\n"
    "  - a bundle directory holding jdcloud-codedeploy.yml, appspec.yml,\n"
    "    appspec.yaml or appSpec.yml;\n"
    "  - a bundle archive (.tar, .tar.gz, .tgz, .zip), unpacked as a worker does.\n"
    "For a bundle, every hook script and every files source must be in it.\n"
    "Prints every error as FILE:LINE: FIELD: message, and warnings (keys that\n"
    "CodeDeploy ignores, hooks that never run) as FILE:LINE: FIELD: warning: ...\n"
    "  --strict  warnings are errors\n"
    "  --json    one JSON object: path, valid, format, hooks, files, errors, warnings\n"
    "Exit status: 0 valid, 1 invalid, 2 usage error.\n";

/* A hook is an event entry of `hooks` with at least one script. */
static size_t count_hooks(const kd_appspec_t *spec)
{
    size_t hooks = 0, n;

    for (int ev = KD_EVENT_NONE + 1; ev < KD_EVENT_MAX; ev++) {
        kd_appspec_hook(spec, (kd_event_t)ev, &n);
        hooks += n > 0;
    }
    return hooks;
}

/* A file named *.yml or *.yaml is an appspec; any other file, an archive. */
static bool is_yaml_name(const char *path)
{
    size_t len = strlen(path);

    return (len > 4 && strcmp(path + len - 4, ".yml") == 0) ||
           (len > 5 && strcmp(path + len - 5, ".yaml") == 0);
}

/* Unpacks an archive into a new temporary directory (dir, dirsz bytes),
 * exactly as the worker would, and finds its root. */
static kd_status_t unpack(const char *archive, char *dir, size_t dirsz, char *root,
                          size_t rootsz, char *err, size_t errsz)
{
    const char *tmp = getenv("TMPDIR");
    char dest[PATH_MAX];

    if (kd_pathf(dir, dirsz, "%s/kdeploy-validate.XXXXXX", tmp && *tmp ? tmp : "/tmp") != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "TMPDIR too long");
    if (!mkdtemp(dir)) {
        dir[0] = '\0';
        return kd_err(err, errsz, KD_EIO, "cannot make a temporary directory in %s",
                      tmp && *tmp ? tmp : "/tmp");
    }
    /* The unpacker makes its destination itself. */
    if (kd_pathf(dest, sizeof dest, "%s/bundle", dir) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "TMPDIR too long");
    return kd_bundle_unpack(archive, dest, root, rootsz, NULL, err, errsz);
}

/* Loads the appspec of path (a file, a bundle dir or an archive); for a
 * bundle also checks that its scripts and sources are there. */
static kd_status_t load(const char *path, char *tmpdir, size_t tmpsz, char root[PATH_MAX],
                        kd_appspec_t **spec, char *err, size_t errsz)
{
    struct stat st;
    kd_status_t rc;

    if (stat(path, &st) != 0)
        return kd_err(err, errsz, KD_ENOTFOUND, "%s: no such file or directory", path);
    if (S_ISREG(st.st_mode) && is_yaml_name(path))
        return kd_appspec_load_file(path, spec, err, errsz);
    if (S_ISDIR(st.st_mode))
        snprintf(root, PATH_MAX, "%s", path);
    else if ((rc = unpack(path, tmpdir, tmpsz, root, PATH_MAX, err, errsz)) != KD_OK)
        return rc;
    if ((rc = kd_appspec_load_dir(root, spec, err, errsz)) != KD_OK)
        return rc;
    return kd_appspec_check_bundle(*spec, root, err, errsz);
}

/* Writes text to f; for an unpacked archive, "ROOT/name" is shown as
 * "ARCHIVE:name", since the temporary directory is gone by then. */
static void show(FILE *f, const char *text, const char *root, const char *archive)
{
    size_t len = root ? strlen(root) : 0;
    const char *p = text, *hit;

    while (len && (hit = strstr(p, root)) != NULL && hit[len] == '/') {
        fprintf(f, "%.*s%s:", (int)(hit - p), p, archive);
        p = hit + len + 1;
    }
    fputs(p, f);
}

/* text's lines (as show() writes them) as a JSON array. */
static json_t *lines_json(const char *text, const char *root, const char *archive)
{
    json_t *a = json_array();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return a;
    show(f, text, root, archive);
    fclose(f);
    for (const char *p = buf; p && *p;) {
        size_t n = strcspn(p, "\n");

        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == '\n');
    }
    free(buf);
    return a;
}

typedef struct verdict {
    const char *path;
    bool strict, json;
    const char *root;      /* the unpacked archive's root, or NULL */
} verdict_t;

static void print_json(const verdict_t *v, const kd_appspec_t *spec, const char *errors,
                       bool valid)
{
    size_t nfiles = 0;
    json_t *o;
    char *text;

    if (spec)
        kd_appspec_files(spec, &nfiles);
    o = json_pack("{s:s, s:b, s:s, s:I, s:I, s:o, s:o}", "path", v->path, "valid", valid,
                  "format", spec ? kd_appspec_format_name(kd_appspec_format(spec)) : "",
                  "hooks", (json_int_t)(spec ? count_hooks(spec) : 0), "files",
                  (json_int_t)nfiles, "errors", lines_json(errors, v->root, v->path),
                  "warnings",
                  lines_json(spec && kd_appspec_warning_count(spec) ? kd_appspec_warnings(spec)
                                                                    : "",
                             v->root, v->path));
    if (o && (text = json_dumps(o, JSON_COMPACT))) {
        printf("%s\n", text);
        free(text);
    }
    json_decref(o);
}

static int report(const verdict_t *v, const kd_appspec_t *spec, kd_status_t rc,
                  const char *err)
{
    size_t nfiles, nwarn = kd_appspec_warning_count(spec);
    bool valid = rc == KD_OK && !(v->strict && nwarn);
    char why[128] = "";

    if (v->json) {
        if (rc == KD_OK && !valid)
            snprintf(why, sizeof why, "invalid with --strict: %zu warning%s", nwarn,
                     nwarn == 1 ? "" : "s");
        print_json(v, rc == KD_OK || nwarn ? spec : NULL, rc != KD_OK ? err : why, valid);
        return valid ? 0 : 1;
    }
    if (nwarn)
        show(stderr, kd_appspec_warnings(spec), v->root, v->path);
    if (rc != KD_OK) {
        show(stderr, err, v->root, v->path);
        fputc('\n', stderr);
    } else if (!valid) {
        fprintf(stderr, "%s: invalid with --strict: %zu warning%s\n", v->path, nwarn,
                nwarn == 1 ? "" : "s");
    } else {
        size_t nhooks = count_hooks(spec);

        kd_appspec_files(spec, &nfiles);
        printf("%s: valid (%s, %zu hook%s, %zu file%s)\n", v->path,
               kd_appspec_format_name(kd_appspec_format(spec)), nhooks, nhooks == 1 ? "" : "s",
               nfiles, nfiles == 1 ? "" : "s");
    }
    return valid ? 0 : 1;
}

static int validate(const char *path, bool strict, bool json)
{
    char *err = calloc(1, VALIDATE_ERR_BYTES);
    char tmpdir[PATH_MAX] = "", root[PATH_MAX] = "";
    kd_appspec_t *spec = NULL;
    verdict_t v = {.path = path, .strict = strict, .json = json};
    kd_status_t rc;
    int status;

    if (!err) {
        fprintf(stderr, "kdeploy validate: out of memory\n");
        return 1;
    }
    rc = load(path, tmpdir, sizeof tmpdir, root, &spec, err, VALIDATE_ERR_BYTES);
    v.root = tmpdir[0] ? root : NULL;
    status = report(&v, spec, rc, err);
    if (tmpdir[0])
        (void)kd_remove_tree(tmpdir, NULL, 0);
    kd_appspec_free(spec);
    free(err);
    return status;
}

int kd_cmd_validate(int argc, char **argv)
{
    bool strict = false, json = false;
    int i = 1;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--strict") == 0)
            strict = true;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            break;
    }
    if (argc != i + 1 || argv[i][0] == '-' || !argv[i][0]) {
        fputs(usage, stderr);
        return 2;
    }
    return validate(argv[i], strict, json);
}
