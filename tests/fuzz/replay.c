/* Replays every file of the corpus directories given through a fuzz
 * target's LLVMFuzzerTestOneInput, so that CI, with the normal compiler
 * and the sanitizer build, runs what the fuzzers found. Fails when a
 * directory is missing or empty. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fsutil.h"
#include "fuzz.h"

static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;

    if (!d) {
        perror(dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX], err[256];
        kd_buf_t data = KD_BUF_INIT(4 * 1024 * 1024);

        if (e->d_name[0] == '.' ||
            kd_pathf(path, sizeof path, "%s/%s", dir, e->d_name) != KD_OK)
            continue;
        if (kd_read_file(path, &data, err, sizeof err) != KD_OK) {
            fprintf(stderr, "%s\n", err);
            kd_buf_free(&data);
            closedir(d);
            return -1;
        }
        LLVMFuzzerTestOneInput((const uint8_t *)(data.data ? data.data : ""), data.len);
        kd_buf_free(&data);
        count++;
    }
    closedir(d);
    printf("%s: %d inputs replayed\n", dir, count);
    return count > 0 ? count : -1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (replay_dir(argv[i]) < 0)
            return 1;
    return argc > 1 ? 0 : 2;
}
