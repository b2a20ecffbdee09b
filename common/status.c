#include "status.h"

#include <stdarg.h>
#include <stdio.h>

const char *kd_status_str(kd_status_t st)
{
    switch (st) {
#define XX(name, msg) case KD_##name: return msg;
        KD_STATUS_MAP(XX)
#undef XX
    default: return "unknown status";
    }
}

const char *kd_status_name(kd_status_t st)
{
    switch (st) {
#define XX(name, msg) case KD_##name: return #name;
        KD_STATUS_MAP(XX)
#undef XX
    default: return "UNKNOWN";
    }
}

kd_status_t kd_err(char *err, size_t errsz, kd_status_t st, const char *fmt, ...)
{
    va_list ap;

    if (err && errsz) {
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
    }
    return st;
}
