/* Unpacking a verified bundle with libarchive. The whole archive is read
 * once to check every entry; a hostile one is refused before a single
 * byte is written. Only then is it extracted, into a staging directory
 * that becomes the destination at the very end. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle.h"
#include "buf.h"
#include "fsutil.h"
#include "strmap.h"

#define DEFAULT_MAX_ENTRIES 100000u
#define DEFAULT_MAX_TOTAL ((uint64_t)4 * 1024 * 1024 * 1024)

static const char *const appspec_names[] = {
    "appspec.yml", "appspec.yaml", "jdcloud-codedeploy.yml", "appSpec.yml",
};

/* What the checking pass learned. */
typedef struct survey {
    kd_strmap_t *kinds;   /* normalized path -> "f" file, "d" dir, "l" symlink */
    char top[256];        /* the single top-level name, if there is one */
    bool many_tops;
    bool top_is_dir;
    bool appspec_in_top;
    bool appspec_at_root;
    uint64_t entries;
    uint64_t total;
} survey_t;

static struct archive *open_reader(const char *path, char *err, size_t errsz)
{
    struct archive *a = archive_read_new();

    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_zip(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    if (archive_read_open_filename(a, path, 65536) != ARCHIVE_OK) {
        kd_err(err, errsz, KD_EINVAL, "%s: not a tar, tar.gz or zip archive: %s", path,
               archive_error_string(a));
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Normalizes a relative path lexically ("a/./b/" -> "a/b"); fails on an
 * absolute path, an empty one or any ".." that climbs out. */
static int normalize(const char *in, char *out, size_t outsz)
{
    char copy[PATH_MAX];
    size_t len = 0;
    char *save = NULL, *part;

    if (!in || !*in || in[0] == '/' || strlen(in) >= sizeof copy)
        return -1;
    memcpy(copy, in, strlen(in) + 1);
    out[0] = '\0';
    for (part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0)
            return -1;
        if (len + strlen(part) + 2 > outsz)
            return -1;
        len += (size_t)snprintf(out + len, outsz - len, "%s%s", len ? "/" : "", part);
    }
    return len ? 0 : -1;
}

/* Where a relative symlink target lands, from the link's own directory;
 * fails if it climbs above the destination. */
static int resolve_link(const char *link_path, const char *target, char *out, size_t outsz)
{
    char joined[PATH_MAX * 2];
    char copy[PATH_MAX * 2];
    const char *slash = strrchr(link_path, '/');
    char *parts[PATH_MAX / 2];
    size_t n = 0, len = 0;
    char *save = NULL, *part;

    snprintf(joined, sizeof joined, "%.*s%s%s", slash ? (int)(slash - link_path) : 0, link_path,
             slash ? "/" : "", target);
    snprintf(copy, sizeof copy, "%s", joined);
    for (part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            if (n == 0)
                return -1;
            n--;
            continue;
        }
        if (n < sizeof parts / sizeof parts[0])
            parts[n++] = part;
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, outsz > len ? outsz - len : 0, "%s%s", i ? "/" : "",
                                parts[i]);
    return len < outsz ? 0 : -1;
}

/* True if some parent directory of path is a symlink already seen: an
 * entry written through a link could land anywhere. */
static bool through_link(const survey_t *s, const char *path)
{
    char prefix[PATH_MAX];
    const char *p = path;

    while ((p = strchr(p, '/'))) {
        const char *kind;

        snprintf(prefix, sizeof prefix, "%.*s", (int)(p - path), path);
        kind = kd_strmap_get(s->kinds, prefix);
        if (kind && kind[0] == 'l')
            return true;
        p++;
    }
    return false;
}

static void note_top(survey_t *s, const char *path, bool is_dir)
{
    const char *slash = strchr(path, '/');
    size_t len = slash ? (size_t)(slash - path) : strlen(path);

    for (size_t i = 0; i < sizeof appspec_names / sizeof appspec_names[0]; i++) {
        if (!slash && strcmp(path, appspec_names[i]) == 0)
            s->appspec_at_root = true;
        if (slash && strcmp(slash + 1, appspec_names[i]) == 0)
            s->appspec_in_top = true;
    }
    if (!s->top[0] && len < sizeof s->top) {
        snprintf(s->top, sizeof s->top, "%.*s", (int)len, path);
        s->top_is_dir = is_dir || slash;
    } else if (strlen(s->top) != len || strncmp(s->top, path, len) != 0) {
        s->many_tops = true;
    } else if (slash) {
        s->top_is_dir = true;
    }
}

static kd_status_t check_link(survey_t *s, struct archive_entry *e, const char *path,
                              char *err, size_t errsz)
{
    const char *sym = archive_entry_symlink(e), *hard = archive_entry_hardlink(e);
    char target[PATH_MAX];

    if (sym) {
        if (sym[0] == '/' || resolve_link(path, sym, target, sizeof target) != 0)
            return kd_err(err, errsz, KD_EREFUSED, "entry '%s' is a link to '%s', outside the bundle",
                          path, sym);
        return KD_OK;
    }
    if (hard) {
        const char *kind;

        if (normalize(hard, target, sizeof target) != 0 ||
            !(kind = kd_strmap_get(s->kinds, target)) || kind[0] != 'f')
            return kd_err(err, errsz, KD_EREFUSED,
                          "entry '%s' is a hard link to '%s', not a file of the bundle", path, hard);
    }
    return KD_OK;
}

static kd_status_t check_entry(survey_t *s, struct archive_entry *e, const kd_bundle_limits_t *l,
                               char *err, size_t errsz)
{
    const char *name = archive_entry_pathname(e);
    mode_t type = archive_entry_filetype(e);
    char path[PATH_MAX];
    kd_status_t st;
    bool is_link = archive_entry_symlink(e) != NULL;

    if (!name || normalize(name, path, sizeof path) != 0)
        return kd_err(err, errsz, KD_EREFUSED, "entry '%s' is absolute, empty or climbs out with '..'",
                      name ? name : "");
    if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && !archive_entry_hardlink(e))
        return kd_err(err, errsz, KD_EREFUSED, "entry '%s' is a device, fifo or socket", path);
    if (through_link(s, path))
        return kd_err(err, errsz, KD_EREFUSED, "entry '%s' lies behind a symbolic link", path);
    if ((st = check_link(s, e, path, err, errsz)) != KD_OK)
        return st;
    if (++s->entries > (l && l->max_entries ? l->max_entries : DEFAULT_MAX_ENTRIES))
        return kd_err(err, errsz, KD_ETOOLARGE, "the archive has too many entries");
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0)
        s->total += (uint64_t)archive_entry_size(e);
    if (s->total > (l && l->max_total_bytes ? l->max_total_bytes : DEFAULT_MAX_TOTAL))
        return kd_err(err, errsz, KD_ETOOLARGE, "the archive unpacks to more than allowed");
    note_top(s, path, type == AE_IFDIR);
    if (kd_strmap_set(s->kinds, path, is_link ? "l" : type == AE_IFDIR ? "d" : "f") != KD_OK)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    return KD_OK;
}

static kd_status_t survey_archive(const char *archive, survey_t *s, const kd_bundle_limits_t *l,
                                  char *err, size_t errsz)
{
    struct archive *a = open_reader(archive, err, errsz);
    struct archive_entry *e;
    kd_status_t st = KD_OK;
    int r;

    if (!a)
        return KD_EINVAL;
    while (st == KD_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
        st = check_entry(s, e, l, err, errsz);
    if (st == KD_OK && r != ARCHIVE_EOF)
        st = kd_err(err, errsz, KD_EINVAL, "%s: corrupt archive: %s", archive,
                    archive_error_string(a));
    if (st == KD_OK && s->entries == 0)
        st = kd_err(err, errsz, KD_EINVAL, "%s: the archive is empty", archive);
    archive_read_free(a);
    return st;
}

static kd_status_t copy_data(struct archive *in, struct archive *out, char *err, size_t errsz)
{
    const void *buf;
    size_t size;
    la_int64_t offset;
    int r;

    while ((r = archive_read_data_block(in, &buf, &size, &offset)) == ARCHIVE_OK)
        if (archive_write_data_block(out, buf, size, offset) != ARCHIVE_OK)
            return kd_err(err, errsz, KD_EIO, "writing: %s", archive_error_string(out));
    if (r != ARCHIVE_EOF)
        return kd_err(err, errsz, KD_EIO, "reading: %s", archive_error_string(in));
    return KD_OK;
}

/* Rewrites an entry's path (and hard link target) to lie under dir. */
static kd_status_t relocate(struct archive_entry *e, const char *dir, char *err, size_t errsz)
{
    char norm[PATH_MAX], full[PATH_MAX * 2];
    const char *hard = archive_entry_hardlink(e);

    if (normalize(archive_entry_pathname(e), norm, sizeof norm) != 0)
        return kd_err(err, errsz, KD_EREFUSED, "unsafe entry");
    snprintf(full, sizeof full, "%s/%s", dir, norm);
    archive_entry_copy_pathname(e, full);
    if (hard) {
        if (normalize(hard, norm, sizeof norm) != 0)
            return kd_err(err, errsz, KD_EREFUSED, "unsafe hard link");
        snprintf(full, sizeof full, "%s/%s", dir, norm);
        archive_entry_copy_hardlink(e, full);
    }
    return KD_OK;
}

static kd_status_t extract(const char *archive, const char *dir, char *err, size_t errsz)
{
    struct archive *a = open_reader(archive, err, errsz);
    struct archive *w = archive_write_disk_new();
    struct archive_entry *e;
    kd_status_t st = KD_OK;
    int r;

    if (!a) {
        archive_write_free(w);
        return KD_EINVAL;
    }
    /* Entries were checked and are relocated under dir (an absolute path,
     * so SECURE_NOABSOLUTEPATHS cannot apply); libarchive still refuses
     * '..' and writing through symlinks. */
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME);
    while (st == KD_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if ((st = relocate(e, dir, err, errsz)) != KD_OK)
            break;
        if (archive_write_header(w, e) != ARCHIVE_OK)
            st = kd_err(err, errsz, KD_EIO, "%s: %s", archive_entry_pathname(e),
                        archive_error_string(w));
        else if (archive_entry_size(e) > 0)
            st = copy_data(a, w, err, errsz);
        if (st == KD_OK && archive_write_finish_entry(w) != ARCHIVE_OK)
            st = kd_err(err, errsz, KD_EIO, "%s: %s", archive_entry_pathname(e),
                        archive_error_string(w));
    }
    if (st == KD_OK && r != ARCHIVE_EOF)
        st = kd_err(err, errsz, KD_EIO, "%s: %s", archive, archive_error_string(a));
    if (archive_write_close(w) != ARCHIVE_OK && st == KD_OK)
        st = kd_err(err, errsz, KD_EIO, "%s", archive_error_string(w));
    archive_write_free(w);
    archive_read_free(a);
    return st;
}

kd_status_t kd_bundle_unpack(const char *archive, const char *dest, char *root, size_t rootsz,
                             const kd_bundle_limits_t *limits, char *err, size_t errsz)
{
    survey_t s = {.kinds = kd_strmap_new()};
    char staging[PATH_MAX];
    kd_status_t st;

    if (!s.kinds)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    if (kd_pathf(staging, sizeof staging, "%s.partial", dest) != KD_OK) {
        st = kd_err(err, errsz, KD_EINVAL, "%s: path too long", dest);
        goto out;
    }
    if ((st = survey_archive(archive, &s, limits, err, errsz)) != KD_OK)
        goto out;
    if ((st = kd_remove_tree(staging, err, errsz)) != KD_OK ||
        (st = kd_mkdirs(staging, 0755, err, errsz)) != KD_OK)
        goto out;
    if ((st = extract(archive, staging, err, errsz)) != KD_OK)
        goto out;
    if (rename(staging, dest) != 0) {
        st = kd_err(err, errsz, KD_EIO, "%s: %s", dest, strerror(errno));
        goto out;
    }
    /* A bundle packed as its own directory: that directory is the root. */
    if (!s.many_tops && s.top_is_dir && s.appspec_in_top && !s.appspec_at_root)
        st = kd_pathf(root, rootsz, "%s/%s", dest, s.top);
    else
        st = kd_pathf(root, rootsz, "%s", dest);
out:
    if (st != KD_OK)
        kd_remove_tree(staging, NULL, 0);
    kd_strmap_free(s.kinds);
    return st;
}
