/* metrics.h - what the worker reports about itself: Prometheus counters and gauges,
 * liveness and readiness, and the heartbeat file.
 *
 * The consumer loop (one thread) reports each loop turn (metrics_loop_turn: broker
 * connected, consuming, running tasks, prefetched messages, task-process pids) and
 * each finished task (metrics_task_finished, with the task's own stats: reducer, phase
 * durations, points, reuse); the HTTP server's thread reads (metrics_render,
 * metrics_alive, metrics_ready).  One mutex guards the state, so any thread may call
 * any function.  Every function accepts m == NULL and then does nothing (returns 0 /
 * NULL), so the consumer's hooks are one line whether metrics are on or off.
 *
 * The heartbeat file (heartbeat_path, NULL = none) has its mtime set at most once a
 * second from metrics_loop_turn (created when missing): a probe that checks its age
 * sees the loop turning.  metrics_alive(): the last loop turn is younger than
 * max_age_s.  metrics_ready(): the last turn saw the broker connected and consuming.
 *
 * Memory: metrics_new() allocates, metrics_free() releases; metrics_render() returns
 * a malloc'ed string the caller frees.  Label values are copied. */
#ifndef PW_METRICS_H
#define PW_METRICS_H

#include <jansson.h>

#include "pw_error.h"

#define METRICS_MAX_TASK_PIDS 64

struct metrics;

struct metrics_loop_state {
    int connected;  /* a broker connection is up */
    int consuming;  /* ...and its consumers are on (not paused, not shutting down) */
    int running;    /* tasks running */
    int prefetched; /* messages received and not started (reserved + ETA-held) */
    int pids[METRICS_MAX_TASK_PIDS]; /* running task processes */
    int n_pids;
};

int metrics_new(struct metrics **out, const char *heartbeat_path, struct pw_error *err);
void metrics_free(struct metrics *m);

void metrics_loop_turn(struct metrics *m, const struct metrics_loop_state *s);
/* A task ended in Celery state `state` (SUCCESS, FAILURE, REVOKED); stats is the task's
 * task_outcome.stats (NULL or {"reducer", "reused", "points", "vector_bytes",
 * "phases": {name: seconds}}). */
void metrics_task_finished(struct metrics *m, const char *task, const char *state, double runtime_s,
                           const json_t *stats);
/* A task was retried (published again with retries + 1): counts state RETRY too. */
void metrics_task_retried(struct metrics *m, const char *task);
/* A revoke was received (remote control). */
void metrics_task_revoked(struct metrics *m);

char *metrics_render(struct metrics *m); /* Prometheus text format 0.0.4 */
int metrics_alive(struct metrics *m, double max_age_s);
int metrics_ready(struct metrics *m);

#endif
