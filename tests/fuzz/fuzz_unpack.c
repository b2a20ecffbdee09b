/* The bundle unpacker (tar, tar.gz, zip) on arbitrary archives: nothing
 * may land outside the destination, and the limits hold. */
#include <sys/stat.h>

#include "bundle.h"
#include "fsutil.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kd_bundle_limits_t limits = {.max_entries = 1000, .max_total_bytes = 8 << 20,
                                 .max_ratio = 200};
    char archive[PATH_MAX], out[PATH_MAX], dest[PATH_MAX], root[PATH_MAX], err[1024];
    const char *dir = fuzz_dir();

    if (kd_pathf(archive, sizeof archive, "%s/archive", dir) != KD_OK ||
        kd_pathf(out, sizeof out, "%s/out", dir) != KD_OK ||
        kd_pathf(dest, sizeof dest, "%s/bundle", out) != KD_OK ||
        fuzz_write(archive, data, size) != 0)
        return 0;
    mkdir(out, 0755);
    kd_remove_tree(dest, NULL, 0);
    kd_bundle_unpack(archive, dest, root, sizeof root, &limits, err, sizeof err);
    kd_remove_tree(dest, NULL, 0);
    return 0;
}
