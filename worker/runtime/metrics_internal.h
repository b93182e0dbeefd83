/* metrics_internal.h - struct metrics, shared by metrics.c (bookkeeping) and
 * metrics_render.c (the text format).  Not for other modules: use metrics.h. */
#ifndef PW_METRICS_INTERNAL_H
#define PW_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdio.h>

#include "metrics.h"

#define MAX_SERIES 64
#define N_BUCKETS  14

/* histogram bucket bounds in seconds (metrics.c) */
extern const double metrics_buckets[N_BUCKETS];

struct series {
    char *a, *b;  /* label values (b is "" when the series has one label) */
    double value; /* counter value, or histogram sum */
    unsigned long long count, in_bucket[N_BUCKETS];
};

struct table {
    struct series s[MAX_SERIES];
    int n;
};

struct metrics {
    pthread_mutex_t mu;
    char *heartbeat_path;
    double heartbeat_at, last_turn;
    struct metrics_loop_state loop;
    struct table tasks, retries, durations, phases;
    double reuses, points, vector_bytes, revokes;
};

/* Writes every metric to f; the caller holds m->mu. */
void metrics_render_locked(const struct metrics *m, FILE *f);

#endif
