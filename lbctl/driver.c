/* The driver table and what every driver shares: name checks and waits. */
#include "driver.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const kd_lb_driver_t *const drivers[] = {
    &kd_lb_haproxy_driver,
    &kd_lb_command_driver,
};

const kd_lb_driver_t *kd_lb_driver_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof drivers / sizeof drivers[0]; i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

const char *kd_lb_driver_names(void)
{
    return "haproxy, command";
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

bool kd_lb_name_valid(const char *s)
{
    size_t n = 0;

    if (!s || s[0] == '-') /* an operator's command would read it as an option */
        return false;
    for (; s[n]; n++)
        if (n >= KD_LB_NAME_MAX || !name_char(s[n]))
            return false;
    return n > 0;
}

kd_status_t kd_lb_name_check(const char *what, const char *s, char *err, size_t errsz)
{
    char shown[80];
    size_t i = 0;

    if (kd_lb_name_valid(s))
        return KD_OK;
    if (!s || !*s)
        return kd_err(err, errsz, KD_EREFUSED, "refused: no %s given", what);
    /* Shows the bad value without its control characters or a flood. */
    for (; s[i] && i < sizeof shown - 4; i++)
        shown[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    snprintf(shown + i, sizeof shown - i, "%s", s[i] ? "..." : "");
    return kd_err(err, errsz, KD_EREFUSED,
                  "refused: %s '%s' is not 1 to %d characters of [A-Za-z0-9._-] "
                  "(not starting with '-')", what, shown, KD_LB_NAME_MAX);
}

bool kd_lb_sleep(unsigned ms, volatile sig_atomic_t *stop)
{
    while (ms > 0) {
        unsigned step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};

        if (stop && *stop)
            return false;
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !(stop && *stop);
}
