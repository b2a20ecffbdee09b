#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

kd_log_level_t kd_log_threshold = KD_LOG_INFO;

static const char *log_component = "kdeploy";
static int log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void kd_log_setup(const char *component, kd_log_level_t level, int json)
{
    if (component)
        log_component = component;
    kd_log_threshold = level;
    log_json = json;
}

int kd_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    if (strcmp(name, "warning") == 0)
        return KD_LOG_WARN;
    return -1;
}

void kd_log_write(kd_log_level_t level, const char *fmt, ...)
{
    char msg[2048];
    char ts[64];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

    if (log_json) {
        json_t *o = json_pack("{s:s, s:I, s:s, s:s}", "level", level_names[level],
                              "ts", (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000,
                              "component", log_component, "msg", msg);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;

        if (line)
            fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", ts, (long)(tv.tv_usec / 1000),
                level_names[level], log_component, msg);
    }
}
