#include "signals.h"

#include <string.h>

static volatile sig_atomic_t *stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    if (stop_flag)
        *stop_flag = 1;
}

void kd_signals_install(volatile sig_atomic_t *stop)
{
    struct sigaction sa;

    stop_flag = stop;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
