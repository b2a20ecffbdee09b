/* DownloadBundle: fetching a revision (libcurl), verifying its checksum
 * before anything is unpacked, and unpacking it (libarchive) with no path
 * leaving the destination. Nothing here logs: every failure is a status
 * plus a message in the caller's error buffer. */
#ifndef KD_BUNDLE_H
#define KD_BUNDLE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* What kd_bundle_fetch downloads and how. The strings are borrowed. */
typedef struct kd_bundle_fetch_opts {
    const char *url;             /* http://, https:// or file:// */
    const char *sha256;          /* hex; at least one of sha256 and md5 is required */
    const char *md5;             /* hex; NULL or "" means not given */
    const char *path;            /* where the verified bundle is written */
    size_t max_bytes;            /* larger downloads fail; 0: 1 GiB */
    unsigned retries;            /* further tries after a transient failure */
    unsigned backoff_ms;         /* first wait between tries, doubled each time */
    unsigned connect_timeout_s;  /* 0: 10 s */
    unsigned timeout_s;          /* whole transfer, per try; 0: 1800 s */
    /* Called about once a second while a try runs, with the bytes so far
     * (NULL: none): a long download can send heartbeats. */
    void (*progress)(void *opaque, uint64_t bytes);
    void *opaque;
    /* When *abort becomes non-zero the download stops: KD_ESTOPPED. */
    volatile sig_atomic_t *abort;
    /* The verified file is only read and removed by this process (it is
     * unpacked at once), so neither it nor its name is synced to disk:
     * after a crash the step is done again from the start anyway. */
    bool transient;
} kd_bundle_fetch_opts_t;

/* Bounds on what an archive may unpack to (a zip bomb guard). */
typedef struct kd_bundle_limits {
    uint64_t max_entries;        /* 0: 100000 */
    uint64_t max_total_bytes;    /* sum of the entries' sizes; 0: 4 GiB */
    /* What max_total_bytes stands for, in errors (e.g. "the room left in
     * the host's cache"); NULL: "the unpacked size limit". */
    const char *total_reason;
    /* Unpacked bytes per byte of archive, at most (a compression bomb
     * guard); 0: no such limit. Archives may always unpack to
     * KD_BUNDLE_RATIO_FLOOR bytes, so small bundles of small files pass. */
    unsigned max_ratio;
} kd_bundle_limits_t;

#define KD_BUNDLE_RATIO_FLOOR ((uint64_t)64 << 20)

/* Sets up libcurl's global state. Call it once at start, before any thread
 * is created; later calls do nothing and return the first call's result
 * (kd_bundle_fetch calls it too, as a safety net). */
kd_status_t kd_bundle_global_init(void);

/* Fills o with the defaults: no url, checksum or path; 1 GiB, 3 retries,
 * 500 ms first backoff, 10 s to connect, 1800 s per try. */
void kd_bundle_fetch_opts_init(kd_bundle_fetch_opts_t *o);

/* Downloads o->url to o->path: into a temporary file beside it, which is
 * checked, fsynced and only then renamed. Connection errors, timeouts and
 * HTTP 5xx/408/429 are tried again (o->retries more times, waiting
 * o->backoff_ms, then twice as long each time); 4xx and everything else
 * fail at once. Redirects are followed to http:// and https:// only.
 * Returns KD_OK; KD_EINVAL (bad options, another scheme, no or malformed
 * checksum); KD_ETOOLARGE (past o->max_bytes, announced or received);
 * KD_ENOTFOUND (HTTP 404/410, missing file); KD_EREFUSED (redirect to
 * another scheme); KD_ETIMEDOUT; KD_ECHECKSUM (both digests in err); KD_EIO.
 * Once the options are found valid, any file at o->path is removed, so
 * that on failure nothing is left there, nor any temporary file. */
kd_status_t kd_bundle_fetch(const kd_bundle_fetch_opts_t *o, char *err, size_t errsz);

/* Checks the file at path against the hex digests given (sha256 and/or
 * md5; NULL or "" means not given, one is required). Returns KD_OK,
 * KD_ECHECKSUM (both digests in err; the file is left alone), KD_EINVAL,
 * KD_ENOTFOUND or KD_EIO. */
kd_status_t kd_bundle_verify(const char *path, const char *sha256, const char *md5, char *err,
                             size_t errsz);

/* Unpacks a tar, tar.gz or zip archive (told apart by content) into dest,
 * which must not exist yet (KD_ECONFLICT otherwise). Every header is read
 * first and the whole archive is refused (KD_EREFUSED, naming the entry)
 * if one entry is absolute, empty or has a `..` component; is a symbolic
 * link that is absolute or leads out of dest; lies below a link or a file;
 * is a hard link to anything but an earlier file of the archive; is a
 * device, fifo or socket; repeats a path; or if there are more entries or
 * bytes than limits allow. Only then is it extracted, with modes (without
 * set-id bits) and times but no owners, into "<dest>.partial", renamed to
 * dest at the end (after a syncfs, so a crash leaves a whole bundle or
 * none); on any failure neither is left behind. On success, root
 * (rootsz bytes) receives the bundle root: "<dest>/<dir>" when the
 * archive's only top-level entry is a directory holding an appspec, else
 * dest; on failure root is untouched. limits may be NULL (defaults). */
kd_status_t kd_bundle_unpack(const char *archive, const char *dest, char *root, size_t rootsz,
                             const kd_bundle_limits_t *limits, char *err, size_t errsz);

#endif
