/* task_retry.c - Celery's retry backoff and eta text (see header).
 *
 * Jitter draws from arc4random_uniform (glibc 2.36): no seed to own, no shared state. */
#include "task_retry.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double task_retry_countdown(const struct task_retry_policy *p, int retries)
{
    double countdown;

    if (p->backoff_s <= 0)
        return 0;
    /* factor * 2 ** retries, capped; the exponent is capped first so it cannot overflow */
    countdown = p->backoff_s * ldexp(1.0, retries < 0 ? 0 : retries > 62 ? 62 : retries);
    if (countdown > p->backoff_max_s)
        countdown = p->backoff_max_s;
    if (p->jitter) /* random.randrange(int(countdown) + 1) */
        countdown = (double)arc4random_uniform((uint32_t)countdown + 1);
    return countdown < 0 ? 0 : countdown;
}

void task_retry_eta(double unix_s, char *buf, size_t cap)
{
    time_t whole = (time_t)floor(unix_s);
    long us = (long)((unix_s - (double)whole) * 1e6);
    struct tm tm;
    char date[32];

    gmtime_r(&whole, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%06ld+00:00", date, us < 0 ? 0 : us > 999999 ? 999999 : us);
}
