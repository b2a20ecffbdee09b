/* Envelope decoding plus step handling: arbitrary bytes decoded as an
 * envelope and, when they hold a step, performed by the worker's step code
 * on a host whose cache holds one revision (app "a", group "g", deploy
 * "d": one file, no hooks, so nothing is executed). The step's revision
 * URL is dropped: nothing is downloaded. Install writes under a scratch
 * prefix. */
#include <dirent.h>
#include <sys/stat.h>

#include "envelope.h"
#include "fsutil.h"
#include "fuzz.h"
#include "steps.h"

static kd_host_t g_host;
static char g_root[PATH_MAX], g_prefix[PATH_MAX];

/* kd_pathf, exiting when a scratch path does not fit. */
#define PATHF(out, ...)                                                       \
    do {                                                                      \
        if (kd_pathf(out, sizeof out, __VA_ARGS__) != KD_OK)                  \
            exit(1);                                                          \
    } while (0)

static void put(const char *path, const char *text)
{
    if (kd_write_file_atomic(path, text, strlen(text), 0644, NULL, 0) != KD_OK)
        exit(1);
}

/* The host and its one cached revision, made once. */
static void setup(void)
{
    char dir[PATH_MAX], path[PATH_MAX];
    static volatile sig_atomic_t never;

    PATHF(g_root, "%s/root", fuzz_dir());
    PATHF(g_prefix, "%s/prefix", fuzz_dir());
    PATHF(dir, "%s/app-a/group-g/deploy-d/bundle/app", g_root);
    if (kd_dir_owned(g_root, 0755, NULL, 0) != KD_OK || kd_mkdirs(dir, 0755, NULL, 0) != KD_OK ||
        kd_mkdirs(g_prefix, 0755, NULL, 0) != KD_OK)
        exit(1);
    PATHF(path, "%s/f.txt", dir);
    put(path, "fuzz\n");
    PATHF(dir, "%s/app-a/group-g/deploy-d/bundle", g_root);
    PATHF(path, "%s/appspec.yml", dir);
    put(path, "version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /opt/a\n");
    PATHF(path, "%s/app-a/group-g/deploy-d/bundle.root", g_root);
    put(path, dir);
    g_host = (kd_host_t){.id = "h", .root = g_root, .install_prefix = g_prefix,
                         .keep_revisions = 5, .max_bundle_bytes = 1 << 20,
                         .max_unpack_ratio = 200, .stop = &never};
}

/* Removes what a step made beside the fixture (its deployment's log dir),
 * so millions of inputs do not fill the disk. */
static void prune(const char *dir, const char *const *keep)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        int kept = e->d_name[0] == '.';

        for (size_t i = 0; keep[i] && !kept; i++)
            kept = strcmp(e->d_name, keep[i]) == 0;
        if (!kept && kd_pathf(path, sizeof path, "%s/%s", dir, e->d_name) == KD_OK)
            kd_remove_tree(path, NULL, 0);
    }
    if (d)
        closedir(d);
}

static void cleanup(void)
{
    char dir[PATH_MAX];

    prune(g_root, (const char *const[]){"app-a", NULL});
    PATHF(dir, "%s/app-a", g_root);
    prune(dir, (const char *const[]){"group-g", NULL});
    PATHF(dir, "%s/app-a/group-g", g_root);
    prune(dir, (const char *const[]){"deploy-d", "installed", NULL});
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kd_envelope_t *env = NULL;
    kd_step_outcome_t *out;
    char err[1024];

    if (!g_root[0])
        setup();
    if (kd_envelope_decode(data, size, &env, err, sizeof err) != KD_OK)
        return 0;
    (void)kd_envelope_type(env);
    if (env->body_case == KD_BODY(STEP) && env->step && (out = malloc(sizeof *out))) {
        Kdeploy__V1__StepCommand *cmd = env->step;
        Kdeploy__V1__Revision *rev = cmd->revision;

        cmd->revision = NULL; /* no downloads */
        if (cmd->step_id && cmd->host)
            kd_step_perform(&g_host, env->deploy_id ? env->deploy_id : "", cmd, out, NULL, NULL);
        cmd->revision = rev; /* freed with the envelope */
        free(out);
        cleanup();
    }
    kd_envelope_free(env);
    return 0;
}
