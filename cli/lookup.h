/* Which deployment an operator means: a full deploy id, or the start of
 * one when only one deployment's id starts so (the short ids watch and
 * list print). */
#ifndef KD_LOOKUP_H
#define KD_LOOKUP_H

#include <stddef.h>

#include "bus.h"

/* Reads the deployments and requests topics to their end (a create just
 * sent and not answered yet is a deployment too) and fills full with the
 * id given stands for. KD_ENOTFOUND: "no deployment 'abc'"; KD_ECONFLICT:
 * several ids start so, the error lists them. */
kd_status_t kd_lookup_id(const kd_bus_conf_t *conf, const char *given, char *full,
                         size_t fullsz, char *err, size_t errsz);

#endif
