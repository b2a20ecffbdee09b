/* `kdeploy broker` turns Nagle's algorithm off on its listeners, and the
 * connections it accepts inherit it: with it on, an answer sent while an
 * earlier one was not yet acknowledged waited for the client's delayed ACK,
 * 40 ms. Checked on the broker process's own sockets (pidfd_getfd: the test
 * is the broker's parent). */
#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "fsutil.h"
#include "testutil.h"

/* How many of pid's TCP sockets on port are listening or not, and how many
 * of each have TCP_NODELAY. */
static void count_sockets(pid_t pid, int port, int *listeners, int *listeners_nodelay,
                          int *accepted, int *accepted_nodelay)
{
    char dir[64];
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    DIR *d;
    struct dirent *e;

    *listeners = *listeners_nodelay = *accepted = *accepted_nodelay = 0;
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    if (pidfd < 0 || !(d = opendir(dir))) {
        CHECK_MSG(0, "cannot look at the broker's descriptors");
        if (pidfd >= 0)
            close(pidfd);
        return;
    }
    while ((e = readdir(d))) {
        int fd, listening = 0, nodelay = 0;
        socklen_t len = sizeof listening, nlen = sizeof nodelay, sl;
        struct sockaddr_in sin;

        if (e->d_name[0] == '.')
            continue;
        fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0);
        if (fd < 0)
            continue;
        sl = sizeof sin;
        if (getsockname(fd, (struct sockaddr *)&sin, &sl) == 0 && sin.sin_family == AF_INET &&
            ntohs(sin.sin_port) == port &&
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
            getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &nlen) == 0) {
            *(listening ? listeners : accepted) += 1;
            *(listening ? listeners_nodelay : accepted_nodelay) += nodelay != 0;
        }
        close(fd);
    }
    closedir(d);
    close(pidfd);
}

int main(void)
{
    char dir[PATH_MAX], brokers[256], err[256];
    pid_t broker;
    int port, client, l, ln, a, an;
    struct sockaddr_in to = {.sin_family = AF_INET};

    if (tu_scratch(dir, "brokersock") != 0 ||
        (broker = tu_start_broker(dir, 1, brokers, sizeof brokers)) < 0) {
        fprintf(stderr, "the broker did not start (see %s)\n", dir);
        CHECK(0);
        return check_summary();
    }
    port = atoi(strrchr(brokers, ':') ? strrchr(brokers, ':') + 1 : "0");
    to.sin_port = htons((uint16_t)port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    client = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(client >= 0 && connect(client, (struct sockaddr *)&to, sizeof to) == 0);
    /* The broker accepts from its own thread: give it the time to. */
    for (int i = 0; i < 100; i++) {
        count_sockets(broker, port, &l, &ln, &a, &an);
        if (a > 0)
            break;
        tu_sleep_ms(20);
    }
    CHECK_MSG(l == 1 && ln == 1, "listener with TCP_NODELAY: %d of %d", ln, l);
    CHECK_MSG(a >= 1 && an == a, "accepted connections with TCP_NODELAY: %d of %d", an, a);
    close(client);
    tu_stop(&broker, SIGTERM);
    if (!check_failed)
        kd_remove_tree(dir, err, sizeof err);
    return check_summary();
}
