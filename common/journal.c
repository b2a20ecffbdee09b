#include "journal.h"

#include <dirent.h>
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

kd_status_t kd_journal_set_running(kd_journal_t *j, const char *step_id, long pgid,
                                   unsigned long long start, char *err, size_t errsz)
{
    char path[PATH_MAX], line[64];
    kd_buf_t text = KD_BUF_INIT(64 * 1024);
    kd_status_t st = entry_path(j, step_id, "running", path, sizeof path, err, errsz);

    if (st != KD_OK)
        return st;
    snprintf(line, sizeof line, "%ld %llu ", pgid, start);
    if (kd_buf_append(&text, line, strlen(line)) != KD_OK ||
        kd_buf_append(&text, step_id, strlen(step_id)) != KD_OK)
        st = kd_err(err, errsz, KD_ETOOLARGE, "step id too long");
    else
        /* Not fsync'd: a power cut ends the hook too; a crashed worker
         * finds the record in the page cache. */
        st = kd_write_file_replace(path, text.data, text.len, 0600, err, errsz);
    kd_buf_free(&text);
    return st;
}

kd_status_t kd_journal_clear_running(kd_journal_t *j, const char *step_id, char *err,
                                     size_t errsz)
{
    char path[PATH_MAX];
    kd_status_t st = entry_path(j, step_id, "running", path, sizeof path, err, errsz);

    if (st != KD_OK)
        return st;
    if (unlink(path) != 0 && errno != ENOENT)
        return kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    return KD_OK;
}

/* "PGID START STEP_ID" */
static int parse_running(const char *s, long *pgid, unsigned long long *start,
                         const char **rest)
{
    char *end;

    errno = 0;
    *pgid = strtol(s, &end, 10);
    if (errno || end == s || *end != ' ' || *pgid <= 1)
        return -1;
    s = end + 1;
    *start = strtoull(s, &end, 10);
    if (errno || end == s || *end != ' ')
        return -1;
    *rest = end + 1;
    return 0;
}

static kd_status_t read_running(kd_journal_t *j, const char *name, kd_journal_running_fn fn,
                                void *opaque, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_buf_t text = KD_BUF_INIT(64 * 1024);
    long pgid;
    unsigned long long start;
    const char *rest;
    kd_status_t st;

    if (kd_pathf(path, sizeof path, "%s/%s", j->dir, name) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "journal path too long");
    if ((st = kd_read_file(path, &text, err, errsz)) != KD_OK) {
        kd_buf_free(&text);
        return st == KD_ENOTFOUND ? KD_OK : st;
    }
    if (parse_running(kd_buf_str(&text), &pgid, &start, &rest) != 0)
        st = kd_err(err, errsz, KD_EPROTO, "%s: corrupt", path);
    else
        st = fn(opaque, rest, pgid, start);
    kd_buf_free(&text);
    return st;
}

kd_status_t kd_journal_each_running(kd_journal_t *j, kd_journal_running_fn fn, void *opaque,
                                    char *err, size_t errsz)
{
    DIR *d = opendir(j->dir);
    struct dirent *e;
    kd_status_t st = KD_OK;

    if (!d)
        return kd_err(err, errsz, KD_EIO, "%s: %s", j->dir, strerror(errno));
    while (st == KD_OK && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);

        if (n > 8 && strcmp(e->d_name + n - 8, ".running") == 0)
            st = read_running(j, e->d_name, fn, opaque, err, errsz);
    }
    closedir(d);
    return st;
}
