#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "ptrmap.h"

/* The log: one file of records appended in order, preallocated in chunks
 * so that a record's fdatasync writes data only. A new file per entry with
 * an fsync of file and directory cost 1 ms at the median and 8-20 ms at the
 * 90th percentile on the benchmark machine; a write into preallocated space
 * with fdatasync, 0.2 and 0.3 ms (docs/benchmarks.md). */
#define LOG_NAME "journal.log"
#define LOG_CHUNK (1024 * 1024)
/* A record: u32 body length, 8 bytes of SHA-256 of the body, the body:
 * u8 type, u16 step id length, the step id, the payload. */
#define REC_HEAD 12
#define REC_MAX (2 * 1024 * 1024)
#define REC_START 'S'
#define REC_FINISH 'F'
#define REC_OFFSET 'O'

/* A step the log knows; its id follows the struct (the index's key). */
typedef struct entry {
    kd_journal_state_t state;
    off_t result_at;  /* finished: where the result bytes are in the log */
    size_t result_len;
    char id[];
} entry_t;

struct kd_journal {
    char *dir;
    int fd;              /* the log, locked against a second process */
    off_t end;           /* where the next record goes */
    off_t allocated;     /* preallocated size of the log */
    kd_ptrmap_t *index;  /* step id -> entry_t */
    int64_t offset;      /* the last recorded next offset, -1 if none */
    pthread_mutex_t lock;
};

static void digest8(const uint8_t *body, size_t len, uint8_t out[8])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL);
    memcpy(out, md, 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static kd_status_t index_step(kd_journal_t *j, const char *id, size_t idlen,
                              kd_journal_state_t state, off_t result_at, size_t result_len)
{
    entry_t *e = kd_ptrmap_get(j->index, id);

    if (!e) {
        if (!(e = calloc(1, sizeof *e + idlen + 1)))
            return KD_ENOMEM;
        memcpy(e->id, id, idlen);
        if (kd_ptrmap_set(j->index, e->id, e) != KD_OK) {
            free(e);
            return KD_ENOMEM;
        }
    }
    /* A start never undoes a finish (a replayed start cannot happen, but
     * the log is read as it is). */
    if (state == KD_JOURNAL_FINISHED || e->state != KD_JOURNAL_FINISHED) {
        e->state = state;
        e->result_at = result_at;
        e->result_len = result_len;
    }
    return KD_OK;
}

static ssize_t pread_all(int fd, void *buf, size_t len, off_t at)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, at + (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -1 : (ssize_t)done;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Applies the record at j->end, if it is whole and intact; false at the
 * end of the log (zeros, or a record torn by a crash). */
static bool read_record(kd_journal_t *j, uint8_t *body, bool *bad)
{
    uint8_t head[REC_HEAD], sum[8];
    uint32_t len;
    size_t idlen;

    if (pread_all(j->fd, head, REC_HEAD, j->end) != REC_HEAD)
        return false;
    len = get32(head);
    *bad = len != 0;
    if (len < 3 || len > REC_MAX || pread_all(j->fd, body, len, j->end + REC_HEAD) != (ssize_t)len)
        return false;
    digest8(body, len, sum);
    idlen = (size_t)body[1] | (size_t)body[2] << 8;
    if (memcmp(sum, head + 4, 8) != 0 || 3 + idlen > len)
        return false;
    *bad = false;
    if (body[0] == REC_OFFSET && len - 3 - idlen == 8) {
        uint64_t v = (uint64_t)get32(body + 3 + idlen) | (uint64_t)get32(body + 7 + idlen) << 32;

        j->offset = (int64_t)v;
    } else if (body[0] == REC_START || body[0] == REC_FINISH) {
        char *id = (char *)body + 3;
        uint8_t saved = body[3 + idlen];

        body[3 + idlen] = '\0'; /* the key, for a moment: the payload follows */
        index_step(j, id, idlen, body[0] == REC_START ? KD_JOURNAL_STARTED : KD_JOURNAL_FINISHED,
                   j->end + REC_HEAD + 3 + (off_t)idlen, len - 3 - idlen);
        body[3 + idlen] = saved;
    }
    j->end += REC_HEAD + (off_t)len;
    return true;
}

/* Zeros from the end of the log: what a crash left half-written there
 * must not be read as records once new ones are written over its start. */
static kd_status_t zero_tail(kd_journal_t *j, char *err, size_t errsz)
{
    static const uint8_t zeros[65536];

    for (off_t at = j->end; at < j->allocated; at += (off_t)sizeof zeros) {
        size_t n = (size_t)(j->allocated - at) < sizeof zeros ? (size_t)(j->allocated - at)
                                                              : sizeof zeros;

        if (pwrite(j->fd, zeros, n, at) != (ssize_t)n)
            return kd_err(err, errsz, KD_EIO, "%s/" LOG_NAME ": %s", j->dir, strerror(errno));
    }
    if (fdatasync(j->fd) != 0)
        return kd_err(err, errsz, KD_EIO, "%s/" LOG_NAME ": %s", j->dir, strerror(errno));
    return KD_OK;
}

static kd_status_t load(kd_journal_t *j, char *err, size_t errsz)
{
    uint8_t *body = malloc(REC_MAX + 1); /* + the id's NUL, in read_record */
    struct stat sb;
    bool bad = false;

    if (!body)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (fstat(j->fd, &sb) != 0) {
        free(body);
        return kd_err(err, errsz, KD_EIO, "%s/" LOG_NAME ": %s", j->dir, strerror(errno));
    }
    j->allocated = sb.st_size;
    while (j->end + REC_HEAD <= j->allocated && read_record(j, body, &bad))
        ;
    free(body);
    return bad ? zero_tail(j, err, errsz) : KD_OK;
}

static kd_status_t open_log(kd_journal_t *j, char *err, size_t errsz)
{
    char path[PATH_MAX];
    kd_status_t st;

    if (kd_pathf(path, sizeof path, "%s/" LOG_NAME, j->dir) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "journal path too long");
    j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (j->fd < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    /* Two processes appending to one log would interleave their records;
     * a host is served by one worker at a time. */
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        return kd_err(err, errsz, errno == EWOULDBLOCK ? KD_EREFUSED : KD_EIO,
                      "%s: %s", path, errno == EWOULDBLOCK
                          ? "in use by another worker process (one process per host)"
                          : strerror(errno));
    /* The log's own name must survive a power cut too. */
    if ((st = kd_fsync_parent(path, err, errsz)) != KD_OK)
        return st;
    return load(j, err, errsz);
}

kd_status_t kd_journal_open(const char *dir, kd_journal_t **out, char *err, size_t errsz)
{
    kd_journal_t *j;
    kd_status_t st;

    /* The journal is what makes each hook run once: nobody else may write
     * (or plant) an entry. */
    if ((st = kd_dir_owned(dir, 0700, err, errsz)) != KD_OK)
        return st;
    if (!(j = calloc(1, sizeof *j)) || !(j->dir = strdup(dir)) ||
        !(j->index = kd_ptrmap_new())) {
        if (j)
            free(j->dir);
        free(j);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    j->fd = -1;
    j->offset = -1;
    pthread_mutex_init(&j->lock, NULL);
    if ((st = open_log(j, err, errsz)) != KD_OK) {
        kd_journal_close(j);
        return st;
    }
    *out = j;
    return KD_OK;
}

void kd_journal_close(kd_journal_t *j)
{
    if (!j)
        return;
    if (j->fd >= 0)
        close(j->fd);
    kd_ptrmap_free_values(j->index);
    kd_ptrmap_free(j->index);
    pthread_mutex_destroy(&j->lock);
    free(j->dir);
    free(j);
}

/* Appends one record; with sync, returns once it is on disk. Called with
 * the lock held. */
static kd_status_t append(kd_journal_t *j, int type, const char *id, const void *payload,
                          size_t len, bool sync, char *err, size_t errsz)
{
    size_t idlen = strlen(id), body_len = 3 + idlen + len;
    uint8_t *rec;
    kd_status_t st = KD_OK;

    if (idlen > 0xffff || body_len > REC_MAX)
        return kd_err(err, errsz, KD_ETOOLARGE, "journal entry too large (%zu bytes)", body_len);
    if (!(rec = malloc(REC_HEAD + body_len)))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    rec[REC_HEAD] = (uint8_t)type;
    rec[REC_HEAD + 1] = (uint8_t)(idlen & 0xff);
    rec[REC_HEAD + 2] = (uint8_t)(idlen >> 8);
    memcpy(rec + REC_HEAD + 3, id, idlen);
    if (len)
        memcpy(rec + REC_HEAD + 3 + idlen, payload, len);
    put32(rec, (uint32_t)body_len);
    digest8(rec + REC_HEAD, body_len, rec + 4);
    /* Space in whole chunks: growing the file is a metadata change, which
     * fdatasync then writes too, once a chunk rather than every record. */
    while (j->end + (off_t)(REC_HEAD + body_len) > j->allocated) {
        int rc = posix_fallocate(j->fd, j->allocated, LOG_CHUNK);

        if (rc != 0) {
            st = kd_err(err, errsz, KD_EIO, "%s/" LOG_NAME ": %s", j->dir, strerror(rc));
            goto out;
        }
        j->allocated += LOG_CHUNK;
    }
    if (pwrite(j->fd, rec, REC_HEAD + body_len, j->end) != (ssize_t)(REC_HEAD + body_len) ||
        (sync && fdatasync(j->fd) != 0)) {
        st = kd_err(err, errsz, KD_EIO, "%s/" LOG_NAME ": %s", j->dir, strerror(errno));
        goto out;
    }
    if (type != REC_OFFSET)
        st = index_step(j, id, idlen, type == REC_START ? KD_JOURNAL_STARTED : KD_JOURNAL_FINISHED,
                        j->end + REC_HEAD + 3 + (off_t)idlen, len);
    j->end += (off_t)(REC_HEAD + body_len);
    if (st != KD_OK)
        st = kd_err(err, errsz, st, "out of memory");
out:
    free(rec);
    return st;
}

/* Step ids hold '/' and come from the network: files are named by hash.
 * Only journals written before the log have such files. */
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

/* A step recorded by a worker older than the log: one file per entry. */
static kd_status_t lookup_file(kd_journal_t *j, const char *step_id, kd_journal_state_t *state,
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

static kd_status_t read_result(kd_journal_t *j, const entry_t *e, kd_buf_t *result, char *err,
                               size_t errsz)
{
    uint8_t *bytes = malloc(e->result_len ? e->result_len : 1);
    kd_status_t st = KD_OK;

    if (!bytes)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (pread_all(j->fd, bytes, e->result_len, e->result_at) != (ssize_t)e->result_len)
        st = kd_err(err, errsz, KD_EIO, "%s/" LOG_NAME ": short read", j->dir);
    else if (kd_buf_append(result, bytes, e->result_len) != KD_OK)
        st = kd_err(err, errsz, KD_ETOOLARGE, "journal entry too large");
    free(bytes);
    return st;
}

kd_status_t kd_journal_lookup(kd_journal_t *j, const char *step_id, kd_journal_state_t *state,
                              kd_buf_t *result, char *err, size_t errsz)
{
    const entry_t *e;
    kd_status_t st = KD_OK;

    pthread_mutex_lock(&j->lock);
    e = kd_ptrmap_get(j->index, step_id);
    if (!e)
        st = lookup_file(j, step_id, state, result, err, errsz);
    else if ((*state = e->state) == KD_JOURNAL_FINISHED && result)
        st = read_result(j, e, result, err, errsz);
    pthread_mutex_unlock(&j->lock);
    return st;
}

kd_status_t kd_journal_start(kd_journal_t *j, const char *step_id, char *err, size_t errsz)
{
    kd_status_t st;

    pthread_mutex_lock(&j->lock);
    st = append(j, REC_START, step_id, NULL, 0, true, err, errsz);
    pthread_mutex_unlock(&j->lock);
    return st;
}

kd_status_t kd_journal_finish(kd_journal_t *j, const char *step_id, const void *result,
                              size_t len, char *err, size_t errsz)
{
    kd_status_t st;

    pthread_mutex_lock(&j->lock);
    st = append(j, REC_FINISH, step_id, result, len, true, err, errsz);
    pthread_mutex_unlock(&j->lock);
    return st;
}

kd_status_t kd_journal_set_offset(kd_journal_t *j, int64_t next_offset, char *err, size_t errsz)
{
    uint8_t v[8];
    kd_status_t st;

    put32(v, (uint32_t)((uint64_t)next_offset & 0xffffffffu));
    put32(v + 4, (uint32_t)((uint64_t)next_offset >> 32));
    pthread_mutex_lock(&j->lock);
    /* Not synced: the next start's fdatasync takes it along, and one lost
     * in a crash only brings steps again that the journal answers. */
    st = append(j, REC_OFFSET, "", v, sizeof v, false, err, errsz);
    if (st == KD_OK)
        j->offset = next_offset;
    pthread_mutex_unlock(&j->lock);
    return st;
}

int64_t kd_journal_offset(kd_journal_t *j)
{
    int64_t v;

    pthread_mutex_lock(&j->lock);
    v = j->offset;
    pthread_mutex_unlock(&j->lock);
    return v;
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
