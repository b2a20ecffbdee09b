/* The worker's cache layout on a host:
 *   ${root}/app-${app}/group-${group}/installed        deploy id installed now
 *   ${root}/app-${app}/group-${group}/deploy-${id}/    one revision's cache dir:
 *       bundle/             the unpacked bundle (its root holds the appspec)
 *       form/               the deployment's form scripts (stop, start, check)
 *       revision.pb         the Revision it came from
 *       install.manifest    what its Install wrote (removed by the next one)
 *       deploy.log          every hook's output for this deployment
 * Names come from step events, so each part is checked before use. */
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <stddef.h>

#include "status.h"

/* True if s is usable as one path component: 1-128 of [A-Za-z0-9._-],
 * not starting with '.'. */
int kd_cache_name_ok(const char *s);

/* ${root}/app-${app}/group-${group} */
kd_status_t kd_cache_group_dir(const char *root, const char *app, const char *group, char *out,
                               size_t outsz, char *err, size_t errsz);
/* ${root}/app-${app}/group-${group}/deploy-${deploy_id} */
kd_status_t kd_cache_deploy_dir(const char *root, const char *app, const char *group,
                                const char *deploy_id, char *out, size_t outsz, char *err,
                                size_t errsz);
/* The deploy id installed for app/group, or KD_ENOTFOUND on a first deploy. */
kd_status_t kd_cache_installed_get(const char *root, const char *app, const char *group,
                                   char *deploy_id, size_t idsz, char *err, size_t errsz);
kd_status_t kd_cache_installed_set(const char *root, const char *app, const char *group,
                                   const char *deploy_id, char *err, size_t errsz);
/* As kd_cache_installed_set, the rename not synced: for a caller that
 * syncs the file system next (kd_install_opts_t.before_sync). */
kd_status_t kd_cache_installed_stage(const char *root, const char *app, const char *group,
                                     const char *deploy_id, char *err, size_t errsz);
/* Removes the oldest deploy-* dirs of app/group beyond keep, never the
 * installed one nor the one named current. */
kd_status_t kd_cache_prune(const char *root, const char *app, const char *group, unsigned keep,
                           const char *current, char *err, size_t errsz);

#endif
