/* test_team.c - the sleeping thread team: every member runs every job exactly once, with
 * or without polling between jobs; team_for runs every task exactly once. */
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

static void check_team(int threads, int rounds, double spin)
{
    struct team *tm;
    struct pw_error err;
    CHECK(team_start(threads, &tm, &err) == 0);
    team_set_spin(tm, spin);
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
    check_team(3, 2000, 0);
}

/* Polling members see each job once too, whether it comes while they poll or after
 * they went to sleep. */
static void test_polling_team_runs_each_job_on_each_thread_once(void)
{
    check_team(3, 2000, 100e-6);
    check_team(2, 20, 1e-9);
}

static void test_team_of_one_runs_on_the_caller(void)
{
    check_team(1, 10, 0);
}

struct marks {
    atomic_int hits[1000];
    atomic_int order_ok;
    atomic_int last;
};

static void mark(void *ctx, size_t i)
{
    struct marks *m = ctx;
    atomic_fetch_add(&m->hits[i], 1);
    if ((int)i != atomic_load(&m->last) + 1)
        atomic_store(&m->order_ok, 0);
    atomic_store(&m->last, (int)i);
}

static void check_team_for(struct team *tm, size_t ntasks, int in_order)
{
    static struct marks m; /* 4 KB: off the stack */
    for (size_t i = 0; i < 1000; i++)
        atomic_store(&m.hits[i], 0);
    atomic_store(&m.order_ok, 1);
    atomic_store(&m.last, -1);
    team_for(tm, ntasks, mark, &m);
    for (size_t i = 0; i < 1000; i++)
        CHECK(atomic_load(&m.hits[i]) == (i < ntasks)); /* all done on return */
    if (in_order)
        CHECK(atomic_load(&m.order_ok) == 1);
}

static void test_team_for_runs_every_task_once(void)
{
    struct team *tm;
    struct pw_error err;
    CHECK(team_start(3, &tm, &err) == 0);
    team_set_spin(tm, 50e-6);
    for (int r = 0; r < 200; r++)
        check_team_for(tm, (size_t)(r * 37 % 1000), 0);
    check_team_for(tm, 0, 0);
    check_team_for(tm, 1, 0);
    team_stop(tm);
}

static void test_team_for_without_team_runs_tasks_in_order_on_caller(void)
{
    check_team_for(NULL, 1000, 1);
    CHECK(team_threads(NULL) == 1);
}

static void test_stop_of_null_team_is_harmless(void)
{
    team_stop(NULL);
    CHECK(1 == 1);
}

int main(void)
{
    RUN(test_team_of_three_runs_each_job_on_each_thread_once);
    RUN(test_polling_team_runs_each_job_on_each_thread_once);
    RUN(test_team_of_one_runs_on_the_caller);
    RUN(test_team_for_runs_every_task_once);
    RUN(test_team_for_without_team_runs_tasks_in_order_on_caller);
    RUN(test_stop_of_null_team_is_harmless);
    PW_TEST_MAIN();
}
