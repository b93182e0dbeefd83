/* pw_test.h - the tiny unit-test harness every tests/unit program uses.
 *
 * A test is a `static void test_xxx(void)`; RUN(test_xxx) runs it and counts it as
 * failed when any CHECK inside failed.  PW_TEST_MAIN ends main(): it prints the plain
 * "N passed, N failed" line ctest logs and CI reads, and returns non-zero on failure. */
#ifndef PW_TEST_H
#define PW_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int pw_test_passed, pw_test_failed, pw_test_current_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            pw_test_current_failed = 1;                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *pw_a_ = (a), *pw_b_ = (b);                                                     \
        if (!pw_a_ || !pw_b_ || strcmp(pw_a_, pw_b_) != 0) {                                       \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s = \"%s\", expected \"%s\"\n", __FILE__,   \
                    __LINE__, #a, pw_a_ ? pw_a_ : "(null)", pw_b_ ? pw_b_ : "(null)");             \
            pw_test_current_failed = 1;                                                            \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        pw_test_current_failed = 0;                                                                \
        fn();                                                                                      \
        if (pw_test_current_failed) {                                                              \
            pw_test_failed++;                                                                      \
            fprintf(stderr, "FAIL %s\n", #fn);                                                     \
        } else {                                                                                   \
            pw_test_passed++;                                                                      \
            printf("ok   %s\n", #fn);                                                              \
        }                                                                                          \
    } while (0)

#define PW_TEST_MAIN()                                                                             \
    do {                                                                                           \
        printf("%d passed, %d failed\n", pw_test_passed, pw_test_failed);                          \
        return pw_test_failed ? 1 : 0;                                                             \
    } while (0)

/* xorshift64*: the tests' reproducible random numbers (state must start non-zero). */
static inline uint64_t pw_test_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545f4914f6cdd1dull;
}

#endif
