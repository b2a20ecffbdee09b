/* kdeploy status codes: every fallible function returns one of these and,
 * where it can say more, fills a caller's error buffer (err, errsz). */
#ifndef KD_STATUS_H
#define KD_STATUS_H

#include <stddef.h>

#define KD_STATUS_MAP(XX)                                                     \
    XX(OK, "success")                                                         \
    XX(EINVAL, "invalid argument or input")                                   \
    XX(ENOMEM, "out of memory")                                               \
    XX(EIO, "input/output error")                                             \
    XX(ENOTFOUND, "not found")                                                \
    XX(ETIMEDOUT, "timed out")                                                \
    XX(ECHECKSUM, "checksum mismatch")                                        \
    XX(EREFUSED, "refused as unsafe")                                         \
    XX(EKAFKA, "kafka error")                                                 \
    XX(EPROTO, "malformed message")                                           \
    XX(ESIGNATURE, "missing or invalid signature")                            \
    XX(ECONFLICT, "conflict")                                                 \
    XX(ETOOLARGE, "too large")                                                \
    XX(EFAILED, "operation failed")                                           \
    XX(ESTOPPED, "stopped")

typedef enum {
#define XX(name, msg) KD_##name,
    KD_STATUS_MAP(XX)
#undef XX
    KD__STATUS_MAX
} kd_status_t;

/* Returns a static, human-readable text for a status. */
const char *kd_status_str(kd_status_t st);

/* Returns the status's symbolic name, e.g. "EINVAL". */
const char *kd_status_name(kd_status_t st);

/* Formats a message into err (if err and errsz are non-zero) and returns st,
 * so callers can write `return kd_err(err, errsz, KD_EINVAL, "...", ...)`. */
kd_status_t kd_err(char *err, size_t errsz, kd_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
