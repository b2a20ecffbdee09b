/* `kdeploy broker`: a Kafka-protocol broker on loopback, built on
 * librdkafka's mock cluster, with kdeploy's topics created. It keeps
 * everything in memory and serves one machine: a demo, tests, a laptop.
 * Production points every service at a real Kafka cluster instead. */
#include "cmd_broker.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "log.h"
#include "status.h"

typedef struct broker_opts {
    const char *brokers_file;
    const char *prefix;
    int partitions;
    int broker_count;
} broker_opts_t;

static volatile sig_atomic_t broker_stop, move_leaders, toggle_broker;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        move_leaders = 1;
    else if (sig == SIGUSR2)
        toggle_broker = 1;
    else
        broker_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kdeploy broker [options]\n"
            "Runs an embedded Kafka-protocol broker on 127.0.0.1 with kdeploy's topics,\n"
            "prints its bootstrap servers, and serves until SIGINT or SIGTERM.\n"
            "Everything is kept in memory; for one machine only.\n\n"
            "  --brokers-file FILE   also write the bootstrap servers to FILE (one line)\n"
            "  --partitions N        partitions per topic (default 6)\n"
            "  --broker-count N      mock brokers, 1 to 3 (default 1)\n"
            "  --topic-prefix P      topic name prefix (default kdeploy.)\n"
            "  --log-level L         error, warn, info or debug\n"
            "\nTest controls (for chaos tests): SIGUSR1 moves the leader of every partition to\n"
            "the next broker; SIGUSR2 takes the last broker down, or brings it back up.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, broker_opts_t *o)
{
    static const struct option longopts[] = {
        {"brokers-file", required_argument, NULL, 'f'},
        {"partitions", required_argument, NULL, 'p'},
        {"broker-count", required_argument, NULL, 'n'},
        {"topic-prefix", required_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, lvl;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': o->brokers_file = optarg; break;
        case 't': o->prefix = optarg; break;
        case 'p':
            if (parse_int(optarg, 1, 1000, &o->partitions) == 0)
                break;
            fprintf(stderr, "kdeploy broker: --partitions: 1 to 1000\n");
            return 2;
        case 'n':
            if (parse_int(optarg, 1, 3, &o->broker_count) == 0)
                break;
            fprintf(stderr, "kdeploy broker: --broker-count: 1 to 3\n");
            return 2;
        case 'l':
            if ((lvl = kd_log_level_parse(optarg)) < 0) {
                fprintf(stderr, "kdeploy broker: --log-level: error, warn, info or debug\n");
                return 2;
            }
            kd_log_setup("broker", (kd_log_level_t)lvl, 0);
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Written whole under a temporary name, then renamed, so that a reader
 * polling for the file never sees half a line. */
static kd_status_t write_brokers_file(const char *path, const char *bootstraps, char *err,
                                      size_t errsz)
{
    char tmp[4096];
    FILE *f;
    int ok;

    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return kd_err(err, errsz, KD_EINVAL, "%s: path too long", path);
    if (!(f = fopen(tmp, "w")))
        return kd_err(err, errsz, KD_EIO, "%s: %m", tmp);
    ok = fprintf(f, "%s\n", bootstraps) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return kd_err(err, errsz, KD_EIO, "%s: cannot write: %m", path);
    }
    return KD_OK;
}

static kd_status_t create_topics(rd_kafka_mock_cluster_t *mc, const broker_opts_t *o,
                                 char *err, size_t errsz)
{
    int replication = o->broker_count < 3 ? o->broker_count : 3;

    for (int t = 0; t < KD_TOPIC_COUNT; t++) {
        char name[256];
        rd_kafka_resp_err_t rerr;

        snprintf(name, sizeof name, "%s%s", o->prefix, kd_topic_suffix((kd_topic_t)t));
        rerr = rd_kafka_mock_topic_create(mc, name, o->partitions, replication);
        if (rerr)
            return kd_err(err, errsz, KD_EKAFKA, "creating topic %s: %s", name,
                          rd_kafka_err2str(rerr));
    }
    return KD_OK;
}

/* The test controls: what a real cluster does on its own (a leader moves,
 * a broker dies), on demand. */
static void move_all_leaders(rd_kafka_mock_cluster_t *mc, const broker_opts_t *o, int round)
{
    for (int t = 0; t < KD_TOPIC_COUNT; t++) {
        char name[256];

        snprintf(name, sizeof name, "%s%s", o->prefix, kd_topic_suffix((kd_topic_t)t));
        for (int p = 0; p < o->partitions; p++)
            rd_kafka_mock_partition_set_leader(mc, name, p,
                                               (p + round) % o->broker_count + 1);
    }
    kd_info("partition leaders moved (round %d)", round);
}

/* The mock cluster's listening sockets are this process's own; it leaves
 * Nagle's algorithm on, so a connection with two small answers in flight
 * (a producer's requests pipelined, a fetch beside a produce) held the
 * second until the client's delayed ACK, 40 ms later: every planner round
 * with records and commands paid it twice. Accepted connections inherit
 * TCP_NODELAY from their listener. Returns how many were set. */
static int nodelay_listeners(const char *bootstraps)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int set = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name), listening = 0, on = 1;
        socklen_t len = sizeof listening;
        struct sockaddr_in sin;
        socklen_t sl = sizeof sin;
        struct stat st;
        char port[16];
        const char *at;

        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
            getsockname(fd, (struct sockaddr *)&sin, &sl) != 0 || sin.sin_family != AF_INET)
            continue;
        /* Only the cluster's: its port is in the bootstrap list. */
        snprintf(port, sizeof port, ":%d", ntohs(sin.sin_port));
        for (at = strstr(bootstraps, port); at; at = strstr(at + 1, port))
            if (at[strlen(port)] == '\0' || at[strlen(port)] == ',')
                break;
        if (at && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0)
            set++;
    }
    closedir(d);
    return set;
}

static void serve(rd_kafka_mock_cluster_t *mc, const broker_opts_t *o)
{
    struct sigaction sa;
    sigset_t block, old;
    int round = 0;
    bool down = false;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    /* Wait with the signals blocked except inside sigsuspend: no lost wake-up. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, &old);
    while (!broker_stop) {
        sigsuspend(&old);
        if (move_leaders) {
            move_leaders = 0;
            move_all_leaders(mc, o, ++round);
        }
        if (toggle_broker) {
            toggle_broker = 0;
            down = !down;
            if (down)
                rd_kafka_mock_broker_set_down(mc, o->broker_count);
            else {
                rd_kafka_mock_broker_set_up(mc, o->broker_count);
                /* A broker taken down gets a new listener, as it came. */
                nodelay_listeners(rd_kafka_mock_cluster_bootstraps(mc));
            }
            kd_info("broker %d %s", o->broker_count, down ? "down" : "up again");
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static int run_broker(const broker_opts_t *o)
{
    char err[512];
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
    int rc_exit = 1;

    /* The handle only hosts the mock cluster; it never connects anywhere. */
    rd_kafka_conf_set(rc, "log_level", "3", NULL, 0);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, err, sizeof err))) {
        rd_kafka_conf_destroy(rc);
        kd_error("%s", err);
        return 1;
    }
    if (!(mc = rd_kafka_mock_cluster_new(rk, o->broker_count))) {
        kd_error("cannot start the mock cluster");
        rd_kafka_destroy(rk);
        return 1;
    }
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (nodelay_listeners(bootstraps) < o->broker_count)
        kd_warn("could not turn Nagle's algorithm off on every listener: answers may wait "
                "40 ms for the client's ACK");
    if (create_topics(mc, o, err, sizeof err) != KD_OK ||
        (o->brokers_file && write_brokers_file(o->brokers_file, bootstraps, err, sizeof err) != KD_OK)) {
        kd_error("%s", err);
        goto out;
    }
    printf("%s\n", bootstraps);
    fflush(stdout);
    kd_info("serving %d topics (%d partitions each, prefix %s) on %s", KD_TOPIC_COUNT,
            o->partitions, o->prefix, bootstraps);
    serve(mc, o);
    kd_info("stopping");
    rc_exit = 0;
out:
    if (o->brokers_file)
        unlink(o->brokers_file);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc_exit;
}

int kd_cmd_broker(int argc, char **argv)
{
    /* The same default as every other program (KDEPLOY_TOPIC_PREFIX), so a
     * shell that sets it gets a broker with the topics its tools use. */
    const char *env_prefix = getenv("KDEPLOY_TOPIC_PREFIX");
    broker_opts_t o = {NULL, env_prefix && *env_prefix ? env_prefix : KD_DEFAULT_TOPIC_PREFIX,
                       6, 1};
    int rc;

    kd_log_setup("broker", KD_LOG_INFO, 0);
    if ((rc = parse_args(argc, argv, &o)) >= 0)
        return rc;
    return run_broker(&o);
}
