/* How every kdeploy daemon learns it should stop. */
#ifndef KD_SIGNALS_H
#define KD_SIGNALS_H

#include <signal.h>

/* SIGINT and SIGTERM set *stop to 1 (the daemon finishes what it is doing
 * and exits); SIGPIPE is ignored, so a closed socket is an error value. */
void kd_signals_install(volatile sig_atomic_t *stop);

#endif
