/* team.h - a few threads that sleep (not spin) between jobs.
 *
 * For work that alternates with multi-threaded OpenBLAS calls: an OpenMP team spins
 * between parallel regions and takes cores from OpenBLAS's threads, enough to make the
 * partitioned k-NN slower on two threads than on one.  team_run(fn, arg) runs
 * fn(arg, t, T) for t = 0..T-1, t = 0 on the calling thread, and returns when all are
 * done; the helpers then wait on a condition variable.  One caller at a time. */
#ifndef PW_TEAM_H
#define PW_TEAM_H

#include "pw_error.h"

struct team;
typedef void (*team_fn)(void *arg, int t, int nthreads);

/* 0 or PW_ENOMEM; *out is a team of `threads` (>= 1) threads, the caller included. */
int team_start(int threads, struct team **out, struct pw_error *err);
void team_run(struct team *tm, team_fn fn, void *arg);
/* Joins the helpers and frees the team (NULL is fine). */
void team_stop(struct team *tm);

#endif
