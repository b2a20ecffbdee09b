/* HAProxy's runtime API (the stats socket), as the haproxy driver speaks
 * it: one command per connection, the reply read to end of file. */
#ifndef KD_LB_HAPROXY_H
#define KD_LB_HAPROXY_H

#include <stddef.h>

#include "buf.h"
#include "status.h"

#define KD_HAPROXY_IO_TIMEOUT_MS 5000

/* Sends one runtime API command (without its newline) to the unix socket
 * at path and appends the whole reply to reply. One try, no retry: KD_EIO
 * when HAProxy cannot be reached, KD_ETIMEDOUT when it does not answer
 * within timeout_ms, KD_ETOOLARGE past reply's bound. Whether the reply
 * is an error is the caller's to judge. */
kd_status_t kd_haproxy_cli(const char *path, const char *cmd, kd_buf_t *reply, int timeout_ms,
                           char *err, size_t errsz);

#endif
