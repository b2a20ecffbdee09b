/* A tiny test harness: each test file is one executable run by ctest.
 * CHECK records a failure and goes on; the summary line is
 * "N passed, N failed" and the exit code is non-zero on any failure. */
#ifndef KD_TEST_CHECK_H
#define KD_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (cond) {                                                           \
            check_passed++;                                                   \
        } else {                                                              \
            check_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
        }                                                                     \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (cond) {                                                           \
            check_passed++;                                                   \
        } else {                                                              \
            check_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__,  \
                    #cond);                                                   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

#define CHECK_STREQ(a, b)                                                     \
    do {                                                                      \
        const char *check_a_ = (a), *check_b_ = (b);                          \
        CHECK_MSG(check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0,    \
                  "\"%s\" != \"%s\"", check_a_ ? check_a_ : "(null)",         \
                  check_b_ ? check_b_ : "(null)");                            \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                           \
    do {                                                                      \
        const char *check_h_ = (hay), *check_n_ = (needle);                   \
        CHECK_MSG(check_h_ && strstr(check_h_, check_n_) != NULL,             \
                  "\"%s\" does not contain \"%s\"",                           \
                  check_h_ ? check_h_ : "(null)", check_n_);                  \
    } while (0)

#define RUN(test)                                                             \
    do {                                                                      \
        int check_before_ = check_failed;                                     \
        test();                                                               \
        fprintf(stderr, "%s %s\n", check_failed == check_before_ ? "ok  " : "FAIL", #test); \
    } while (0)

static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
