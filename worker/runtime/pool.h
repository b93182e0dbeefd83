/* pool.h - fixed set of task threads fed by the consumer loop.
 *
 * The consumer (main thread, which owns the AMQP connection) submits jobs; a pool
 * thread runs the job's handler and moves it to the done list, then makes
 * pool_wake_fd() readable so the consumer's poll() wakes up and publishes the result.
 * A job belongs to the consumer except between pool_submit() and the moment it comes
 * back from pool_take_done(); the pool never frees jobs. */
#ifndef PW_POOL_H
#define PW_POOL_H

#include <stdatomic.h>
#include <stdint.h>

#include "celery_message.h"
#include "log.h"
#include "pw_error.h"
#include "tasks.h"

struct broker_message;

struct pool_job {
    struct pool_job *next;
    const struct task_def *def;
    struct celery_task_msg msg;
    atomic_int cancel;
    /* consumer bookkeeping */
    uint64_t delivery_tag;
    unsigned conn_gen;              /* connection generation the delivery tag belongs to */
    struct broker_message *message; /* the delivery as it arrived, to publish it again */
    char *queue;                    /* the queue it came from */
    int redelivered;
    double started_at, deadline; /* deadline: hard time limit, 0 = none */
    int time_limit_hit;
    int terminate_signum; /* revoke --terminate: the signal asked for (TASK_CANCEL_REVOKED) */
    char give_up[96];     /* non-empty: run as task_env.give_up (the last run after deaths) */
    int last_try;         /* task_env.last_try */
    atomic_int child_pid; /* task_env.child_pid */
    /* outcome, written by the pool thread */
    int rc;
    struct task_outcome outcome;
    struct pw_error err;
    double runtime;
};

struct pool;

int pool_create(struct pool **out, int n_threads, const struct pw_log *log, void *app,
                struct pw_error *err);
void pool_submit(struct pool *p, struct pool_job *job);
struct pool_job *pool_take_done(struct pool *p); /* FIFO list linked by ->next, or NULL */
int pool_wake_fd(struct pool *p);
void pool_destroy(struct pool *p); /* stops and joins the threads; call when no job runs */
/* At least n threads from now on (pool_grow/autoscale).  The pool never stops threads:
 * the consumer shrinks by starting fewer jobs at once, and idle threads only wait. */
int pool_ensure_threads(struct pool *p, int n, struct pw_error *err);

#endif
