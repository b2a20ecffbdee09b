/* What the command-line tools share: the broker list read from a file
 * (--brokers-file), and the words the operator's tool counts and times
 * with. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "outcome.h"
#include "testutil.h"

static kd_status_t read_list(const char *dir, const char *text, char **out, char *err,
                             size_t errsz)
{
    char path[4096];

    tu_pathf(path, "%s/brokers", dir);
    tu_write_text(path, text);
    *out = NULL;
    return kd_cli_read_brokers_file(path, out, err, errsz);
}

static void test_brokers_file_lines_and_commas(void)
{
    char dir[4096], err[512], *list;

    CHECK(tu_scratch(dir, "brokers") == 0);
    CHECK(read_list(dir, "a:9092\n", &list, err, sizeof err) == KD_OK);
    CHECK_STREQ(list, "a:9092");
    free(list);
    CHECK(read_list(dir, "\n  a:9092 \r\nb:9092\n\nc:9092", &list, err, sizeof err) == KD_OK);
    CHECK_STREQ(list, "a:9092,b:9092,c:9092");
    free(list);
    CHECK(read_list(dir, "a:9092,b:9092,\n", &list, err, sizeof err) == KD_OK);
    CHECK_STREQ(list, "a:9092,b:9092");
    free(list);
}

static void test_brokers_file_refused(void)
{
    char dir[4096], path[4096], err[512], *list = NULL, *big;

    CHECK(tu_scratch(dir, "brokers") == 0);
    CHECK(read_list(dir, " \n\n", &list, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "empty");
    CHECK(list == NULL);
    tu_pathf(path, "%s/missing", dir);
    CHECK(kd_cli_read_brokers_file(path, &list, err, sizeof err) == KD_EIO);
    CHECK_CONTAINS(err, "No such file");
    /* Not a broker list: refused whole, not cut short. */
    big = malloc(70000);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    CHECK(read_list(dir, big, &list, err, sizeof err) == KD_EINVAL);
    CHECK_CONTAINS(err, "not a broker list");
    free(big);
}

static void test_counts_and_durations_in_words(void)
{
    char buf[64];

    CHECK_STREQ(kd_hosts_text(1, buf, sizeof buf), "1 host");
    CHECK_STREQ(kd_hosts_text(0, buf, sizeof buf), "0 hosts");
    CHECK_STREQ(kd_hosts_text(3, buf, sizeof buf), "3 hosts");
    CHECK_STREQ(kd_duration_text(4200, buf, sizeof buf), "4.2s");
    CHECK_STREQ(kd_duration_text(185000, buf, sizeof buf), "3m05s");
    CHECK_STREQ(kd_duration_text(7260000, buf, sizeof buf), "2h01m");
    CHECK_STREQ(kd_duration_text(-1, buf, sizeof buf), "-");
}

int main(void)
{
    RUN(test_brokers_file_lines_and_commas);
    RUN(test_brokers_file_refused);
    RUN(test_counts_and_durations_in_words);
    return check_summary();
}
