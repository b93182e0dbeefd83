/* stopwatch.h - the monotonic wall clock the reducers report their phase times with
 * (struct umap_result, struct tsne_result: seconds_*).  Header-only, no state. */
#ifndef PW_STOPWATCH_H
#define PW_STOPWATCH_H

#include <time.h>

/* Seconds since an arbitrary fixed point; only differences mean anything. */
static inline double stopwatch_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
