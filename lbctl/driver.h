/* Load-balancer drivers: how lbctl blocks, allows and swaps traffic on one
 * kind of load balancer. Each driver is a table of function pointers in its
 * own file (haproxy.c, command.c), chosen once by name at start-up, so the
 * traffic loop knows nothing of any load balancer. */
#ifndef KD_LB_DRIVER_H
#define KD_LB_DRIVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define KD_LB_DEFAULT_DRAIN_S 30
#define KD_LB_DEFAULT_HEALTH_S 30
#define KD_LB_DEFAULT_COMMAND_S 60
#define KD_LB_NAME_MAX 255 /* longest server, group or service name accepted */

/* Everything a driver may need; each driver reads its own fields. The
 * strings are referenced, not copied: they must outlive the driver state. */
typedef struct kd_lb_conf {
    unsigned drain_timeout_s;   /* block: longest wait for sessions to end (0: default) */
    unsigned health_timeout_s;  /* allow: longest wait for a health check (0: default) */
    /* haproxy */
    const char *haproxy_socket;           /* runtime API socket, `level admin` */
    const char *const *map_files;         /* maps lbctl may change; none: any map */
    size_t map_file_count;
    const char *server_state_file;        /* written after block/allow; NULL: none */
    unsigned retries;                     /* runtime API tries per command (0: 5) */
    unsigned retry_delay_ms;              /* first backoff delay, doubled each try (0: 200) */
    /* command */
    const char *command;                  /* the operator's executable */
    unsigned command_timeout_s;           /* 0: default */
    /* Set by a signal handler: long waits give up with KD_ESTOPPED. */
    volatile sig_atomic_t *stop;
} kd_lb_conf_t;

/* One driver. Every operation is idempotent: applying the same change twice
 * leaves the load balancer as once. timeout_s is the command's own bound
 * (0: the driver's default). Errors fill err and return a status:
 * KD_EREFUSED for unsafe names, KD_ECONFLICT for a swap whose service
 * points elsewhere, KD_ETIMEDOUT for a command killed at its timeout,
 * KD_ESTOPPED when *conf->stop was set during a wait. */
typedef struct kd_lb_driver {
    const char *name;
    /* Checks conf and creates the driver's state (*state, freed by close). */
    kd_status_t (*open)(const kd_lb_conf_t *conf, void **state, char *err, size_t errsz);
    /* Drains the server `host` of server group `group`, then takes it out. */
    kd_status_t (*block)(void *state, const char *group, const char *host, unsigned timeout_s,
                         char *err, size_t errsz);
    /* Puts the server back and waits until it is healthy. */
    kd_status_t (*allow)(void *state, const char *group, const char *host, unsigned timeout_s,
                         char *err, size_t errsz);
    /* Points service at server group `to`, if it points at `from` now (an
     * empty from: whatever it points at). Already at `to` is success. */
    kd_status_t (*swap)(void *state, const char *service, const char *from, const char *to,
                        unsigned timeout_s, char *err, size_t errsz);
    /* Frees the state; accepts NULL. */
    void (*close)(void *state);
} kd_lb_driver_t;

extern const kd_lb_driver_t kd_lb_haproxy_driver;
extern const kd_lb_driver_t kd_lb_command_driver;

/* The driver called name ("haproxy", "command"), or NULL. */
const kd_lb_driver_t *kd_lb_driver_find(const char *name);
/* The known drivers' names, comma-separated, for help and errors. */
const char *kd_lb_driver_names(void);

/* True if s is a safe load-balancer name: 1 to KD_LB_NAME_MAX characters
 * of [A-Za-z0-9._-], not starting with '-'. Names come from the network
 * and end up in command lines and argv, so nothing else passes. */
bool kd_lb_name_valid(const char *s);
/* KD_OK if s is a valid name, else KD_EREFUSED with err naming what (e.g.
 * "server group") and the offending value, made printable. */
kd_status_t kd_lb_name_check(const char *what, const char *s, char *err, size_t errsz);

/* Sleeps ms milliseconds, in short steps; returns false early if *stop
 * (may be NULL) becomes set. */
bool kd_lb_sleep(unsigned ms, volatile sig_atomic_t *stop);

#endif
