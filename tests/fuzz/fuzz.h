/* What every fuzz target shares. A target defines LLVMFuzzerTestOneInput;
 * built with libFuzzer (clang -fsanitize=fuzzer) it is a fuzzer, linked
 * with replay.c it replays a corpus directory as a ctest test. */
#ifndef KD_FUZZ_H
#define KD_FUZZ_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A scratch directory for this process, made on first use (under
 * KD_TEST_TMP or /tmp); exits if it cannot be made, as there is nothing
 * to fuzz without it. */
static inline const char *fuzz_dir(void)
{
    static char dir[PATH_MAX];
    const char *tmp = getenv("KD_TEST_TMP");

    if (dir[0])
        return dir;
    snprintf(dir, sizeof dir, "%s/fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    return dir;
}

/* Writes data to path; returns 0 on success. */
static inline int fuzz_write(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    size_t n;

    if (!f)
        return -1;
    n = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) == 0 && n == size ? 0 : -1;
}

#endif
