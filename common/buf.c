#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KD_BUF_DEFAULT_MAX ((size_t)64 * 1024 * 1024)

void kd_buf_init(kd_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static kd_status_t grow(kd_buf_t *b, size_t need)
{
    size_t max = b->max ? b->max : KD_BUF_DEFAULT_MAX;
    size_t cap;
    char *p;

    if (need > max)
        return KD_ETOOLARGE;
    if (need + 1 <= b->cap)
        return KD_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need + 1)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        return KD_ENOMEM;
    b->data = p;
    b->cap = cap;
    return KD_OK;
}

kd_status_t kd_buf_append(kd_buf_t *b, const void *data, size_t len)
{
    kd_status_t st = grow(b, b->len + len);

    if (st != KD_OK)
        return st;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return KD_OK;
}

kd_status_t kd_buf_appends(kd_buf_t *b, const char *s)
{
    return kd_buf_append(b, s, strlen(s));
}

kd_status_t kd_buf_vprintf(kd_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    kd_status_t st;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return KD_EINVAL;
    st = grow(b, b->len + (size_t)n);
    if (st != KD_OK)
        return st;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return KD_OK;
}

kd_status_t kd_buf_printf(kd_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    kd_status_t st;

    va_start(ap, fmt);
    st = kd_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return st;
}

const char *kd_buf_str(const kd_buf_t *b)
{
    return b->data ? b->data : "";
}

void kd_buf_reset(kd_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void kd_buf_free(kd_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *kd_buf_steal(kd_buf_t *b)
{
    char *p = b->data;

    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
