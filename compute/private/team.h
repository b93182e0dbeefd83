/* team.h - a few threads that sleep (not spin) between jobs.
 *
 * For work that alternates with multi-threaded OpenBLAS calls: an OpenMP team spins
 * between parallel regions and takes cores from OpenBLAS's threads, enough to make the
 * partitioned k-NN slower on two threads than on one.  team_run(fn, arg) runs
 * fn(arg, t, T) for t = 0..T-1, t = 0 on the calling thread, and returns when all are
 * done; the helpers then wait on a condition variable.  One caller at a time.
 *
 * For short jobs in quick succession (t-SNE's iteration: a few jobs of 0.05-1 ms each,
 * with microseconds between them), team_set_spin lets the helpers poll for the next job,
 * and the caller for the helpers' end, for a bounded time before they sleep: a wake-up
 * through the condition variable costs tens of microseconds, and the bound keeps a
 * descheduled partner from costing more than that in spinning.  team_for runs tasks
 * 0..ntasks-1, each once, claimed one at a time by whichever member is free: a member
 * that is descheduled delays the job by its current task only. */
#ifndef PW_TEAM_H
#define PW_TEAM_H

#include <stddef.h>

#include "pw_error.h"

struct team;
typedef void (*team_fn)(void *arg, int t, int nthreads);

/* 0 or PW_ENOMEM; *out is a team of `threads` (>= 1) threads, the caller included. */
int team_start(int threads, struct team **out, struct pw_error *err);
void team_run(struct team *tm, team_fn fn, void *arg);
/* Members poll for up to `seconds` before they sleep (0, the default: sleep at once). */
void team_set_spin(struct team *tm, double seconds);
/* task(ctx, i) for every i < ntasks, each once, on any member; tm NULL runs them in order
 * on the caller.  Returns when all are done. */
void team_for(struct team *tm, size_t ntasks, void (*task)(void *ctx, size_t i), void *ctx);
/* Threads in the team, the caller included (1 for NULL). */
int team_threads(const struct team *tm);
/* Joins the helpers and frees the team (NULL is fine). */
void team_stop(struct team *tm);

#endif
