#include "ids.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

void kd_uuid_new(char out[KD_UUID_LEN])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int kd_uuid_valid(const char *s)
{
    uuid_t u;

    return s && uuid_parse(s, u) == 0;
}

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kd_now_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t kd_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void kd_self_name(const char *service, char *out, size_t outsz)
{
    char host[256];

    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(out, outsz, "%s@%s:%ld", service, host, (long)getpid());
}

void kd_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}
