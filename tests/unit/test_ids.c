/* Event ids: valid v4 UUIDs, never repeated, not even by a forked child
 * (ids come from a per-thread pool of random bytes). */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "ids.h"

static void test_ids_are_v4_and_distinct(void)
{
    char a[KD_UUID_LEN], b[KD_UUID_LEN];

    for (int i = 0; i < 1000; i++) {
        kd_uuid_new(a);
        kd_uuid_new(b);
        CHECK(kd_uuid_valid(a) && kd_uuid_valid(b));
        CHECK(strcmp(a, b) != 0);
        CHECK(a[14] == '4' && strchr("89ab", a[19]) != NULL);
    }
}

static void test_forked_child_does_not_repeat_its_parent(void)
{
    char parent[KD_UUID_LEN], child[KD_UUID_LEN] = "";
    int fds[2];
    pid_t pid;

    kd_uuid_new(parent); /* the pool is filled, with bytes left */
    CHECK(pipe(fds) == 0);
    if ((pid = fork()) == 0) {
        kd_uuid_new(child);
        _exit(write(fds[1], child, KD_UUID_LEN) == KD_UUID_LEN ? 0 : 1);
    }
    close(fds[1]);
    CHECK(read(fds[0], child, KD_UUID_LEN) == KD_UUID_LEN);
    close(fds[0]);
    waitpid(pid, NULL, 0);
    kd_uuid_new(parent); /* the id the child would have repeated */
    CHECK(kd_uuid_valid(child));
    CHECK_MSG(strcmp(parent, child) != 0, "parent and child both made %s", child);
}

int main(void)
{
    RUN(test_ids_are_v4_and_distinct);
    RUN(test_forked_child_does_not_repeat_its_parent);
    return check_summary();
}
