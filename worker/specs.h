/* Parsed appspecs, shared by the steps of a revision: a revision's appspec
 * is parsed once (at DownloadBundle) and every later step of it reuses the
 * parse, as long as the file is the same one (device, inode, size and
 * modification time). Safe to call from the threads of several hosts. */
#ifndef KD_SPECS_H
#define KD_SPECS_H

#include "appspec.h"
#include "status.h"

/* Finds the appspec of the bundle at root and returns it parsed in *out,
 * held until kd_specs_release. Errors as kd_appspec_load_dir's. */
kd_status_t kd_specs_get(const char *root, const kd_appspec_t **out, char *err, size_t errsz);

/* Lets go of a spec kd_specs_get returned; NULL is allowed. */
void kd_specs_release(const kd_appspec_t *spec);

/* How many parses kd_specs_get has done since the process started. */
unsigned long kd_specs_parses(void);

#endif
