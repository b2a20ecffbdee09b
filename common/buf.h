/* A bounded growable byte buffer (always NUL-terminated), for text of
 * unknown size from the outside world: hook output, file contents, URLs. */
#ifndef KD_BUF_H
#define KD_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "status.h"

typedef struct kd_buf {
    char *data;   /* NUL-terminated; NULL until the first append */
    size_t len;   /* bytes used, excluding the NUL */
    size_t cap;   /* bytes allocated */
    size_t max;   /* appends past this many bytes fail with KD_ETOOLARGE; 0 = 64 MiB */
} kd_buf_t;

#define KD_BUF_INIT(maxlen) { NULL, 0, 0, (maxlen) }

void kd_buf_init(kd_buf_t *b, size_t max);
kd_status_t kd_buf_append(kd_buf_t *b, const void *data, size_t len);
kd_status_t kd_buf_appends(kd_buf_t *b, const char *s);
kd_status_t kd_buf_printf(kd_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
kd_status_t kd_buf_vprintf(kd_buf_t *b, const char *fmt, va_list ap);
/* Returns the text so far: never NULL (an empty buffer gives ""). */
const char *kd_buf_str(const kd_buf_t *b);
void kd_buf_reset(kd_buf_t *b);
/* Frees the storage; the buffer can be used again afterwards. */
void kd_buf_free(kd_buf_t *b);
/* Hands the storage to the caller (free() it) and empties the buffer. */
char *kd_buf_steal(kd_buf_t *b);

#endif
