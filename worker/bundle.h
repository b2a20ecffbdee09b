/* DownloadBundle: fetching a revision (libcurl), verifying its checksum
 * before anything is unpacked, and unpacking it (libarchive) with no path
 * leaving the destination. */
#ifndef KD_BUNDLE_H
#define KD_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct kd_bundle_fetch_opts {
    const char *url;             /* http://, https:// or file:// */
    const char *sha256;          /* hex; one of sha256 and md5 is required */
    const char *md5;             /* hex */
    const char *path;            /* where the verified bundle is written */
    size_t max_bytes;            /* larger downloads fail; 0: 1 GiB */
    unsigned retries;            /* further tries after a transient failure */
    unsigned backoff_ms;         /* first wait between tries, doubled each time */
    unsigned connect_timeout_s;
    unsigned timeout_s;          /* whole transfer */
} kd_bundle_fetch_opts_t;

typedef struct kd_bundle_limits {
    uint64_t max_entries;        /* 0: 100000 */
    uint64_t max_total_bytes;    /* unpacked size; 0: 4 GiB */
} kd_bundle_limits_t;

/* Once per process, before any fetch (libcurl's global state). */
void kd_bundle_global_init(void);

/* Fills the defaults: 3 retries, 500 ms backoff, 10 s connect, 600 s total. */
void kd_bundle_fetch_opts_init(kd_bundle_fetch_opts_t *o);

/* Downloads o->url to o->path through a temporary file, retrying transient
 * failures (connection errors, 5xx, 429) with backoff but not 4xx, and
 * verifies the checksum: on a mismatch nothing is left at o->path and the
 * result is KD_ECHECKSUM with both digests in err. */
kd_status_t kd_bundle_fetch(const kd_bundle_fetch_opts_t *o, char *err, size_t errsz);

/* Checks a file's sha256 (or md5) against the hex digest given. */
kd_status_t kd_bundle_verify(const char *path, const char *sha256, const char *md5, char *err,
                             size_t errsz);

/* Unpacks a tar, tar.gz or zip archive (detected by content) into dest,
 * which must not exist. The whole archive is checked first and refused
 * (KD_EREFUSED, naming the entry) if any entry is absolute, has a `..`
 * component, is a link leading out of dest, goes through a link, is a
 * device, fifo or socket, or if it is too large; only then is it
 * extracted, into "<dest>.partial", renamed to dest at the end. On any
 * failure neither is left behind. root (rootsz bytes) receives the bundle
 * root: dest, or the archive's only top-level directory when that holds
 * the appspec. limits may be NULL. */
kd_status_t kd_bundle_unpack(const char *archive, const char *dest, char *root, size_t rootsz,
                             const kd_bundle_limits_t *limits, char *err, size_t errsz);

#endif
