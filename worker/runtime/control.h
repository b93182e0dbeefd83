/* control.h - Celery's remote control ("pidbox"), mingle, and the task lifecycle
 * hooks that feed events and `inspect` (celery/worker/control.py, kombu/pidbox.py).
 *
 * On every connection control_attach() declares the fanout exchange celery.pidbox
 * and this node's queue NODENAME.celery.pidbox (non-durable, auto-delete, x-expires
 * 10000, x-message-ttl 300000, as Celery), consumes it without acks, sends
 * worker-online, and on the first connection broadcasts mingle's `hello` (unless
 * --without-mingle) and merges the revoked ids peers answer during 1 s.
 *
 * control_owns() tells a pidbox delivery from a task; control_handle() runs it when
 * its destination (list of node names, or pattern + matcher glob/pcre) includes this
 * node, and replies {"NODENAME": reply} to reply_to.exchange/routing_key with headers
 * {ticket, clock}.  Commands: ping, stats, active, reserved, scheduled, registered,
 * revoked, query_task, active_queues, conf, report, clock, hello, heartbeat, revoke,
 * terminate, shutdown (no reply, as Celery), enable_events, disable_events,
 * time_limit, add_consumer, cancel_consumer, pool_grow, pool_shrink, autoscale.  Any
 * other name gets Celery's {"error": "KeyError('name')"} and changes nothing.
 *
 * Control never touches the consumer's lists: it reads them through a struct
 * control_view and asks for changes through fields the consumer applies afterwards
 * (shutdown, slots, queues to add or cancel), except that `revoke --terminate` raises
 * the cancel flag of the running job (TASK_CANCEL_REVOKED; the task process then records the
 * run cancelled) and sets its terminate_signum.
 *
 * The struct control belongs to the consumer; it owns the events sender and the
 * revoked set.  Functions return 0 or a negative PW_E* code with err filled. */
#ifndef PW_CONTROL_H
#define PW_CONTROL_H

#include <jansson.h>

#include "consumer.h"
#include "events.h"
#include "log.h"
#include "pool.h"
#include "pw_error.h"
#include "revoked.h"

struct broker;
struct broker_delivery;
struct control;

/* The consumer's state, lent for one command. */
struct control_view {
    struct pool_job *const *running;
    int n_running;
    const struct pool_job *reserved;  /* linked by ->next */
    const struct pool_job *scheduled; /* linked by ->next */
    int slots;                        /* task slots now */
    int prefetch_count;
    unsigned long processed;
};

/* What a command asks the consumer to do next (control_take_requests). */
struct control_requests {
    int shutdown;
    int slots; /* new number of task slots, 0 = unchanged */
};

int control_create(struct control **out, const struct consumer_config *cfg,
                   const struct pw_log *log, struct pw_error *err);
void control_free(struct control *ctl);

int control_attach(struct control *ctl, struct broker *b, const struct control_view *v,
                   struct pw_error *err);
/* worker-offline and the state file, before a clean exit. */
void control_detach(struct control *ctl, struct broker *b, const struct control_view *v);
/* Heartbeats and the end of mingle; *next_s: seconds until it wants to run again. */
void control_tick(struct control *ctl, struct broker *b, const struct control_view *v,
                  double *next_s);

int control_owns(const struct broker_delivery *d);
void control_handle(struct control *ctl, struct broker *b, const struct broker_delivery *d,
                    const struct control_view *v);
void control_take_requests(struct control *ctl, struct control_requests *out);

/* Task lifecycle: events and the per-task totals of `stats`. */
void control_task_received(struct control *ctl, struct broker *b, const struct celery_task_msg *m);
void control_task_started(struct control *ctl, struct broker *b, const struct pool_job *job);
/* status: CELERY_SUCCESS / FAILURE / REVOKED; result: the value or the exception. */
void control_task_finished(struct control *ctl, struct broker *b, const struct pool_job *job,
                           const char *status, json_t *result);
/* task-retried for a job republished with retries + 1 (its outcome and error say why). */
void control_task_retried(struct control *ctl, struct broker *b, const struct pool_job *job);
void control_task_rejected(struct control *ctl, struct broker *b, const char *id, int requeue);
/* task-failed for a message that never ran (unknown task): exception as Python's repr,
 * e.g. "NotRegistered('name')". */
void control_task_failed_early(struct control *ctl, struct broker *b, const char *id,
                               const char *exception);
/* A task that is revoked (or expired, expired = 1) is discarded before running:
 * the task-revoked event; the caller publishes REVOKED and acks. */
void control_task_discarded(struct control *ctl, struct broker *b, const char *id, int expired);
int control_is_revoked(struct control *ctl, const char *id);
/* Hard time limit for task `name` (the time_limit command overrides the message's). */
double control_time_limit(struct control *ctl, const char *name, double from_message);
struct events *control_events(struct control *ctl);

#endif
