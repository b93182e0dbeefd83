/* control.c - the pidbox mailbox, mingle and the task lifecycle hooks (see header).
 * The command handlers are in control_commands.c. */
#include "control_private.h"

#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "celery_result.h"
#include "clock.h"

#define PIDBOX_EXCHANGE "celery.pidbox"
#define REPLY_EXCHANGE  "reply.celery.pidbox"
#define PIDBOX_EXPIRES  10000  /* x-expires, ms (kombu Mailbox.queue_expires) */
#define PIDBOX_TTL      300000 /* x-message-ttl, ms (kombu Mailbox.queue_ttl) */
#define MINGLE_WAIT_S   1.0

int control_create(struct control **out, const struct consumer_config *cfg,
                   const struct pw_log *log, struct pw_error *err)
{
    struct control *ctl = calloc(1, sizeof *ctl);
    struct events_config ec = {cfg->hostname, cfg->task_events, !cfg->without_heartbeat};
    int rc;

    *out = NULL;
    if (!ctl)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    ctl->cfg = cfg;
    ctl->log = log;
    ctl->started_wall = pw_wall_now();
    ctl->totals = json_object();
    ctl->time_limits = json_object();
    ctl->queues = json_array();
    for (size_t i = 0; ctl->queues && i < cfg->n_queues; i++)
        json_array_append_new(ctl->queues, json_string(cfg->queues[i]));
    if (!ctl->totals || !ctl->time_limits || !ctl->queues) {
        control_free(ctl);
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    }
    if ((rc = events_create(&ctl->ev, &ec, log, err)) ||
        (rc = revoked_create(&ctl->revoked, cfg->statedb, err)) ||
        (rc = revoked_load(ctl->revoked, &ctl->loaded_clock, err))) {
        control_free(ctl);
        return rc;
    }
    events_clock_adjust(ctl->ev, ctl->loaded_clock);
    snprintf(ctl->pidbox_queue, sizeof ctl->pidbox_queue, "%s.celery.pidbox", cfg->hostname);
    ctl->mingle_pending = !cfg->without_mingle;
    *out = ctl;
    return 0;
}

void control_free(struct control *ctl)
{
    if (!ctl)
        return;
    events_free(ctl->ev);
    revoked_free(ctl->revoked);
    json_decref(ctl->totals);
    json_decref(ctl->time_limits);
    json_decref(ctl->queues);
    free(ctl->mingle_tag);
    free(ctl);
}

struct events *control_events(struct control *ctl)
{
    return ctl ? ctl->ev : NULL;
}

void control_save_state(struct control *ctl)
{
    struct pw_error err;

    if (revoked_save(ctl->revoked, events_clock(ctl->ev), &err))
        pw_log_event(ctl->log, PW_LOG_ERROR, "statedb_write_failed", NULL, err.msg);
}

/* ---- mingle --------------------------------------------------------------------- */

/* A random uuid4 text (kombu's oid is a uuid too). */
static void make_uuid(char out[37])
{
    unsigned char r[16];
    FILE *f = fopen("/dev/urandom", "rb");

    if (!f || fread(r, 1, sizeof r, f) != sizeof r) {
        for (int i = 0; i < 16; i++)
            r[i] = (unsigned char)(rand() & 0xff);
    }
    if (f)
        fclose(f);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

/* Broadcasts hello {from_node, revoked} and listens on our reply queue for 1 s. */
static int start_mingle(struct control *ctl, struct broker *b, struct pw_error *err)
{
    struct broker_publish_props props = {.delivery_mode = 2};
    char oid[37], ticket[37], queue[128];
    json_t *body, *headers;
    char *text;
    int rc;

    make_uuid(oid);
    make_uuid(ticket);
    snprintf(queue, sizeof queue, "%s.%s", oid, REPLY_EXCHANGE);
    if ((rc = broker_declare_exchange(b, REPLY_EXCHANGE, "direct", 0, err)) ||
        (rc = broker_declare_transient_queue(b, queue, PIDBOX_EXPIRES, PIDBOX_TTL, REPLY_EXCHANGE,
                                             oid, err)) ||
        (rc = broker_consume_noack(b, queue, &ctl->mingle_tag, err)))
        return rc;
    snprintf(ctl->mingle_ticket, sizeof ctl->mingle_ticket, "%s", ticket);
    body = json_pack("{s:s, s:{s:s, s:o}, s:n, s:n, s:n, s:s, s:{s:s, s:s}}", "method", "hello",
                     "arguments", "from_node", ctl->cfg->hostname, "revoked",
                     revoked_map(ctl->revoked), "destination", "pattern", "matcher", "ticket",
                     ticket, "reply_to", "exchange", REPLY_EXCHANGE, "routing_key", oid);
    headers = json_pack("{s:I, s:f}", "clock", (json_int_t)events_clock_forward(ctl->ev), "expires",
                        pw_wall_now() + MINGLE_WAIT_S);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    props.headers = headers;
    rc = text ? broker_publish(b, PIDBOX_EXCHANGE, "", &props, text, strlen(text), err)
              : pw_error_set(err, PW_ENOMEM, "out of memory");
    free(text);
    json_decref(body);
    json_decref(headers);
    ctl->mingle_until = pw_mono_now() + MINGLE_WAIT_S;
    return rc;
}

static void end_mingle(struct control *ctl, struct broker *b)
{
    struct pw_error err;

    if (ctl->mingle_tag && b && broker_cancel_tag(b, ctl->mingle_tag, &err))
        pw_log_event(ctl->log, PW_LOG_WARNING, "mingle_cancel_failed", NULL, err.msg);
    free(ctl->mingle_tag);
    ctl->mingle_tag = NULL;
    ctl->mingle_until = 0;
    pw_log_event(
        ctl->log, PW_LOG_INFO, "mingle_done", json_pack("{s:i}", "nodes", ctl->mingle_nodes),
        ctl->mingle_nodes ? "mingle: synced revoked ids with other nodes" : "mingle: all alone");
}

/* A reply to our hello: {"node": {"revoked": {...}, "clock": N}}. */
static void mingle_reply(struct control *ctl, json_t *body, json_t *headers)
{
    const char *node;
    json_t *reply;
    const char *ticket = json_string_value(json_object_get(headers, "ticket"));

    if (!ticket || strcmp(ticket, ctl->mingle_ticket))
        return;
    json_object_foreach(body, node, reply)
    {
        if (!strcmp(node, ctl->cfg->hostname) || !json_is_object(reply))
            continue;
        ctl->mingle_nodes++;
        revoked_merge(ctl->revoked, json_object_get(reply, "revoked"));
        if (json_is_integer(json_object_get(reply, "clock")))
            events_clock_adjust(ctl->ev,
                                (unsigned long)json_integer_value(json_object_get(reply, "clock")));
        pw_log_event(ctl->log, PW_LOG_INFO, "mingle_sync", json_pack("{s:s}", "node", node), NULL);
    }
}

/* ---- connection ------------------------------------------------------------------ */

/* A new connection consumes -Q's queues: make it consume ctl->queues instead. */
static int restore_queues(struct control *ctl, struct broker *b, struct pw_error *err)
{
    size_t i;
    json_t *q;
    int rc = 0;

    for (size_t k = 0; !rc && k < ctl->cfg->n_queues; k++)
        if (control_queue_index(ctl, ctl->cfg->queues[k]) < 0)
            rc = broker_remove_queue(b, ctl->cfg->queues[k], err);
    json_array_foreach(ctl->queues, i, q)
    {
        if (!rc)
            rc = broker_add_queue(b, json_string_value(q), err);
    }
    return rc;
}

int control_queue_index(const struct control *ctl, const char *queue)
{
    size_t i;
    json_t *q;

    json_array_foreach(ctl->queues, i, q) if (!strcmp(json_string_value(q), queue)) return (int)i;
    return -1;
}

int control_attach(struct control *ctl, struct broker *b, const struct control_view *v,
                   struct pw_error *err)
{
    char *tag = NULL;
    int rc;

    free(ctl->mingle_tag); /* its consumer died with the previous connection */
    ctl->mingle_tag = NULL;
    ctl->reply_declared = 0;
    if ((rc = restore_queues(ctl, b, err)) ||
        (rc = broker_declare_exchange(b, PIDBOX_EXCHANGE, "fanout", 0, err)) ||
        (rc = broker_declare_transient_queue(b, ctl->pidbox_queue, PIDBOX_EXPIRES, PIDBOX_TTL,
                                             PIDBOX_EXCHANGE, "", err)) ||
        (rc = broker_consume_noack(b, ctl->pidbox_queue, &tag, err)) ||
        (rc = events_attach(ctl->ev, b, err)))
        goto done;
    events_worker(ctl->ev, b, "worker-online", v->n_running, v->processed);
    if (ctl->mingle_pending) {
        ctl->mingle_pending = 0;
        rc = start_mingle(ctl, b, err);
    }
done:
    free(tag);
    return rc;
}

void control_detach(struct control *ctl, struct broker *b, const struct control_view *v)
{
    if (!ctl)
        return;
    if (b)
        events_worker(ctl->ev, b, "worker-offline", v->n_running, v->processed);
    control_save_state(ctl);
}

void control_tick(struct control *ctl, struct broker *b, const struct control_view *v,
                  double *next_s)
{
    double now = pw_mono_now();

    events_tick(ctl->ev, b, v->n_running, v->processed, next_s);
    if (ctl->mingle_until > 0) {
        if (now >= ctl->mingle_until)
            end_mingle(ctl, b);
        else if (ctl->mingle_until - now < *next_s)
            *next_s = ctl->mingle_until - now;
    }
}

/* ---- mailbox --------------------------------------------------------------------- */

int control_owns(const struct broker_delivery *d)
{
    return d->exchange &&
           (!strcmp(d->exchange, PIDBOX_EXCHANGE) || !strcmp(d->exchange, REPLY_EXCHANGE));
}

/* kombu.utils.functional.match: glob (fnmatch) or pcre (a regex matched at the start). */
static int name_matches(const char *name, const char *pattern, const char *matcher)
{
    regex_t re;
    regmatch_t m;
    int ok;

    if (!strcmp(matcher, "glob"))
        return fnmatch(pattern, name, 0) == 0;
    if (strcmp(matcher, "pcre") || regcomp(&re, pattern, REG_EXTENDED))
        return 0;
    ok = regexec(&re, name, 1, &m, 0) == 0 && m.rm_so == 0;
    regfree(&re);
    return ok;
}

static int for_me(const struct control *ctl, json_t *body)
{
    json_t *dest = json_object_get(body, "destination"), *name;
    const char *pattern = json_string_value(json_object_get(body, "pattern"));
    const char *matcher = json_string_value(json_object_get(body, "matcher"));
    size_t i;

    if (json_is_array(dest) && json_array_size(dest) > 0) {
        json_array_foreach(dest, i,
                           name) if (json_is_string(name) &&
                                     !strcmp(json_string_value(name), ctl->cfg->hostname)) return 1;
        return 0;
    }
    if (pattern && matcher)
        return name_matches(ctl->cfg->hostname, pattern, matcher);
    return 1;
}

static void send_reply(struct control *ctl, struct broker *b, json_t *body, json_t *reply)
{
    struct broker_publish_props props = {.delivery_mode = 1};
    json_t *to = json_object_get(body, "reply_to");
    const char *exchange = json_string_value(json_object_get(to, "exchange"));
    const char *key = json_string_value(json_object_get(to, "routing_key"));
    const char *ticket = json_string_value(json_object_get(body, "ticket"));
    json_t *wrapped = json_pack("{s:O}", ctl->cfg->hostname, reply ? reply : json_null());
    json_t *headers = json_pack("{s:s?, s:I}", "ticket", ticket, "clock",
                                (json_int_t)events_clock_forward(ctl->ev));
    char *text = wrapped ? json_dumps(wrapped, JSON_COMPACT) : NULL;
    struct pw_error err;
    int rc = 0;

    props.headers = headers;
    if (exchange && key && text) {
        if (!ctl->reply_declared)
            rc = broker_declare_exchange(b, exchange, "direct", 0, &err);
        ctl->reply_declared = !rc;
        if (!rc)
            rc = broker_publish(b, exchange, key, &props, text, strlen(text), &err);
        if (rc)
            pw_log_event(ctl->log, PW_LOG_ERROR, "control_reply_failed", NULL, err.msg);
    }
    free(text);
    json_decref(wrapped);
    json_decref(headers);
}

void control_handle(struct control *ctl, struct broker *b, const struct broker_delivery *d,
                    const struct control_view *v)
{
    json_t *body = json_loadb(d->body, d->body_len, 0, NULL), *reply;
    json_t *clock = json_object_get(d->headers, "clock");
    const char *method = json_string_value(json_object_get(body, "method"));
    int no_reply = 0;

    if (json_is_integer(clock))
        events_clock_adjust(ctl->ev, (unsigned long)json_integer_value(clock));
    if (!strcmp(d->exchange, REPLY_EXCHANGE)) {
        if (json_is_object(body))
            mingle_reply(ctl, body, d->headers);
    } else if (!json_is_object(body) || !method) {
        pw_log_event(ctl->log, PW_LOG_WARNING, "control_message_invalid", NULL,
                     "pidbox message is not a {method, arguments} object; ignored");
    } else if (for_me(ctl, body)) {
        json_t *args = json_object_get(body, "arguments");
        pw_log_event(ctl->log, PW_LOG_DEBUG, "control_command",
                     json_pack("{s:s}", "method", method), NULL);
        reply = control_command(ctl, b, v, method, json_is_object(args) ? args : NULL, &no_reply);
        if (!no_reply && json_object_get(body, "reply_to"))
            send_reply(ctl, b, body, reply);
        json_decref(reply);
    }
    json_decref(body);
}

void control_take_requests(struct control *ctl, struct control_requests *out)
{
    *out = ctl->requests;
    memset(&ctl->requests, 0, sizeof ctl->requests);
}

/* ---- task lifecycle -------------------------------------------------------------- */

void control_task_received(struct control *ctl, struct broker *b, const struct celery_task_msg *m)
{
    char eta[40], expires[40];

    events_task(
        ctl->ev, b, "task-received", m->id,
        json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:i, s:s?, s:s?}", "name", m->task, "args",
                  m->argsrepr, "kwargs", m->kwargsrepr, "root_id", m->root_id, "parent_id",
                  m->parent_id, "retries", m->retries, "eta",
                  m->eta > 0 ? control_iso_time(m->eta, eta, sizeof eta) : NULL, "expires",
                  m->expires > 0 ? control_iso_time(m->expires, expires, sizeof expires) : NULL));
}

void control_task_started(struct control *ctl, struct broker *b, const struct pool_job *job)
{
    json_t *n = json_object_get(ctl->totals, job->msg.task);

    json_object_set_new(ctl->totals, job->msg.task,
                        json_integer(n ? json_integer_value(n) + 1 : 1));
    events_task(ctl->ev, b, "task-started", job->msg.id, NULL);
}

void control_task_finished(struct control *ctl, struct broker *b, const struct pool_job *job,
                           const char *status, json_t *result)
{
    char *text;

    if (!strcmp(status, CELERY_SUCCESS)) {
        text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
        events_task(ctl->ev, b, "task-succeeded", job->msg.id,
                    json_pack("{s:s?, s:f}", "result", text, "runtime", job->runtime));
        free(text);
    } else if (!strcmp(status, CELERY_REVOKED)) {
        events_task(ctl->ev, b, "task-revoked", job->msg.id,
                    json_pack("{s:b, s:i, s:b}", "terminated", job->terminate_signum != 0, "signum",
                              job->terminate_signum, "expired", 0));
    } else {
        char exc[512];
        control_exception_repr(result, exc, sizeof exc);
        events_task(ctl->ev, b, "task-failed", job->msg.id,
                    json_pack("{s:s, s:s}", "exception", exc, "traceback", ""));
    }
}

void control_task_retried(struct control *ctl, struct broker *b, const struct pool_job *job)
{
    json_t *exc = celery_exception(job->outcome.exc_type, job->outcome.exc_module, job->err.msg);
    char text[512];

    control_exception_repr(exc, text, sizeof text);
    json_decref(exc);
    events_task_retried(ctl->ev, b, job->msg.id, text, NULL);
}

void control_task_rejected(struct control *ctl, struct broker *b, const char *id, int requeue)
{
    if (id)
        events_task(ctl->ev, b, "task-rejected", id, json_pack("{s:b}", "requeue", requeue));
}

void control_task_failed_early(struct control *ctl, struct broker *b, const char *id,
                               const char *exception)
{
    if (id)
        events_task(ctl->ev, b, "task-failed", id, json_pack("{s:s}", "exception", exception));
}

void control_task_discarded(struct control *ctl, struct broker *b, const char *id, int expired)
{
    events_task(ctl->ev, b, "task-revoked", id,
                json_pack("{s:b, s:n, s:b}", "terminated", 0, "signum", "expired", expired));
}

int control_is_revoked(struct control *ctl, const char *id)
{
    return revoked_contains(ctl->revoked, id);
}

double control_time_limit(struct control *ctl, const char *name, double from_message)
{
    json_t *hard = json_object_get(ctl->time_limits, name);

    return json_is_number(hard) ? json_number_value(hard) : from_message;
}
