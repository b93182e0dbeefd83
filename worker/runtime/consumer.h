/* consumer.h - the worker's main loop: Celery tasks in, results out, acks late.
 *
 * consumer_run() owns the broker connection (one thread, poll()-driven) and a pool
 * of task threads.  For each delivery it decodes the Celery message, rejects bad
 * ones without requeue (so a queue with a dead-letter exchange keeps them), holds
 * ETA tasks, discards expired ones, and hands the rest to the pool.  When a task
 * finishes it publishes the rpc:// result to reply_to and only then acks the
 * delivery: a worker that dies mid-task leaves the message to be redelivered.
 *
 * A redelivery of a task that is still running here (the broker closed our channel,
 * e.g. on consumer_timeout, or the connection dropped) attaches to the running job
 * instead of starting it twice; the job acks the new delivery when it finishes.
 * Connection loss is retried with capped exponential backoff.  SIGTERM/SIGINT
 * (bytes on signal_fd, see signals.h) stop consuming, requeue what has not started, wait up to
 * shutdown_timeout_s for running tasks and return 0 (a warm shutdown).  SIGQUIT, a
 * second signal, or the warm shutdown's deadline start the cold shutdown: first, when
 * soft_shutdown_timeout_s > 0 and tasks run, a soft window of that long in which they
 * may still finish (Celery 5.5's soft shutdown); then every running task's delivery is
 * rejected with requeue, its task process killed, and consumer_run returns 0 - nothing
 * unfinished is acked.
 *
 * A task whose process died of a signal the worker did not send (the OOM killer) is
 * published again to its queue with the death counted in a header, then acked, so
 * the count survives redeliveries and replicas; a delivery that arrives with
 * max_task_deaths deaths runs once more with task_env.give_up (the task records the
 * failure) and is answered FAILURE.  A task that answers retry (a service it needs is
 * unreachable, nothing decided) is retried as Celery's Task.retry does while its
 * retries are below retry.max_retries: RETRY published, the message published again
 * with retries + 1 and an eta after backoff with jitter (task_retry.h), the delivery
 * acked.  At max_retries a task records its failure itself when it can (task_env
 * last_try); a retry answer then means nothing could be recorded (database or disk),
 * and the message goes back unchanged.  Either way the worker stops consuming, puts
 * every prefetched message back in the queue for healthier replicas, logs
 * service_unavailable, and resumes after a pause of 1 s doubling to 30 s (reset by a
 * success); tasks already running go on.
 *
 * With cfg->metrics set, each loop turn and each finished task are reported to it
 * (metrics.h): what /metrics, /healthz, /readyz and the heartbeat file show.
 *
 * Celery's remote control, events and revoke (control.h) ride on the same connection:
 * pidbox messages go to control_handle(), the task lifecycle feeds events, and a
 * revoked task is discarded (REVOKED, acked) when it is about to start. */
#ifndef PW_CONSUMER_H
#define PW_CONSUMER_H

#include <stddef.h>

#include "log.h"
#include "metrics.h"
#include "pw_error.h"
#include "task_retry.h"

struct consumer_config {
    const char *broker_url;
    const char *const *queues;
    size_t n_queues;
    int concurrency;         /* task threads */
    int prefetch_multiplier; /* basic.qos = concurrency * multiplier (Celery default 4) */
    int heartbeat_s;         /* AMQP heartbeat requested (Celery: 120, broker caps at 60) */
    int connect_timeout_ms;
    double shutdown_timeout_s;
    double reconnect_max_s; /* cap of the reconnect backoff */
    int results_enabled;    /* rpc:// result backend; 0 = publish no results */
    int track_started;      /* publish STARTED before running (task_track_started) */
    const char *hostname;   /* node name, e.g. projection-worker@host */
    const char *tls_ca_file;
    int tls_insecure;
    int max_task_deaths;            /* deliveries with this many task-process deaths give up */
    struct task_retry_policy retry; /* Celery retries of a task that answers retry */
    double soft_shutdown_timeout_s; /* Celery 5.5 worker_soft_shutdown_timeout; 0 = none */
    struct metrics *metrics;        /* NULL = none */
    int quorum_queues; /* declare missing queues as quorum queues (broker_options.quorum) */
    /* Celery's events and remote control (control.h, events.h) */
    int task_events;       /* -E: task-* events */
    int without_heartbeat; /* no worker-online/heartbeat/offline events */
    int without_mingle;    /* no hello to peers at start */
    const char *statedb;   /* revoked ids kept across restarts; NULL = memory only */
};

int consumer_run(const struct consumer_config *cfg, const struct pw_log *log, void *app,
                 int signal_fd, struct pw_error *err);

#endif
