/* The haproxy driver against a real HAProxy: block drains then puts the
 * server in maintenance (and waits for a slow request in flight), allow
 * makes it ready and healthy, swap changes the map in HAProxy and on disk
 * with compare-and-swap, an unreachable socket fails after its retries,
 * unsafe names are refused. The test serves the backends' HTTP itself. */
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "check.h"
#include "testutil.h"
#include "driver.h"
#include "fsutil.h"
#include "lb_harness.h"

static char g_dir[PATH_MAX], g_sock[PATH_MAX], g_map[PATH_MAX], g_state[PATH_MAX];
static int g_fe_port;
static void *g_drv;
static const kd_lb_driver_t *hap = &kd_lb_haproxy_driver;
static char g_err[4096];

/* ---- set-up ---- */

typedef struct ports {
    int blue1, blue2, green1, green2, web, dead;
} ports_t;

static int start_servers(ports_t *p)
{
    if (lbh_http_server("b1", &p->blue1) < 0 || lbh_http_server("b2", &p->blue2) < 0 ||
        lbh_http_server("g1", &p->green1) < 0 || lbh_http_server("g2", &p->green2) < 0 ||
        lbh_http_server("w1", &p->web) < 0)
        return -1;
    p->dead = lbh_free_port();
    return 0;
}

static ports_t g_ports;

/* HAProxy's configuration: the runtime API on sock, the frontend on port;
 * with state, servers start as the state file says. */
static void write_config(const char *cfg, const ports_t *p, const char *sock, int port,
                         bool state)
{
    FILE *f = fopen(cfg, "w");

    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f,
            "global\n"
            "    stats socket %s level admin\n"
            "%s%s%s"
            "defaults\n"
            "%s"
            "    mode http\n"
            "    timeout connect 1s\n"
            "    timeout client 10s\n"
            "    timeout server 10s\n"
            "frontend fe\n"
            "    bind 127.0.0.1:%d\n"
            "    use_backend web if { path_beg /web/ }\n"
            "    use_backend %%[str(shop-svc),map(%s)]\n"
            "backend blue\n"
            "    server b1 127.0.0.1:%d check inter 200ms\n"
            "    server b2 127.0.0.1:%d\n"
            "backend green\n"
            "    server g1 127.0.0.1:%d check inter 200ms\n"
            "    server g2 127.0.0.1:%d\n"
            "backend web\n"
            "    balance first\n"
            "    server w1 127.0.0.1:%d check inter 200ms\n"
            "    server w2 127.0.0.1:%d check inter 200ms\n"
            "    server wdead 127.0.0.1:%d check inter 200ms\n",
            sock, state ? "    server-state-file " : "", state ? g_state : "", state ? "\n" : "",
            state ? "    load-server-state-from-file global\n" : "", port, g_map, p->blue1,
            p->blue2, p->green1, p->green2, p->web, p->web, p->dead);
    fclose(f);
}

static bool wait_status(const char *group, const char *host, const char *want, int ms)
{
    char status[64];

    for (int waited = 0; waited <= ms; waited += 50) {
        lbh_stat(g_sock, group, host, "status", status, sizeof status);
        if (strcmp(status, want) == 0)
            return true;
        tu_sleep_ms(50);
    }
    return false;
}

static int setup(void)
{
    char cfg[PATH_MAX], log[PATH_MAX];
    ports_t *p = &g_ports;
    kd_lb_conf_t lc = {.drain_timeout_s = 10, .health_timeout_s = 5};

    if (tu_scratch(g_dir, "haproxy-") != 0)
        return -1;
    tu_pathf(g_sock, "%s/admin.sock", g_dir);
    tu_pathf(g_map, "%s/services.map", g_dir);
    tu_pathf(g_state, "%s/servers.state", g_dir);
    tu_pathf(cfg, "%s/haproxy.cfg", g_dir);
    tu_pathf(log, "%s/haproxy.log", g_dir);
    tu_write_text(g_map, "# service -> server group\nshop-svc blue\nother-svc web\n");
    g_fe_port = lbh_free_port();
    if (start_servers(p) != 0)
        return -1;
    write_config(cfg, p, g_sock, g_fe_port, false);
    if (lbh_haproxy(cfg, g_sock, log) < 0) {
        char *text = tu_read_text(log);

        fprintf(stderr, "haproxy did not start:\n%s\n", text ? text : "");
        free(text);
        return -1;
    }
    if (!wait_status("blue", "b1", "UP", 5000) || !wait_status("web", "w1", "UP", 5000))
        fprintf(stderr, "warning: servers not UP yet\n");
    lc.haproxy_socket = g_sock;
    lc.server_state_file = g_state;
    return hap->open(&lc, &g_drv, g_err, sizeof g_err) == KD_OK ? 0 : -1;
}

/* ---- block and allow ---- */

static void test_block_puts_server_in_maintenance(void)
{
    char *state;

    CHECK_MSG(hap->block(g_drv, "blue", "b2", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    CHECK(lbh_admin_state(g_sock, "blue", "b2") & 1);
    CHECK(wait_status("blue", "b2", "MAINT", 1000));
    state = tu_read_text(g_state);
    CHECK_MSG(state && strncmp(state, "1\n# be_id", 9) == 0, "state file: %s",
              state ? state : "(none)");
    CHECK_CONTAINS(state, " blue 2 b2 ");
    free(state);
}

static void test_block_twice_is_harmless(void)
{
    CHECK_MSG(hap->block(g_drv, "blue", "b2", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    CHECK(lbh_admin_state(g_sock, "blue", "b2") & 1);
}

static void test_allow_makes_server_ready(void)
{
    char body[64];

    CHECK_MSG(hap->allow(g_drv, "blue", "b2", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    CHECK(lbh_admin_state(g_sock, "blue", "b2") == 0);
    CHECK(wait_status("blue", "b2", "no check", 0));
    CHECK(lbh_http_get(g_fe_port, "/", body, sizeof body) == 200);
    CHECK(strcmp(body, "b1") == 0 || strcmp(body, "b2") == 0);
}

static void test_allow_waits_for_health_check(void)
{
    CHECK_MSG(hap->block(g_drv, "blue", "b1", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    CHECK(wait_status("blue", "b1", "MAINT", 0));
    CHECK_MSG(hap->allow(g_drv, "blue", "b1", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    CHECK(lbh_admin_state(g_sock, "blue", "b1") == 0);
    CHECK(wait_status("blue", "b1", "UP", 0));
}

static void test_allow_of_an_unhealthy_server_fails(void)
{
    int64_t t0;
    kd_status_t st;

    CHECK_MSG(hap->block(g_drv, "web", "wdead", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    t0 = kd_mono_ms();
    st = hap->allow(g_drv, "web", "wdead", 1, g_err, sizeof g_err);
    CHECK(st == KD_EFAILED);
    CHECK_CONTAINS(g_err, "not healthy after 1 s");
    CHECK(kd_mono_ms() - t0 >= 900);
}

/* ---- drain ---- */

typedef struct slow_req {
    int code;
    char body[64];
    int64_t done_ms;
} slow_req_t;

static void *slow_request(void *arg)
{
    slow_req_t *r = arg;

    r->code = lbh_http_get(g_fe_port, "/web/slow", r->body, sizeof r->body);
    r->done_ms = kd_mono_ms();
    return NULL;
}

static void test_block_waits_for_request_in_flight(void)
{
    slow_req_t r = {0};
    char scur[32] = "";
    pthread_t th;
    int64_t returned_ms;

    CHECK(pthread_create(&th, NULL, slow_request, &r) == 0);
    for (int i = 0; i < 40 && strcmp(scur, "1") != 0; i++) {
        tu_sleep_ms(25);
        lbh_stat(g_sock, "web", "w1", "scur", scur, sizeof scur);
    }
    CHECK_STREQ(scur, "1");
    CHECK_MSG(hap->block(g_drv, "web", "w1", 0, g_err, sizeof g_err) == KD_OK, "%s", g_err);
    returned_ms = kd_mono_ms();
    pthread_join(th, NULL);
    CHECK(r.code == 200);
    CHECK_STREQ(r.body, "w1");
    CHECK_MSG(returned_ms >= r.done_ms, "block returned %lld ms before the request ended",
              (long long)(r.done_ms - returned_ms));
    CHECK(lbh_admin_state(g_sock, "web", "w1") & 1);
    CHECK(hap->allow(g_drv, "web", "w1", 0, g_err, sizeof g_err) == KD_OK);
}

/* ---- swap ---- */

static bool map_says(const char *value)
{
    kd_buf_t out = KD_BUF_INIT(1 << 20);
    char want[64];
    bool ok;

    snprintf(want, sizeof want, " shop-svc %s\n", value);
    ok = lbh_cli(g_sock, "show map", &out) == 0 && strstr(kd_buf_str(&out), g_map);
    {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof cmd, "show map %s", g_map);
        ok = ok && lbh_cli(g_sock, cmd, &out) == 0 && strstr(kd_buf_str(&out), want);
    }
    kd_buf_free(&out);
    return ok;
}

static void test_swap_changes_map_and_file(void)
{
    char body[64], *text;

    CHECK(map_says("blue"));
    CHECK_MSG(hap->swap(g_drv, "shop-svc", "blue", "green", 0, g_err, sizeof g_err) == KD_OK,
              "%s", g_err);
    CHECK(map_says("green"));
    text = tu_read_text(g_map);
    CHECK_STREQ(text, "# service -> server group\nshop-svc green\nother-svc web\n");
    free(text);
    CHECK(lbh_http_get(g_fe_port, "/", body, sizeof body) == 200);
    CHECK(strcmp(body, "g1") == 0 || strcmp(body, "g2") == 0);
}

static void test_stale_swap_is_a_conflict(void)
{
    kd_status_t st = hap->swap(g_drv, "shop-svc", "blue", "web", 0, g_err, sizeof g_err);

    CHECK(st == KD_ECONFLICT);
    CHECK_CONTAINS(g_err, "'green'");
    CHECK(map_says("green"));
}

static void test_swap_already_done_succeeds(void)
{
    CHECK_MSG(hap->swap(g_drv, "shop-svc", "blue", "green", 0, g_err, sizeof g_err) == KD_OK,
              "%s", g_err);
    CHECK(map_says("green"));
    CHECK_MSG(hap->swap(g_drv, "shop-svc", "green", "blue", 0, g_err, sizeof g_err) == KD_OK,
              "%s", g_err);
    CHECK(map_says("blue"));
}

/* web's wdead fails its checks: traffic never moves to a group with a
 * server in service that is down. */
static void test_swap_to_an_unhealthy_group_fails(void)
{
    int64_t t0 = kd_mono_ms();

    CHECK(hap->swap(g_drv, "shop-svc", "blue", "web", 1, g_err, sizeof g_err) == KD_EFAILED);
    CHECK_CONTAINS(g_err, "group web is not healthy");
    CHECK_CONTAINS(g_err, "wdead");
    CHECK(kd_mono_ms() - t0 >= 900);
    CHECK(map_says("blue"));
}

static void test_first_swap_adds_the_service(void)
{
    char *text;

    CHECK_MSG(hap->swap(g_drv, "new-svc", "", "green", 0, g_err, sizeof g_err) == KD_OK, "%s",
              g_err);
    text = tu_read_text(g_map);
    CHECK_STREQ(text, "# service -> server group\nshop-svc blue\nother-svc web\nnew-svc green\n");
    free(text);
    /* No expected group: whatever the service points at now. */
    CHECK_MSG(hap->swap(g_drv, "new-svc", "", "blue", 0, g_err, sizeof g_err) == KD_OK, "%s",
              g_err);
    text = tu_read_text(g_map);
    CHECK_CONTAINS(text, "\nnew-svc blue\n");
    free(text);
}

/* A second HAProxy started from the files lbctl wrote (as at a reload)
 * starts with the blocked server in maintenance and the swapped map. */
static void test_reload_keeps_changes(void)
{
    char cfg[PATH_MAX], sock[PATH_MAX], log[PATH_MAX];
    kd_buf_t out = KD_BUF_INIT(1 << 20);
    pid_t pid;

    CHECK(hap->block(g_drv, "green", "g2", 0, g_err, sizeof g_err) == KD_OK);
    CHECK(hap->swap(g_drv, "shop-svc", "blue", "green", 0, g_err, sizeof g_err) == KD_OK);
    tu_pathf(cfg, "%s/reloaded.cfg", g_dir);
    tu_pathf(sock, "%s/reloaded.sock", g_dir);
    tu_pathf(log, "%s/reloaded.log", g_dir);
    write_config(cfg, &g_ports, sock, lbh_free_port(), true);
    pid = lbh_haproxy(cfg, sock, log);
    CHECK(pid > 0);
    CHECK(lbh_admin_state(sock, "green", "g2") & 1);
    CHECK(lbh_admin_state(sock, "green", "g1") == 0);
    {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof cmd, "show map %s", g_map);
        CHECK(lbh_cli(sock, cmd, &out) == 0);
        CHECK_CONTAINS(kd_buf_str(&out), " shop-svc green\n");
    }
    kd_buf_free(&out);
    lbh_stop(pid);
    CHECK(hap->allow(g_drv, "green", "g2", 0, g_err, sizeof g_err) == KD_OK);
    CHECK(hap->swap(g_drv, "shop-svc", "green", "blue", 0, g_err, sizeof g_err) == KD_OK);
}

static void test_swap_of_unknown_service_fails(void)
{
    CHECK(hap->swap(g_drv, "no-svc", "blue", "green", 0, g_err, sizeof g_err) == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "no-svc");
}

static void test_swap_only_touches_configured_maps(void)
{
    const char *others[] = {"/etc/haproxy/other.map"};
    const char *ours[] = {g_map};
    kd_lb_conf_t lc = {.haproxy_socket = g_sock, .map_files = others, .map_file_count = 1};
    void *drv = NULL;

    CHECK(hap->open(&lc, &drv, g_err, sizeof g_err) == KD_OK);
    CHECK(hap->swap(drv, "shop-svc", "blue", "green", 0, g_err, sizeof g_err) == KD_ENOTFOUND);
    CHECK_CONTAINS(g_err, "configured map files");
    CHECK(map_says("blue"));
    hap->close(drv);
    lc.map_files = ours;
    CHECK(hap->open(&lc, &drv, g_err, sizeof g_err) == KD_OK);
    CHECK(hap->swap(drv, "shop-svc", "blue", "blue", 0, g_err, sizeof g_err) == KD_OK);
    hap->close(drv);
}

/* ---- refusals and failures ---- */

static void test_unsafe_names_are_refused(void)
{
    CHECK(hap->block(g_drv, "blue", "b1;shutdown", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK_CONTAINS(g_err, "refused");
    CHECK(hap->block(g_drv, "blue", "b1\nshutdown sessions server blue/b1", 0, g_err,
                     sizeof g_err) == KD_EREFUSED);
    CHECK(hap->allow(g_drv, "blue b", "b1", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(hap->allow(g_drv, "", "b1", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(hap->swap(g_drv, "shop-svc", "blue", "green\nset map", 0, g_err, sizeof g_err) ==
          KD_EREFUSED);
    CHECK(hap->swap(g_drv, "shop svc", "", "green", 0, g_err, sizeof g_err) == KD_EREFUSED);
    CHECK(lbh_admin_state(g_sock, "blue", "b1") == 0);
    CHECK(map_says("blue"));
}

static void test_unknown_server_fails(void)
{
    kd_lb_conf_t lc = {.haproxy_socket = g_sock, .retries = 2, .retry_delay_ms = 10};
    void *quick = NULL;

    CHECK(hap->open(&lc, &quick, g_err, sizeof g_err) == KD_OK);
    CHECK(hap->block(quick, "blue", "b9", 0, g_err, sizeof g_err) == KD_EFAILED);
    CHECK_CONTAINS(g_err, "No such server");
    hap->close(quick);
}

static void test_unreachable_socket_fails_after_retries(void)
{
    kd_lb_conf_t lc = {0};
    char nowhere[PATH_MAX];
    void *drv = NULL;
    int64_t t0;
    kd_status_t st;

    tu_pathf(nowhere, "%s/nobody.sock", g_dir);
    lc.haproxy_socket = nowhere;
    CHECK(hap->open(&lc, &drv, g_err, sizeof g_err) == KD_OK);
    t0 = kd_mono_ms();
    st = hap->block(drv, "blue", "b1", 0, g_err, sizeof g_err);
    CHECK(st != KD_OK);
    CHECK_CONTAINS(g_err, "cannot connect");
    CHECK_CONTAINS(g_err, "5 tries");
    CHECK(kd_mono_ms() - t0 >= 2500);
    hap->close(drv);
}

static void test_open_needs_a_socket(void)
{
    kd_lb_conf_t lc = {0};
    void *drv = NULL;

    CHECK(hap->open(&lc, &drv, g_err, sizeof g_err) == KD_EINVAL);
    CHECK(kd_lb_driver_find("haproxy") == hap);
    CHECK(kd_lb_driver_find("nginx") == NULL);
}

int main(void)
{
    char err[256];

    if (access(LBH_HAPROXY, X_OK) != 0) {
        printf("haproxy not installed: skipped\n0 passed, 0 failed\n");
        return 0;
    }
    if (setup() != 0) {
        fprintf(stderr, "setup failed: %s\n", g_err);
        CHECK(0);
    } else {
        RUN(test_block_puts_server_in_maintenance);
        RUN(test_block_twice_is_harmless);
        RUN(test_allow_makes_server_ready);
        RUN(test_allow_waits_for_health_check);
        RUN(test_allow_of_an_unhealthy_server_fails);
        RUN(test_block_waits_for_request_in_flight);
        RUN(test_swap_changes_map_and_file);
        RUN(test_stale_swap_is_a_conflict);
        RUN(test_swap_already_done_succeeds);
        RUN(test_swap_to_an_unhealthy_group_fails);
        RUN(test_swap_of_unknown_service_fails);
        RUN(test_first_swap_adds_the_service);
        RUN(test_reload_keeps_changes);
        RUN(test_swap_only_touches_configured_maps);
        RUN(test_unsafe_names_are_refused);
        RUN(test_unknown_server_fails);
        RUN(test_unreachable_socket_fails_after_retries);
    }
    RUN(test_open_needs_a_socket);
    hap->close(g_drv);
    lbh_stop_all();
    if (g_dir[0])
        kd_remove_tree(g_dir, err, sizeof err);
    return check_summary();
}
