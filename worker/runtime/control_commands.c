/* control_commands.c - Celery's remote-control commands (celery/worker/control.py),
 * with its reply values.  A handler returns the reply (new reference) or NULL for
 * Python's None. */
#include "control_private.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "broker_url.h"
#include "clock.h"
#include "tasks.h"

typedef json_t *(*command_fn)(struct control *ctl, struct broker *b, const struct control_view *v,
                              json_t *args);

json_t *control_ok(const char *text)
{
    return json_pack("{s:s}", "ok", text);
}

json_t *control_nok(const char *text)
{
    return json_pack("{s:s}", "error", text);
}

const char *control_iso_time(double t, char *buf, size_t cap)
{
    time_t secs = (time_t)t;
    struct tm tm;
    char base[32];

    unsigned micro = (unsigned)((t - (double)secs) * 1e6) % 1000000u;

    gmtime_r(&secs, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    /* bounded fields (19 + 1 + 6 + 6 characters), so that the compiler can see the
     * callers' 40-byte buffers suffice */
    snprintf(buf, cap, "%.19s.%06u+00:00", base, micro);
    return buf;
}

void control_exception_repr(json_t *exc, char *buf, size_t cap)
{
    const char *type = json_string_value(json_object_get(exc, "exc_type"));
    json_t *arg = json_array_get(json_object_get(exc, "exc_message"), 0);
    const char *msg = json_string_value(arg);
    size_t n;

    if (arg && !msg) { /* a number, e.g. TimeLimitExceeded(2.0) */
        char *text = json_dumps(arg, JSON_ENCODE_ANY);
        snprintf(buf, cap, "%s(%s)", type ? type : "Exception", text ? text : "");
        free(text);
        return;
    }
    n = (size_t)snprintf(buf, cap, "%s('", type ? type : "Exception");
    for (; msg && *msg && n + 4 < cap; msg++) {
        if (*msg == '\'' || *msg == '\\')
            buf[n++] = '\\';
        buf[n++] = *msg;
    }
    snprintf(buf + (n < cap ? n : cap - 1), cap - (n < cap ? n : cap - 1), "')");
}

/* ---- inspect ---------------------------------------------------------------------- */

/* Celery's Request.info(): what active/reserved/scheduled list per task. */
static json_t *request_info(const struct control *ctl, const struct pool_job *job, int running)
{
    double start = running ? pw_wall_now() - (pw_mono_now() - job->started_at) : 0;

    return json_pack("{s:s, s:s, s:O, s:O, s:s, s:s, s:o, s:b, s:{s:s, s:s?, s:i, s:b}, s:n}", "id",
                     job->msg.id, "name", job->msg.task, "args", job->msg.args, "kwargs",
                     job->msg.kwargs, "type", job->msg.task, "hostname", ctl->cfg->hostname,
                     "time_start", running ? json_real(start) : json_null(), "acknowledged", 0,
                     "delivery_info", "exchange", "", "routing_key", job->queue, "priority", 0,
                     "redelivered", job->redelivered, "worker_pid");
}

static json_t *cmd_active(struct control *ctl, struct broker *b, const struct control_view *v,
                          json_t *args)
{
    json_t *list = json_array();

    (void)b;
    (void)args;
    for (int i = 0; i < v->n_running; i++)
        json_array_append_new(list, request_info(ctl, v->running[i], 1));
    return list;
}

static json_t *cmd_reserved(struct control *ctl, struct broker *b, const struct control_view *v,
                            json_t *args)
{
    json_t *list = json_array();

    (void)b;
    (void)args;
    for (const struct pool_job *j = v->reserved; j; j = j->next)
        json_array_append_new(list, request_info(ctl, j, 0));
    return list;
}

static json_t *cmd_scheduled(struct control *ctl, struct broker *b, const struct control_view *v,
                             json_t *args)
{
    json_t *list = json_array();
    char eta[40];

    (void)b;
    (void)args;
    for (const struct pool_job *j = v->scheduled; j; j = j->next)
        json_array_append_new(list, json_pack("{s:s, s:i, s:o}", "eta",
                                              control_iso_time(j->msg.eta, eta, sizeof eta),
                                              "priority", 0, "request", request_info(ctl, j, 0)));
    return list;
}

static json_t *cmd_query_task(struct control *ctl, struct broker *b, const struct control_view *v,
                              json_t *args)
{
    json_t *ids = json_object_get(args, "ids"), *out = json_object(), *id;
    size_t k;

    (void)b;
    if (json_is_string(ids))
        ids = json_pack("[O]", ids);
    else
        json_incref(ids);
    json_array_foreach(ids, k, id)
    {
        const char *s = json_string_value(id);
        for (int i = 0; s && i < v->n_running; i++)
            if (!strcmp(v->running[i]->msg.id, s))
                json_object_set_new(
                    out, s, json_pack("[s,o]", "active", request_info(ctl, v->running[i], 1)));
        for (const struct pool_job *j = v->reserved; s && j; j = j->next)
            if (!strcmp(j->msg.id, s))
                json_object_set_new(out, s,
                                    json_pack("[s,o]", "reserved", request_info(ctl, j, 0)));
    }
    json_decref(ids);
    return out;
}

static json_t *cmd_registered(struct control *ctl, struct broker *b, const struct control_view *v,
                              json_t *args)
{
    json_t *list = json_array();
    int builtins = json_is_true(json_object_get(args, "builtins"));

    (void)ctl;
    (void)b;
    (void)v;
    for (const char *const *n = tasks_names(); *n; n++) {
        size_t at = 0; /* sorted, as Celery lists them */
        if (!builtins && !strncmp(*n, "celery.", 7))
            continue;
        while (at < json_array_size(list) &&
               strcmp(json_string_value(json_array_get(list, at)), *n) < 0)
            at++;
        json_array_insert_new(list, at, json_string(*n));
    }
    return list;
}

static json_t *cmd_revoked(struct control *ctl, struct broker *b, const struct control_view *v,
                           json_t *args)
{
    (void)b;
    (void)v;
    (void)args;
    return revoked_list(ctl->revoked);
}

static json_t *broker_info(const struct control *ctl)
{
    struct broker_url u;
    struct pw_error err;
    json_t *o;

    if (broker_url_parse(ctl->cfg->broker_url, &u, &err))
        return json_object();
    /* Celery's Connection.info() without the password. */
    o = json_pack(
        "{s:s, s:s, s:s, s:i, s:b, s:s, s:f, s:f, s:s, s:b, s:[], s:s, s:{}, s:n}", "hostname",
        u.host, "userid", u.user ? u.user : "", "virtual_host", u.vhost, "port", u.port, "ssl",
        u.tls, "transport", "amqp", "heartbeat", (double)ctl->cfg->heartbeat_s, "connect_timeout",
        ctl->cfg->connect_timeout_ms / 1000.0, "login_method", "PLAIN", "insist", 0, "alternates",
        "failover_strategy", "round-robin", "transport_options", "uri_prefix");
    broker_url_free(&u);
    return o;
}

static json_t *rusage_info(void)
{
    struct rusage r;

    getrusage(RUSAGE_SELF, &r);
    return json_pack("{s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:I}",
                     "utime", r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6, "stime",
                     r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6, "maxrss",
                     (json_int_t)r.ru_maxrss, "ixrss", (json_int_t)r.ru_ixrss, "idrss",
                     (json_int_t)r.ru_idrss, "isrss", (json_int_t)r.ru_isrss, "minflt",
                     (json_int_t)r.ru_minflt, "majflt", (json_int_t)r.ru_majflt, "nswap",
                     (json_int_t)r.ru_nswap, "inblock", (json_int_t)r.ru_inblock, "oublock",
                     (json_int_t)r.ru_oublock, "msgsnd", (json_int_t)r.ru_msgsnd, "msgrcv",
                     (json_int_t)r.ru_msgrcv, "nsignals", (json_int_t)r.ru_nsignals, "nvcsw",
                     (json_int_t)r.ru_nvcsw, "nivcsw", (json_int_t)r.ru_nivcsw);
}

static json_t *cmd_stats(struct control *ctl, struct broker *b, const struct control_view *v,
                         json_t *args)
{
    char clock[32];

    (void)b;
    (void)args;
    snprintf(clock, sizeof clock, "%lu", events_clock(ctl->ev));
    return json_pack("{s:O, s:i, s:s, s:i, s:{s:i, s:s, s:[], s:b, s:[i,i]}, s:i, s:o, s:o}",
                     "total", ctl->totals, "pid", (int)getpid(), "clock", clock, "uptime",
                     (int)(pw_wall_now() - ctl->started_wall + 0.5), "pool", "max-concurrency",
                     v->slots, "max-tasks-per-child", "N/A", "processes",
                     "put-guarded-by-semaphore", 0, "timeouts", 0, 0, "prefetch_count",
                     v->prefetch_count, "broker", broker_info(ctl), "rusage", rusage_info());
}

static json_t *cmd_active_queues(struct control *ctl, struct broker *b,
                                 const struct control_view *v, json_t *args)
{
    json_t *list = json_array();

    (void)b;
    (void)v;
    (void)args;
    for (size_t i = 0; i < json_array_size(ctl->queues); i++) {
        const char *q = json_string_value(json_array_get(ctl->queues, i));
        json_array_append_new(
            list,
            json_pack("{s:s, s:{s:s, s:s, s:n, s:b, s:b, s:b, s:n, s:b}, s:s, s:n, s:n, s:n, s:b, "
                      "s:b, s:b, s:b, s:n, s:[], s:n, s:n, s:n, s:n, s:n, s:n}",
                      "name", q, "exchange", "name", q, "type", "direct", "arguments", "durable", 1,
                      "passive", 0, "auto_delete", 0, "delivery_mode", "no_declare", 0,
                      "routing_key", q, "queue_arguments", "binding_arguments",
                      "consumer_arguments", "durable", 1, "exclusive", 0, "auto_delete", 0,
                      "no_ack", 0, "alias", "bindings", "no_declare", "expires", "message_ttl",
                      "max_length", "max_length_bytes", "max_priority"));
    }
    return list;
}

static json_t *cmd_conf(struct control *ctl, struct broker *b, const struct control_view *v,
                        json_t *args)
{
    char masked[512];

    (void)b;
    (void)args;
    broker_url_mask(ctl->cfg->broker_url, masked, sizeof masked);
    return json_pack("{s:s, s:s?, s:s, s:[s], s:s, s:i, s:i, s:i, s:b, s:b, s:b}", "broker_url",
                     masked, "result_backend", ctl->cfg->results_enabled ? "rpc:///" : NULL,
                     "task_serializer", "json", "accept_content", "json", "result_serializer",
                     "json", "task_protocol", 2, "worker_concurrency", v->slots,
                     "worker_prefetch_multiplier", ctl->cfg->prefetch_multiplier,
                     "task_track_started", ctl->cfg->track_started, "task_acks_late", 1,
                     "worker_send_task_events", events_task_events(ctl->ev));
}

static json_t *cmd_report(struct control *ctl, struct broker *b, const struct control_view *v,
                          json_t *args)
{
    char text[1024];

    (void)b;
    (void)v;
    (void)args;
    snprintf(text, sizeof text,
             "software -> projection-worker (Celery %s wire protocol) pid:%d\n"
             "node -> %s\nbroker -> amqp\nresults -> %s\n",
             "5.2.6", (int)getpid(), ctl->cfg->hostname,
             ctl->cfg->results_enabled ? "rpc://" : "disabled");
    return control_ok(text);
}

static json_t *cmd_ping(struct control *ctl, struct broker *b, const struct control_view *v,
                        json_t *args)
{
    (void)ctl;
    (void)b;
    (void)v;
    (void)args;
    return control_ok("pong");
}

static json_t *cmd_clock(struct control *ctl, struct broker *b, const struct control_view *v,
                         json_t *args)
{
    (void)b;
    (void)v;
    (void)args;
    return json_pack("{s:I}", "clock", (json_int_t)events_clock(ctl->ev));
}

static json_t *cmd_hello(struct control *ctl, struct broker *b, const struct control_view *v,
                         json_t *args)
{
    const char *from = json_string_value(json_object_get(args, "from_node"));

    (void)b;
    (void)v;
    if (!from || !strcmp(from, ctl->cfg->hostname))
        return NULL;
    pw_log_event(ctl->log, PW_LOG_INFO, "mingle_hello", json_pack("{s:s}", "node", from),
                 "sync with a starting node");
    if (json_is_object(json_object_get(args, "revoked")))
        revoked_merge(ctl->revoked, json_object_get(args, "revoked"));
    return json_pack("{s:o, s:I}", "revoked", revoked_map(ctl->revoked), "clock",
                     (json_int_t)events_clock_forward(ctl->ev));
}

static json_t *cmd_heartbeat(struct control *ctl, struct broker *b, const struct control_view *v,
                             json_t *args)
{
    (void)args;
    events_worker(ctl->ev, b, "worker-heartbeat", v->n_running, v->processed);
    return NULL;
}

static const struct {
    const char *name;
    command_fn fn;
} commands[] = {
    {"ping", cmd_ping},
    {"stats", cmd_stats},
    {"active", cmd_active},
    {"dump_active", cmd_active},
    {"reserved", cmd_reserved},
    {"dump_reserved", cmd_reserved},
    {"scheduled", cmd_scheduled},
    {"dump_schedule", cmd_scheduled},
    {"registered", cmd_registered},
    {"dump_tasks", cmd_registered},
    {"revoked", cmd_revoked},
    {"dump_revoked", cmd_revoked},
    {"query_task", cmd_query_task},
    {"active_queues", cmd_active_queues},
    {"conf", cmd_conf},
    {"dump_conf", cmd_conf},
    {"report", cmd_report},
    {"clock", cmd_clock},
    {"hello", cmd_hello},
    {"heartbeat", cmd_heartbeat},
    {"revoke", control_cmd_revoke},
    {"terminate", control_cmd_terminate},
    {"enable_events", control_cmd_enable_events},
    {"disable_events", control_cmd_disable_events},
    {"time_limit", control_cmd_time_limit},
    {"pool_grow", control_cmd_pool_grow},
    {"pool_shrink", control_cmd_pool_shrink},
    {"autoscale", control_cmd_autoscale},
    {"add_consumer", control_cmd_add_consumer},
    {"cancel_consumer", control_cmd_cancel_consumer},
};

json_t *control_command(struct control *ctl, struct broker *b, const struct control_view *v,
                        const char *method, json_t *args, int *no_reply)
{
    char text[300];

    *no_reply = 0;
    if (!strcmp(method, "shutdown")) {
        /* Celery raises WorkerShutdown: no reply, worker-offline, exit 0. */
        pw_log_event(ctl->log, PW_LOG_WARNING, "shutdown_requested", NULL,
                     "Got shutdown from remote");
        ctl->requests.shutdown = 1;
        *no_reply = 1;
        return NULL;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(commands[i].name, method))
            return commands[i].fn(ctl, b, v, args);
    /* kombu's Node.dispatch: handlers[method] raised KeyError, replied as its repr */
    snprintf(text, sizeof text, "KeyError('%.200s')", method);
    return control_nok(text);
}
