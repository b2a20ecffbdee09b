/* DownloadBundle: a bundle is fetched through libcurl with its digests
 * computed as it arrives, and given its final name only once they match.
 * Unpacking reads every header first and refuses the whole archive on one
 * unsafe entry; only then is it extracted, into a staging directory that
 * becomes the destination at the very end. */
#include "bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "strmap.h"

#ifndef KD_VERSION
#define KD_VERSION "0"
#endif

#define DEFAULT_MAX_BYTES ((size_t)1 << 30)
#define DEFAULT_CONNECT_TIMEOUT_S 10u
#define DEFAULT_TIMEOUT_S 1800u
#define MAX_BACKOFF_MS 60000u
#define MAX_REDIRECTS 5L

#define DEFAULT_MAX_ENTRIES 100000u
#define DEFAULT_MAX_TOTAL ((uint64_t)4 << 30)
/* Links followed while resolving one link target: the kernel's own bound. */
#define MAX_LINK_FOLLOWS 40u

/* ---- shared helpers ---------------------------------------------------- */

/* Copies s into out with control characters replaced: names and URLs come
 * from outside and end up in logs. Returns out. */
static const char *printable(const char *s, char *out, size_t outsz)
{
    size_t i = 0;

    for (; s && s[i] && i + 4 < outsz; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s && s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
    return out;
}

/* Makes a rename in path's directory durable. Best effort: the data
 * itself was synced already. */
static void sync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if (kd_pathf(dir, sizeof dir, "%.*s", (int)(slash - path), path) != KD_OK)
        return;
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- checksums --------------------------------------------------------- */

/* The digests a bundle is checked against and the ones being computed. */
typedef struct digests {
    const char *want_sha256;  /* hex, or NULL: not checked */
    const char *want_md5;
    EVP_MD_CTX *sha256;
    EVP_MD_CTX *md5;
} digests_t;

static const char *given(const char *s)
{
    return s && *s ? s : NULL;
}

static bool is_hex(const char *s, size_t len)
{
    size_t i = 0;

    while (s[i] && isxdigit((unsigned char)s[i]))
        i++;
    return i == len && !s[i];
}

/* At least one digest, each well formed: a bundle without one is refused
 * rather than run unverified. */
static kd_status_t digests_want(digests_t *d, const char *sha256, const char *md5, char *err,
                                size_t errsz)
{
    char shown[80];

    d->want_sha256 = given(sha256);
    d->want_md5 = given(md5);
    if (!d->want_sha256 && !d->want_md5)
        return kd_err(err, errsz, KD_EINVAL,
                      "the bundle has no sha256 or md5 checksum: refusing it");
    if (d->want_sha256 && !is_hex(d->want_sha256, 64))
        return kd_err(err, errsz, KD_EINVAL, "sha256 '%s' is not 64 hex digits",
                      printable(d->want_sha256, shown, sizeof shown));
    if (d->want_md5 && !is_hex(d->want_md5, 32))
        return kd_err(err, errsz, KD_EINVAL, "md5 '%s' is not 32 hex digits",
                      printable(d->want_md5, shown, sizeof shown));
    return KD_OK;
}

static bool digest_start(EVP_MD_CTX **ctx, const EVP_MD *md)
{
    if (!*ctx && !(*ctx = EVP_MD_CTX_new()))
        return false;
    return EVP_DigestInit_ex(*ctx, md, NULL) == 1;
}

/* (Re)starts the digests wanted, for a first try or a new one. */
static kd_status_t digests_start(digests_t *d, char *err, size_t errsz)
{
    if ((d->want_sha256 && !digest_start(&d->sha256, EVP_sha256())) ||
        (d->want_md5 && !digest_start(&d->md5, EVP_md5())))
        return kd_err(err, errsz, KD_EFAILED, "cannot start computing the bundle's digests");
    return KD_OK;
}

static void digests_update(digests_t *d, const void *data, size_t len)
{
    if (d->sha256)
        EVP_DigestUpdate(d->sha256, data, len);
    if (d->md5)
        EVP_DigestUpdate(d->md5, data, len);
}

/* Finishes one digest and compares it with the hex wanted. */
static kd_status_t digest_check(EVP_MD_CTX *ctx, const char *name, const char *want,
                                const char *what, char *err, size_t errsz)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char got[2 * EVP_MAX_MD_SIZE + 1];
    unsigned int len = 0;

    if (EVP_DigestFinal_ex(ctx, md, &len) != 1)
        return kd_err(err, errsz, KD_EFAILED, "%s: cannot compute its %s", what, name);
    for (unsigned int i = 0; i < len; i++)
        snprintf(got + 2 * i, 3, "%02x", md[i]);
    got[2 * len] = '\0';
    if (strcasecmp(got, want) != 0)
        return kd_err(err, errsz, KD_ECHECKSUM, "%s: %s mismatch: expected %s, got %s", what, name,
                      want, got);
    return KD_OK;
}

static kd_status_t digests_check(digests_t *d, const char *what, char *err, size_t errsz)
{
    kd_status_t st = KD_OK;

    if (d->want_sha256)
        st = digest_check(d->sha256, "sha256", d->want_sha256, what, err, errsz);
    if (st == KD_OK && d->want_md5)
        st = digest_check(d->md5, "md5", d->want_md5, what, err, errsz);
    return st;
}

static void digests_free(digests_t *d)
{
    EVP_MD_CTX_free(d->sha256);
    EVP_MD_CTX_free(d->md5);
    d->sha256 = d->md5 = NULL;
}

kd_status_t kd_bundle_verify(const char *path, const char *sha256, const char *md5, char *err,
                             size_t errsz)
{
    digests_t dg = {0};
    char buf[16384];
    ssize_t n;
    int fd = -1;
    kd_status_t st;

    if (!path)
        return kd_err(err, errsz, KD_EINVAL, "no bundle path to verify");
    if ((st = digests_want(&dg, sha256, md5, err, errsz)) != KD_OK ||
        (st = digests_start(&dg, err, errsz)) != KD_OK)
        goto out;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        st = kd_err(err, errsz, errno == ENOENT ? KD_ENOTFOUND : KD_EIO, "%s: %s", path,
                    strerror(errno));
        goto out;
    }
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        digests_update(&dg, buf, (size_t)n);
    }
    st = digests_check(&dg, path, err, errsz);
out:
    if (fd >= 0)
        close(fd);
    digests_free(&dg);
    return st;
}

/* ---- downloading ------------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init_once(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

kd_status_t kd_bundle_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_rc == CURLE_OK ? KD_OK : KD_EFAILED;
}

void kd_bundle_fetch_opts_init(kd_bundle_fetch_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->max_bytes = DEFAULT_MAX_BYTES;
    o->retries = 3;
    o->backoff_ms = 500;
    o->connect_timeout_s = DEFAULT_CONNECT_TIMEOUT_S;
    o->timeout_s = DEFAULT_TIMEOUT_S;
}

/* One download in progress: the temporary file and what has gone in. */
typedef struct download {
    int fd;
    size_t bytes;
    size_t max_bytes;
    bool too_large;
    int write_errno;  /* a failed write to the temporary file */
    bool aborted;     /* stopped through o->abort */
    digests_t *dg;
    const kd_bundle_fetch_opts_t *o;
} download_t;

static size_t on_data(char *data, size_t size, size_t nmemb, void *opaque)
{
    download_t *d = opaque;
    size_t len = size * nmemb;  /* size is always 1 */

    if (len > d->max_bytes - d->bytes) {
        d->too_large = true;
        return 0;  /* aborts the transfer */
    }
    if (write_all(d->fd, data, len) != 0) {
        d->write_errno = errno ? errno : EIO;
        return 0;
    }
    digests_update(d->dg, data, len);
    d->bytes += len;
    return len;
}

/* The URL as shown in messages: without user info, query or fragment,
 * which may hold credentials (presigned URLs). */
static void url_shown(const char *url, char *out, size_t outsz)
{
    char raw[1024];
    const char *host = strstr(url, "://");
    size_t end = strcspn(url, "?#"), auth;
    const char *at = NULL;

    host = host && host < url + end ? host + 3 : url;
    auth = strcspn(host, "/?#");
    for (size_t i = 0; i < auth; i++)
        if (host[i] == '@')
            at = host + i;
    if (at)
        snprintf(raw, sizeof raw, "%.*s%.*s", (int)(host - url), url, (int)(url + end - (at + 1)),
                 at + 1);
    else
        snprintf(raw, sizeof raw, "%.*s", (int)end, url);
    printable(raw, out, outsz);
}

static bool scheme_ok(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0 ||
           strncasecmp(url, "file://", 7) == 0;
}

/* libcurl refuses any other scheme, also after a redirect (where file://
 * would read the host's own files). */
/* libcurl calls this about once a second: heartbeats, and the stop flag. */
static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    download_t *d = opaque;

    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (d->o->abort && *d->o->abort) {
        d->aborted = true;
        return 1; /* aborts the transfer */
    }
    if (d->o->progress)
        d->o->progress(d->o->opaque, d->bytes);
    return 0;
}

static bool set_protocols(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    return curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file") == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
    long allowed = (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FILE);

    return curl_easy_setopt(h, CURLOPT_PROTOCOLS, allowed) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS,
                            (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) == CURLE_OK;
#endif
}

static CURL *new_handle(const kd_bundle_fetch_opts_t *o, download_t *d, char *curlerr)
{
    long connect_s = o->connect_timeout_s ? (long)o->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
    long total_s = o->timeout_s ? (long)o->timeout_s : DEFAULT_TIMEOUT_S;
    CURL *h = curl_easy_init();

    if (!h)
        return NULL;
    if (!set_protocols(h) || curl_easy_setopt(h, CURLOPT_URL, o->url) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, MAX_REDIRECTS) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, connect_s) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_TIMEOUT, total_s) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)d->max_bytes) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_USERAGENT, "kdeploy-worker/" KD_VERSION) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_WRITEDATA, d) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, d) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L) != CURLE_OK) {
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
}

/* Failures that may pass: the network, the server being briefly down. */
static bool transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Turns a failed try into a status and message; *retry says whether
 * another try may do better. */
static kd_status_t try_failed(CURLcode rc, long code, const download_t *d, const char *shown,
                              const char *curlerr, bool *retry, char *err, size_t errsz)
{
    const char *why = curlerr[0] ? curlerr : curl_easy_strerror(rc);

    *retry = false;
    if (d->aborted)
        return kd_err(err, errsz, KD_ESTOPPED, "%s: download stopped: the worker is stopping",
                      shown);
    if (d->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return kd_err(err, errsz, KD_ETOOLARGE, "%s: larger than the %zu bytes allowed", shown,
                      d->max_bytes);
    if (d->write_errno)
        return kd_err(err, errsz, KD_EIO, "%s: writing the download: %s", shown,
                      strerror(d->write_errno));
    if (rc == CURLE_HTTP_RETURNED_ERROR) {
        *retry = code >= 500 || code == 408 || code == 429;
        return kd_err(err, errsz, code == 404 || code == 410 ? KD_ENOTFOUND : KD_EIO,
                      "%s: HTTP %ld", shown, code);
    }
    if (rc == CURLE_UNSUPPORTED_PROTOCOL)
        return kd_err(err, errsz, KD_EREFUSED, "%s: redirected to a scheme other than http(s): %s",
                      shown, why);
    if (rc == CURLE_FILE_COULDNT_READ_FILE)
        return kd_err(err, errsz, KD_ENOTFOUND, "%s: %s", shown, why);
    *retry = transient(rc);
    return kd_err(err, errsz, rc == CURLE_OPERATION_TIMEDOUT ? KD_ETIMEDOUT : KD_EIO, "%s: %s",
                  shown, why);
}

/* Empties the temporary file and the digests for a new try. */
static kd_status_t download_restart(download_t *d, char *err, size_t errsz)
{
    if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) != 0)
        return kd_err(err, errsz, KD_EIO, "cannot empty the download file: %s", strerror(errno));
    d->bytes = 0;
    d->too_large = false;
    d->write_errno = 0;
    d->aborted = false;
    return digests_start(d->dg, err, errsz);
}

static kd_status_t try_once(const kd_bundle_fetch_opts_t *o, download_t *d, const char *shown,
                            bool *retry, char *err, size_t errsz)
{
    char curlerr[CURL_ERROR_SIZE] = "";
    long code = 0;
    CURLcode rc;
    CURL *h;
    kd_status_t st;

    *retry = false;
    if ((st = download_restart(d, err, errsz)) != KD_OK)
        return st;
    if (!(h = new_handle(o, d, curlerr)))
        return kd_err(err, errsz, KD_EFAILED, "%s: cannot set up the download", shown);
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc == CURLE_OK)
        return KD_OK;
    return try_failed(rc, code, d, shown, curlerr, retry, err, errsz);
}

static void sleep_ms(uint64_t ms)
{
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

/* The wait before try number `attempt` (1 for the first retry): the base,
 * doubled each time, at most a minute unless the base itself is more. */
static uint64_t backoff(unsigned base_ms, unsigned attempt)
{
    uint64_t ms = base_ms, cap = base_ms > MAX_BACKOFF_MS ? base_ms : MAX_BACKOFF_MS;

    for (unsigned i = 1; i < attempt && ms < cap; i++)
        ms *= 2;
    return ms < cap ? ms : cap;
}

static kd_status_t download_with_retries(const kd_bundle_fetch_opts_t *o, download_t *d,
                                         const char *shown, char *err, size_t errsz)
{
    for (unsigned attempt = 0;; attempt++) {
        bool retry;
        kd_status_t st;

        if (attempt)
            sleep_ms(backoff(o->backoff_ms, attempt));
        st = try_once(o, d, shown, &retry, err, errsz);
        if (st == KD_OK || !retry || attempt >= o->retries)
            return st;
    }
}

/* Gives the verified download its final name, durably. */
static kd_status_t download_commit(int fd, const char *tmp, const char *path, bool transient,
                                   char *err, size_t errsz)
{
    if (!transient && fsync(fd) != 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    if (!transient)
        sync_parent(path);
    return KD_OK;
}

kd_status_t kd_bundle_fetch(const kd_bundle_fetch_opts_t *o, char *err, size_t errsz)
{
    digests_t dg = {0};
    download_t d = {.fd = -1, .dg = &dg, .o = o};
    char tmp[PATH_MAX], shown[512];
    kd_status_t st;

    if (!o || !o->url || !o->path || !*o->path)
        return kd_err(err, errsz, KD_EINVAL, "a bundle download needs a url and a path");
    url_shown(o->url, shown, sizeof shown);
    if (!scheme_ok(o->url))
        return kd_err(err, errsz, KD_EINVAL, "%s: only http://, https:// and file:// bundles",
                      shown);
    if ((st = digests_want(&dg, o->sha256, o->md5, err, errsz)) != KD_OK)
        return st;
    if (kd_bundle_global_init() != KD_OK)
        return kd_err(err, errsz, KD_EFAILED, "libcurl could not be initialized");
    if (kd_pathf(tmp, sizeof tmp, "%s.XXXXXX", o->path) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", o->path);
    /* Whatever happens, no stale file at path can pass for a verified one. */
    if (unlink(o->path) != 0 && errno != ENOENT)
        return kd_err(err, errsz, KD_EIO, "%s: %s", o->path, strerror(errno));
    if ((d.fd = mkostemp(tmp, O_CLOEXEC)) < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", tmp, strerror(errno));
    d.max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES;
    st = download_with_retries(o, &d, shown, err, errsz);
    if (st == KD_OK)
        st = digests_check(&dg, shown, err, errsz);
    if (st == KD_OK)
        st = download_commit(d.fd, tmp, o->path, o->transient, err, errsz);
    close(d.fd);
    if (st != KD_OK)
        unlink(tmp);
    digests_free(&dg);
    return st;
}

/* ---- checking an archive ----------------------------------------------- */

/* Entry kinds as the survey's map stores them: the letter, then for links
 * their target as the archive gives it. */
#define KIND_FILE 'f'
#define KIND_DIR 'd'
#define KIND_SYMLINK 'l'
#define KIND_HARDLINK 'h'

static const char *const appspec_names[] = {
    "jdcloud-codedeploy.yml", "appspec.yml", "appspec.yaml", "appSpec.yml",
};

/* What the checking pass learned about an archive. */
typedef struct survey {
    uint64_t max_entries;
    uint64_t max_total;
    char why_total[160]; /* which limit max_total is, for errors */
    kd_strmap_t *kinds;  /* clean path -> kind letter (+ link target) */
    char **paths;        /* every clean path once, in archive order */
    size_t count, cap;
    uint64_t entries;    /* headers read, the destination's own included */
    uint64_t total;      /* sum of the entries' sizes */
} survey_t;

/* Refuses the archive because of one entry, named in the message. */
static kd_status_t refuse(char *err, size_t errsz, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static kd_status_t refuse(char *err, size_t errsz, const char *name, const char *fmt, ...)
{
    char shown[256], why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return kd_err(err, errsz, KD_EREFUSED, "archive entry '%s' refused: %s",
                  printable(name, shown, sizeof shown), why);
}

/* Writes name into out as a clean relative path ("./a//b/" -> "a/b").
 * Returns 0; -1 if it is absolute or has a ".." component; -2 if it does
 * not fit. An empty result names the destination itself. */
static int clean_path(const char *name, char *out, size_t outsz)
{
    size_t len = 0;

    if (name[0] == '/')
        return -1;
    out[0] = '\0';
    for (const char *p = name; *p;) {
        size_t n = strcspn(p, "/");

        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -1;
        if (n && !(n == 1 && p[0] == '.')) {
            if (len + n + 2 > outsz)
                return -2;
            if (len)
                out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
            out[len] = '\0';
        }
        p += n;
        if (*p == '/')
            p++;
    }
    return 0;
}

/* The kind of an entry as stored in the map (into value), or a refusal
 * for the kinds a bundle may not hold. */
static kd_status_t entry_kind(struct archive_entry *e, const char *name, char *value,
                              size_t valuesz, char *err, size_t errsz)
{
    mode_t type = archive_entry_filetype(e);
    const char *hard = archive_entry_hardlink(e), *sym = archive_entry_symlink(e);
    char shown[256];

    if (hard) {
        if (type != 0 && type != AE_IFREG)
            return refuse(err, errsz, name, "a hard link that is not a file");
        if (kd_pathf(value, valuesz, "%c%s", KIND_HARDLINK, hard) != KD_OK)
            return refuse(err, errsz, name, "hard link target too long");
    } else if (type == AE_IFREG) {
        snprintf(value, valuesz, "%c", KIND_FILE);
    } else if (type == AE_IFDIR) {
        snprintf(value, valuesz, "%c", KIND_DIR);
    } else if (type == AE_IFLNK) {
        if (!sym || !*sym)
            return refuse(err, errsz, name, "a symbolic link without a target");
        if (sym[0] == '/')
            return refuse(err, errsz, name, "a symbolic link to the absolute path '%s'",
                          printable(sym, shown, sizeof shown));
        if (kd_pathf(value, valuesz, "%c%s", KIND_SYMLINK, sym) != KD_OK)
            return refuse(err, errsz, name, "symbolic link target too long");
    } else {
        return refuse(err, errsz, name, "a device, fifo or socket");
    }
    return KD_OK;
}

/* A hard link may only repeat a file the archive has already written. */
static kd_status_t check_hardlink(const survey_t *s, struct archive_entry *e, const char *name,
                                  char *err, size_t errsz)
{
    const char *hard = archive_entry_hardlink(e), *kind;
    char target[PATH_MAX], shown[256];

    if (clean_path(hard, target, sizeof target) != 0 || !target[0] ||
        !(kind = kd_strmap_get(s->kinds, target)) ||
        (kind[0] != KIND_FILE && kind[0] != KIND_HARDLINK))
        return refuse(err, errsz, name, "a hard link to '%s', not an earlier file of the archive",
                      printable(hard, shown, sizeof shown));
    return KD_OK;
}

static kd_status_t add_size(survey_t *s, struct archive_entry *e, const char *name, char *err,
                            size_t errsz)
{
    uint64_t size;

    if (!archive_entry_size_is_set(e) || archive_entry_size(e) <= 0)
        return KD_OK;
    size = (uint64_t)archive_entry_size(e);
    if (size > s->max_total - s->total)
        return refuse(err, errsz, name, "the archive unpacks to more than %llu bytes (%s)",
                      (unsigned long long)s->max_total, s->why_total);
    s->total += size;
    return KD_OK;
}

/* Records a path; a path may appear twice only as a directory. */
static kd_status_t remember(survey_t *s, const char *path, const char *value, const char *name,
                            char *err, size_t errsz)
{
    const char *prev = kd_strmap_get(s->kinds, path);
    char *copy;

    if (prev) {
        if (prev[0] == KIND_DIR && value[0] == KIND_DIR)
            return KD_OK;
        return refuse(err, errsz, name, "its path appears twice in the archive");
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **paths = realloc(s->paths, cap * sizeof *paths);

        if (!paths)
            return kd_err(err, errsz, KD_ENOMEM, "out of memory");
        s->paths = paths;
        s->cap = cap;
    }
    if (!(copy = strdup(path)) || kd_strmap_set(s->kinds, path, value) != KD_OK) {
        free(copy);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    s->paths[s->count++] = copy;
    return KD_OK;
}

static kd_status_t survey_entry(survey_t *s, struct archive_entry *e, char *err, size_t errsz)
{
    const char *name = archive_entry_pathname(e);
    char path[PATH_MAX], value[PATH_MAX + 2];
    int rc;
    kd_status_t st;

    if (!name || !*name)
        return refuse(err, errsz, "", "an empty name");
    if (++s->entries > s->max_entries)
        return refuse(err, errsz, name, "the archive has more than %llu entries",
                      (unsigned long long)s->max_entries);
    if ((rc = clean_path(name, path, sizeof path)) != 0)
        return refuse(err, errsz, name, "%s", rc == -2 ? "name too long"
                                              : "an absolute path or a '..' component");
    if ((st = entry_kind(e, name, value, sizeof value, err, errsz)) != KD_OK)
        return st;
    if (!path[0])  /* "./": the destination itself */
        return value[0] == KIND_DIR ? KD_OK : refuse(err, errsz, name, "names the destination");
    if ((st = add_size(s, e, name, err, errsz)) != KD_OK)
        return st;
    if (value[0] == KIND_HARDLINK && (st = check_hardlink(s, e, name, err, errsz)) != KD_OK)
        return st;
    return remember(s, path, value, name, err, errsz);
}

/* Every entry lies in a directory: not below a link (which could lead
 * anywhere) nor below a file. */
static kd_status_t check_parents(const survey_t *s, const char *path, char *err, size_t errsz)
{
    char prefix[PATH_MAX];

    for (const char *p = strchr(path, '/'); p; p = strchr(p + 1, '/')) {
        const char *kind;

        snprintf(prefix, sizeof prefix, "%.*s", (int)(p - path), path);
        kind = kd_strmap_get(s->kinds, prefix);
        if (kind && kind[0] != KIND_DIR)
            return refuse(err, errsz, path, "it lies below '%s', which is %s", prefix,
                          kind[0] == KIND_SYMLINK ? "a symbolic link" : "not a directory");
    }
    return KD_OK;
}

/* Follows target from the directory cur (a clean relative path, "" for
 * the destination) as the kernel would, through the archive's own links;
 * false if the walk climbs out of the destination or follows too many
 * links. cur is changed to where the walk ends. */
static bool walk_stays_inside(const survey_t *s, char *cur, size_t cursz, const char *target,
                              unsigned *follows)
{
    for (const char *p = target; *p;) {
        size_t n = strcspn(p, "/"), len = strlen(cur);

        if (n == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = strrchr(cur, '/');

            if (!len)
                return false;
            *(slash ? slash : cur) = '\0';
        } else if (n && !(n == 1 && p[0] == '.')) {
            const char *kind;

            if (len + n + 2 > cursz)
                return false;
            snprintf(cur + len, cursz - len, "%s%.*s", len ? "/" : "", (int)n, p);
            kind = kd_strmap_get(s->kinds, cur);
            if (kind && kind[0] == KIND_SYMLINK) {
                cur[len] = '\0';  /* a link's target is read from its own directory */
                if (++*follows > MAX_LINK_FOLLOWS || kind[1] == '/' ||
                    !walk_stays_inside(s, cur, cursz, kind + 1, follows))
                    return false;
            }
        }
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

static kd_status_t check_symlink(const survey_t *s, const char *path, const char *target,
                                 char *err, size_t errsz)
{
    char cur[PATH_MAX], shown[256];
    const char *slash = strrchr(path, '/');
    unsigned follows = 0;

    snprintf(cur, sizeof cur, "%.*s", slash ? (int)(slash - path) : 0, path);
    if (!walk_stays_inside(s, cur, sizeof cur, target, &follows))
        return refuse(err, errsz, path,
                      "a symbolic link to '%s', which leads out of the bundle or loops",
                      printable(target, shown, sizeof shown));
    return KD_OK;
}

/* The checks that need the whole archive: links and parents may come in
 * any order. */
static kd_status_t check_tree(const survey_t *s, char *err, size_t errsz)
{
    kd_status_t st;

    for (size_t i = 0; i < s->count; i++) {
        const char *path = s->paths[i], *kind = kd_strmap_get(s->kinds, path);

        if ((st = check_parents(s, path, err, errsz)) != KD_OK)
            return st;
        if (kind[0] == KIND_SYMLINK && (st = check_symlink(s, path, kind + 1, err, errsz)) != KD_OK)
            return st;
    }
    return KD_OK;
}

/* Why an archive could not be opened: it is absent, unreadable, or not
 * an archive of the formats read. */
static kd_status_t open_status(int e)
{
    switch (e) {
    case ENOENT:
        return KD_ENOTFOUND;
    case EACCES:
    case EPERM:
    case EIO:
    case EISDIR:
    case ENOMEM:
        return KD_EIO;
    default:
        return KD_EINVAL;
    }
}

static kd_status_t open_reader(const char *archive, struct archive **out, char *err,
                               size_t errsz)
{
    struct archive *a = archive_read_new();

    if (!a)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    /* ARCHIVE_WARN: already registered (gnutar is tar) or an external
     * program stands in for a library; both work. */
    if (archive_read_support_format_tar(a) < ARCHIVE_WARN ||
        archive_read_support_format_gnutar(a) < ARCHIVE_WARN ||
        archive_read_support_format_zip(a) < ARCHIVE_WARN ||
        archive_read_support_filter_gzip(a) < ARCHIVE_WARN ||
        archive_read_support_filter_none(a) < ARCHIVE_WARN) {
        archive_read_free(a);
        return kd_err(err, errsz, KD_EFAILED, "libarchive lacks tar, zip or gzip support");
    }
    /* Opening already tells the format apart. */
    if (archive_read_open_filename(a, archive, 65536) != ARCHIVE_OK) {
        kd_status_t st = kd_err(err, errsz, open_status(archive_errno(a)), "%s: %s", archive,
                                archive_error_string(a));

        archive_read_free(a);
        return st;
    }
    *out = a;
    return KD_OK;
}

static kd_status_t survey_archive(survey_t *s, const char *archive, char *err, size_t errsz)
{
    struct archive *a;
    struct archive_entry *e;
    kd_status_t st;
    int r;

    if ((st = open_reader(archive, &a, err, errsz)) != KD_OK)
        return st;
    while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)
        if ((st = survey_entry(s, e, err, errsz)) != KD_OK)
            break;
    if (st == KD_OK && r != ARCHIVE_EOF)
        st = kd_err(err, errsz, KD_EINVAL, "%s: not a tar, tar.gz or zip archive, or damaged: %s",
                    archive, archive_error_string(a));
    if (st == KD_OK && s->entries == 0)
        st = kd_err(err, errsz, KD_EINVAL, "%s: the archive holds nothing", archive);
    archive_read_free(a);
    return st;
}

static bool has_appspec(const survey_t *s, const char *dir)
{
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof appspec_names / sizeof appspec_names[0]; i++) {
        const char *kind;

        if (kd_pathf(path, sizeof path, "%s/%s", dir, appspec_names[i]) == KD_OK &&
            (kind = kd_strmap_get(s->kinds, path)) &&
            (kind[0] == KIND_FILE || kind[0] == KIND_HARDLINK))
            return true;
    }
    return false;
}

/* Fills top with the archive's only top-level entry when that is a
 * directory holding an appspec (a bundle packed as its own folder), else
 * with "": the destination itself is the root. */
static void find_root_dir(const survey_t *s, char *top, size_t topsz)
{
    const char *first = s->count ? s->paths[0] : NULL, *kind;
    size_t len = first ? strcspn(first, "/") : 0;

    top[0] = '\0';
    if (!first || len >= topsz)
        return;
    for (size_t i = 1; i < s->count; i++)
        if (strcspn(s->paths[i], "/") != len || strncmp(s->paths[i], first, len) != 0)
            return;
    snprintf(top, topsz, "%.*s", (int)len, first);
    kind = kd_strmap_get(s->kinds, top);
    if ((kind && kind[0] != KIND_DIR) || !has_appspec(s, top))
        top[0] = '\0';
}

/* ---- extracting -------------------------------------------------------- */

/* Names are checked by the first pass and then placed under the staging
 * directory's real path, so they reach libarchive absolute and
 * ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS cannot be used; libarchive still
 * refuses '..' and writing through a symbolic link. No owners: files
 * belong to the worker. */
#define EXTRACT_FLAGS                                                                       \
    (ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_PERM | \
     ARCHIVE_EXTRACT_TIME)

/* Keeps the permission bits but not set-user-id, set-group-id or sticky,
 * and keeps directories open to their owner so a failure can be cleaned.
 * Group and other write are dropped: the cached scripts run as root later,
 * so no hook user may change them (a runas hook can still read its
 * script). See SECURITY.md. */
static void sanitize_mode(struct archive_entry *e, char kind)
{
    mode_t perm = archive_entry_perm(e) & 0755;

    archive_entry_set_perm(e, kind == KIND_DIR ? perm | 0700 : perm);
}

/* The size an entry's header gives, or no bound if it gives none. */
static uint64_t declared_size(struct archive_entry *e)
{
    if (!archive_entry_size_is_set(e))
        return UINT64_MAX;
    return archive_entry_size(e) > 0 ? (uint64_t)archive_entry_size(e) : 0;
}

static kd_status_t copy_data(struct archive *in, struct archive *out, const char *path,
                             uint64_t declared, uint64_t *written, const survey_t *s, char *err,
                             size_t errsz)
{
    const void *buf;
    size_t size;
    la_int64_t offset;
    int r;

    while ((r = archive_read_data_block(in, &buf, &size, &offset)) == ARCHIVE_OK) {
        /* Headers can lie about sizes: the bytes themselves are bounded. */
        if (offset < 0 || size > declared || (uint64_t)offset > declared - size)
            return refuse(err, errsz, path, "it holds more data than its header says");
        if (size > s->max_total - *written)
            return refuse(err, errsz, path, "the archive unpacks to more than %llu bytes (%s)",
                          (unsigned long long)s->max_total, s->why_total);
        *written += size;
        if (archive_write_data_block(out, buf, size, offset) != ARCHIVE_OK)
            return kd_err(err, errsz, KD_EIO, "unpacking '%s': %s", path,
                          archive_error_string(out));
    }
    if (r != ARCHIVE_EOF)
        return kd_err(err, errsz, KD_EIO, "unpacking '%s': %s", path, archive_error_string(in));
    return KD_OK;
}

/* Points an entry (and a hard link's target) under base. */
static kd_status_t relocate(struct archive_entry *e, const char *path, char kind,
                            const char *base, char *err, size_t errsz)
{
    char full[PATH_MAX], target[PATH_MAX];

    if (kd_pathf(full, sizeof full, "%s/%s", base, path) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "unpacking '%s': path too long", path);
    archive_entry_copy_pathname(e, full);
    if (kind != KIND_HARDLINK)
        return KD_OK;
    if (clean_path(archive_entry_hardlink(e), target, sizeof target) != 0 ||
        kd_pathf(full, sizeof full, "%s/%s", base, target) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "unpacking '%s': bad hard link", path);
    archive_entry_copy_hardlink(e, full);
    return KD_OK;
}

typedef struct extraction {
    const survey_t *s;
    struct archive *in;
    struct archive *out;
    const char *base;  /* the staging directory's real path */
    uint64_t written;
} extraction_t;

static kd_status_t extract_entry(extraction_t *x, struct archive_entry *e, char *err,
                                 size_t errsz)
{
    const char *name = archive_entry_pathname(e), *seen;
    char path[PATH_MAX], value[PATH_MAX + 2];
    kd_status_t st;

    /* Each entry again, against what the first pass saw: a file changed
     * in between cannot slip anything through. */
    if (!name || clean_path(name, path, sizeof path) != 0 ||
        (st = entry_kind(e, name, value, sizeof value, err, errsz)) != KD_OK)
        return refuse(err, errsz, name ? name : "", "it changed after it was checked");
    if (!path[0])
        return KD_OK;  /* the destination itself, made already */
    if (!(seen = kd_strmap_get(x->s->kinds, path)) || strcmp(seen, value) != 0)
        return refuse(err, errsz, name, "it changed after it was checked");
    if ((st = relocate(e, path, value[0], x->base, err, errsz)) != KD_OK)
        return st;
    sanitize_mode(e, value[0]);
    if (archive_write_header(x->out, e) != ARCHIVE_OK)
        return kd_err(err, errsz, KD_EIO, "unpacking '%s': %s", path,
                      archive_error_string(x->out));
    if ((value[0] == KIND_FILE || value[0] == KIND_HARDLINK) &&
        (st = copy_data(x->in, x->out, path, declared_size(e), &x->written, x->s, err,
                        errsz)) != KD_OK)
        return st;
    if (archive_write_finish_entry(x->out) != ARCHIVE_OK)
        return kd_err(err, errsz, KD_EIO, "unpacking '%s': %s", path,
                      archive_error_string(x->out));
    return KD_OK;
}

static kd_status_t extract(const survey_t *s, const char *archive, const char *base, char *err,
                           size_t errsz)
{
    extraction_t x = {.s = s, .base = base};
    struct archive_entry *e;
    kd_status_t st;
    int r;

    if ((st = open_reader(archive, &x.in, err, errsz)) != KD_OK)
        return st;
    if (!(x.out = archive_write_disk_new())) {
        archive_read_free(x.in);
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    }
    archive_write_disk_set_options(x.out, EXTRACT_FLAGS);
    while ((r = archive_read_next_header(x.in, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)
        if ((st = extract_entry(&x, e, err, errsz)) != KD_OK)
            break;
    if (st == KD_OK && r != ARCHIVE_EOF)
        st = kd_err(err, errsz, KD_EIO, "%s: %s", archive, archive_error_string(x.in));
    /* Closing sets the directories' modes and times, deferred till now. */
    if (archive_write_close(x.out) != ARCHIVE_OK && st == KD_OK)
        st = kd_err(err, errsz, KD_EIO, "unpacking: %s", archive_error_string(x.out));
    archive_write_free(x.out);
    archive_read_free(x.in);
    return st;
}

/* Makes a fresh staging directory and finds its real path (libarchive
 * refuses a path with a symbolic link anywhere in it). */
static kd_status_t make_staging(const char *staging, char *base, size_t basesz, char *err,
                                size_t errsz)
{
    char real[PATH_MAX];
    kd_status_t st;

    /* Left over by a worker that died while unpacking. */
    if ((st = kd_remove_tree(staging, err, errsz)) != KD_OK)
        return st;
    if (mkdir(staging, 0755) != 0)
        return kd_err(err, errsz, KD_EIO, "mkdir %s: %s", staging, strerror(errno));
    if (!realpath(staging, real) || kd_pathf(base, basesz, "%s", real) != KD_OK) {
        st = kd_err(err, errsz, KD_EIO, "%s: %s", staging, strerror(errno));
        rmdir(staging);
        return st;
    }
    return KD_OK;
}

/* The unpacked size a max_ratio allows for the archive at path (0: none). */
static uint64_t ratio_bound(const char *archive, unsigned ratio, uint64_t *archive_bytes)
{
    struct stat sb;
    uint64_t size;

    if (!ratio || stat(archive, &sb) != 0 || sb.st_size < 0)
        return 0;
    size = (uint64_t)sb.st_size;
    *archive_bytes = size;
    if (size > UINT64_MAX / ratio)
        return UINT64_MAX;
    return size * ratio > KD_BUNDLE_RATIO_FLOOR ? size * ratio : KD_BUNDLE_RATIO_FLOOR;
}

static kd_status_t survey_init(survey_t *s, const char *archive, const kd_bundle_limits_t *l,
                               char *err, size_t errsz)
{
    uint64_t by_ratio, archive_bytes = 0;

    memset(s, 0, sizeof *s);
    s->max_entries = l && l->max_entries ? l->max_entries : DEFAULT_MAX_ENTRIES;
    s->max_total = l && l->max_total_bytes ? l->max_total_bytes : DEFAULT_MAX_TOTAL;
    snprintf(s->why_total, sizeof s->why_total, "%s",
             l && l->max_total_bytes && l->total_reason ? l->total_reason
                                                        : "the unpacked size limit");
    by_ratio = ratio_bound(archive, l ? l->max_ratio : 0, &archive_bytes);
    if (by_ratio && by_ratio < s->max_total) {
        s->max_total = by_ratio;
        snprintf(s->why_total, sizeof s->why_total,
                 "max_unpack_ratio: %u times the archive's %llu bytes", l->max_ratio,
                 (unsigned long long)archive_bytes);
    }
    if (!(s->kinds = kd_strmap_new()))
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    return KD_OK;
}

static void survey_free(survey_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->paths[i]);
    free(s->paths);
    kd_strmap_free(s->kinds);
    memset(s, 0, sizeof *s);
}

/* The first pass: every header read and checked, nothing written. On
 * success root_path holds what kd_bundle_unpack reports as the root. */
static kd_status_t check_archive(survey_t *s, const char *archive, const char *dest,
                                 char *root_path, size_t rootsz, char *err, size_t errsz)
{
    char top[NAME_MAX + 1];
    kd_status_t st;

    if ((st = survey_archive(s, archive, err, errsz)) != KD_OK ||
        (st = check_tree(s, err, errsz)) != KD_OK)
        return st;
    find_root_dir(s, top, sizeof top);
    if ((top[0] ? kd_pathf(root_path, rootsz, "%s/%s", dest, top)
                : kd_pathf(root_path, rootsz, "%s", dest)) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: the bundle root's path is too long", dest);
    return KD_OK;
}

/* Makes the unpacked tree durable, then gives it its final name: after a
 * crash there is a whole bundle at dest or none. */
static kd_status_t publish(const char *staging, const char *dest, char *err, size_t errsz)
{
    int fd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        (void)syncfs(fd);
        close(fd);
    }
    if (rename(staging, dest) != 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", dest, strerror(errno));
    sync_parent(dest);
    return KD_OK;
}

kd_status_t kd_bundle_unpack(const char *archive, const char *dest_in, char *root,
                             size_t rootsz, const kd_bundle_limits_t *limits, char *err,
                             size_t errsz)
{
    survey_t s;
    char dest[PATH_MAX], staging[PATH_MAX], base[PATH_MAX], found[PATH_MAX];
    struct stat sb;
    bool staged = false;
    size_t len;
    kd_status_t st;

    if (!archive || !dest_in || !*dest_in || !root || !rootsz)
        return kd_err(err, errsz, KD_EINVAL,
                      "unpacking needs an archive, a destination and a root buffer");
    if (kd_pathf(dest, sizeof dest, "%s", dest_in) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", dest_in);
    /* "dir/" would put the staging directory inside the destination. */
    for (len = strlen(dest); len > 1 && dest[len - 1] == '/'; len--)
        dest[len - 1] = '\0';
    if (kd_pathf(staging, sizeof staging, "%s.partial", dest) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", dest);
    if (lstat(dest, &sb) == 0)
        return kd_err(err, errsz, KD_ECONFLICT, "%s already exists", dest);
    if ((st = survey_init(&s, archive, limits, err, errsz)) != KD_OK)
        return st;
    if ((st = check_archive(&s, archive, dest, found,
                            rootsz < sizeof found ? rootsz : sizeof found, err, errsz)) != KD_OK)
        goto out;
    if ((st = make_staging(staging, base, sizeof base, err, errsz)) != KD_OK)
        goto out;
    staged = true;
    if ((st = extract(&s, archive, base, err, errsz)) != KD_OK ||
        (st = publish(staging, dest, err, errsz)) != KD_OK)
        goto out;
    staged = false;
    memcpy(root, found, strlen(found) + 1);
out:
    if (staged)
        kd_remove_tree(staging, NULL, 0);
    survey_free(&s);
    return st;
}
