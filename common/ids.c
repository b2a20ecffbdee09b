#include "ids.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

/* Random bytes for UUIDs, drawn from the kernel a page at a time: libuuid
 * makes several system calls per id (getpid, getuid, getrandom...), which
 * at a planner's rate of events cost more than the events themselves. */
#define POOL_BYTES 4096
static _Thread_local unsigned char pool[POOL_BYTES];
static _Thread_local size_t pool_left;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* A forked child must not repeat its parent's ids: it starts with an empty
 * pool (only the forking thread lives on in the child). */
static void pool_forget(void)
{
    pool_left = 0;
}

static void pool_watch_forks(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static void random_16(unsigned char out[16])
{
    pthread_once(&pool_once, pool_watch_forks);
    if (pool_left < 16) {
        size_t got = 0;

        while (got < POOL_BYTES) {
            ssize_t n = getrandom(pool + got, POOL_BYTES - got, 0);

            if (n <= 0) {
                if (n < 0 && errno == EINTR)
                    continue;
                break;
            }
            got += (size_t)n;
        }
        if (got < POOL_BYTES) {
            /* No entropy from the kernel: libuuid finds some elsewhere. */
            uuid_generate_random(out);
            return;
        }
        pool_left = POOL_BYTES;
    }
    memcpy(out, pool + POOL_BYTES - pool_left, 16);
    memset(pool + POOL_BYTES - pool_left, 0, 16);
    pool_left -= 16;
}

void kd_uuid_new(char out[KD_UUID_LEN])
{
    uuid_t u;

    random_16(u);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4: random */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
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
