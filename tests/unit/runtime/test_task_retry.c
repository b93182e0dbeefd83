/* test_task_retry.c - Celery's retry countdown and eta text (worker/runtime/task_retry.h).
 * Expected values: celery.utils.time.get_exponential_backoff_interval's formula
 * min(maximum, factor * 2 ** retries), randrange(countdown + 1) with jitter, and
 * datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds") of
 * Python 3.11 for the eta texts. */
#include "pw_test.h"
#include "task_retry.h"

static void test_countdown_doubles_from_the_factor_and_stops_at_the_maximum(void)
{
    struct task_retry_policy p = {3, 1, 600, 0};

    CHECK(task_retry_countdown(&p, 0) == 1);
    CHECK(task_retry_countdown(&p, 1) == 2);
    CHECK(task_retry_countdown(&p, 3) == 8);
    CHECK(task_retry_countdown(&p, 9) == 512);
    CHECK(task_retry_countdown(&p, 10) == 600);
    CHECK(task_retry_countdown(&p, 1000) == 600);
    p.backoff_s = 5;
    CHECK(task_retry_countdown(&p, 2) == 20);
    p.backoff_s = 0; /* retry_backoff=False: at once */
    CHECK(task_retry_countdown(&p, 4) == 0);
}

static void test_jitter_draws_whole_seconds_up_to_the_backoff(void)
{
    struct task_retry_policy p = {3, 1, 600, 1};
    int seen[9] = {0};

    for (int i = 0; i < 2000; i++) {
        double c = task_retry_countdown(&p, 3); /* randrange(9): 0..8 */
        CHECK(c >= 0 && c <= 8 && c == (double)(int)c);
        if (c >= 0 && c <= 8)
            seen[(int)c] = 1;
    }
    for (int k = 0; k <= 8; k++)
        CHECK(seen[k]); /* 2000 draws miss a value with probability < 1e-100 */
}

static void test_eta_is_celerys_iso_text_in_utc(void)
{
    char buf[48];

    task_retry_eta(1796618400.5, buf, sizeof buf);
    CHECK_STR(buf, "2026-12-07T04:40:00.500000+00:00");
    task_retry_eta(0, buf, sizeof buf);
    CHECK_STR(buf, "1970-01-01T00:00:00.000000+00:00");
}

int main(void)
{
    RUN(test_countdown_doubles_from_the_factor_and_stops_at_the_maximum);
    RUN(test_jitter_draws_whole_seconds_up_to_the_backoff);
    RUN(test_eta_is_celerys_iso_text_in_utc);
    PW_TEST_MAIN();
}
