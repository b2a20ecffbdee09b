/* DownloadBundle: downloads over file:// and from an HTTP server forked
 * here (retries, limits, redirects), checksum verification, and unpacking
 * tar, tar.gz and zip archives built here, hostile ones refused with
 * nothing written. */
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "bundle.h"
#include "check.h"
#include "fsutil.h"

static char tmp[PATH_MAX];  /* this run's scratch directory */

static const char BODY[] = "a bundle's bytes\nsecond line\n";

/* ---- helpers ----------------------------------------------------------- */

static const char *tpath(char *buf, const char *name)
{
    if (kd_pathf(buf, PATH_MAX, "%s/%s", tmp, name) != KD_OK)
        buf[0] = '\0';
    return buf;
}

static int write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int rc;

    if (!f)
        return -1;
    rc = fwrite(data, 1, len, f) == len ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

/* The file's content (freed by the caller), or NULL. */
static char *slurp(const char *path)
{
    kd_buf_t b = KD_BUF_INIT(1 << 20);

    if (kd_read_file(path, &b, NULL, 0) != KD_OK) {
        kd_buf_free(&b);
        return NULL;
    }
    if (!b.data)
        kd_buf_appends(&b, "");
    return kd_buf_steal(&b);
}

static void hex_digest(const EVP_MD *md, const void *data, size_t len, char *out)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_Digest(data, len, d, &n, md, NULL);
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int exists(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0;
}

/* Entries in a directory, or -1 if it cannot be read. */
static int dir_count(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void fresh_dir(const char *path)
{
    kd_remove_tree(path, NULL, 0);
    mkdir(path, 0755);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Options for a download of BODY-like content into <tmp>/dl/out.archive. */
static void opts_for(kd_bundle_fetch_opts_t *o, const char *url, const char *sha256,
                     const char *md5, char *out)
{
    char dir[PATH_MAX];

    fresh_dir(tpath(dir, "dl"));
    kd_bundle_fetch_opts_init(o);
    o->url = url;
    o->sha256 = sha256;
    o->md5 = md5;
    o->path = tpath(out, "dl/out.archive");
    o->backoff_ms = 10;
    o->connect_timeout_s = 5;
    o->timeout_s = 20;
}

/* ---- file:// downloads -------------------------------------------------- */

static void body_file(char *url, char *sha, char *md5)
{
    char src[PATH_MAX];

    write_bytes(tpath(src, "src.bin"), BODY, strlen(BODY));
    snprintf(url, PATH_MAX + 8, "file://%s", src);
    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    hex_digest(EVP_md5(), BODY, strlen(BODY), md5);
}

static void test_fetch_file_sha256_and_md5(void)
{
    char url[PATH_MAX + 8], sha[65], md5[33], out[PATH_MAX], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;
    char *got;

    body_file(url, sha, md5);
    opts_for(&o, url, sha, NULL, out);
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
    got = slurp(out);
    CHECK_STREQ(got, BODY);
    free(got);
    CHECK(dir_count(tpath(dir, "dl")) == 1);  /* no temporary file left */
    CHECK(kd_bundle_verify(out, sha, NULL, err, sizeof err) == KD_OK);

    for (char *p = md5; *p; p++)  /* hex is read in either case */
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 'a' + 'A' : *p);
    opts_for(&o, url, NULL, md5, out);
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
    CHECK(kd_bundle_verify(out, NULL, md5, err, sizeof err) == KD_OK);

    opts_for(&o, url, sha, md5, out);
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
    CHECK(kd_bundle_verify(out, sha, md5, err, sizeof err) == KD_OK);

    /* A transient download (not synced) is verified and named the same. */
    unlink(out);
    opts_for(&o, url, sha, NULL, out);
    o.transient = true;
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
    got = slurp(out);
    CHECK_STREQ(got, BODY);
    free(got);
    CHECK(dir_count(tpath(dir, "dl")) == 1);
    opts_for(&o, url, "0123456789abcdef0123456789abcdef"
                      "0123456789abcdef0123456789abcdef", NULL, out);
    o.transient = true;
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_ECHECKSUM);
}

static void count_progress(void *opaque, uint64_t bytes)
{
    int *calls = opaque;

    (void)bytes;
    (*calls)++;
}

/* The progress callback is called during a try; a set stop flag ends the
 * download before it starts, leaving nothing. */
static void test_fetch_progress_and_abort(void)
{
    char url[PATH_MAX + 8], sha[65], md5[33], out[PATH_MAX], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;
    volatile sig_atomic_t stop = 0;
    int calls = 0;

    body_file(url, sha, md5);
    opts_for(&o, url, sha, NULL, out);
    o.progress = count_progress;
    o.opaque = &calls;
    o.abort = &stop;
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
    CHECK(calls >= 1);
    opts_for(&o, url, sha, NULL, out);
    stop = 1;
    o.abort = &stop;
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_ESTOPPED);
    CHECK_CONTAINS(err, "stopped");
    CHECK(dir_count(tpath(dir, "dl")) == 0);
}

static void test_fetch_wrong_checksum_removes_file(void)
{
    char url[PATH_MAX + 8], sha[65], md5[33], out[PATH_MAX], dir[PATH_MAX], err[512] = "";
    char wrong[65];
    kd_bundle_fetch_opts_t o;

    body_file(url, sha, md5);
    hex_digest(EVP_sha256(), "other", 5, wrong);
    opts_for(&o, url, wrong, NULL, out);
    write_bytes(out, "stale", 5);  /* an older file there must not survive */
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_ECHECKSUM);
    CHECK_CONTAINS(err, wrong);
    CHECK_CONTAINS(err, sha);
    CHECK(!exists(out));
    CHECK(dir_count(tpath(dir, "dl")) == 0);

    /* Both given: both must match. */
    opts_for(&o, url, sha, "00112233445566778899aabbccddeeff", out);
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_ECHECKSUM);
    CHECK_CONTAINS(err, md5);
    CHECK(dir_count(tpath(dir, "dl")) == 0);

    /* Verifying on its own says the same and leaves the file alone. */
    CHECK(kd_bundle_verify(tpath(dir, "src.bin"), wrong, NULL, err, sizeof err) == KD_ECHECKSUM);
    CHECK_CONTAINS(err, sha);
    CHECK(exists(dir));
}

static void test_fetch_needs_a_checksum(void)
{
    char url[PATH_MAX + 8], sha[65], md5[33], out[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;

    body_file(url, sha, md5);
    opts_for(&o, url, NULL, "", out);
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "checksum");
    CHECK(!exists(out));
    opts_for(&o, url, "abc123", NULL, out);
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "64 hex");
    sha[10] = 'g';
    opts_for(&o, url, sha, NULL, out);
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_EINVAL);
    CHECK(kd_bundle_verify(out, NULL, NULL, err, sizeof err) == KD_EINVAL);
}

static void test_fetch_size_limit(void)
{
    char url[PATH_MAX + 8], sha[65], md5[33], out[PATH_MAX], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;

    body_file(url, sha, md5);
    opts_for(&o, url, sha, NULL, out);
    o.max_bytes = 10;
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_ETOOLARGE);
    CHECK_CONTAINS(err, "10 bytes");
    CHECK(dir_count(tpath(dir, "dl")) == 0);
    opts_for(&o, url, sha, NULL, out);
    o.max_bytes = strlen(BODY);  /* exactly the limit is fine */
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
}

static void test_fetch_refuses_other_schemes(void)
{
    static const char *const urls[] = {
        "ftp://127.0.0.1/b.tgz", "gopher://127.0.0.1/b", "scp://h/b.tgz", "/plain/path.tgz",
        "dict://127.0.0.1/x", "fil://x", "",
    };
    char sha[65], out[PATH_MAX], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;

    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        opts_for(&o, urls[i], sha, NULL, out);
        CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_EINVAL, "%s", urls[i]);
        CHECK(dir_count(tpath(dir, "dl")) == 0);
    }
}

static void test_fetch_missing_file(void)
{
    char url[PATH_MAX + 8], sha[65], out[PATH_MAX], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;

    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    snprintf(url, sizeof url, "file://%s", tpath(dir, "no-such-file"));
    opts_for(&o, url, sha, NULL, out);
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_ENOTFOUND);
    CHECK(dir_count(tpath(dir, "dl")) == 0);
}

/* ---- a tiny HTTP server ------------------------------------------------ */

/* One reply; the server gives them in order, one per connection, and
 * repeats the last. */
typedef struct reply {
    int status;
    const char *body;
    const char *headers;  /* more header lines, each ending in \r\n */
    long length;          /* Content-Length sent: -1 the body's, -2 none */
} reply_t;

typedef struct server {
    pid_t pid;
    int hits;  /* read end of a pipe: one byte per request served */
} server_t;

/* A listening socket on 127.0.0.1 at a port the kernel picks. */
static int listen_any(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);

        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void read_request(int c)
{
    char req[8192];
    size_t got = 0;

    while (got < sizeof req - 1) {
        ssize_t n = read(c, req + got, sizeof req - 1 - got);

        if (n <= 0)
            return;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            return;
    }
}

static void answer(int c, const reply_t *r)
{
    char head[1024];
    size_t blen = strlen(r->body);
    long len = r->length == -1 ? (long)blen : r->length;

    if (r->length == -2)
        snprintf(head, sizeof head, "HTTP/1.1 %d Test\r\n%sConnection: close\r\n\r\n", r->status,
                 r->headers ? r->headers : "");
    else
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d Test\r\nContent-Length: %ld\r\n%sConnection: close\r\n\r\n",
                 r->status, len, r->headers ? r->headers : "");
    send_all(c, head, strlen(head));
    send_all(c, r->body, blen);
}

/* The child's whole life: answer connections until killed. */
static void serve(int lfd, const reply_t *replies, size_t n, int hits)
{
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0;; i++) {
        int c = accept(lfd, NULL, NULL);

        if (c < 0)
            _exit(1);
        read_request(c);
        /* Counted before answering, so the count is complete once the
         * client has its answer. */
        if (write(hits, "x", 1) != 1)
            _exit(1);
        answer(c, &replies[i < n ? i : n - 1]);
        shutdown(c, SHUT_WR);
        close(c);
    }
}

static int server_start(server_t *sv, int lfd, const reply_t *replies, size_t n)
{
    int p[2];

    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    if ((sv->pid = fork()) < 0)
        return -1;
    if (sv->pid == 0) {
        close(p[0]);
        serve(lfd, replies, n, p[1]);
        _exit(0);
    }
    close(lfd);
    close(p[1]);
    sv->hits = p[0];
    return 0;
}

/* Kills and reaps the server; returns how many requests it served. */
static int server_stop(server_t *sv)
{
    char buf[64];
    ssize_t n;
    int hits = 0;

    kill(sv->pid, SIGKILL);
    while (waitpid(sv->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    while ((n = read(sv->hits, buf, sizeof buf)) > 0)
        hits += (int)n;
    close(sv->hits);
    return hits;
}

/* Serves replies, downloads from it with o's settings, and returns the
 * fetch's status; *hits gets the requests served. */
static kd_status_t fetch_from(const reply_t *replies, size_t n, int lfd, int port,
                              kd_bundle_fetch_opts_t *o, char *url, int *hits, char *err,
                              size_t errsz)
{
    server_t sv;
    kd_status_t st;

    snprintf(url, 128, "http://127.0.0.1:%d/bundle.tgz", port);
    o->url = url;
    if (server_start(&sv, lfd, replies, n) != 0) {
        *hits = -1;
        return KD_EFAILED;
    }
    st = kd_bundle_fetch(o, err, errsz);
    *hits = server_stop(&sv);
    return st;
}

#define FETCH(replies, o, hits, err)                                                       \
    fetch_from(replies, sizeof replies / sizeof replies[0], lfd, port, o, url, hits, err, \
               sizeof err)

static void test_http_download(void)
{
    const reply_t replies[] = {{200, BODY, NULL, -1}};
    char sha[65], out[PATH_MAX], url[128], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd = listen_any(&port);
    char *got;

    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    opts_for(&o, NULL, sha, NULL, out);
    CHECK_MSG(FETCH(replies, &o, &hits, err) == KD_OK, "%s", err);
    CHECK(hits == 1);
    got = slurp(out);
    CHECK_STREQ(got, BODY);
    free(got);
}

static void test_http_500_then_200_is_retried(void)
{
    const reply_t replies[] = {{500, "boom", NULL, -1}, {503, "busy", NULL, -1},
                               {200, BODY, NULL, -1}};
    char sha[65], out[PATH_MAX], url[128], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd = listen_any(&port);
    char *got;

    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    opts_for(&o, NULL, sha, NULL, out);
    o.retries = 3;
    CHECK_MSG(FETCH(replies, &o, &hits, err) == KD_OK, "%s", err);
    CHECK_MSG(hits == 3, "hits %d", hits);
    got = slurp(out);
    CHECK_STREQ(got, BODY);  /* nothing of the error pages mixed in */
    free(got);
}

static void test_http_5xx_gives_up_after_retries_with_backoff(void)
{
    const reply_t replies[] = {{502, "bad gateway", NULL, -1}};
    char sha[65], out[PATH_MAX], url[128], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd = listen_any(&port);
    double start = now_ms();

    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    opts_for(&o, NULL, sha, NULL, out);
    o.retries = 2;
    o.backoff_ms = 40;
    CHECK(FETCH(replies, &o, &hits, err) == KD_EIO);
    CHECK_CONTAINS(err, "HTTP 502");
    CHECK_MSG(hits == 3, "hits %d", hits);
    CHECK(now_ms() - start >= 40 + 80);  /* waited 40 ms, then twice that */
    CHECK(dir_count(tpath(dir, "dl")) == 0);
}

static void test_http_404_and_403_are_not_retried(void)
{
    const reply_t gone[] = {{404, "no", NULL, -1}, {200, BODY, NULL, -1}};
    const reply_t denied[] = {{403, "no", NULL, -1}, {200, BODY, NULL, -1}};
    char sha[65], out[PATH_MAX], url[128], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd;

    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    opts_for(&o, NULL, sha, NULL, out);
    o.retries = 3;
    lfd = listen_any(&port);
    CHECK(FETCH(gone, &o, &hits, err) == KD_ENOTFOUND);
    CHECK_CONTAINS(err, "404");
    CHECK(hits == 1);
    CHECK(dir_count(tpath(dir, "dl")) == 0);
    lfd = listen_any(&port);
    CHECK(FETCH(denied, &o, &hits, err) == KD_EIO);
    CHECK_CONTAINS(err, "403");
    CHECK(hits == 1);
}

static void test_http_size_limit(void)
{
    static char big[5001];
    const reply_t announced[] = {{200, BODY, NULL, 1000000}};
    const reply_t unannounced[] = {{200, big, NULL, -2}};
    char sha[65], out[PATH_MAX], url[128], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd;

    memset(big, 'x', sizeof big - 1);
    hex_digest(EVP_sha256(), big, strlen(big), sha);
    opts_for(&o, NULL, sha, NULL, out);
    o.max_bytes = 1000;
    o.retries = 2;
    lfd = listen_any(&port);
    CHECK(FETCH(announced, &o, &hits, err) == KD_ETOOLARGE);
    CHECK(hits == 1);  /* not worth another try */
    lfd = listen_any(&port);
    CHECK(FETCH(unannounced, &o, &hits, err) == KD_ETOOLARGE);
    CHECK(hits == 1);
    CHECK(dir_count(tpath(dir, "dl")) == 0);
}

static void test_http_redirects(void)
{
    char sha[65], out[PATH_MAX], url[128], dir[PATH_MAX], err[512] = "", to_http[128];
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd = listen_any(&port);

    snprintf(to_http, sizeof to_http, "Location: http://127.0.0.1:%d/real.tgz\r\n", port);
    {
        const reply_t followed[] = {{302, "", to_http, -1}, {200, BODY, NULL, -1}};

        hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
        opts_for(&o, NULL, sha, NULL, out);
        CHECK_MSG(FETCH(followed, &o, &hits, err) == KD_OK, "%s", err);
        CHECK(hits == 2);
    }
    {
        const reply_t to_file[] = {{302, "", "Location: file:///etc/passwd\r\n", -1}};

        opts_for(&o, NULL, sha, NULL, out);
        o.retries = 2;
        lfd = listen_any(&port);
        CHECK(FETCH(to_file, &o, &hits, err) == KD_EREFUSED);
        CHECK(hits == 1);
        CHECK(dir_count(tpath(dir, "dl")) == 0);
    }
}

static void test_http_connection_refused_is_retried(void)
{
    char sha[65], out[PATH_MAX], url[128], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, lfd = listen_any(&port);
    double start;

    close(lfd);  /* nothing listens there now */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/b.tgz", port);
    hex_digest(EVP_sha256(), BODY, strlen(BODY), sha);
    opts_for(&o, url, sha, NULL, out);
    o.retries = 2;
    o.backoff_ms = 30;
    start = now_ms();
    CHECK(kd_bundle_fetch(&o, err, sizeof err) == KD_EIO);
    CHECK(now_ms() - start >= 30 + 60);
}

static void test_http_bad_checksum_not_retried(void)
{
    const reply_t replies[] = {{200, BODY, NULL, -1}};
    char sha[65], out[PATH_MAX], url[128], dir[PATH_MAX], err[512] = "";
    kd_bundle_fetch_opts_t o;
    int port, hits, lfd = listen_any(&port);

    hex_digest(EVP_sha256(), "not the body", 12, sha);
    opts_for(&o, NULL, sha, NULL, out);
    o.retries = 3;
    CHECK(FETCH(replies, &o, &hits, err) == KD_ECHECKSUM);
    CHECK(hits == 1);
    CHECK(dir_count(tpath(dir, "dl")) == 0);
}

/* ---- building archives ------------------------------------------------- */

enum { TAR, TGZ, ZIP, ZIP_STORED };

/* One archive entry: 'f' file, 'd' directory, 'l' symbolic link, 'h' hard
 * link, 'c' character device, 'p' fifo. data: a file's content or a
 * link's target. mode 0: 0644 (files), 0755 (directories). */
typedef struct ent {
    char type;
    const char *name;
    const char *data;
    unsigned mode;
} ent_t;

#define MTIME 1700000000

static void set_entry(struct archive_entry *e, const ent_t *x)
{
    archive_entry_set_pathname(e, x->name);
    archive_entry_set_mtime(e, MTIME, 0);
    switch (x->type) {
    case 'd':
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, x->mode ? x->mode : 0755);
        break;
    case 'l':
        archive_entry_set_filetype(e, AE_IFLNK);
        archive_entry_set_perm(e, 0777);
        archive_entry_set_symlink(e, x->data);
        break;
    case 'h':
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_hardlink(e, x->data);
        break;
    case 'c':
    case 'p':
        archive_entry_set_filetype(e, x->type == 'c' ? AE_IFCHR : AE_IFIFO);
        archive_entry_set_perm(e, 0666);
        archive_entry_set_rdev(e, makedev(1, 3));
        break;
    default:
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, x->mode ? x->mode : 0644);
        archive_entry_set_size(e, (la_int64_t)strlen(x->data));
    }
}

static int build(const char *path, int fmt, const ent_t *ents, size_t n)
{
    struct archive *a = archive_write_new();
    int rc = 0;

    if (fmt == ZIP || fmt == ZIP_STORED) {
        archive_write_set_format_zip(a);
        if (fmt == ZIP_STORED)
            archive_write_zip_set_compression_store(a);
    } else {
        archive_write_set_format_pax_restricted(a);
        if (fmt == TGZ)
            archive_write_add_filter_gzip(a);
    }
    if (archive_write_open_filename(a, path) != ARCHIVE_OK)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct archive_entry *e = archive_entry_new();

        set_entry(e, &ents[i]);
        if (archive_write_header(a, e) < ARCHIVE_WARN)
            rc = -1;
        else if (ents[i].type == 'f' && *ents[i].data)
            archive_write_data(a, ents[i].data, strlen(ents[i].data));
        if (rc)
            fprintf(stderr, "building %s: %s\n", ents[i].name, archive_error_string(a));
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK)
        rc = -1;
    archive_write_free(a);
    return rc;
}

#define BUILD(path, fmt, ents) build(path, fmt, ents, sizeof ents / sizeof ents[0])

/* ---- unpacking --------------------------------------------------------- */

static int mode_of(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static void check_file(const char *dest, const char *name, const char *content, int mode)
{
    char path[PATH_MAX * 2];
    char *got;
    struct stat sb;

    snprintf(path, sizeof path, "%s/%s", dest, name);
    got = slurp(path);
    CHECK_MSG(got && strcmp(got, content) == 0, "%s: '%s'", name, got ? got : "(none)");
    free(got);
    CHECK_MSG(mode_of(path) == mode, "%s: mode %o, expected %o", name, mode_of(path), mode);
    CHECK_MSG(lstat(path, &sb) == 0 && sb.st_mtime == MTIME, "%s: mtime", name);
}

static void check_link(const char *dest, const char *name, const char *target)
{
    char path[PATH_MAX * 2], got[PATH_MAX];
    ssize_t n;

    snprintf(path, sizeof path, "%s/%s", dest, name);
    n = readlink(path, got, sizeof got - 1);
    got[n > 0 ? n : 0] = '\0';
    CHECK_MSG(n > 0 && strcmp(got, target) == 0, "%s -> '%s'", name, got);
}

static void unpack_ok(int fmt, const char *archive_name)
{
    static const ent_t ents[] = {
        {'d', "bin", NULL, 0755},
        {'f', "bin/run.sh", "#!/bin/sh\necho hi\n", 0755},
        {'f', "conf/a/b/c.txt", "deep\n", 0640},  /* parents not in the archive */
        {'l', "current", "conf/a/b", 0},
        {'l', "bin/start", "run.sh", 0},
        {'l', "bin/up", "../conf/a", 0},
        {'f', "appspec.yml", "version: 0.0\nos: linux\n", 0644},
        {'f', "setid.sh", "x", 06755},  /* set-id bits are dropped */
        {'f', "open.sh", "x", 0777},    /* so is write for group and others */
        {'d', "private", NULL, 0500},
    };
    static const ent_t hard[] = {{'h', "bin/run2.sh", "bin/run.sh", 0}};
    char archive[PATH_MAX], dest[PATH_MAX], path[PATH_MAX * 2], root[PATH_MAX] = "", err[512] = "";
    struct stat a, b;

    fresh_dir(tpath(dest, "ok"));
    tpath(archive, archive_name);
    tpath(dest, "ok/bundle");
    if (fmt == ZIP) {
        CHECK(BUILD(archive, fmt, ents) == 0);
    } else {
        ent_t all[sizeof ents / sizeof ents[0] + 1];

        memcpy(all, ents, sizeof ents);
        all[sizeof ents / sizeof ents[0]] = hard[0];
        CHECK(BUILD(archive, fmt, all) == 0);
    }
    CHECK_MSG(kd_bundle_unpack(archive, dest, root, sizeof root, NULL, err, sizeof err) == KD_OK,
              "%s", err);
    CHECK_STREQ(root, dest);
    check_file(dest, "bin/run.sh", "#!/bin/sh\necho hi\n", 0755);
    check_file(dest, "conf/a/b/c.txt", "deep\n", 0640);
    check_file(dest, "appspec.yml", "version: 0.0\nos: linux\n", 0644);
    check_file(dest, "setid.sh", "x", 0755);
    check_file(dest, "open.sh", "x", 0755);
    check_link(dest, "current", "conf/a/b");
    check_link(dest, "bin/start", "run.sh");
    check_link(dest, "bin/up", "../conf/a");
    snprintf(path, sizeof path, "%s/current/c.txt", dest);
    CHECK(access(path, R_OK) == 0);  /* the link works */
    snprintf(path, sizeof path, "%s/private", dest);
    CHECK(mode_of(path) == 0700);
    if (fmt != ZIP) {
        char one[PATH_MAX * 2];

        snprintf(path, sizeof path, "%s/bin/run2.sh", dest);
        snprintf(one, sizeof one, "%s/bin/run.sh", dest);
        CHECK(stat(path, &a) == 0 && stat(one, &b) == 0 && a.st_ino == b.st_ino);
    }
    CHECK(!exists(tpath(path, "ok/bundle.partial")));
    CHECK(dir_count(tpath(path, "ok")) == 1);
}

static void test_unpack_tar(void)
{
    unpack_ok(TAR, "plain.tar");
}

static void test_unpack_tgz_named_as_zip(void)
{
    unpack_ok(TGZ, "misnamed.zip");  /* told apart by content */
}

static void test_unpack_zip(void)
{
    unpack_ok(ZIP, "bundle.bin");
}

/* Unpacks ents (tar.gz) and returns the root reported, "" on failure. */
static void root_of(const ent_t *ents, size_t n, char *root, size_t rootsz, char *dest)
{
    char archive[PATH_MAX], err[512] = "";
    kd_status_t st;

    fresh_dir(tpath(archive, "root"));
    tpath(archive, "root.tgz");
    tpath(dest, "root/bundle");
    CHECK(build(archive, TGZ, ents, n) == 0);
    root[0] = '\0';
    st = kd_bundle_unpack(archive, dest, root, rootsz, NULL, err, sizeof err);
    CHECK_MSG(st == KD_OK, "%s", err);
}

#define ROOT_OF(ents, root, dest) \
    root_of(ents, sizeof ents / sizeof ents[0], root, sizeof root, dest)

static void test_unpack_root_detection(void)
{
    static const ent_t own_dir[] = {{'d', "myapp", NULL, 0},
                                    {'f', "myapp/appspec.yml", "version: 0.0\n", 0},
                                    {'f', "myapp/scripts/start.sh", "exit 0\n", 0755}};
    static const ent_t jd_implied[] = {{'f', "svc/jdcloud-codedeploy.yml", "x\n", 0},
                                       {'f', "svc/bin/app", "x\n", 0}};
    static const ent_t dotted[] = {{'d', "./", NULL, 0}, {'d', "./myapp/", NULL, 0},
                                   {'f', "./myapp/appSpec.yml", "x\n", 0}};
    static const ent_t no_appspec[] = {{'d', "myapp", NULL, 0},
                                       {'f', "myapp/readme.txt", "x\n", 0}};
    static const ent_t two_tops[] = {{'f', "myapp/appspec.yml", "x\n", 0},
                                     {'f', "other.txt", "x\n", 0}};
    static const ent_t at_top[] = {{'d', "./", NULL, 0}, {'f', "./appspec.yaml", "x\n", 0},
                                   {'f', "./scripts/a.sh", "x\n", 0755}};
    char root[PATH_MAX], dest[PATH_MAX], want[PATH_MAX * 2];

    ROOT_OF(own_dir, root, dest);
    snprintf(want, sizeof want, "%s/myapp", dest);
    CHECK_STREQ(root, want);
    ROOT_OF(jd_implied, root, dest);
    snprintf(want, sizeof want, "%s/svc", dest);
    CHECK_STREQ(root, want);
    ROOT_OF(dotted, root, dest);
    snprintf(want, sizeof want, "%s/myapp", dest);
    CHECK_STREQ(root, want);
    ROOT_OF(no_appspec, root, dest);
    CHECK_STREQ(root, dest);
    ROOT_OF(two_tops, root, dest);
    CHECK_STREQ(root, dest);
    ROOT_OF(at_top, root, dest);
    CHECK_STREQ(root, dest);
    snprintf(want, sizeof want, "%s/appspec.yaml", dest);
    CHECK(exists(want));
}

static void test_unpack_root_buffer_too_small(void)
{
    static const ent_t ents[] = {{'f', "appspec.yml", "x\n", 0}};
    char archive[PATH_MAX], dest[PATH_MAX], dir[PATH_MAX], root[8] = "keep", err[512] = "";

    fresh_dir(tpath(dir, "small"));
    CHECK(BUILD(tpath(archive, "small.tar"), TAR, ents) == 0);
    CHECK(kd_bundle_unpack(archive, tpath(dest, "small/bundle"), root, sizeof root, NULL, err,
                           sizeof err) == KD_EINVAL);
    CHECK_STREQ(root, "keep");
    CHECK(dir_count(dir) == 0);
}

/* A cache directory reached through a symbolic link (and named with a
 * trailing slash) works: the link is above the destination, not in it. */
static void test_unpack_below_a_linked_dir(void)
{
    static const ent_t ents[] = {{'f', "appspec.yml", "x\n", 0}, {'f', "bin/run", "y\n", 0755}};
    char archive[PATH_MAX], real[PATH_MAX], linked[PATH_MAX], dest[PATH_MAX * 2];
    char want[PATH_MAX * 2], path[PATH_MAX], root[PATH_MAX] = "", err[512] = "";

    fresh_dir(tpath(real, "realdir"));
    unlink(tpath(linked, "linked"));
    CHECK(symlink(real, linked) == 0);
    CHECK(BUILD(tpath(archive, "linked.tar"), TAR, ents) == 0);
    snprintf(dest, sizeof dest, "%s/bundle/", linked);
    CHECK_MSG(kd_bundle_unpack(archive, dest, root, sizeof root, NULL, err, sizeof err) == KD_OK,
              "%s", err);
    snprintf(want, sizeof want, "%s/bundle", linked);
    CHECK_STREQ(root, want);
    check_file(tpath(path, "realdir/bundle"), "bin/run", "y\n", 0755);
    CHECK(dir_count(real) == 1);
}

/* Unpacks a hostile archive into <tmp>/h-LABEL/work/bundle and checks it
 * is refused with nothing written: work/ and h-LABEL/ hold only what
 * they held before, and no staging directory is left. */
static void expect_refused(const char *label, int fmt, const ent_t *ents, size_t n,
                           const char *needle, const kd_bundle_limits_t *limits)
{
    char top[PATH_MAX], work[PATH_MAX * 2], archive[PATH_MAX * 2], dest[PATH_MAX * 3];
    char root[PATH_MAX] = "untouched", err[512] = "", name[64];
    kd_status_t st;

    snprintf(name, sizeof name, "h-%s", label);
    fresh_dir(tpath(top, name));
    snprintf(work, sizeof work, "%s/work", top);
    mkdir(work, 0755);
    snprintf(archive, sizeof archive, "%s/archive", top);
    snprintf(dest, sizeof dest, "%s/bundle", work);
    CHECK_MSG(build(archive, fmt, ents, n) == 0, "%s: building", label);
    st = kd_bundle_unpack(archive, dest, root, sizeof root, limits, err, sizeof err);
    CHECK_MSG(st == KD_EREFUSED, "%s: %s: %s", label, kd_status_name(st), err);
    CHECK_CONTAINS(err, needle);
    CHECK_STREQ(root, "untouched");
    CHECK_MSG(dir_count(work) == 0, "%s: %d new entries beside dest", label, dir_count(work));
    CHECK_MSG(dir_count(top) == 2, "%s: %d entries above dest", label, dir_count(top));
    CHECK(!exists("/etc/kd-test-evil"));
}

#define REFUSED(label, fmt, ents, needle) \
    expect_refused(label, fmt, ents, sizeof ents / sizeof ents[0], needle, NULL)

static void test_refuses_dotdot_names(void)
{
    static const ent_t up[] = {{'f', "ok.txt", "x", 0}, {'f', "../evil", "pwn", 0}};
    static const ent_t inner[] = {{'f', "a/../../evil", "pwn", 0}};
    static const ent_t harmless_looking[] = {{'f', "a/../b", "x", 0}};
    static const ent_t zip_slip[] = {{'f', "ok.txt", "x", 0}, {'f', "../zipslip.txt", "pwn", 0}};
    static const ent_t zip_inner[] = {{'f', "dir/../../zipslip.txt", "pwn", 0}};

    REFUSED("dotdot", TAR, up, "../evil");
    REFUSED("inner-dotdot", TGZ, inner, "a/../../evil");
    REFUSED("dotdot-inside", TAR, harmless_looking, "a/../b");
    REFUSED("zip-slip", ZIP, zip_slip, "../zipslip.txt");
    REFUSED("zip-slip-inner", ZIP, zip_inner, "dir/../../zipslip.txt");
}

static void test_refuses_absolute_names(void)
{
    char abs[PATH_MAX], evil[PATH_MAX];
    ent_t ents[] = {{'f', "ok.txt", "x", 0}, {'f', abs, "pwn", 0}};

    /* An absolute path into this test's own directory, so a failure of
     * the check could not harm the machine. */
    kd_pathf(abs, sizeof abs, "%s/h-abs/abs-evil", tmp);
    tpath(evil, "h-abs/abs-evil");
    REFUSED("abs", TAR, ents, abs);
    CHECK(!exists(evil));
    kd_pathf(abs, sizeof abs, "%s/h-abs-zip/abs-evil", tmp);
    REFUSED("abs-zip", ZIP, ents, abs);
    tpath(evil, "h-abs-zip/abs-evil");
    CHECK(!exists(evil));
}

static void test_refuses_escaping_symlinks(void)
{
    static const ent_t to_etc[] = {{'l', "etc", "/etc", 0}, {'f', "etc/kd-test-evil", "pwn", 0}};
    static const ent_t out_then_through[] = {{'l', "link", "../../outside", 0},
                                             {'f', "link/x", "pwn", 0}};
    static const ent_t one_up[] = {{'d', "d", NULL, 0}, {'l', "d/up", "../..", 0}};
    static const ent_t chained[] = {{'d', "x", NULL, 0},
                                    {'l', "l2", "x/l1/..", 0},  /* before its link */
                                    {'l', "x/l1", "..", 0}};
    static const ent_t loop[] = {{'l', "a", "b", 0}, {'l', "b", "a", 0}};
    static const ent_t zip_up[] = {{'l', "up", "../..", 0}};

    REFUSED("symlink-etc", TAR, to_etc, "etc");
    REFUSED("symlink-out", TAR, out_then_through, "link");
    REFUSED("symlink-one-up", TGZ, one_up, "d/up");
    REFUSED("symlink-chain", TAR, chained, "l2");
    REFUSED("symlink-loop", TAR, loop, "'a'");
    REFUSED("zip-symlink", ZIP, zip_up, "up");
}

static void test_refuses_entries_through_links(void)
{
    static const ent_t through_safe[] = {{'d', "sub", NULL, 0}, {'l', "l", "sub", 0},
                                         {'f', "l/x", "x", 0}};
    static const ent_t file_first[] = {{'f', "l/x", "x", 0}, {'l', "l", ".", 0}};
    static const ent_t under_file[] = {{'f', "a", "x", 0}, {'f', "a/b", "x", 0}};

    REFUSED("through-link", TAR, through_safe, "l/x");
    REFUSED("through-link-first", TAR, file_first, "l/x");
    REFUSED("under-file", TAR, under_file, "a/b");
}

static void test_refuses_bad_hardlinks(void)
{
    static const ent_t passwd[] = {{'h', "pw", "/etc/passwd", 0}};
    static const ent_t absent[] = {{'h', "pw", "nothere", 0}};
    static const ent_t up[] = {{'f', "x", "x", 0}, {'h', "pw", "../x", 0}};
    static const ent_t to_dir[] = {{'d', "d", NULL, 0}, {'h', "pw", "d", 0}};
    static const ent_t to_link[] = {{'l', "s", "x", 0}, {'h', "pw", "s", 0}};

    REFUSED("hardlink-passwd", TAR, passwd, "pw");
    REFUSED("hardlink-absent", TAR, absent, "pw");
    REFUSED("hardlink-up", TGZ, up, "pw");
    REFUSED("hardlink-dir", TAR, to_dir, "pw");
    REFUSED("hardlink-symlink", TAR, to_link, "pw");
}

static void test_refuses_special_files_and_oddities(void)
{
    static const ent_t dev[] = {{'f', "ok.txt", "x", 0}, {'c', "dev/null", NULL, 0}};
    static const ent_t fifo[] = {{'p', "fifo", NULL, 0}};
    static const ent_t twice[] = {{'f', "a", "1", 0}, {'f', "a", "2", 0}};
    static const ent_t dot_file[] = {{'f', ".", "x", 0}};

    REFUSED("device", TAR, dev, "dev/null");
    REFUSED("fifo", TGZ, fifo, "fifo");
    REFUSED("twice", TAR, twice, "twice");
    REFUSED("dot-file", TAR, dot_file, "destination");
}

static void test_refuses_archives_past_the_limits(void)
{
    static const ent_t many[] = {{'f', "e1", "1", 0}, {'f', "e2", "2", 0}, {'f', "e3", "3", 0},
                                 {'f', "e4", "4", 0}, {'f', "e5", "5", 0}};
    static char big[2001];
    const ent_t large[] = {{'f', "small", "x", 0}, {'f', "big", big, 0}};
    kd_bundle_limits_t few = {.max_entries = 3}, small = {.max_total_bytes = 1000};

    memset(big, 'z', sizeof big - 1);
    expect_refused("many", TAR, many, 5, "e4", &few);
    expect_refused("large", TGZ, large, 2, "big", &small);
    expect_refused("large-zip", ZIP, large, 2, "big", &small);
}

/* A small archive that would unpack to far more than max_ratio times its
 * size is refused before anything is written, saying which limit; so is
 * one past the room left in the host's cache. */
static void test_refuses_compression_bombs(void)
{
    size_t len = (size_t)KD_BUNDLE_RATIO_FLOOR + 4096;
    char *bomb = malloc(len + 1);
    kd_bundle_limits_t ratio = {.max_ratio = 200};
    kd_bundle_limits_t cache = {.max_total_bytes = 1000,
                                .total_reason = "the room left in the host's cache"};
    static char two_k[2001];

    if (!bomb)
        return;
    memset(bomb, 'z', len);
    bomb[len] = '\0';
    memset(two_k, 'y', sizeof two_k - 1);
    {
        const ent_t ents[] = {{'f', "bomb", bomb, 0}};
        const ent_t big[] = {{'f', "big", two_k, 0}};

        expect_refused("bomb", TGZ, ents, 1, "max_unpack_ratio: 200 times the archive's", &ratio);
        expect_refused("cache", TGZ, big, 1, "the room left in the host's cache", &cache);
    }
    free(bomb);
}

static void test_unpack_failures_leave_nothing(void)
{
    static const ent_t ents[] = {{'f', "appspec.yml", "x\n", 0},
                                 {'f', "data.txt", "CORRUPT-ME-PLEASE", 0}};
    char archive[PATH_MAX], dest[PATH_MAX], dir[PATH_MAX], root[PATH_MAX] = "", err[512] = "";
    char *bytes;
    kd_buf_t b = KD_BUF_INIT(1 << 20);

    fresh_dir(tpath(dir, "fail"));
    tpath(dest, "fail/bundle");

    write_bytes(tpath(archive, "fail-text.tgz"), "just some text\n", 15);
    CHECK(kd_bundle_unpack(archive, dest, root, sizeof root, NULL, err, sizeof err) == KD_EINVAL);
    CHECK(dir_count(dir) == 0);

    CHECK(kd_bundle_unpack(tpath(archive, "no-such.tgz"), dest, root, sizeof root, NULL, err,
                           sizeof err) == KD_ENOTFOUND);
    CHECK(dir_count(dir) == 0);

    /* Damaged data passes the header check and fails while extracting:
     * the staging directory goes away with it. */
    CHECK(BUILD(tpath(archive, "fail.zip"), ZIP_STORED, ents) == 0);
    CHECK(kd_read_file(archive, &b, NULL, 0) == KD_OK);
    bytes = b.data ? memmem(b.data, b.len, "CORRUPT-ME", 10) : NULL;
    CHECK(bytes != NULL);
    if (bytes) {
        bytes[0] = 'X';
        write_bytes(archive, b.data, b.len);
    }
    kd_buf_free(&b);
    CHECK(kd_bundle_unpack(archive, dest, root, sizeof root, NULL, err, sizeof err) == KD_EIO);
    CHECK(dir_count(dir) == 0);
    CHECK_STREQ(root, "");

    /* An existing destination is not replaced. */
    mkdir(dest, 0755);
    CHECK(BUILD(archive, TAR, ents) == 0);
    CHECK(kd_bundle_unpack(archive, dest, root, sizeof root, NULL, err, sizeof err) ==
          KD_ECONFLICT);
    CHECK(dir_count(dest) == 0);
    CHECK(dir_count(dir) == 1);
}

/* The whole way: download, verify, unpack. */
static void test_fetch_then_unpack(void)
{
    static const ent_t ents[] = {{'d', "app", NULL, 0}, {'f', "app/appspec.yml", "v\n", 0},
                                 {'f', "app/run.sh", "echo\n", 0755}};
    char archive[PATH_MAX], url[PATH_MAX + 8], sha[65], out[PATH_MAX], dest[PATH_MAX];
    char root[PATH_MAX] = "", want[PATH_MAX * 2], err[512] = "";
    kd_bundle_fetch_opts_t o;
    kd_buf_t b = KD_BUF_INIT(1 << 20);

    CHECK(BUILD(tpath(archive, "whole.tgz"), TGZ, ents) == 0);
    CHECK(kd_read_file(archive, &b, NULL, 0) == KD_OK);
    hex_digest(EVP_sha256(), b.data, b.len, sha);
    kd_buf_free(&b);
    snprintf(url, sizeof url, "file://%s", archive);
    opts_for(&o, url, sha, NULL, out);
    CHECK_MSG(kd_bundle_fetch(&o, err, sizeof err) == KD_OK, "%s", err);
    CHECK_MSG(kd_bundle_unpack(out, tpath(dest, "dl/bundle"), root, sizeof root, NULL, err,
                               sizeof err) == KD_OK, "%s", err);
    snprintf(want, sizeof want, "%s/app", dest);
    CHECK_STREQ(root, want);
    check_file(root, "run.sh", "echo\n", 0755);
}

int main(void)
{
    const char *base = getenv("KD_TEST_TMP");

    snprintf(tmp, sizeof tmp, "%s/bundle-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    /* The test server is on 127.0.0.1: never through a proxy. */
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    CHECK(kd_bundle_global_init() == KD_OK);
    CHECK(kd_bundle_global_init() == KD_OK);

    RUN(test_fetch_file_sha256_and_md5);
    RUN(test_fetch_progress_and_abort);
    RUN(test_fetch_wrong_checksum_removes_file);
    RUN(test_fetch_needs_a_checksum);
    RUN(test_fetch_size_limit);
    RUN(test_fetch_refuses_other_schemes);
    RUN(test_fetch_missing_file);
    RUN(test_http_download);
    RUN(test_http_500_then_200_is_retried);
    RUN(test_http_5xx_gives_up_after_retries_with_backoff);
    RUN(test_http_404_and_403_are_not_retried);
    RUN(test_http_size_limit);
    RUN(test_http_redirects);
    RUN(test_http_connection_refused_is_retried);
    RUN(test_http_bad_checksum_not_retried);
    RUN(test_unpack_tar);
    RUN(test_unpack_tgz_named_as_zip);
    RUN(test_unpack_zip);
    RUN(test_unpack_root_detection);
    RUN(test_unpack_root_buffer_too_small);
    RUN(test_unpack_below_a_linked_dir);
    RUN(test_refuses_dotdot_names);
    RUN(test_refuses_absolute_names);
    RUN(test_refuses_escaping_symlinks);
    RUN(test_refuses_entries_through_links);
    RUN(test_refuses_bad_hardlinks);
    RUN(test_refuses_special_files_and_oddities);
    RUN(test_refuses_archives_past_the_limits);
    RUN(test_refuses_compression_bombs);
    RUN(test_unpack_failures_leave_nothing);
    RUN(test_fetch_then_unpack);

    kd_remove_tree(tmp, NULL, 0);
    return check_summary();
}
