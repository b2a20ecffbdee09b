#include "cmd_validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "appspec.h"

/* Room for many error lines: the parser reports all it finds. */
#define VALIDATE_ERR_BYTES (64u << 10)

static const char usage[] =
    "usage: kdeploy validate PATH\n"
    "Checks an appspec: PATH is the file itself or a bundle directory holding\n"
    "jdcloud-codedeploy.yml, appspec.yml, appspec.yaml or appSpec.yml.\n"
    "Prints every error as FILE:LINE: FIELD: message. Exit status: 0 valid,\n"
    "1 invalid, 2 usage error.\n";

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

static int validate(const char *path)
{
    char *err = calloc(1, VALIDATE_ERR_BYTES);
    kd_appspec_t *spec = NULL;
    struct stat st;
    size_t nfiles;
    kd_status_t rc;

    if (!err) {
        fprintf(stderr, "kdeploy validate: out of memory\n");
        return 1;
    }
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = kd_appspec_load_dir(path, &spec, err, VALIDATE_ERR_BYTES);
    else
        rc = kd_appspec_load_file(path, &spec, err, VALIDATE_ERR_BYTES);
    if (rc != KD_OK) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    kd_appspec_files(spec, &nfiles);
    printf("%s: valid (%s, %zu hooks, %zu files)\n", path,
           kd_appspec_format_name(kd_appspec_format(spec)), count_hooks(spec), nfiles);
    kd_appspec_free(spec);
    free(err);
    return 0;
}

int kd_cmd_validate(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-' || !argv[1][0]) {
        fputs(usage, stderr);
        return 2;
    }
    return validate(argv[1]);
}
