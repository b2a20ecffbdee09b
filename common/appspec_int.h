/* Text forms inside an appspec that need more than a table: the agent's ACL
 * entries and SELinux ranges. Shared by the parser and its tests. */
#ifndef KD_APPSPEC_INT_H
#define KD_APPSPEC_INT_H

#include <stddef.h>

#include "appspec.h"

/* Parses one ACL entry as the AWS agent does: "[d[efault]:][u|g|m|o]:name:perms"
 * with 2 to 4 parts, perms either one octal digit or letters of "rwx-".
 * Fills ace (name newly allocated) and returns KD_OK, or returns KD_EINVAL
 * with the reason in why. Base entries (user::, group::, other::) are
 * refused, as the agent refuses them: `mode` sets them. */
kd_status_t kd_appspec_ace_parse(const char *text, kd_appspec_ace_t *ace, char *why,
                                 size_t whysz);

/* Checks an SELinux MLS range as the agent does: s<N>[-s<M>][:<cats>], cats
 * a comma list of c<N> or c<N>.c<M> (N at most 1023), M >= N, no category
 * twice. KD_OK, or KD_EINVAL with the reason in why. */
kd_status_t kd_appspec_range_check(const char *text, char *why, size_t whysz);

#endif
