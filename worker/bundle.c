/* Fetching a bundle through libcurl, with its checksum computed as it
 * arrives and checked before the file is given its final name. */
#include "bundle.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_MAX_BYTES ((size_t)1024 * 1024 * 1024)

typedef struct download {
    int fd;
    size_t bytes;
    size_t max_bytes;
    bool too_large;
    EVP_MD_CTX *sha256;
    EVP_MD_CTX *md5;
} download_t;

void kd_bundle_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void kd_bundle_fetch_opts_init(kd_bundle_fetch_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->retries = 3;
    o->backoff_ms = 500;
    o->connect_timeout_s = 10;
    o->timeout_s = 600;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *opaque)
{
    download_t *d = opaque;
    size_t len = size * nmemb, done = 0;

    if (d->bytes + len > d->max_bytes) {
        d->too_large = true;
        return 0; /* aborts the transfer */
    }
    while (done < len) {
        ssize_t n = write(d->fd, data + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        done += (size_t)n;
    }
    EVP_DigestUpdate(d->sha256, data, len);
    EVP_DigestUpdate(d->md5, data, len);
    d->bytes += len;
    return len;
}

static void hex(const unsigned char *md, unsigned int len, char *out)
{
    for (unsigned int i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Compares the digests computed with the ones expected (either may be
 * missing, not both). */
static kd_status_t check_digests(EVP_MD_CTX *sha256, EVP_MD_CTX *md5, const char *want_sha256,
                                 const char *want_md5, const char *what, char *err, size_t errsz)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len;
    char got[2 * EVP_MAX_MD_SIZE + 1];

    if (want_sha256) {
        EVP_DigestFinal_ex(sha256, md, &len);
        hex(md, len, got);
        if (strcasecmp(got, want_sha256) != 0)
            return kd_err(err, errsz, KD_ECHECKSUM, "%s: sha256 is %s, expected %s", what, got,
                          want_sha256);
    }
    if (want_md5) {
        EVP_DigestFinal_ex(md5, md, &len);
        hex(md, len, got);
        if (strcasecmp(got, want_md5) != 0)
            return kd_err(err, errsz, KD_ECHECKSUM, "%s: md5 is %s, expected %s", what, got,
                          want_md5);
    }
    return KD_OK;
}

static bool transient(CURLcode rc, long http_code)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return true;
    case CURLE_HTTP_RETURNED_ERROR:
        return http_code >= 500 || http_code == 429;
    default:
        return false;
    }
}

static CURL *new_handle(const kd_bundle_fetch_opts_t *o, download_t *d, char *curlerr)
{
    CURL *h = curl_easy_init();

    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, o->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)o->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)o->timeout_s);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)d->max_bytes);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curlerr);
    return h;
}

/* One try: the body into d->fd, digests updated. *retry says whether a
 * failure is worth another try. */
static kd_status_t try_once(const kd_bundle_fetch_opts_t *o, download_t *d, bool *retry,
                            char *err, size_t errsz)
{
    char curlerr[CURL_ERROR_SIZE] = "";
    CURL *h = new_handle(o, d, curlerr);
    long code = 0;
    CURLcode rc;

    *retry = false;
    if (!h)
        return kd_err(err, errsz, KD_ENOMEM, "cannot start a download");
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc == CURLE_OK)
        return KD_OK;
    if (d->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return kd_err(err, errsz, KD_ETOOLARGE, "%s: larger than the %zu bytes allowed", o->url,
                      d->max_bytes);
    *retry = transient(rc, code);
    if (rc == CURLE_HTTP_RETURNED_ERROR)
        return kd_err(err, errsz, KD_EIO, "%s: HTTP %ld", o->url, code);
    return kd_err(err, errsz, rc == CURLE_UNSUPPORTED_PROTOCOL ? KD_EINVAL : KD_EIO, "%s: %s",
                  o->url, curlerr[0] ? curlerr : curl_easy_strerror(rc));
}

static kd_status_t start_try(download_t *d, const char *tmp, char *err, size_t errsz)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (d->fd < 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", tmp, strerror(errno));
    d->bytes = 0;
    d->too_large = false;
    EVP_DigestInit_ex(d->sha256, EVP_sha256(), NULL);
    EVP_DigestInit_ex(d->md5, EVP_md5(), NULL);
    return KD_OK;
}

static kd_status_t download_with_retries(const kd_bundle_fetch_opts_t *o, download_t *d,
                                         const char *tmp, char *err, size_t errsz)
{
    unsigned wait_ms = o->backoff_ms;
    kd_status_t st = KD_OK;

    for (unsigned attempt = 0; attempt <= o->retries; attempt++) {
        bool retry;

        if (attempt) {
            usleep(wait_ms * 1000u);
            wait_ms *= 2;
        }
        if ((st = start_try(d, tmp, err, errsz)) != KD_OK)
            return st;
        if ((st = try_once(o, d, &retry, err, errsz)) == KD_OK || !retry)
            return st;
    }
    return st;
}

static bool scheme_ok(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0 ||
           strncasecmp(url, "file://", 7) == 0;
}

kd_status_t kd_bundle_fetch(const kd_bundle_fetch_opts_t *o, char *err, size_t errsz)
{
    download_t d = {.fd = -1, .max_bytes = o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES};
    char tmp[PATH_MAX];
    kd_status_t st;

    if (!o->url || !scheme_ok(o->url))
        return kd_err(err, errsz, KD_EINVAL, "%s: only http://, https:// and file:// bundles",
                      o->url ? o->url : "(no url)");
    if (!o->sha256 && !o->md5)
        return kd_err(err, errsz, KD_EINVAL, "%s: no checksum given: refusing to use it", o->url);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.download", o->path) >= sizeof tmp)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", o->path);
    d.sha256 = EVP_MD_CTX_new();
    d.md5 = EVP_MD_CTX_new();
    if (!d.sha256 || !d.md5) {
        st = kd_err(err, errsz, KD_ENOMEM, "out of memory");
        goto out;
    }
    st = download_with_retries(o, &d, tmp, err, errsz);
    if (st == KD_OK)
        st = check_digests(d.sha256, d.md5, o->sha256, o->md5, o->url, err, errsz);
    if (st == KD_OK && fsync(d.fd) != 0)
        st = kd_err(err, errsz, KD_EIO, "%s: %s", tmp, strerror(errno));
    if (st == KD_OK && rename(tmp, o->path) != 0)
        st = kd_err(err, errsz, KD_EIO, "%s: %s", o->path, strerror(errno));
out:
    if (d.fd >= 0)
        close(d.fd);
    if (st != KD_OK)
        unlink(tmp);
    EVP_MD_CTX_free(d.sha256);
    EVP_MD_CTX_free(d.md5);
    return st;
}

kd_status_t kd_bundle_verify(const char *path, const char *sha256, const char *md5, char *err,
                             size_t errsz)
{
    EVP_MD_CTX *s = EVP_MD_CTX_new(), *m = EVP_MD_CTX_new();
    char buf[65536];
    ssize_t n;
    kd_status_t st = KD_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || !s || !m) {
        st = kd_err(err, errsz, fd < 0 ? KD_EIO : KD_ENOMEM, "%s: %s", path, strerror(errno));
        goto out;
    }
    EVP_DigestInit_ex(s, EVP_sha256(), NULL);
    EVP_DigestInit_ex(m, EVP_md5(), NULL);
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(s, buf, (size_t)n);
        EVP_DigestUpdate(m, buf, (size_t)n);
    }
    if (n < 0)
        st = kd_err(err, errsz, KD_EIO, "%s: %s", path, strerror(errno));
    else
        st = check_digests(s, m, sha256, md5, path, err, errsz);
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(s);
    EVP_MD_CTX_free(m);
    return st;
}
