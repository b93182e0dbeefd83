/* clock.h - the two clocks the worker reads, in seconds as doubles.
 *
 * pw_mono_now() (CLOCK_MONOTONIC) measures durations and deadlines; pw_wall_now()
 * (CLOCK_REALTIME) compares with Celery's eta/expires timestamps. */
#ifndef PW_CLOCK_H
#define PW_CLOCK_H

#include <time.h>

static inline double pw_mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline double pw_wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
