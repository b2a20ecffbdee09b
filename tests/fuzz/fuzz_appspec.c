/* The appspec parser (AWS and JD formats) on arbitrary bytes. The first
 * byte picks the file name, which picks the format. */
#include "appspec.h"
#include "fsutil.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"appspec.yml", "jdcloud-codedeploy.yml", "appSpec.yml",
                                        "other.yml"};
    char path[PATH_MAX], err[4096];
    kd_appspec_t *spec = NULL;

    if (size == 0)
        return 0;
    if (kd_pathf(path, sizeof path, "%s/%s", fuzz_dir(), names[data[0] % 4]) != KD_OK ||
        fuzz_write(path, data + 1, size - 1) != 0)
        return 0;
    if (kd_appspec_load_file(path, &spec, err, sizeof err) == KD_OK) {
        size_t n = 0;

        kd_appspec_files(spec, &n);
        kd_appspec_permissions(spec, &n);
        kd_appspec_env(spec, &n);
        kd_appspec_free(spec);
    }
    remove(path);
    return 0;
}
