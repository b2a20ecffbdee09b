#include "install.h"

#include "acl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "safedir.h"

#define MANIFEST_HEADER "# kdeploy install manifest v1\n"
/* A random name collides only by chance or by planting: a bound, not an
 * endless loop. */
#define TEMP_TRIES 100

/* One thing an install writes: a directory it creates ('d'), a regular file
 * ('f') or a symlink ('l'). Manifests read back use the same type. */
typedef struct item {
    char *dst;   /* path on disk, prefix included */
    char *src;   /* its source in the bundle; NULL for created parents */
    mode_t mode; /* permission bits of a created directory */
    char kind;
    bool done;   /* written (or created) by this install */
    dev_t dev;   /* the inode written, so permissions touch nothing else */
    ino_t ino;
    char *tmp;   /* a file or link made under this name in its directory, not
                  * yet renamed to dst (write_items) */
} item_t;

/* An ordered list of items with an open-addressing index on dst, since
 * bundles can hold many thousands of files and every path is looked up. */
typedef struct list {
    item_t *v;
    size_t n, cap;
    size_t *slots; /* item number + 1; 0 is an empty slot */
    size_t nslots; /* a power of two, at least twice n */
} list_t;

/* A permissions entry resolved before anything is written. */
typedef struct perm_plan {
    char *object; /* prefix + object */
    uid_t uid;    /* (uid_t)-1: unchanged */
    gid_t gid;    /* (gid_t)-1: unchanged */
} perm_plan_t;

typedef struct plan {
    const kd_install_opts_t *o;
    char root[PATH_MAX];   /* the bundle root, resolved */
    char prefix[PATH_MAX]; /* normalized; "" for none */
    list_t items;          /* what this install writes, parents first */
    list_t prev;           /* what the previous install wrote */
    list_t queue;          /* source directories still to walk (src -> dst) */
    size_t qnext;
    perm_plan_t *perms;
    size_t nperms;
    size_t nconflicts;     /* existing destination files under FAIL */
    char conflict[PATH_MAX];
    kd_safedir_t *sd;      /* the prefix, walked by descriptors */
    dev_t manifest_dev;    /* the file system of the manifest */
    char *err;
    size_t errsz;
} plan_t;

/* ---- the item list and its index ---- */

static size_t hash_path(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

static void index_put(list_t *l, size_t i)
{
    size_t mask = l->nslots - 1;
    size_t s = hash_path(l->v[i].dst) & mask;

    while (l->slots[s])
        s = (s + 1) & mask;
    l->slots[s] = i + 1;
}

static kd_status_t index_grow(list_t *l)
{
    size_t nslots = l->nslots ? l->nslots * 2 : 64;
    size_t *slots = calloc(nslots, sizeof *slots);

    if (!slots)
        return KD_ENOMEM;
    free(l->slots);
    l->slots = slots;
    l->nslots = nslots;
    for (size_t i = 0; i < l->n; i++)
        index_put(l, i);
    return KD_OK;
}

static item_t *list_find(const list_t *l, const char *dst)
{
    size_t mask = l->nslots - 1;

    if (!l->nslots)
        return NULL;
    for (size_t s = hash_path(dst) & mask; l->slots[s]; s = (s + 1) & mask) {
        item_t *it = &l->v[l->slots[s] - 1];

        if (strcmp(it->dst, dst) == 0)
            return it;
    }
    return NULL;
}

static kd_status_t list_add(list_t *l, char kind, const char *dst, const char *src, mode_t mode)
{
    item_t *it;

    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        item_t *v = realloc(l->v, cap * sizeof *v);

        if (!v)
            return KD_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    /* At most half full, so linear probing stays short and always ends. */
    if ((l->n + 1) * 2 > l->nslots && index_grow(l) != KD_OK)
        return KD_ENOMEM;
    it = &l->v[l->n];
    memset(it, 0, sizeof *it);
    it->dst = strdup(dst);
    it->src = src ? strdup(src) : NULL;
    if (!it->dst || (src && !it->src)) {
        free(it->dst);
        free(it->src);
        return KD_ENOMEM;
    }
    it->kind = kind;
    it->mode = mode;
    index_put(l, l->n++);
    return KD_OK;
}

/* list_add for the plan: a failure fills the plan's error buffer. */
static kd_status_t plan_add(plan_t *p, list_t *l, char kind, const char *dst, const char *src,
                            mode_t mode)
{
    if (list_add(l, kind, dst, src, mode) != KD_OK)
        return kd_err(p->err, p->errsz, KD_ENOMEM, "install: out of memory planning %s", dst);
    return KD_OK;
}

static void list_free(list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].dst);
        free(l->v[i].tmp);
        free(l->v[i].src);
    }
    free(l->v);
    free(l->slots);
    memset(l, 0, sizeof *l);
}

/* ---- paths ---- */

/* Writes `in` into out as "/a/b" ("/" when empty): drops empty and "."
 * parts and refuses "..", so a joined path cannot climb out of its base. */
static kd_status_t norm_path(const char *in, char *out, size_t outsz, const char *what,
                             char *err, size_t errsz)
{
    const char *p = in;
    size_t o = 0;

    if (strchr(in, '\n'))
        return kd_err(err, errsz, KD_EREFUSED, "%s \"%s\": contains a newline", what, in);
    while (*p) {
        const char *s;
        size_t len;

        while (*p == '/')
            p++;
        for (s = p; *p && *p != '/'; p++)
            ;
        len = (size_t)(p - s);
        if (len == 0 || (len == 1 && s[0] == '.'))
            continue;
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return kd_err(err, errsz, KD_EREFUSED, "%s %s: \"..\" is not allowed", what, in);
        if (o + 1 + len >= outsz)
            return kd_err(err, errsz, KD_EINVAL, "%s %s: path too long", what, in);
        out[o++] = '/';
        memcpy(out + o, s, len);
        o += len;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return KD_OK;
}

/* base ("" or an absolute path) + tail (a normalized absolute path). */
static kd_status_t join_path(char *out, size_t outsz, const char *base, const char *tail,
                             char *err, size_t errsz)
{
    int n;

    if (strcmp(tail, "/") == 0)
        n = snprintf(out, outsz, "%s", *base ? base : "/");
    else
        n = snprintf(out, outsz, "%s%s", strcmp(base, "/") == 0 ? "" : base, tail);
    if (n < 0 || (size_t)n >= outsz)
        return kd_err(err, errsz, KD_EINVAL, "path too long: %s%s", base, tail);
    return KD_OK;
}

static kd_status_t child_path(char *out, size_t outsz, const char *dir, const char *name,
                              char *err, size_t errsz)
{
    int n = snprintf(out, outsz, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, name);

    if (n < 0 || (size_t)n >= outsz)
        return kd_err(err, errsz, KD_EINVAL, "path too long: %s/%s", dir, name);
    return KD_OK;
}

/* True when path is base itself or lies below it ("" holds everything). */
static bool path_within(const char *path, const char *base)
{
    size_t len = strcmp(base, "/") == 0 ? 0 : strlen(base);

    return strncmp(path, base, len) == 0 && (path[len] == '/' || path[len] == '\0');
}

static kd_status_t norm_prefix(const char *prefix, char *out, size_t outsz, char *err,
                               size_t errsz)
{
    kd_status_t st;

    out[0] = '\0';
    if (!prefix || !*prefix)
        return KD_OK;
    if (prefix[0] != '/')
        return kd_err(err, errsz, KD_EINVAL, "prefix %s: must be an absolute path", prefix);
    if ((st = norm_path(prefix, out, outsz, "prefix", err, errsz)) != KD_OK)
        return st;
    if (strcmp(out, "/") == 0)
        out[0] = '\0';
    return KD_OK;
}

/* ---- manifests ---- */

static int print_items(FILE *f, const list_t *l, bool only_done)
{
    if (fputs(MANIFEST_HEADER, f) == EOF)
        return -1;
    for (size_t i = 0; i < l->n; i++) {
        if (only_done && !l->v[i].done)
            continue;
        if (fprintf(f, "%c %s\n", l->v[i].kind, l->v[i].dst) < 0)
            return -1;
    }
    return fflush(f) == 0 && fdatasync(fileno(f)) == 0 ? 0 : -1;
}

/* Writes the items (or only those done) to path through a temporary file,
 * its data synced, and a rename, so a reader finds the old manifest or the
 * new one. The rename is made durable by kd_install_run's next syncfs. */
static kd_status_t manifest_write(const char *path, const list_t *l, bool only_done, char *err,
                                  size_t errsz)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    int fd, n, failed;

    n = snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return kd_err(err, errsz, KD_EINVAL, "manifest %s: path too long", path);
    if ((fd = mkstemp(tmp)) < 0)
        return kd_err(err, errsz, KD_EIO, "manifest %s: %s", tmp, strerror(errno));
    if (!(f = fdopen(fd, "w"))) {
        close(fd);
        unlink(tmp);
        return kd_err(err, errsz, KD_EIO, "manifest %s: %s", tmp, strerror(errno));
    }
    failed = print_items(f, l, only_done);
    if (fclose(f) != 0)
        failed = -1;
    if (failed || rename(tmp, path) != 0) {
        int saved = errno;

        unlink(tmp);
        return kd_err(err, errsz, KD_EIO, "writing manifest %s: %s", path, strerror(saved));
    }
    return KD_OK;
}

static kd_status_t parse_line(list_t *l, char *line, ssize_t len, const char *path,
                              unsigned lineno, char *err, size_t errsz)
{
    if (len > 0 && line[len - 1] == '\n')
        line[--len] = '\0';
    if (len == 0 || line[0] == '#')
        return KD_OK;
    if (len < 3 || !strchr("fld", line[0]) || line[1] != ' ')
        return kd_err(err, errsz, KD_EPROTO, "manifest %s:%u: malformed line", path, lineno);
    if (list_add(l, line[0], line + 2, NULL, 0) != KD_OK)
        return kd_err(err, errsz, KD_ENOMEM, "manifest %s: out of memory", path);
    /* Listed means ours to remove, whether or not it reached the disk. */
    l->v[l->n - 1].done = true;
    return KD_OK;
}

/* Reads a manifest into l; a missing file leaves l empty. */
static kd_status_t manifest_read(const char *path, list_t *l, char *err, size_t errsz)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    kd_status_t st = KD_OK;

    if (!f) {
        if (errno == ENOENT)
            return KD_OK;
        return kd_err(err, errsz, KD_EIO, "manifest %s: %s", path, strerror(errno));
    }
    while (st == KD_OK && (len = getline(&line, &cap, f)) >= 0)
        st = parse_line(l, line, len, path, ++lineno, err, errsz);
    if (st == KD_OK && ferror(f))
        st = kd_err(err, errsz, KD_EIO, "reading manifest %s", path);
    free(line);
    fclose(f);
    return st;
}

/* Manifest paths must be normalized, absolute and below the prefix, so a
 * damaged or foreign manifest cannot make us delete elsewhere. */
static kd_status_t check_removable(const list_t *l, const char *prefix, const char *manifest,
                                   char *err, size_t errsz)
{
    char norm[PATH_MAX];

    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->v[i].dst;

        if (p[0] != '/' || norm_path(p, norm, sizeof norm, "path", NULL, 0) != KD_OK ||
            strcmp(norm, p) != 0 || strcmp(p, "/") == 0 ||
            (*prefix && !(path_within(p, prefix) && strcmp(p, prefix) != 0)))
            return kd_err(err, errsz, KD_EREFUSED, "manifest %s: refusing to remove %s", manifest,
                          p);
    }
    return KD_OK;
}

/* Longest path first: a directory's path is longer than its parent's, so
 * children come before their parents without counting components. */
static int by_depth(const void *a, const void *b)
{
    size_t la = strlen(*(const char *const *)a), lb = strlen(*(const char *const *)b);

    return la < lb ? 1 : la > lb ? -1 : 0;
}

/* The parent of path, walked by descriptors; *fd is -1 when a component is
 * missing or is not a directory (so path is gone already). A symlinked or
 * foreign-owned component is an error: nothing below it is touched. */
static kd_status_t removal_parent(kd_safedir_t *sd, const char *path, int *fd, const char **leaf,
                                  char *err, size_t errsz)
{
    kd_status_t st = kd_safedir_parent(sd, path, fd, leaf, err, errsz);

    if (st == KD_ENOTFOUND || st == KD_ECONFLICT) {
        *fd = -1;
        return KD_OK;
    }
    return st;
}

static kd_status_t remove_leaves(kd_safedir_t *sd, const list_t *l, char *err, size_t errsz)
{
    struct stat st;
    const char *leaf;
    int fd;
    kd_status_t rc;

    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->v[i].dst;

        if (l->v[i].kind == 'd')
            continue; /* after the leaves, once they may be empty (remove_dirs) */
        if ((rc = removal_parent(sd, p, &fd, &leaf, err, errsz)) != KD_OK)
            return rc;
        if (fd < 0 || fstatat(fd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(st.st_mode))
            continue; /* gone already, or replaced by a directory someone made */
        /* A symlink planted in place of a file is removed itself, never
         * followed. */
        if (unlinkat(fd, leaf, 0) != 0 && errno != ENOENT)
            return kd_err(err, errsz, KD_EIO, "cannot remove %s: %s", p, strerror(errno));
    }
    return KD_OK;
}

/* Removes the listed directories that are empty now, deepest first. */
static kd_status_t remove_dirs(kd_safedir_t *sd, const list_t *l, char *err, size_t errsz)
{
    const char **dirs = malloc((l->n ? l->n : 1) * sizeof *dirs);
    size_t n = 0;
    kd_status_t st = KD_OK;

    if (!dirs)
        return kd_err(err, errsz, KD_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].kind == 'd')
            dirs[n++] = l->v[i].dst;
    qsort(dirs, n, sizeof *dirs, by_depth);
    for (size_t i = 0; i < n && st == KD_OK; i++) {
        const char *leaf;
        int fd;

        if ((st = removal_parent(sd, dirs[i], &fd, &leaf, err, errsz)) != KD_OK)
            break;
        if (fd >= 0 && unlinkat(fd, leaf, AT_REMOVEDIR) == 0) {
            kd_safedir_forget(sd); /* it may have been the directory walked to last */
            continue;
        }
        /* Not empty (POSIX allows EEXIST for it too): it holds what is not
         * ours, logs or data the application wrote, and it stays. */
        if (fd < 0 || errno == ENOENT || errno == ENOTEMPTY || errno == EEXIST ||
            errno == ENOTDIR)
            continue;
        st = kd_err(err, errsz, KD_EIO, "cannot remove directory %s: %s", dirs[i],
                    strerror(errno));
    }
    free(dirs);
    return st;
}

static kd_status_t remove_listed(kd_safedir_t *sd, const list_t *l, char *err, size_t errsz)
{
    kd_status_t st = remove_leaves(sd, l, err, errsz);

    return st == KD_OK ? remove_dirs(sd, l, err, errsz) : st;
}

/* ---- planning: every check before anything is written ---- */

static char prev_kind(const plan_t *p, const char *path)
{
    const item_t *it = list_find(&p->prev, path);

    return it ? it->kind : 0;
}

/* What is at a destination now, found by descriptors (never through a
 * symlink): KD_OK with *st, KD_ENOTFOUND when absent (or below something
 * that is not a directory, which the plan replaces), or a refusal. */
static kd_status_t dest_stat(plan_t *p, const char *path, struct stat *st)
{
    char why[PATH_MAX + 160];
    kd_status_t rc = kd_safedir_lstat(p->sd, path, st, why, sizeof why);

    if (rc == KD_ECONFLICT)
        return KD_ENOTFOUND;
    if (rc != KD_OK && rc != KD_ENOTFOUND)
        return kd_err(p->err, p->errsz, rc, "destination %s: %s", path, why);
    return rc;
}

/* Plans one directory whose parent is already planned or present. */
static kd_status_t plan_dir(plan_t *p, const char *path, mode_t mode)
{
    const item_t *it = list_find(&p->items, path);
    char pk = prev_kind(p, path);
    struct stat st;
    kd_status_t rc;

    if (it)
        return it->kind == 'd' ? KD_OK
                               : kd_err(p->err, p->errsz, KD_EINVAL,
                                        "destination %s: both a file and a directory", path);
    if ((rc = dest_stat(p, path, &st)) == KD_OK) {
        if (S_ISDIR(st.st_mode) && pk != 'd')
            return KD_OK; /* already there and not ours: merged into, never removed */
        /* What the previous revision put here is removed before anything is
         * written, so only a stranger's file is in the way. */
        if (!S_ISDIR(st.st_mode) && !pk)
            return kd_err(p->err, p->errsz, KD_ECONFLICT,
                          "destination %s: exists and is not a directory%s", path,
                          S_ISLNK(st.st_mode) ? " (a symlink, never followed)" : "");
    } else if (rc != KD_ENOTFOUND) {
        return rc;
    }
    return plan_add(p, &p->items, 'd', path, NULL, mode);
}

/* Plans path and its missing ancestors below the prefix, which must exist. */
static kd_status_t plan_dirs(plan_t *p, const char *path)
{
    size_t start = strlen(p->prefix);
    char buf[PATH_MAX];
    kd_status_t st;

    if (path[start] == '\0' || strcmp(path + start, "/") == 0)
        return KD_OK;
    snprintf(buf, sizeof buf, "%s", path); /* path came from a checked PATH_MAX buffer */
    /* Each ancestor in turn, top down: plan_dir needs its parent planned. */
    for (size_t i = start + 1;; i++) {
        char c = buf[i];

        if (c != '/' && c != '\0')
            continue;
        buf[i] = '\0';
        st = plan_dir(p, buf, 0755);
        buf[i] = c;
        if (st != KD_OK || c == '\0')
            return st;
    }
}

static void note_conflict(plan_t *p, const char *dst)
{
    if (p->nconflicts++ == 0)
        snprintf(p->conflict, sizeof p->conflict, "%s", dst);
}

/* Plans a regular file or symlink, applying the exists policy. */
static kd_status_t plan_leaf(plan_t *p, const char *src, const char *dst, const struct stat *sst)
{
    char kind = S_ISLNK(sst->st_mode) ? 'l' : S_ISREG(sst->st_mode) ? 'f' : 0;
    struct stat st;
    kd_status_t rc;

    if (!kind)
        return kd_err(p->err, p->errsz, KD_EINVAL,
                      "source %s: not a regular file, directory or symlink", src);
    if (list_find(&p->items, dst))
        return kd_err(p->err, p->errsz, KD_EINVAL, "destination %s: more than one source", dst);
    if ((rc = dest_stat(p, dst, &st)) != KD_OK) {
        if (rc != KD_ENOTFOUND)
            return rc;
    } else if (!prev_kind(p, dst)) {
        /* Not planned, so not in the manifest: a later install never removes
         * the file it kept. */
        if (p->o->policy == KD_FILE_EXISTS_KEEP)
            return KD_OK;
        /* Counted, not failed at once: the error names how many are in the way. */
        if (p->o->policy == KD_FILE_EXISTS_FAIL) {
            note_conflict(p, dst);
            return KD_OK;
        }
        if (S_ISDIR(st.st_mode))
            return kd_err(p->err, p->errsz, KD_ECONFLICT,
                          "destination %s: is a directory, cannot put %s there", dst, src);
    }
    return plan_add(p, &p->items, kind, dst, src, 0);
}

static kd_status_t walk_entry(plan_t *p, const char *src, const char *dst, const char *name)
{
    char s[PATH_MAX], d[PATH_MAX];
    struct stat st;
    kd_status_t rc;

    if ((rc = child_path(s, sizeof s, src, name, p->err, p->errsz)) != KD_OK ||
        (rc = child_path(d, sizeof d, dst, name, p->err, p->errsz)) != KD_OK)
        return rc;
    if (strchr(name, '\n'))
        return kd_err(p->err, p->errsz, KD_EREFUSED, "source %s: name contains a newline", s);
    /* lstat: a symlink in the bundle is copied as a symlink, never followed
     * (it could point anywhere on the host). */
    if (lstat(s, &st) != 0)
        return kd_err(p->err, p->errsz, KD_EIO, "source %s: %s", s, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return plan_leaf(p, s, d, &st);
    if ((rc = plan_dir(p, d, st.st_mode & 07777)) != KD_OK)
        return rc;
    return plan_add(p, &p->queue, 'd', d, s, 0);
}

static int not_dots(const struct dirent *e)
{
    return strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
}

static kd_status_t walk_dir(plan_t *p, const char *src, const char *dst)
{
    struct dirent **names = NULL;
    /* Sorted: the same bundle gives the same manifest and the same first
     * conflict, whatever order the file system lists names in. */
    int n = scandir(src, &names, not_dots, alphasort);
    kd_status_t st = KD_OK;

    if (n < 0)
        return kd_err(p->err, p->errsz, KD_EIO, "source %s: %s", src, strerror(errno));
    for (int i = 0; i < n; i++) {
        if (st == KD_OK)
            st = walk_entry(p, src, dst, names[i]->d_name);
        free(names[i]);
    }
    free(names);
    return st;
}

/* Walks the queued source directories breadth first (no recursion, so a
 * deep tree cannot exhaust the stack); walking may queue more. */
static kd_status_t walk_queue(plan_t *p)
{
    kd_status_t st = KD_OK;

    while (st == KD_OK && p->qnext < p->queue.n) {
        const item_t *q = &p->queue.v[p->qnext++];
        const char *src = q->src, *dst = q->dst; /* stable while the array grows */

        st = walk_dir(p, src, dst);
    }
    return st;
}

/* Resolves a `files` source to its path in the bundle, refusing any that
 * leads outside it (through ".." or a symlinked directory). */
static kd_status_t resolve_source(plan_t *p, const kd_appspec_file_t *f, char *rel, char *src)
{
    char real[PATH_MAX];
    kd_status_t st;

    if ((st = norm_path(f->source ? f->source : "", rel, PATH_MAX, "source", p->err,
                        p->errsz)) != KD_OK ||
        (st = join_path(src, PATH_MAX, p->root, rel, p->err, p->errsz)) != KD_OK)
        return st;
    if (!realpath(src, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return kd_err(p->err, p->errsz, KD_ENOTFOUND,
                          "source %s (line %d): not found in the bundle",
                          f->source ? f->source : "/", f->line);
        return kd_err(p->err, p->errsz, KD_EIO, "source %s: %s", src, strerror(errno));
    }
    if (!path_within(real, p->root))
        return kd_err(p->err, p->errsz, KD_EREFUSED,
                      "source %s (line %d): leads outside the bundle",
                      f->source ? f->source : "/", f->line);
    return KD_OK;
}

static kd_status_t plan_file_entry(plan_t *p, const kd_appspec_file_t *f)
{
    char rel[PATH_MAX], src[PATH_MAX], drel[PATH_MAX], dst[PATH_MAX], leaf[PATH_MAX];
    struct stat st;
    kd_status_t rc;

    if (!f->destination || f->destination[0] != '/')
        return kd_err(p->err, p->errsz, KD_EINVAL,
                      "destination %s (line %d): must be an absolute path",
                      f->destination ? f->destination : "(none)", f->line);
    if ((rc = resolve_source(p, f, rel, src)) != KD_OK ||
        (rc = norm_path(f->destination, drel, sizeof drel, "destination", p->err,
                        p->errsz)) != KD_OK ||
        (rc = join_path(dst, sizeof dst, p->prefix, drel, p->err, p->errsz)) != KD_OK)
        return rc;
    if (lstat(src, &st) != 0)
        return kd_err(p->err, p->errsz, KD_EIO, "source %s: %s", src, strerror(errno));
    if ((rc = plan_dirs(p, dst)) != KD_OK)
        return rc;
    if (S_ISDIR(st.st_mode)) {
        if ((rc = plan_add(p, &p->queue, 'd', dst, src, 0)) != KD_OK)
            return rc;
        return walk_queue(p);
    }
    /* rel is normalized ("/a/b"), so it holds a '/'; the file keeps its name. */
    if ((rc = child_path(leaf, sizeof leaf, dst, strrchr(rel, '/') + 1, p->err,
                         p->errsz)) != KD_OK)
        return rc;
    return plan_leaf(p, src, leaf, &st);
}

static kd_status_t lookup_user(const char *name, uid_t *uid, char *err, size_t errsz)
{
    long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    struct passwd pw, *res = NULL;
    char *buf = NULL;
    int rc;

    for (sz = sz > 0 ? sz : 4096;; sz *= 2) {
        char *nbuf = realloc(buf, (size_t)sz);

        if (!nbuf) {
            free(buf);
            return kd_err(err, errsz, KD_ENOMEM, "looking up %s: out of memory", name);
        }
        buf = nbuf;
        /* The suggested size is only a hint (or -1, none): grow on ERANGE,
         * up to 1 MiB. */
        if ((rc = getpwnam_r(name, &pw, buf, (size_t)sz, &res)) != ERANGE || sz > (1L << 20))
            break;
    }
    if (res)
        *uid = pw.pw_uid;
    free(buf);
    if (rc != 0 && rc != ENOENT && rc != ESRCH)
        return kd_err(err, errsz, KD_EIO, "looking up user %s: %s", name, strerror(rc));
    return res ? KD_OK : kd_err(err, errsz, KD_ENOTFOUND, "unknown user %s", name);
}

static kd_status_t lookup_group(const char *name, gid_t *gid, char *err, size_t errsz)
{
    long sz = sysconf(_SC_GETGR_R_SIZE_MAX);
    struct group gr, *res = NULL;
    char *buf = NULL;
    int rc;

    for (sz = sz > 0 ? sz : 4096;; sz *= 2) {
        char *nbuf = realloc(buf, (size_t)sz);

        if (!nbuf) {
            free(buf);
            return kd_err(err, errsz, KD_ENOMEM, "looking up %s: out of memory", name);
        }
        buf = nbuf;
        /* ERANGE: a group with many members outgrows the suggested size. */
        if ((rc = getgrnam_r(name, &gr, buf, (size_t)sz, &res)) != ERANGE || sz > (1L << 20))
            break;
    }
    if (res)
        *gid = gr.gr_gid;
    free(buf);
    if (rc != 0 && rc != ENOENT && rc != ESRCH)
        return kd_err(err, errsz, KD_EIO, "looking up group %s: %s", name, strerror(rc));
    return res ? KD_OK : kd_err(err, errsz, KD_ENOTFOUND, "unknown group %s", name);
}

static bool type_allows(unsigned type, char kind)
{
    if (kind == 'f')
        return !type || (type & KD_PERM_TYPE_FILE);
    if (kind == 'd')
        return !type || (type & KD_PERM_TYPE_DIRECTORY);
    return false;
}

static bool is_all_pattern(const char *pattern)
{
    return !pattern || strcmp(pattern, "**") == 0;
}

static kd_status_t plan_perm(plan_t *p, const kd_appspec_permission_t *pm, perm_plan_t *pp)
{
    char rel[PATH_MAX], abs[PATH_MAX];
    const item_t *it;
    kd_status_t st;

    if (!pm->object || pm->object[0] != '/')
        return kd_err(p->err, p->errsz, KD_EINVAL,
                      "permissions object %s (line %d): must be an absolute path",
                      pm->object ? pm->object : "(none)", pm->line);
    if ((st = norm_path(pm->object, rel, sizeof rel, "permissions object", p->err,
                        p->errsz)) != KD_OK ||
        (st = join_path(abs, sizeof abs, p->prefix, rel, p->err, p->errsz)) != KD_OK)
        return st;
    if (pm->mode < -1 || pm->mode > 07777)
        return kd_err(p->err, p->errsz, KD_EINVAL, "permissions object %s: bad mode %o",
                      pm->object, (unsigned)pm->mode);
    it = list_find(&p->items, abs);
    if (it && it->kind == 'f' && type_allows(pm->type, 'f') &&
        (!is_all_pattern(pm->pattern) || pm->except_count))
        return kd_err(p->err, p->errsz, KD_EINVAL,
                      "permissions object %s is a file: pattern and except apply to "
                      "directories only", pm->object);
    for (size_t i = 0; it && it->kind == 'f' && i < pm->acl_count; i++)
        if (pm->acls[i].is_default)
            return kd_err(p->err, p->errsz, KD_EINVAL,
                          "permissions object %s is a file: a default (d:) acl entry applies "
                          "to directories only, as in CodeDeploy", pm->object);
    if (!(pp->object = strdup(abs)))
        return kd_err(p->err, p->errsz, KD_ENOMEM, "install: out of memory");
    return KD_OK;
}

/* Resolves the owners and groups first: the users named here may own
 * directories the install walks through (they were given them by an
 * earlier install's permissions). */
static kd_status_t plan_owners(plan_t *p, const kd_appspec_permission_t *perms, size_t nperms)
{
    kd_status_t st = KD_OK;

    if (!nperms)
        return KD_OK;
    if (!(p->perms = calloc(nperms, sizeof *p->perms)))
        return kd_err(p->err, p->errsz, KD_ENOMEM, "out of memory");
    p->nperms = nperms;
    for (size_t i = 0; i < nperms && st == KD_OK; i++) {
        const kd_appspec_permission_t *pm = &perms[i];
        perm_plan_t *pp = &p->perms[i];

        pp->uid = (uid_t)-1;
        pp->gid = (gid_t)-1;
        if (pm->owner)
            st = lookup_user(pm->owner, &pp->uid, p->err, p->errsz);
        if (st == KD_OK && pm->group)
            st = lookup_group(pm->group, &pp->gid, p->err, p->errsz);
    }
    return st;
}

static kd_status_t plan_perms(plan_t *p, const kd_appspec_permission_t *perms, size_t nperms)
{
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < nperms && st == KD_OK; i++)
        st = plan_perm(p, &perms[i], &p->perms[i]);
    return st;
}

static kd_status_t open_prefix(plan_t *p)
{
    uid_t *owners = p->nperms ? calloc(p->nperms, sizeof *owners) : NULL;
    size_t n = 0;
    kd_status_t st;

    if (p->nperms && !owners)
        return kd_err(p->err, p->errsz, KD_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->nperms; i++)
        if (p->perms[i].uid != (uid_t)-1)
            owners[n++] = p->perms[i].uid;
    st = kd_safedir_open(p->prefix, owners, n, &p->sd, p->err, p->errsz);
    free(owners);
    return st;
}

static kd_status_t plan_start(plan_t *p, const kd_appspec_permission_t *perms, size_t nperms)
{
    const kd_install_opts_t *o = p->o;
    struct stat st;
    kd_status_t rc;

    if (o->policy != KD_FILE_EXISTS_UNSET && o->policy != KD_FILE_EXISTS_FAIL &&
        o->policy != KD_FILE_EXISTS_OVERWRITE && o->policy != KD_FILE_EXISTS_KEEP)
        return kd_err(p->err, p->errsz, KD_EINVAL, "unknown file exists policy %d",
                      (int)o->policy);
    if (!realpath(o->bundle_root, p->root))
        return kd_err(p->err, p->errsz, errno == ENOENT ? KD_ENOTFOUND : KD_EIO,
                      "bundle root %s: %s", o->bundle_root, strerror(errno));
    if ((rc = norm_prefix(o->prefix, p->prefix, sizeof p->prefix, p->err, p->errsz)) != KD_OK)
        return rc;
    if (p->prefix[0] && (stat(p->prefix, &st) != 0 || !S_ISDIR(st.st_mode)))
        return kd_err(p->err, p->errsz, KD_ENOTFOUND, "prefix %s: not an existing directory",
                      p->prefix);
    if ((rc = plan_owners(p, perms, nperms)) != KD_OK || (rc = open_prefix(p)) != KD_OK)
        return rc;
    /* Checked whole before any removal: one bad line removes nothing. */
    if (o->previous_manifest &&
        ((rc = manifest_read(o->previous_manifest, &p->prev, p->err, p->errsz)) != KD_OK ||
         (rc = check_removable(&p->prev, p->prefix, o->previous_manifest, p->err,
                               p->errsz)) != KD_OK))
        return rc;
    return KD_OK;
}

static kd_status_t check_perm_overlaps(plan_t *p, const kd_appspec_permission_t *perms);

static kd_status_t plan_all(plan_t *p, const kd_appspec_file_t *files, size_t nfiles,
                            const kd_appspec_permission_t *perms, size_t nperms)
{
    kd_status_t st = plan_start(p, perms, nperms);

    for (size_t i = 0; i < nfiles && st == KD_OK; i++)
        st = plan_file_entry(p, &files[i]);
    if (st != KD_OK)
        return st;
    if (p->nconflicts == 1)
        return kd_err(p->err, p->errsz, KD_ECONFLICT,
                      "destination file %s already exists (file exists policy: fail)",
                      p->conflict);
    if (p->nconflicts > 1)
        return kd_err(p->err, p->errsz, KD_ECONFLICT,
                      "destination file %s and %zu more already exist (file exists policy: "
                      "fail)", p->conflict, p->nconflicts - 1);
    /* Permissions after the files: their objects are checked against the
     * items just planned. */
    if ((st = plan_perms(p, perms, nperms)) != KD_OK)
        return st;
    return check_perm_overlaps(p, perms);
}

static void plan_free(plan_t *p)
{
    kd_safedir_free(p->sd);
    for (size_t i = 0; i < p->nperms; i++)
        free(p->perms[i].object);
    free(p->perms);
    list_free(&p->queue);
    list_free(&p->prev);
    list_free(&p->items);
}

/* ---- writing ---- */

static kd_status_t syncfs_of(const char *path, char *err, size_t errsz);

/* Everything below writes through descriptors walked from the prefix by
 * p->sd: a component that is a symlink stops the install. */

static kd_status_t parent_of(plan_t *p, const item_t *it, int *fd, const char **leaf)
{
    return kd_safedir_parent(p->sd, it->dst, fd, leaf, p->err, p->errsz);
}

static kd_status_t remember_inode(plan_t *p, item_t *it, int fd)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return kd_err(p->err, p->errsz, KD_EIO, "stat %s: %s", it->dst, strerror(errno));
    it->dev = st.st_dev;
    it->ino = st.st_ino;
    return KD_OK;
}

static kd_status_t make_dir(plan_t *p, item_t *it)
{
    const char *leaf;
    int pfd, fd;
    kd_status_t st;

    if ((st = parent_of(p, it, &pfd, &leaf)) != KD_OK)
        return st;
    /* 0700 while it is filled, the exact mode at the end (write_items): never
     * more open to others than asked. EEXIST: the previous revision's, left
     * because it was not empty. */
    if (mkdirat(pfd, leaf, 0700) != 0 && errno != EEXIST)
        return kd_err(p->err, p->errsz, KD_EIO, "cannot create directory %s: %s", it->dst,
                      strerror(errno));
    /* O_NOFOLLOW: something planted there since the plan is not entered. */
    if ((fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return kd_err(p->err, p->errsz, errno == ELOOP || errno == ENOTDIR ? KD_EREFUSED : KD_EIO,
                      "directory %s: %s", it->dst,
                      errno == ELOOP || errno == ENOTDIR ? "not a directory (or a symlink)"
                                                         : strerror(errno));
    st = remember_inode(p, it, fd);
    close(fd);
    it->done = st == KD_OK; /* planned as ours, so ours even if it survived the cleanup */
    return st;
}

static kd_status_t copy_data(int in, int out, const item_t *it, char *err, size_t errsz)
{
    char buf[65536]; /* a fixed size, whatever the file's */

    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return kd_err(err, errsz, KD_EIO, "reading %s: %s", it->src, strerror(errno));
        if (n == 0)
            return KD_OK;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));

            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return kd_err(err, errsz, KD_EIO, "writing %s: %s", it->dst, strerror(errno));
            off += w;
        }
    }
}

/* A new file with a random name in the destination's directory, so the
 * final rename stays on one file system; O_EXCL|O_NOFOLLOW, so nothing
 * planted there is opened. */
static kd_status_t open_temp(plan_t *p, const item_t *it, int pfd, char *tmp, size_t tmpsz,
                             int *fd)
{
    for (unsigned n = 0; n < TEMP_TRIES; n++) {
        if (kd_temp_name(tmp, tmpsz, ".kdtmp.") != KD_OK)
            return kd_err(p->err, p->errsz, KD_EIO, "no random bytes for a temporary name");
        *fd = openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (*fd >= 0)
            return KD_OK;
        if (errno != EEXIST)
            break;
    }
    tmp[0] = '\0';
    return kd_err(p->err, p->errsz, KD_EIO, "cannot create a file next to %s: %s", it->dst,
                  strerror(errno));
}

/* Not synced here: write_items syncs all the files of the install at once
 * before it renames any of them. */
static kd_status_t finish_file(plan_t *p, item_t *it, int out, const struct stat *sst)
{
    if (fchmod(out, sst->st_mode & 07777) != 0 ||
        futimens(out, (struct timespec[2]){sst->st_atim, sst->st_mtim}) != 0)
        return kd_err(p->err, p->errsz, KD_EIO, "writing %s: %s", it->dst, strerror(errno));
    return remember_inode(p, it, out);
}

/* Copies a regular file with its mode bits and times to a temporary name
 * next to dst (it->tmp); write_items renames it once every file's data is
 * durable, so readers of dst see the old file or the new, never a part. */
static kd_status_t stage_file(plan_t *p, item_t *it)
{
    char tmp[64] = "";
    const char *leaf;
    int in, out = -1, pfd;
    struct stat sst;
    kd_status_t rc;

    if ((rc = parent_of(p, it, &pfd, &leaf)) != KD_OK)
        return rc;
    /* O_NOFOLLOW and S_ISREG again: the plan's lstat was earlier; what is
     * opened now is checked now. */
    if ((in = open(it->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
        return kd_err(p->err, p->errsz, KD_EIO, "opening %s: %s", it->src, strerror(errno));
    if (fstat(in, &sst) != 0 || !S_ISREG(sst.st_mode)) {
        rc = kd_err(p->err, p->errsz, KD_EIO, "source %s: not a regular file", it->src);
        goto out;
    }
    if ((rc = open_temp(p, it, pfd, tmp, sizeof tmp, &out)) != KD_OK ||
        (rc = copy_data(in, out, it, p->err, p->errsz)) != KD_OK ||
        (rc = finish_file(p, it, out, &sst)) != KD_OK)
        goto out;
    rc = close(out) == 0 ? KD_OK : kd_err(p->err, p->errsz, KD_EIO, "writing %s: %s", it->dst,
                                          strerror(errno));
    out = -1;
    if (rc == KD_OK && !(it->tmp = strdup(tmp)))
        rc = kd_err(p->err, p->errsz, KD_ENOMEM, "out of memory");
out:
    if (out >= 0)
        close(out);
    if (rc != KD_OK && tmp[0])
        unlinkat(pfd, tmp, 0);
    close(in);
    return rc;
}

/* Gives a staged file or link its name. */
static kd_status_t commit_item(plan_t *p, item_t *it)
{
    const char *leaf;
    int pfd;
    kd_status_t rc;

    if ((rc = parent_of(p, it, &pfd, &leaf)) != KD_OK)
        return rc;
    if (renameat(pfd, it->tmp, pfd, leaf) != 0)
        return kd_err(p->err, p->errsz, KD_EIO, "cannot replace %s: %s", it->dst,
                      strerror(errno));
    free(it->tmp);
    it->tmp = NULL;
    it->done = true;
    return KD_OK;
}

/* Removes the staged files not renamed (after a failure). */
static void drop_staged(plan_t *p)
{
    for (size_t i = 0; i < p->items.n; i++) {
        item_t *it = &p->items.v[i];
        const char *leaf;
        int pfd;

        if (!it->tmp)
            continue;
        if (kd_safedir_parent(p->sd, it->dst, &pfd, &leaf, NULL, 0) == KD_OK)
            unlinkat(pfd, it->tmp, 0);
        free(it->tmp);
        it->tmp = NULL;
    }
}

/* One syncfs per file system that the chosen items are on, through their
 * directories' descriptors (an install prefix may span mounts): one pass
 * for the whole install instead of an fsync per file and per directory.
 * staged: the files written and not renamed yet; else all that is done. */
#define SYNC_DEVS 16
static kd_status_t sync_items(plan_t *p, bool staged, const dev_t *synced)
{
    dev_t seen[SYNC_DEVS];
    size_t nseen = 0;

    if (synced)
        seen[nseen++] = *synced;

    for (size_t i = 0; i < p->items.n; i++) {
        const item_t *it = &p->items.v[i];
        const char *leaf;
        struct stat st;
        size_t k;
        int pfd;
        kd_status_t rc;

        if (staged ? !it->tmp : !it->done)
            continue;
        if ((rc = parent_of(p, it, &pfd, &leaf)) != KD_OK)
            return rc;
        if (fstat(pfd, &st) != 0)
            return kd_err(p->err, p->errsz, KD_EIO, "stat of %s's directory: %s", it->dst,
                          strerror(errno));
        for (k = 0; k < nseen && seen[k] != st.st_dev; k++)
            ;
        if (k < nseen)
            continue;
        if (syncfs(pfd) != 0)
            return kd_err(p->err, p->errsz, KD_EIO, "syncfs under %s: %s", it->dst,
                          strerror(errno));
        if (nseen < SYNC_DEVS)
            seen[nseen++] = st.st_dev;
    }
    return KD_OK;
}

/* Recreates a symlink with the same target (never followed) under a
 * temporary name, renamed over dst as files are (commit_item): the link is
 * never missing. */
static kd_status_t stage_link(plan_t *p, item_t *it)
{
    char target[PATH_MAX], tmp[64];
    ssize_t n = readlink(it->src, target, sizeof target);
    const char *leaf;
    unsigned k;
    int pfd;
    kd_status_t st;

    if (n < 0)
        return kd_err(p->err, p->errsz, KD_EIO, "readlink %s: %s", it->src, strerror(errno));
    if ((size_t)n >= sizeof target)
        return kd_err(p->err, p->errsz, KD_EINVAL, "symlink %s: target too long", it->src);
    target[n] = '\0';
    if ((st = parent_of(p, it, &pfd, &leaf)) != KD_OK)
        return st;
    for (k = 0; k < TEMP_TRIES; k++) {
        if (kd_temp_name(tmp, sizeof tmp, ".kdtmp.") != KD_OK)
            return kd_err(p->err, p->errsz, KD_EIO, "no random bytes for a temporary name");
        if (symlinkat(target, pfd, tmp) == 0)
            break;
        if (errno != EEXIST)
            return kd_err(p->err, p->errsz, KD_EIO, "symlink next to %s: %s", it->dst,
                          strerror(errno));
    }
    if (k == TEMP_TRIES)
        return kd_err(p->err, p->errsz, KD_EIO, "cannot create a symlink next to %s", it->dst);
    if (!(it->tmp = strdup(tmp))) {
        unlinkat(pfd, tmp, 0);
        return kd_err(p->err, p->errsz, KD_ENOMEM, "out of memory");
    }
    return KD_OK;
}

/* Sets an item's owner and mode through a descriptor of the very inode
 * this install wrote. chown first: it clears setuid/setgid bits that chmod
 * may set. */
static kd_status_t set_item(plan_t *p, const item_t *it, uid_t uid, gid_t gid, int mode)
{
    int fd;
    kd_status_t st = kd_safedir_open_same(p->sd, it->dst, it->kind == 'd', it->dev, it->ino, &fd,
                                          p->err, p->errsz);

    if (st != KD_OK)
        return st;
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0)
        st = kd_err(p->err, p->errsz, KD_EIO, "chown %s: %s", it->dst, strerror(errno));
    else if (mode >= 0 && fchmod(fd, (mode_t)mode) != 0)
        st = kd_err(p->err, p->errsz, KD_EIO, "chmod %s: %s", it->dst, strerror(errno));
    close(fd);
    return st;
}

static kd_status_t write_items(plan_t *p)
{
    list_t *items = &p->items;
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < items->n && st == KD_OK; i++) {
        item_t *it = &items->v[i];

        st = it->kind == 'd' ? make_dir(p, it) : it->kind == 'l' ? stage_link(p, it)
                                                                 : stage_file(p, it);
    }
    /* One sync before any file or link takes its name: the manifest that
     * lists them is durable first, and each name will hold the old data or
     * all of the new after a crash. */
    if (st == KD_OK)
        st = syncfs_of(p->o->manifest_path, p->err, p->errsz);
    if (st == KD_OK)
        st = sync_items(p, true, &p->manifest_dev);
    for (size_t i = 0; i < items->n && st == KD_OK; i++)
        if (items->v[i].tmp)
            st = commit_item(p, &items->v[i]);
    if (st != KD_OK)
        drop_staged(p);
    /* Directory modes last: a read-only source directory must not keep us
     * from filling its copy. Exact bits, whatever the umask. */
    for (size_t i = 0; i < items->n && st == KD_OK; i++) {
        const item_t *it = &items->v[i];

        if (it->kind == 'd')
            st = set_item(p, it, (uid_t)-1, (gid_t)-1, (int)it->mode);
    }
    return st;
}

/* ---- permissions ---- */

/* rel is the path below the object; FNM_PATHNAME keeps "*" within one
 * name, as the AWS agent's globs, which match direct children only. */
static bool perm_matches(const kd_appspec_permission_t *pm, const char *rel)
{
    if (!is_all_pattern(pm->pattern) && fnmatch(pm->pattern, rel, FNM_PATHNAME) != 0)
        return false;
    for (size_t i = 0; i < pm->except_count; i++)
        if (pm->except[i] && fnmatch(pm->except[i], rel, FNM_PATHNAME) == 0)
            return false;
    return true;
}

/* Does entry pm apply to item c? The object itself when it is a file this
 * install writes; else the items below the object (a directory) that its
 * type, pattern and except select. An object naming nothing this install
 * wrote is ignored, as by AWS. */
static bool perm_targets(const list_t *items, const kd_appspec_permission_t *pm,
                         const perm_plan_t *pp, const item_t *c)
{
    const char *obj = pp->object;
    const item_t *it = list_find(items, obj);
    size_t len = strcmp(obj, "/") == 0 ? 0 : strlen(obj);

    if (pm->type_none)
        return false;
    if (it && it->kind != 'd')
        return c == it && type_allows(pm->type, it->kind);
    return strncmp(c->dst, obj, len) == 0 && c->dst[len] == '/' &&
           type_allows(pm->type, c->kind) && perm_matches(pm, c->dst + len + 1);
}

/* acls and an SELinux context, through the parent's descriptor like the
 * owner and mode: a component swapped for a symlink is refused. */
static kd_status_t set_extras(plan_t *p, const item_t *it, const kd_appspec_permission_t *pm)
{
    const char *leaf;
    int dirfd;
    kd_status_t st;

    if (!kd_perm_has_extras(pm))
        return KD_OK;
    if ((st = kd_safedir_parent(p->sd, it->dst, &dirfd, &leaf, p->err, p->errsz)) != KD_OK)
        return st;
    return kd_perm_extras_apply_at(dirfd, leaf, pm, p->err, p->errsz);
}

static kd_status_t apply_perm(plan_t *p, const kd_appspec_permission_t *pm,
                              const perm_plan_t *pp)
{
    const list_t *items = &p->items;
    const item_t *it = list_find(items, pp->object);
    struct stat st;
    kd_status_t rc = KD_OK;

    if (!it && (kd_safedir_lstat(p->sd, pp->object, &st, NULL, 0) != KD_OK || !S_ISDIR(st.st_mode)))
        return KD_OK; /* names nothing this install wrote: ignored, as by AWS */
    for (size_t i = 0; i < items->n && rc == KD_OK; i++) {
        const item_t *c = &items->v[i];

        /* Only what this install wrote: files kept under KEEP, or left
         * unwritten by a failure, are never changed. */
        if (!c->done || !perm_targets(items, pm, pp, c))
            continue;
        if ((rc = set_item(p, c, pp->uid, pp->gid, pm->mode)) == KD_OK)
            rc = set_extras(p, c, pm);
    }
    return rc;
}

static kd_status_t apply_perms(plan_t *p, const kd_appspec_permission_t *perms)
{
    kd_status_t st = KD_OK;

    for (size_t i = 0; i < p->nperms && st == KD_OK; i++)
        st = apply_perm(p, &perms[i], &p->perms[i]);
    return st;
}

/* The agent refuses a deployment in which two permissions entries apply to
 * one file or directory (which should win is not said), before anything is
 * written. */
static kd_status_t check_perm_overlaps(plan_t *p, const kd_appspec_permission_t *perms)
{
    size_t *by = p->items.n ? calloc(p->items.n, sizeof *by) : NULL; /* entry + 1 per item */
    kd_status_t st = KD_OK;

    if (p->items.n && !by)
        return kd_err(p->err, p->errsz, KD_ENOMEM, "out of memory");
    for (size_t e = 0; e < p->nperms && st == KD_OK; e++) {
        for (size_t i = 0; i < p->items.n && st == KD_OK; i++) {
            if (!perm_targets(&p->items, &perms[e], &p->perms[e], &p->items.v[i]))
                continue;
            if (by[i])
                st = kd_err(p->err, p->errsz, KD_EINVAL,
                            "%s is matched by two permissions entries (lines %d and %d); "
                            "CodeDeploy refuses this too: make the patterns or excepts "
                            "disjoint", p->items.v[i].dst, perms[by[i] - 1].line,
                            perms[e].line);
            by[i] = e + 1;
        }
    }
    free(by);
    return st;
}

/* path's directory, into dir. */
static kd_status_t dir_of(const char *path, char *dir, size_t dirsz, char *err, size_t errsz)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return kd_pathf(dir, dirsz, ".");
    if (kd_pathf(dir, dirsz, "%.*s", slash == path ? 1 : (int)(slash - path), path) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", path);
    return KD_OK;
}

/* syncfs of the file system holding path's directory. */
static kd_status_t syncfs_of(const char *path, char *err, size_t errsz)
{
    char dir[PATH_MAX];
    kd_status_t st = dir_of(path, dir, sizeof dir, err, errsz);

    return st == KD_OK ? kd_syncfs(dir, err, errsz) : st;
}

/* The device of the file system holding path's directory. */
static kd_status_t manifest_dev(const char *path, dev_t *dev, char *err, size_t errsz)
{
    char dir[PATH_MAX];
    struct stat st;
    kd_status_t rc;

    if ((rc = dir_of(path, dir, sizeof dir, err, errsz)) != KD_OK)
        return rc;
    if (stat(dir, &st) != 0)
        return kd_err(err, errsz, KD_EIO, "%s: %s", dir, strerror(errno));
    *dev = st.st_dev;
    return KD_OK;
}

/* ---- the public API ---- */

kd_status_t kd_install_run(const kd_appspec_file_t *files, size_t nfiles,
                           const kd_appspec_permission_t *perms, size_t nperms,
                           const kd_install_opts_t *o, char *err, size_t errsz)
{
    plan_t *p;
    kd_status_t st, st2;

    if (!o || !o->bundle_root || !o->manifest_path || (nfiles && !files) || (nperms && !perms))
        return kd_err(err, errsz, KD_EINVAL, "install: missing bundle root, manifest or entries");
    if (!(p = calloc(1, sizeof *p))) /* three PATH_MAX buffers: not on the stack */
        return kd_err(err, errsz, KD_ENOMEM, "install: out of memory");
    p->o = o;
    p->err = err;
    p->errsz = errsz;
    /* The manifest lists all that may be written before any of it is: after
     * a crash mid-copy, the next install still removes what this one wrote. */
    if ((st = plan_all(p, files, nfiles, perms, nperms)) != KD_OK ||
        (st = remove_listed(p->sd, &p->prev, err, errsz)) != KD_OK ||
        (st = manifest_write(o->manifest_path, &p->items, false, err, errsz)) != KD_OK ||
        (st = manifest_dev(o->manifest_path, &p->manifest_dev, err, errsz)) != KD_OK)
        goto out;

    /* From here on the manifest is rewritten whatever happens, listing only
     * what is really on disk. */
    st = write_items(p);
    if (st == KD_OK)
        st = apply_perms(p, perms);
    /* After a failure, err keeps the first error, not the rewrite's. */
    st2 = manifest_write(o->manifest_path, &p->items, true, st == KD_OK ? err : NULL,
                         st == KD_OK ? errsz : 0);
    if (st == KD_OK)
        st = st2;
    /* The caller's own record of the install rides on the same sync. */
    if (st == KD_OK && o->before_sync)
        st = o->before_sync(o->opaque, err, errsz);
    /* The manifest, the caller's record, and the renames, directories,
     * owners and modes: durable before the step reports them. */
    st2 = syncfs_of(o->manifest_path, st == KD_OK ? err : NULL, st == KD_OK ? errsz : 0);
    if (st2 == KD_OK)
        st2 = sync_items(p, false, &p->manifest_dev);
    if (st == KD_OK)
        st = st2;
out:
    plan_free(p);
    free(p);
    return st;
}

kd_status_t kd_install_remove(const char *manifest_path, const char *prefix, char *err,
                              size_t errsz)
{
    char pfx[PATH_MAX];
    list_t l = {0};
    kd_safedir_t *sd = NULL;
    kd_status_t st;

    if (!manifest_path)
        return kd_err(err, errsz, KD_EINVAL, "install remove: no manifest");
    if ((st = norm_prefix(prefix, pfx, sizeof pfx, err, errsz)) != KD_OK ||
        (st = manifest_read(manifest_path, &l, err, errsz)) != KD_OK ||
        (st = check_removable(&l, pfx, manifest_path, err, errsz)) != KD_OK ||
        (st = kd_safedir_open(pfx, NULL, 0, &sd, err, errsz)) != KD_OK ||
        (st = remove_listed(sd, &l, err, errsz)) != KD_OK)
        goto out;
    if (unlink(manifest_path) != 0 && errno != ENOENT)
        st = kd_err(err, errsz, KD_EIO, "cannot remove manifest %s: %s", manifest_path,
                    strerror(errno));
out:
    kd_safedir_free(sd);
    list_free(&l);
    return st;
}
