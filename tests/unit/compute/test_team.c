/* test_team.c - the sleeping thread team: every member runs every job exactly once. */
#include <stdatomic.h>
#include <stdlib.h>

#include "pw_test.h"
#include "team.h"

struct tally {
    atomic_int nthreads_seen;
    atomic_int runs[8];
    atomic_int total;
};

static void count(void *arg, int t, int T)
{
    struct tally *c = arg;
    atomic_store(&c->nthreads_seen, T);
    atomic_fetch_add(&c->runs[t], 1);
    atomic_fetch_add(&c->total, 1);
}

static void check_team(int threads, int rounds)
{
    struct team *tm;
    struct pw_error err;
    CHECK(team_start(threads, &tm, &err) == 0);
    struct tally c = {0};
    for (int r = 0; r < rounds; r++) {
        int before = atomic_load(&c.total);
        team_run(tm, count, &c);
        CHECK(atomic_load(&c.total) == before + threads); /* all done on return */
    }
    CHECK(atomic_load(&c.nthreads_seen) == threads);
    for (int t = 0; t < threads; t++)
        CHECK(atomic_load(&c.runs[t]) == rounds);
    team_stop(tm);
}

static void test_team_of_three_runs_each_job_on_each_thread_once(void)
{
    check_team(3, 2000);
}

static void test_team_of_one_runs_on_the_caller(void)
{
    check_team(1, 10);
}

static void test_stop_of_null_team_is_harmless(void)
{
    team_stop(NULL);
    CHECK(1 == 1);
}

int main(void)
{
    RUN(test_team_of_three_runs_each_job_on_each_thread_once);
    RUN(test_team_of_one_runs_on_the_caller);
    RUN(test_stop_of_null_team_is_harmless);
    PW_TEST_MAIN();
}
