/* consumer.c - the main loop (see consumer.h for the behaviour it promises).
 *
 * One thread owns the AMQP connection and every list below; task threads only touch
 * the job they run.  Each loop turn: collect finished jobs (publish, then ack), move
 * due ETA jobs to the ready list, start ready jobs while threads are free, enforce
 * hard time limits, then poll() on the broker socket, the pool's wake fd and the
 * signal fd, and read whatever deliveries arrived.  Job lifecycle:
 *
 *   delivery -> (scheduled: ETA in the future) -> reserved -> running -> finished
 *
 * Delivery tags are only valid on the connection they came from, so each job
 * remembers the connection generation; after a reconnect, reserved and scheduled
 * jobs are dropped (the broker redelivers them) and running jobs wait for their
 * redelivery to attach to.
 *
 * While paused (a task answered retry) the consumers are cancelled and nothing is
 * reserved: deliveries still in flight go straight back to the queue. */
#include "clock.h"
#include "consumer.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "broker_url.h"
#include "celery_result.h"
#include "control.h"
#include "fault.h"
#include "pool.h"
#include "signals.h"
#include "task_subprocess.h"
#include "tasks.h"

#define COMPLETED_CACHE 256
#define PAUSE_MIN_S     1.0 /* first pause after a retry; doubles per retry */
#define PAUSE_MAX_S     30.0
#define MAX_SLOTS       1024 /* task slots pool_grow may reach */

struct completed_entry {
    char *task_id;
    char *body; /* the final result body we published (or would have) */
};

struct consumer {
    const struct consumer_config *cfg;
    const struct pw_log *log;
    struct broker *b;
    unsigned gen;
    struct pool *pool;
    struct pool_job *reserved_head, *reserved_tail;
    struct pool_job *scheduled; /* unsorted; ETA jobs are few */
    int n_scheduled;
    struct pool_job **running;
    int n_running;
    struct completed_entry completed[COMPLETED_CACHE];
    int completed_next;
    double backoff_s, next_connect_at;
    /* Not taking work until this monotonic time (0 = taking work): a task answered
     * retry.  What a readiness endpoint reports as "not ready". */
    double paused_until;
    double pause_s; /* length of the next pause */
    int shutting_down;
    enum { SHUTDOWN_WARM = 1, SHUTDOWN_SOFT, SHUTDOWN_COLD } shutdown_phase;
    double shutdown_deadline; /* of the current phase; cold: 0 */
    const char *cold_reason;
    unsigned long processed;
    struct control *ctl; /* remote control, events, revoked ids */
    int slots;           /* task slots now (concurrency, changed by pool_grow/shrink) */
    double control_due_s;
};

static void connection_lost(struct consumer *c, const char *why);
static void consumer_cleanup(struct consumer *c, int join_pool);

static struct control_view view_of(const struct consumer *c)
{
    struct control_view v = {
        c->running,   c->n_running, c->reserved_head,
        c->scheduled, c->slots,     c->slots * c->cfg->prefetch_multiplier + c->n_scheduled,
        c->processed};
    return v;
}

static json_t *task_fields(const char *task_id, const char *task, uint64_t tag)
{
    return json_pack("{s:s?, s:s?, s:I}", "task_id", task_id, "task", task, "delivery_tag",
                     (json_int_t)tag);
}

/* ---- results ------------------------------------------------------------------- */

static int wants_result(const struct consumer *c, const struct celery_task_msg *m)
{
    return c->cfg->results_enabled && m->reply_to && m->id && !m->ignore_result;
}

static void publish_body(struct consumer *c, const char *reply_to, const char *task_id,
                         const char *body)
{
    struct broker_publish_props props = {.correlation_id = task_id, .delivery_mode = 1};
    struct pw_error err;

    if (!c->b) {
        pw_log_event(c->log, PW_LOG_WARNING, "result_not_published",
                     json_pack("{s:s}", "task_id", task_id),
                     "broker connection is down; the result will be sent when the task is "
                     "redelivered");
        return;
    }
    if (broker_publish(c->b, "", reply_to, &props, body, strlen(body), &err))
        pw_log_event(c->log, PW_LOG_ERROR, "result_publish_failed",
                     json_pack("{s:s}", "task_id", task_id), err.msg);
}

/* Publishes status/result for message m when it asked for one.  Steals `result`. */
static void publish_result(struct consumer *c, const struct celery_task_msg *m, const char *status,
                           json_t *result, const char *traceback)
{
    char *body;

    if (wants_result(c, m) && (body = celery_result_body(m->id, status, result, traceback))) {
        publish_body(c, m->reply_to, m->id, body);
        free(body);
    }
    json_decref(result);
}

static void remember_completed(struct consumer *c, const char *task_id, char *body)
{
    struct completed_entry *e = &c->completed[c->completed_next];

    free(e->task_id);
    free(e->body);
    e->task_id = strdup(task_id);
    e->body = body;
    c->completed_next = (c->completed_next + 1) % COMPLETED_CACHE;
}

static const struct completed_entry *find_completed(const struct consumer *c, const char *id)
{
    for (int i = 0; i < COMPLETED_CACHE; i++)
        if (c->completed[i].task_id && !strcmp(c->completed[i].task_id, id))
            return &c->completed[i];
    return NULL;
}

/* ---- acks ---------------------------------------------------------------------- */

static void settle(struct consumer *c, uint64_t tag, unsigned gen, int ack, int requeue)
{
    struct pw_error err;
    int rc;

    if (!c->b || gen != c->gen)
        return; /* the tag died with its connection; the broker redelivers */
    rc = ack ? broker_ack(c->b, tag, &err) : broker_reject(c->b, tag, requeue, &err);
    if (rc)
        pw_log_event(c->log, PW_LOG_ERROR, ack ? "ack_failed" : "reject_failed",
                     json_pack("{s:I}", "delivery_tag", (json_int_t)tag), err.msg);
}

/* ---- job lists ----------------------------------------------------------------- */

static void job_free(struct pool_job *job)
{
    celery_message_free(&job->msg);
    broker_message_free(job->message);
    free(job->queue);
    json_decref(job->outcome.result);
    json_decref(job->outcome.stats);
    free(job);
}

static void push_reserved(struct consumer *c, struct pool_job *job)
{
    job->next = NULL;
    if (c->reserved_tail)
        c->reserved_tail->next = job;
    else
        c->reserved_head = job;
    c->reserved_tail = job;
}

static struct pool_job *find_running(struct consumer *c, const char *id)
{
    for (int i = 0; i < c->n_running; i++)
        if (!strcmp(c->running[i]->msg.id, id))
            return c->running[i];
    return NULL;
}

static void remove_running(struct consumer *c, struct pool_job *job)
{
    for (int i = 0; i < c->n_running; i++) {
        if (c->running[i] == job) {
            c->running[i] = c->running[--c->n_running];
            return;
        }
    }
}

static int base_prefetch(const struct consumer *c)
{
    return c->slots * c->cfg->prefetch_multiplier;
}

static void update_prefetch(struct consumer *c)
{
    struct pw_error err;

    if (c->b && broker_set_prefetch(c->b, base_prefetch(c) + c->n_scheduled, &err))
        pw_log_event(c->log, PW_LOG_ERROR, "qos_failed", NULL, err.msg);
}

/* Frees jobs whose deliveries are gone (reconnect) or requeues them (shutdown). */
static void drop_waiting_jobs(struct consumer *c, int requeue)
{
    struct pool_job *lists[2] = {c->reserved_head, c->scheduled};

    for (int l = 0; l < 2; l++) {
        while (lists[l]) {
            struct pool_job *job = lists[l];
            lists[l] = job->next;
            if (requeue)
                settle(c, job->delivery_tag, job->conn_gen, 0, 1);
            job_free(job);
        }
    }
    c->reserved_head = c->reserved_tail = NULL;
    c->scheduled = NULL;
    c->n_scheduled = 0;
}

/* ---- finishing ----------------------------------------------------------------- */

/* The final Celery state of a finished job and its result (a new reference). */
static const char *final_status(struct consumer *c, const struct pool_job *job, json_t **result)
{
    const struct celery_task_msg *m = &job->msg;

    if (job->time_limit_hit) {
        *result = json_pack("{s:s, s:[f], s:s}", "exc_type", "TimeLimitExceeded", "exc_message",
                            m->time_limit_hard, "exc_module", "billiard.exceptions");
        pw_log_event(c->log, PW_LOG_ERROR, "task_time_limit", task_fields(m->id, m->task, 0),
                     "hard time limit exceeded");
        return CELERY_FAILURE;
    }
    if (job->rc && job->terminate_signum) {
        *result = celery_exception("TaskRevokedError", "celery.exceptions", "terminated");
        pw_log_event(c->log, PW_LOG_INFO, "task_terminated", task_fields(m->id, m->task, 0),
                     job->err.msg);
        return CELERY_REVOKED;
    }
    if (job->rc && job->outcome.revoked) {
        *result = celery_exception("TaskRevokedError", "celery.exceptions", job->err.msg);
        pw_log_event(c->log, PW_LOG_INFO, "task_revoked", task_fields(m->id, m->task, 0),
                     job->err.msg);
        return CELERY_REVOKED;
    }
    if (job->give_up[0]) {
        /* The last run after repeated deaths recorded the failure where the task keeps
         * state; the result reports it as Celery reports a pool process that died. */
        *result = celery_exception("WorkerLostError", "billiard.exceptions", job->give_up);
        pw_log_event(c->log, PW_LOG_ERROR, "task_failed",
                     json_pack("{s:s, s:s, s:s, s:i}", "task_id", m->id, "task", m->task,
                               "exc_type", "WorkerLostError", "deaths", m->deaths),
                     job->give_up);
        return CELERY_FAILURE;
    }
    if (job->rc == 0) {
        *result = json_incref(job->outcome.result ? job->outcome.result : json_null());
        pw_log_event(c->log, PW_LOG_INFO, "task_succeeded",
                     json_pack("{s:s, s:s, s:f}", "task_id", m->id, "task", m->task, "runtime_s",
                               job->runtime),
                     NULL);
        return CELERY_SUCCESS;
    }
    *result = celery_exception(job->outcome.exc_type, job->outcome.exc_module, job->err.msg);
    pw_log_event(c->log, PW_LOG_ERROR, "task_failed",
                 json_pack("{s:s, s:s, s:s, s:f}", "task_id", m->id, "task", m->task, "exc_type",
                           job->outcome.exc_type, "runtime_s", job->runtime),
                 job->err.msg);
    return CELERY_FAILURE;
}

/* The task process died of a signal we did not send: publish the message again with
 * the death counted (so every replica sees the count), then ack this delivery.  A
 * crash between the two leaves both, and the task's idempotency absorbs the repeat. */
static void requeue_after_death(struct consumer *c, struct pool_job *job)
{
    const struct celery_task_msg *m = &job->msg;
    struct broker_header_int counted[2] = {
        {CELERY_HEADER_DEATHS, m->deaths + 1, NULL},
        {CELERY_HEADER_DEATH_SIGNAL, job->outcome.killed_by, NULL}};
    struct pw_error err;
    int rc;

    pw_log_event(c->log, PW_LOG_WARNING, "task_process_died",
                 json_pack("{s:s, s:s, s:i, s:i, s:i}", "task_id", m->id, "task", m->task, "signal",
                           job->outcome.killed_by, "deaths", m->deaths + 1, "max_deaths",
                           c->cfg->max_task_deaths),
                 job->err.msg);
    if (!c->b || job->conn_gen != c->gen)
        return; /* the delivery died with its connection: redelivered, this death uncounted */
    if (!job->message || !job->queue || !*job->queue)
        rc = pw_error_set(&err, PW_EINTERNAL, "the delivered message was not kept");
    else
        rc = broker_republish(c->b, job->message, job->queue, counted, 2, &err);
    if (rc) {
        pw_log_event(c->log, PW_LOG_ERROR, "requeue_failed", task_fields(m->id, m->task, 0),
                     err.msg);
        settle(c, job->delivery_tag, job->conn_gen, 0, 1); /* back uncounted */
        return;
    }
    settle(c, job->delivery_tag, job->conn_gen, 1, 0);
}

/* Stop taking work for a while: give everything prefetched back to the queue for other
 * replicas and pause, doubling per retry, so a service down for everyone does not spin
 * every message through its retries. */
static void pause_for_retry(struct consumer *c, struct pool_job *job)
{
    double until = pw_mono_now() + c->pause_s;
    struct pw_error err;

    pw_log_event(c->log, PW_LOG_WARNING, "service_unavailable",
                 json_pack("{s:s, s:s, s:f, s:i, s:i}", "task_id", job->msg.id, "task",
                           job->msg.task, "paused_s", c->pause_s, "retries", job->msg.retries,
                           "max_retries", c->cfg->retry.max_retries),
                 job->err.msg);
    /* Cancel first: a message requeued while we still consume could come straight back. */
    if (c->b && broker_consuming(c->b) && broker_cancel_consumers(c->b, &err))
        connection_lost(c, err.msg);
    drop_waiting_jobs(c, 1);
    if (until > c->paused_until)
        c->paused_until = until;
    c->pause_s = c->pause_s * 2 > PAUSE_MAX_S ? PAUSE_MAX_S : c->pause_s * 2;
}

/* Celery's Task.retry: the message published again to its queue with retries + 1 and an
 * eta after backoff, and RETRY published with the exception.  Non-zero when it could not
 * be published (the caller then requeues the delivery as it is). */
static int republish_for_retry(struct consumer *c, struct pool_job *job)
{
    const struct celery_task_msg *m = &job->msg;
    double countdown = task_retry_countdown(&c->cfg->retry, m->retries);
    char eta[48];
    struct broker_header_int set[2] = {{"retries", m->retries + 1, NULL}, {"eta", 0, eta}};
    struct pw_error err;

    if (!c->b || job->conn_gen != c->gen || !job->message || !job->queue || !*job->queue)
        return -1; /* the delivery died with its connection: redelivered as it was */
    task_retry_eta(pw_wall_now() + countdown, eta, sizeof eta);
    if (broker_republish(c->b, job->message, job->queue, set, 2, &err)) {
        pw_log_event(c->log, PW_LOG_ERROR, "requeue_failed", task_fields(m->id, m->task, 0),
                     err.msg);
        return -1;
    }
    pw_log_event(c->log, PW_LOG_WARNING, "task_retried",
                 json_pack("{s:s, s:s, s:i, s:i, s:f, s:s, s:s}", "task_id", m->id, "task", m->task,
                           "retries", m->retries + 1, "max_retries", c->cfg->retry.max_retries,
                           "countdown_s", countdown, "eta", eta, "exc_type", job->outcome.exc_type),
                 job->err.msg);
    publish_result(c, m, CELERY_RETRY,
                   celery_exception(job->outcome.exc_type, job->outcome.exc_module, job->err.msg),
                   NULL);
    /* The one place a task is retried: the task-retried event is sent here. */
    metrics_task_retried(c->cfg->metrics, m->task);
    control_task_retried(c->ctl, c->b, job);
    return 0;
}

/* A task answered retry: nothing was decided.  Below max_retries, a Celery retry; at
 * max_retries the task could not record its failure (it records one on its last try when
 * it can), so the delivery goes back unchanged.  Either way, a pause. */
static void retry_later(struct consumer *c, struct pool_job *job)
{
    pause_for_retry(c, job);
    if (job->msg.retries < c->cfg->retry.max_retries && republish_for_retry(c, job) == 0)
        settle(c, job->delivery_tag, job->conn_gen, 1, 0);
    else
        settle(c, job->delivery_tag, job->conn_gen, 0, 1);
}

static void finish_job(struct consumer *c, struct pool_job *job)
{
    const struct celery_task_msg *m = &job->msg;
    json_t *result;
    const char *status;
    char *body;

    remove_running(c, job);
    if (job->rc && job->outcome.retry && !job->time_limit_hit) {
        /* A death during the give-up run itself is final: it falls through to FAILURE. */
        if (!job->outcome.killed_by) {
            retry_later(c, job);
            job_free(job);
            return;
        }
        if (!job->give_up[0]) {
            requeue_after_death(c, job);
            job_free(job);
            return;
        }
    }
    c->processed++;
    if (job->rc == 0)
        c->pause_s = PAUSE_MIN_S;
    status = final_status(c, job, &result);
    metrics_task_finished(c->cfg->metrics, m->task, status, job->runtime, job->outcome.stats);
    if (!strcmp(status, CELERY_REVOKED))
        metrics_task_revoked(c->cfg->metrics); /* revoke --terminate */
    body = celery_result_body(m->id, status, result, NULL);
    control_task_finished(c->ctl, c->b, job, status, result);
    json_decref(result);
    if (body) {
        if (wants_result(c, m))
            publish_body(c, m->reply_to, m->id, body);
        remember_completed(c, m->id, body); /* takes body */
    }
    pw_fault_point("before_ack");
    settle(c, job->delivery_tag, job->conn_gen, 1, 0);
    job_free(job);
}

static void collect_finished(struct consumer *c)
{
    struct pool_job *job = pool_take_done(c->pool);

    while (job) {
        struct pool_job *next = job->next;
        finish_job(c, job);
        job = next;
    }
}

/* ---- starting ------------------------------------------------------------------ */

/* Celery's discard of a revoked or expired task: REVOKED result, task-revoked, ack. */
static void discard_revoked(struct consumer *c, struct pool_job *job, int expired)
{
    const struct celery_task_msg *m = &job->msg;

    pw_log_event(c->log, PW_LOG_INFO, expired ? "task_expired" : "task_revoked_discarded",
                 task_fields(m->id, m->task, job->delivery_tag),
                 expired ? "Discarding revoked task (expired)" : "Discarding revoked task");
    publish_result(
        c, m, CELERY_REVOKED,
        celery_exception("TaskRevokedError", "celery.exceptions", expired ? "expired" : "revoked"),
        NULL);
    control_task_discarded(c->ctl, c->b, m->id, expired);
    if (!expired)
        metrics_task_revoked(c->cfg->metrics);
    settle(c, job->delivery_tag, job->conn_gen, 1, 0);
    job_free(job);
}

static void start_ready_jobs(struct consumer *c)
{
    while (c->reserved_head && c->n_running < c->slots) {
        struct pool_job *job = c->reserved_head;
        const struct celery_task_msg *m = &job->msg;
        double hard;

        c->reserved_head = job->next;
        if (!c->reserved_head)
            c->reserved_tail = NULL;
        if ((m->expires > 0 && pw_wall_now() > m->expires) || control_is_revoked(c->ctl, m->id)) {
            discard_revoked(c, job, !control_is_revoked(c->ctl, m->id));
            continue;
        }
        job->started_at = pw_mono_now();
        hard = control_time_limit(c->ctl, m->task, m->time_limit_hard);
        job->deadline = hard > 0 ? job->started_at + hard : 0;
        job->last_try = m->retries >= c->cfg->retry.max_retries;
        if (c->cfg->track_started)
            publish_result(
                c, m, CELERY_STARTED,
                json_pack("{s:i, s:s}", "pid", (int)getpid(), "hostname", c->cfg->hostname), NULL);
        pw_log_event(c->log, PW_LOG_INFO, "task_started",
                     task_fields(m->id, m->task, job->delivery_tag), NULL);
        c->running[c->n_running++] = job;
        control_task_started(c->ctl, c->b, job);
        pool_submit(c->pool, job);
    }
}

static void promote_due_eta_jobs(struct consumer *c)
{
    struct pool_job **link = &c->scheduled;
    double now = pw_wall_now();
    int moved = 0;

    while (*link) {
        struct pool_job *job = *link;
        if (job->msg.eta <= now) {
            *link = job->next;
            c->n_scheduled--;
            push_reserved(c, job);
            moved = 1;
        } else {
            link = &job->next;
        }
    }
    if (moved)
        update_prefetch(c);
}

static void enforce_time_limits(struct consumer *c)
{
    double now = pw_mono_now();

    for (int i = 0; i < c->n_running; i++) {
        struct pool_job *job = c->running[i];
        if (job->deadline > 0 && now > job->deadline && !job->time_limit_hit) {
            job->time_limit_hit = 1;
            atomic_store(&job->cancel, 1);
        }
    }
}

/* ---- deliveries ---------------------------------------------------------------- */

static const char *decode_exc_type(int rc)
{
    switch (rc) {
    case CELERY_MSG_EREFUSED:
        return "ContentDisallowed";
    case CELERY_MSG_EMALFORMED:
        return "DecodeError";
    default:
        return "InvalidTaskError";
    }
}

static void reject_bad_message(struct consumer *c, const struct broker_delivery *d,
                               const struct celery_task_msg *m, int rc, const char *why)
{
    pw_log_event(c->log, PW_LOG_ERROR, "message_rejected",
                 json_pack("{s:I, s:s?, s:s?, s:s?, s:s?, s:b}", "delivery_tag",
                           (json_int_t)d->delivery_tag, "routing_key", d->routing_key,
                           "content_type", d->content_type, "task_id", m->id, "task", m->task,
                           "redelivered", d->redelivered),
                 why);
    control_task_rejected(c->ctl, c->b, m->id, 0);
    if (m->id)
        publish_result(
            c, m, CELERY_FAILURE,
            celery_exception(decode_exc_type(rc),
                             rc == CELERY_MSG_EUNKNOWN ? "celery.exceptions" : "kombu.exceptions",
                             why),
            NULL);
    settle(c, d->delivery_tag, c->gen, 0, 0);
}

static void begin_shutdown(struct consumer *c, int signo);

/* A remote-control message (control.h), then what it asked for. */
static void handle_control(struct consumer *c, const struct broker_delivery *d)
{
    struct control_view v = view_of(c);
    struct control_requests req;
    struct pw_error err;

    control_handle(c->ctl, c->b, d, &v);
    control_take_requests(c->ctl, &req);
    if (req.slots && req.slots != c->slots) {
        if (pool_ensure_threads(c->pool, req.slots, &err)) {
            pw_log_event(c->log, PW_LOG_ERROR, "pool_resize_failed", NULL, err.msg);
        } else {
            pw_log_event(c->log, PW_LOG_INFO, "pool_resized",
                         json_pack("{s:i, s:i}", "from", c->slots, "to", req.slots), NULL);
            c->slots = req.slots;
            update_prefetch(c);
        }
    }
    if (req.shutdown)
        begin_shutdown(c, 0);
}

static void handle_delivery(struct consumer *c, struct broker_delivery *d)
{
    struct celery_delivery_in in = broker_delivery_view(d);
    struct pool_job *job = calloc(1, sizeof *job);
    struct pool_job *running;
    const struct completed_entry *done;
    struct pw_error err;
    char why[320];
    int rc;

    if (!job) {
        pw_log_event(c->log, PW_LOG_CRITICAL, "out_of_memory", NULL, "requeueing delivery");
        settle(c, d->delivery_tag, c->gen, 0, 1);
        return;
    }
    rc = celery_message_decode(&in, &job->msg, &err);
    if (rc) {
        reject_bad_message(c, d, &job->msg, rc, err.msg);
        job_free(job);
        return;
    }
    job->delivery_tag = d->delivery_tag;
    job->conn_gen = c->gen;
    job->redelivered = d->redelivered;
    job->message = broker_delivery_take_message(d);
    job->queue = d->queue ? strdup(d->queue) : NULL;
    job->def = tasks_lookup(job->msg.task);
    if (!job->def) {
        snprintf(why, sizeof why, "Received unregistered task of type '%.200s'", job->msg.task);
        pw_log_event(c->log, PW_LOG_ERROR, "task_unregistered",
                     task_fields(job->msg.id, job->msg.task, d->delivery_tag), why);
        publish_result(c, &job->msg, CELERY_FAILURE,
                       json_pack("{s:s, s:[s], s:s}", "exc_type", "NotRegistered", "exc_message",
                                 job->msg.task, "exc_module", "celery.exceptions"),
                       NULL);
        snprintf(why, sizeof why, "NotRegistered('%.200s')", job->msg.task);
        control_task_failed_early(c->ctl, c->b, job->msg.id, why);
        settle(c, d->delivery_tag, c->gen, 0, 0);
        job_free(job);
        return;
    }
    pw_log_event(c->log, PW_LOG_INFO, "task_received",
                 json_pack("{s:s, s:s, s:I, s:b, s:i, s:i}", "task_id", job->msg.id, "task",
                           job->msg.task, "delivery_tag", (json_int_t)d->delivery_tag,
                           "redelivered", d->redelivered, "protocol", job->msg.protocol, "retries",
                           job->msg.retries),
                 NULL);
    control_task_received(c->ctl, c->b, &job->msg);
    pw_fault_point("after_receive");
    if (job->msg.deaths >= c->cfg->max_task_deaths)
        task_subprocess_death_reason(job->msg.death_signal ? job->msg.death_signal : SIGKILL,
                                     job->give_up, sizeof job->give_up);
    if ((running = find_running(c, job->msg.id))) {
        /* Redelivered while still running here: finish once, ack the new delivery. */
        running->delivery_tag = d->delivery_tag;
        running->conn_gen = c->gen;
        pw_log_event(c->log, PW_LOG_WARNING, "redelivery_attached",
                     task_fields(job->msg.id, job->msg.task, d->delivery_tag),
                     "task is still running here; the redelivered message will be acked when it "
                     "finishes");
        job_free(job);
        return;
    }
    if ((done = find_completed(c, job->msg.id))) {
        if (wants_result(c, &job->msg))
            publish_body(c, job->msg.reply_to, job->msg.id, done->body);
        pw_log_event(c->log, PW_LOG_INFO, "redelivery_already_done",
                     task_fields(job->msg.id, job->msg.task, d->delivery_tag),
                     "task finished here before; result re-sent, message acked");
        settle(c, d->delivery_tag, c->gen, 1, 0);
        job_free(job);
        return;
    }
    if (c->shutting_down || c->paused_until > 0) {
        settle(c, d->delivery_tag, c->gen, 0, 1);
        job_free(job);
        return;
    }
    if (job->msg.eta > pw_wall_now()) {
        job->next = c->scheduled;
        c->scheduled = job;
        c->n_scheduled++;
        update_prefetch(c); /* as Celery: one more prefetch per held ETA message */
        return;
    }
    push_reserved(c, job);
}

/* ---- connection ---------------------------------------------------------------- */

static void connection_lost(struct consumer *c, const char *why)
{
    pw_log_event(c->log, PW_LOG_ERROR, "broker_connection_lost",
                 json_pack("{s:i, s:i}", "running", c->n_running, "reserved_dropped",
                           c->reserved_head ? 1 : 0),
                 why);
    broker_free(c->b);
    c->b = NULL;
    drop_waiting_jobs(c, 0);
    c->next_connect_at = pw_mono_now() + c->backoff_s;
}

static void try_connect(struct consumer *c)
{
    struct broker_options opt;
    char masked[512];
    struct pw_error err;

    memset(&opt, 0, sizeof opt);
    opt.url = c->cfg->broker_url;
    opt.queues = c->cfg->queues;
    opt.n_queues = c->cfg->n_queues;
    opt.prefetch_count = base_prefetch(c);
    opt.heartbeat_s = c->cfg->heartbeat_s;
    opt.connect_timeout_ms = c->cfg->connect_timeout_ms;
    opt.tls_ca_file = c->cfg->tls_ca_file;
    opt.tls_insecure = c->cfg->tls_insecure;
    opt.quorum = c->cfg->quorum_queues;
    broker_url_mask(c->cfg->broker_url, masked, sizeof masked);
    if (broker_connect(&c->b, &opt, &err)) {
        pw_log_event(c->log, PW_LOG_ERROR, "broker_connect_failed",
                     json_pack("{s:s, s:f}", "broker", masked, "retry_in_s", c->backoff_s),
                     err.msg);
        c->next_connect_at = pw_mono_now() + c->backoff_s;
        c->backoff_s =
            c->backoff_s * 2 > c->cfg->reconnect_max_s ? c->cfg->reconnect_max_s : c->backoff_s * 2;
        return;
    }
    c->gen++;
    c->backoff_s = 0.5;
    {
        struct control_view v = view_of(c);
        if (control_attach(c->ctl, c->b, &v, &err)) {
            connection_lost(c, err.msg);
            return;
        }
    }
    pw_log_event(c->log, PW_LOG_INFO, "broker_connected",
                 json_pack("{s:s, s:i, s:i, s:i}", "broker", masked, "prefetch_count",
                           base_prefetch(c), "concurrency", c->cfg->concurrency, "running_tasks",
                           c->n_running),
                 NULL);
}

static void read_deliveries(struct consumer *c)
{
    /* Bounded so finished tasks and signals get their turn under a flood. */
    for (int i = 0; c->b && i < 256; i++) {
        struct broker_delivery d;
        struct pw_error err;
        int rc = broker_next(c->b, &d, &err);

        if (rc == 0)
            return;
        if (rc < 0) {
            connection_lost(c, err.msg);
            return;
        }
        if (control_owns(&d))
            handle_control(c, &d);
        else
            handle_delivery(c, &d);
        broker_delivery_free(&d);
    }
}

/* ---- pause after a retry --------------------------------------------------------- */

/* When the pause is over, consume again (or reconnect, which consumes). */
static void resume_when_due(struct consumer *c)
{
    struct pw_error err;

    if (c->paused_until == 0 || pw_mono_now() < c->paused_until || c->shutting_down)
        return;
    c->paused_until = 0;
    pw_log_event(c->log, PW_LOG_INFO, "consuming_resumed",
                 json_pack("{s:f}", "next_pause_s", c->pause_s), NULL);
    if (c->b && !broker_consuming(c->b) && broker_resume_consumers(c->b, &err))
        connection_lost(c, err.msg);
}

/* When the next connection attempt is due: never while paused. */
static double connect_due_at(const struct consumer *c)
{
    return c->paused_until > c->next_connect_at ? c->paused_until : c->next_connect_at;
}

/* ---- shutdown ------------------------------------------------------------------ */

/* The cold shutdown's next step: a soft window first when one is configured and tasks
 * run (Celery 5.5), else cold at once (the loop's deadline check does it). */
static void go_cold(struct consumer *c, const char *why, int allow_soft)
{
    if (allow_soft && c->cfg->soft_shutdown_timeout_s > 0 && c->n_running > 0) {
        c->shutdown_phase = SHUTDOWN_SOFT;
        c->shutdown_deadline = pw_mono_now() + c->cfg->soft_shutdown_timeout_s;
        pw_log_event(c->log, PW_LOG_WARNING, "soft_shutdown_started",
                     json_pack("{s:s, s:i, s:f}", "reason", why, "running", c->n_running,
                               "timeout_s", c->cfg->soft_shutdown_timeout_s),
                     "running tasks may still finish; then they are requeued");
        return;
    }
    c->shutdown_phase = SHUTDOWN_COLD;
    c->shutdown_deadline = 0;
    c->cold_reason = why;
}

static void begin_shutdown(struct consumer *c, int signo)
{
    struct pw_error err;

    if (c->shutting_down) {
        pw_log_event(c->log, PW_LOG_WARNING, "shutdown_forced", json_pack("{s:i}", "signal", signo),
                     "second signal: cold shutdown, running tasks requeued");
        go_cold(c, "second signal", c->shutdown_phase == SHUTDOWN_WARM);
        return;
    }
    c->shutting_down = 1;
    c->shutdown_phase = SHUTDOWN_WARM;
    c->shutdown_deadline = pw_mono_now() + c->cfg->shutdown_timeout_s;
    pw_log_event(c->log, PW_LOG_INFO, "shutdown_started",
                 json_pack("{s:i, s:s, s:i, s:f}", "signal", signo, "mode",
                           signo == SIGQUIT ? "cold" : "warm", "running", c->n_running, "timeout_s",
                           c->cfg->shutdown_timeout_s),
                 "stopped consuming; waiting for running tasks");
    if (c->b && broker_cancel_consumers(c->b, &err))
        connection_lost(c, err.msg);
    drop_waiting_jobs(c, 1);
    if (signo == SIGQUIT)
        go_cold(c, "SIGQUIT", 1);
}

/* The deadline of the current shutdown phase passed: warm goes cold (maybe soft
 * first); soft and cold end here.  1 = stop now (cold_stop then returns). */
static int shutdown_due(struct consumer *c)
{
    if (pw_mono_now() < c->shutdown_deadline)
        return 0;
    if (c->shutdown_phase == SHUTDOWN_WARM) {
        go_cold(c, "warm shutdown deadline", 1);
        if (c->shutdown_phase == SHUTDOWN_SOFT)
            return 0;
    }
    return 1;
}

/* Cold: running tasks' processes killed and their deliveries rejected with requeue, so
 * nothing unfinished is acked; the broker gives them to another worker at once.  Tasks
 * that run on a pool thread are abandoned (they end with the process); running threads
 * still use their jobs, so the pool is left to process exit. */
static void cold_stop(struct consumer *c)
{
    int killed = 0;

    for (int i = 0; i < c->n_running; i++) {
        struct pool_job *job = c->running[i];
        int pid = atomic_load(&job->child_pid);
        /* No cancel flag: a cancelled projection would mark its run failed, but these
         * tasks go to redelivery, which must find the run as it was. */
        if (pid > 0 && kill(pid, SIGKILL) == 0)
            killed++;
        settle(c, job->delivery_tag, job->conn_gen, 0, 1);
    }
    pw_log_event(c->log, PW_LOG_WARNING, "shutdown_abandoning",
                 json_pack("{s:s, s:s, s:i, s:i}", "mode", "cold", "reason",
                           c->cold_reason ? c->cold_reason : "deadline", "running", c->n_running,
                           "processes_killed", killed),
                 "unfinished tasks requeued, their processes terminated");
    consumer_cleanup(c, 0);
}

static void read_signals(struct consumer *c, int signal_fd)
{
    int signo;

    while ((signo = signals_next(signal_fd)) > 0)
        begin_shutdown(c, signo);
}

static int poll_timeout_ms(const struct consumer *c)
{
    double now = pw_mono_now(), wall = pw_wall_now(), t = 1.0;

    if (c->reserved_head && c->n_running < c->slots)
        return 0;
    if (c->control_due_s < t)
        t = c->control_due_s;
    for (const struct pool_job *j = c->scheduled; j; j = j->next)
        if (j->msg.eta - wall < t)
            t = j->msg.eta - wall;
    for (int i = 0; i < c->n_running; i++)
        if (c->running[i]->deadline > 0 && c->running[i]->deadline - now < t)
            t = c->running[i]->deadline - now;
    if (!c->b && !c->shutting_down && connect_due_at(c) - now < t)
        t = connect_due_at(c) - now;
    if (c->paused_until > 0 && c->paused_until - now < t)
        t = c->paused_until - now;
    if (c->shutting_down && c->shutdown_deadline - now < t)
        t = c->shutdown_deadline - now;
    return t <= 0 ? 0 : (int)(t * 1000) + 1;
}

static void consumer_cleanup(struct consumer *c, int join_pool)
{
    struct control_view v = view_of(c);

    control_detach(c->ctl, c->b, &v);
    control_free(c->ctl);
    drop_waiting_jobs(c, 0);
    broker_free(c->b);
    c->b = NULL;
    if (join_pool)
        pool_destroy(c->pool);
    free(c->running); /* the jobs themselves stay reachable from their threads */
    for (int i = 0; i < COMPLETED_CACHE; i++) {
        free(c->completed[i].task_id);
        free(c->completed[i].body);
    }
}

/* What /healthz, /readyz and /metrics show of this loop turn (metrics.h). */
static void report_loop(const struct consumer *c)
{
    struct metrics_loop_state s;

    if (!c->cfg->metrics)
        return;
    memset(&s, 0, sizeof s);
    s.connected = c->b != NULL;
    s.consuming = c->b && broker_consuming(c->b) && c->paused_until == 0 && !c->shutting_down;
    s.running = c->n_running;
    s.prefetched = c->n_scheduled;
    for (const struct pool_job *j = c->reserved_head; j; j = j->next)
        s.prefetched++;
    for (int i = 0; i < c->n_running && s.n_pids < METRICS_MAX_TASK_PIDS; i++)
        if ((s.pids[s.n_pids] = atomic_load(&c->running[i]->child_pid)) > 0)
            s.n_pids++;
    metrics_loop_turn(c->cfg->metrics, &s);
}

int consumer_run(const struct consumer_config *cfg, const struct pw_log *log, void *app,
                 int signal_fd, struct pw_error *err)
{
    struct consumer c;
    int rc;

    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    c.log = log;
    c.backoff_s = 0.5;
    c.pause_s = PAUSE_MIN_S;
    c.slots = cfg->concurrency;
    c.running = calloc(MAX_SLOTS > cfg->concurrency ? MAX_SLOTS : (size_t)cfg->concurrency,
                       sizeof *c.running);
    if (!c.running)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    if ((rc = control_create(&c.ctl, cfg, log, err)) ||
        (rc = pool_create(&c.pool, cfg->concurrency, log, app, err))) {
        control_free(c.ctl);
        free(c.running);
        return rc;
    }
    for (;;) {
        struct pollfd fds[3];
        int nfds = 0;

        collect_finished(&c);
        if (c.shutting_down) {
            if (c.n_running == 0)
                break;
            if (shutdown_due(&c)) {
                cold_stop(&c);
                return 0;
            }
        }
        resume_when_due(&c);
        if (!c.b && !c.shutting_down && pw_mono_now() >= connect_due_at(&c))
            try_connect(&c);
        if (!c.shutting_down && c.paused_until == 0) {
            promote_due_eta_jobs(&c);
            start_ready_jobs(&c);
        }
        enforce_time_limits(&c);
        {
            struct control_view v = view_of(&c);
            control_tick(c.ctl, c.b, &v, &c.control_due_s);
        }
        report_loop(&c);

        fds[nfds].fd = pool_wake_fd(c.pool);
        fds[nfds++].events = POLLIN;
        fds[nfds].fd = signal_fd;
        fds[nfds++].events = POLLIN;
        if (c.b) {
            fds[nfds].fd = broker_fd(c.b);
            fds[nfds++].events = POLLIN;
        }
        if (!(c.b && broker_has_buffered(c.b)) &&
            poll(fds, (nfds_t)nfds, poll_timeout_ms(&c)) < 0 && errno != EINTR) {
            rc = pw_error_set(err, PW_EINTERNAL, "poll failed: %s", strerror(errno));
            break;
        }
        if (fds[1].revents & POLLIN)
            read_signals(&c, signal_fd);
        /* Called every turn, readable or not: this is also where heartbeats go out. */
        read_deliveries(&c);
    }
    if (!rc)
        pw_log_event(log, PW_LOG_INFO, "worker_stopped",
                     json_pack("{s:I}", "processed", (json_int_t)c.processed), NULL);
    consumer_cleanup(&c, 1);
    return rc;
}
