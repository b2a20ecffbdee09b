#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"

struct kd_journal {
    char *dir;
};

kd_status_t kd_journal_open(const char *dir, kd_journal_t **out, char *err, size_t errsz)
{
    kd_journal_t *j;
    kd_status_t st;

    /* The journal is what makes each hook run once: nobody else may write
     * (or plant) an entry. */
    if ((st = kd_dir_owned(dir, 0700, err, errsz)) != KD_OK)
        return st;
    if (!(j = calloc(1, sizeof *j)) || !(j->dir = strdup(dir))) {
        free(j);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    *out = j;
    return KD_OK;
}

void kd_journal_close(kd_journal_t *j)
{
    if (!j)
        return;
    free(j->dir);
    free(j);
}

/* Step ids hold '/' and come from the network: files are named by hash. */
static kd_status_t entry_path(const kd_journal_t *j, const char *step_id, const char *suffix,
                              char *path, size_t pathsz, char *err, size_t errsz)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    EVP_Digest(step_id, strlen(step_id), md, &mdlen, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < mdlen && i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if ((size_t)snprintf(path, pathsz, "%s/%s.%s", j->dir, hex, suffix) >= pathsz)
        return kd_err(err, errsz, KD_EINVAL, "journal path too long");
    return KD_OK;
}

kd_status_t kd_journal_lookup(kd_journal_t *j, const char *step_id, kd_journal_state_t *state,
                              kd_buf_t *result, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_buf_t data = KD_BUF_INIT(1024 * 1024);
    kd_status_t st;

    if ((st = entry_path(j, step_id, "result", path, sizeof path, err, errsz)) != KD_OK)
        return st;
    st = kd_read_file(path, result ? result : &data, err, errsz);
    kd_buf_free(&data);
    if (st == KD_OK) {
        *state = KD_JOURNAL_FINISHED;
        return KD_OK;
    }
    if (st != KD_ENOTFOUND)
        return st;
    if ((st = entry_path(j, step_id, "started", path, sizeof path, err, errsz)) != KD_OK)
        return st;
    *state = access(path, F_OK) == 0 ? KD_JOURNAL_STARTED : KD_JOURNAL_NONE;
    return KD_OK;
}

kd_status_t kd_journal_start(kd_journal_t *j, const char *step_id, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_status_t st = entry_path(j, step_id, "started", path, sizeof path, err, errsz);

    if (st != KD_OK)
        return st;
    return kd_write_file_atomic(path, step_id, strlen(step_id), 0600, err, errsz);
}

kd_status_t kd_journal_finish(kd_journal_t *j, const char *step_id, const void *result,
                              size_t len, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_status_t st = entry_path(j, step_id, "result", path, sizeof path, err, errsz);

    if (st != KD_OK)
        return st;
    return kd_write_file_atomic(path, result, len, 0600, err, errsz);
}
