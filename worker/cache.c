#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "fsutil.h"

int kd_cache_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 128 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

kd_status_t kd_cache_group_dir(const char *root, const char *app, const char *group, char *out,
                               size_t outsz, char *err, size_t errsz)
{
    if (!kd_cache_name_ok(app))
        return kd_err(err, errsz, KD_EINVAL, "application name '%s' is not a safe name",
                      app ? app : "");
    if (!kd_cache_name_ok(group))
        return kd_err(err, errsz, KD_EINVAL, "group name '%s' is not a safe name",
                      group ? group : "");
    if ((size_t)snprintf(out, outsz, "%s/app-%s/group-%s", root, app, group) >= outsz)
        return kd_err(err, errsz, KD_EINVAL, "cache path too long");
    return KD_OK;
}

kd_status_t kd_cache_deploy_dir(const char *root, const char *app, const char *group,
                                const char *deploy_id, char *out, size_t outsz, char *err,
                                size_t errsz)
{
    char dir[PATH_MAX];
    kd_status_t st = kd_cache_group_dir(root, app, group, dir, sizeof dir, err, errsz);

    if (st != KD_OK)
        return st;
    if (!kd_cache_name_ok(deploy_id))
        return kd_err(err, errsz, KD_EINVAL, "deploy id '%s' is not a safe name",
                      deploy_id ? deploy_id : "");
    if ((size_t)snprintf(out, outsz, "%s/deploy-%s", dir, deploy_id) >= outsz)
        return kd_err(err, errsz, KD_EINVAL, "cache path too long");
    return KD_OK;
}

kd_status_t kd_cache_installed_get(const char *root, const char *app, const char *group,
                                   char *deploy_id, size_t idsz, char *err, size_t errsz)
{
    char path[PATH_MAX], dir[PATH_MAX];
    kd_buf_t buf = KD_BUF_INIT(4096);
    kd_status_t st = kd_cache_group_dir(root, app, group, dir, sizeof dir, err, errsz);

    if (st != KD_OK)
        return st;
    if (kd_pathf(path, sizeof path, "%s/installed", dir) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "cache path too long");
    if ((st = kd_read_file(path, &buf, err, errsz)) == KD_OK) {
        const char *id = kd_buf_str(&buf);
        size_t len = strcspn(id, "\n");

        if (len == 0 || len >= idsz)
            st = kd_err(err, errsz, KD_EPROTO, "%s: corrupt", path);
        else
            snprintf(deploy_id, idsz, "%.*s", (int)len, id);
    }
    kd_buf_free(&buf);
    return st;
}

static kd_status_t installed_write(const char *root, const char *app, const char *group,
                                   const char *deploy_id, bool sync_dir, char *err,
                                   size_t errsz)
{
    char path[PATH_MAX], dir[PATH_MAX], line[256];
    kd_status_t st = kd_cache_group_dir(root, app, group, dir, sizeof dir, err, errsz);
    int n;

    if (st != KD_OK)
        return st;
    if (kd_pathf(path, sizeof path, "%s/installed", dir) != KD_OK)
        return kd_err(err, errsz, KD_EINVAL, "cache path too long");
    n = snprintf(line, sizeof line, "%s\n", deploy_id);
    return sync_dir ? kd_write_file_atomic(path, line, (size_t)n, 0644, err, errsz)
                    : kd_write_file_synced(path, line, (size_t)n, 0644, err, errsz);
}

kd_status_t kd_cache_installed_set(const char *root, const char *app, const char *group,
                                   const char *deploy_id, char *err, size_t errsz)
{
    return installed_write(root, app, group, deploy_id, true, err, errsz);
}

kd_status_t kd_cache_installed_stage(const char *root, const char *app, const char *group,
                                     const char *deploy_id, char *err, size_t errsz)
{
    return installed_write(root, app, group, deploy_id, false, err, errsz);
}

typedef struct cache_entry {
    char name[160];
    struct timespec mtime;
} cache_entry_t;

static int newest_first(const void *a, const void *b)
{
    const cache_entry_t *x = a, *y = b;

    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
    return strcmp(x->name, y->name);
}

static kd_status_t list_deploys(const char *dir, cache_entry_t **out, size_t *count, char *err,
                                size_t errsz)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    cache_entry_t *list = NULL;
    size_t n = 0;

    if (!d)
        return errno == ENOENT ? KD_OK : kd_err(err, errsz, KD_EIO, "%s: %s", dir, strerror(errno));
    while ((de = readdir(d))) {
        char path[PATH_MAX];
        struct stat sb;
        cache_entry_t *grown;

        if (strncmp(de->d_name, "deploy-", 7) != 0 ||
            kd_pathf(path, sizeof path, "%s/%s", dir, de->d_name) != KD_OK ||
            strlen(de->d_name) >= sizeof list->name)
            continue;
        if (lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        if (!(grown = realloc(list, (n + 1) * sizeof *list))) {
            free(list);
            closedir(d);
            return kd_err(err, errsz, KD_ENOMEM, "out of memory");
        }
        list = grown;
        memcpy(list[n].name, de->d_name, strlen(de->d_name) + 1);
        list[n++].mtime = sb.st_mtim;
    }
    closedir(d);
    *out = list;
    *count = n;
    return KD_OK;
}

kd_status_t kd_cache_prune(const char *root, const char *app, const char *group, unsigned keep,
                           const char *current, char *err, size_t errsz)
{
    char dir[PATH_MAX], installed[160] = "";
    cache_entry_t *list = NULL;
    size_t n = 0, kept = 0;
    kd_status_t st = kd_cache_group_dir(root, app, group, dir, sizeof dir, err, errsz);

    if (st != KD_OK || (st = list_deploys(dir, &list, &n, err, errsz)) != KD_OK)
        return st;
    kd_cache_installed_get(root, app, group, installed, sizeof installed, NULL, 0);
    qsort(list, n, sizeof *list, newest_first);
    for (size_t i = 0; i < n && st == KD_OK; i++) {
        const char *id = list[i].name + 7;
        char path[PATH_MAX];

        if (strcmp(id, installed) == 0 || (current && strcmp(id, current) == 0) || kept < keep) {
            kept++;
            continue;
        }
        if ((st = kd_pathf(path, sizeof path, "%s/%s", dir, list[i].name)) == KD_OK)
            st = kd_remove_tree(path, err, errsz);
    }
    free(list);
    return st;
}
