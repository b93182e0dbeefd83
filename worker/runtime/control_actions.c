/* control_actions.c - the remote-control commands that change the worker: revoke,
 * terminate, events on/off, time limits, pool size (celery/worker/control.py; the
 * reply texts are Celery's). */
#include "control_private.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker.h"
#include "tasks.h"

#define MAX_SLOTS 1024

/* Celery's platforms.signals.signum: a number, or a name with or without SIG. */
static int signum_of(json_t *v)
{
    static const struct {
        const char *name;
        int num;
    } names[] = {{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"QUIT", SIGQUIT},
                 {"HUP", SIGHUP},   {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ABRT", SIGABRT}};
    const char *s = json_string_value(v);

    if (json_is_integer(v))
        return (int)json_integer_value(v);
    if (!s)
        return SIGTERM;
    if (!strncasecmp(s, "SIG", 3))
        s += 3;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name))
            return names[i].num;
    return atoi(s) > 0 ? atoi(s) : -1;
}

/* Joins the ids of `ids` (array of strings) with ", " into buf. */
static void join_ids(json_t *ids, char *buf, size_t cap)
{
    size_t i, n = 0;
    json_t *id;

    buf[0] = '\0';
    json_array_foreach(ids, i, id)
    {
        if (n + 3 >= cap)
            break;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", json_string_value(id));
    }
}

/* Raises the cancel flag of the running jobs in ids; the ids it hit into `hit`. */
static void terminate_running(const struct control_view *v, json_t *ids, int signum, json_t *hit)
{
    size_t k;
    json_t *id;

    for (int i = 0; i < v->n_running; i++) {
        struct pool_job *job = v->running[i];
        json_array_foreach(ids, k, id)
        {
            if (strcmp(json_string_value(id), job->msg.id))
                continue;
            job->terminate_signum = signum;
            atomic_store(&job->cancel, TASK_CANCEL_REVOKED);
            json_array_append(hit, id);
            break;
        }
    }
}

CONTROL_ACTION(revoke)
{
    json_t *given = json_object_get(args, "task_id"), *ids = json_array(), *id;
    char text[1024];
    size_t k;

    (void)b;
    if (json_is_string(given))
        json_array_append(ids, given);
    json_array_foreach(given, k, id) if (json_is_string(id)) json_array_append(ids, id);
    json_array_foreach(ids, k, id) revoked_add(ctl->revoked, json_string_value(id), 0);
    control_save_state(ctl);
    if (json_is_true(json_object_get(args, "terminate"))) {
        int signum = signum_of(json_object_get(args, "signal"));
        json_t *hit = json_array();
        if (signum <= 0) {
            json_decref(ids);
            json_decref(hit);
            return control_nok("ValueError('unknown signal')");
        }
        terminate_running(v, ids, signum, hit);
        join_ids(hit, text, sizeof text);
        pw_log_event(ctl->log, PW_LOG_INFO, "tasks_terminating",
                     json_pack("{s:o, s:i}", "task_ids", hit, "signal", signum), NULL);
        json_decref(ids);
        if (!text[0])
            return control_ok("terminate: tasks unknown");
        return json_pack("{s:s+}", "ok", "terminate: ", text);
    }
    join_ids(ids, text, sizeof text);
    pw_log_event(ctl->log, PW_LOG_INFO, "tasks_revoked", json_pack("{s:o}", "task_ids", ids),
                 "Tasks flagged as revoked");
    return json_pack("{s:s++}", "ok", "tasks ", text, " flagged as revoked");
}

CONTROL_ACTION(terminate)
{
    json_t *a = json_pack("{s:O?, s:b, s:O?}", "task_id", json_object_get(args, "task_id"),
                          "terminate", 1, "signal", json_object_get(args, "signal"));
    json_t *reply = control_cmd_revoke(ctl, b, v, a);

    json_decref(a);
    return reply;
}

CONTROL_ACTION(enable_events)
{
    (void)v;
    (void)args;
    if (!events_set_task_events(ctl->ev, b, 1))
        return control_ok("task events already enabled");
    pw_log_event(ctl->log, PW_LOG_INFO, "task_events_enabled", NULL,
                 "Events of group {task} enabled by remote.");
    return control_ok("task events enabled");
}

CONTROL_ACTION(disable_events)
{
    (void)v;
    (void)args;
    if (!events_set_task_events(ctl->ev, b, 0))
        return control_ok("task events already disabled");
    pw_log_event(ctl->log, PW_LOG_INFO, "task_events_disabled", NULL,
                 "Events of group {task} disabled by remote.");
    return control_ok("task events disabled");
}

CONTROL_ACTION(time_limit)
{
    const char *name = json_string_value(json_object_get(args, "task_name"));
    json_t *hard = json_object_get(args, "hard");

    (void)b;
    (void)v;
    if (!name || !tasks_lookup(name))
        return control_nok("unknown task");
    /* a null hard limit removes it, as Celery's task.time_limit = None */
    json_object_set_new(ctl->time_limits, name,
                        json_is_number(hard) ? json_real(json_number_value(hard)) : json_null());
    pw_log_event(ctl->log, PW_LOG_INFO, "time_limit_set",
                 json_pack("{s:s, s:O?}", "task", name, "hard_s", hard), NULL);
    return control_ok("time limits set successfully");
}

static int arg_int(json_t *args, const char *key, int fallback)
{
    json_t *v = json_object_get(args, key);

    if (json_is_integer(v))
        return (int)json_integer_value(v);
    if (json_is_string(v) && atoi(json_string_value(v)) > 0)
        return atoi(json_string_value(v));
    return fallback;
}

static void request_slots(struct control *ctl, int slots)
{
    ctl->requests.slots = slots < 1 ? 1 : slots > MAX_SLOTS ? MAX_SLOTS : slots;
}

CONTROL_ACTION(pool_grow)
{
    (void)b;
    request_slots(ctl, v->slots + arg_int(args, "n", 1));
    return control_ok("pool will grow");
}

CONTROL_ACTION(pool_shrink)
{
    (void)b;
    request_slots(ctl, v->slots - arg_int(args, "n", 1));
    return control_ok("pool will shrink");
}

/* No autoscaler: the pool is sized to max at once (min is reported, not used). */
CONTROL_ACTION(autoscale)
{
    int max = arg_int(args, "max", v->slots), min = arg_int(args, "min", 0);
    char text[96];

    (void)b;
    request_slots(ctl, max);
    snprintf(text, sizeof text, "autoscale now max=%d min=%d", ctl->requests.slots, min);
    return control_ok(text);
}

/* Consumed at once, declared as -Q's queues are (Celery's default exchange_type
 * direct; other exchange arguments are not supported) and again after a reconnect. */
CONTROL_ACTION(add_consumer)
{
    const char *queue = json_string_value(json_object_get(args, "queue"));
    char text[300];
    struct pw_error err;

    (void)v;
    if (!queue || !*queue || strlen(queue) > 255)
        return control_nok("TypeError('add_consumer needs a queue name')");
    if (control_queue_index(ctl, queue) < 0)
        json_array_append_new(ctl->queues, json_string(queue));
    if (b && broker_add_queue(b, queue, &err))
        pw_log_event(ctl->log, PW_LOG_ERROR, "add_consumer_failed",
                     json_pack("{s:s}", "queue", queue), err.msg);
    else
        pw_log_event(ctl->log, PW_LOG_INFO, "consumer_added", json_pack("{s:s}", "queue", queue),
                     NULL);
    snprintf(text, sizeof text, "add consumer %s", queue);
    return control_ok(text);
}

CONTROL_ACTION(cancel_consumer)
{
    const char *queue = json_string_value(json_object_get(args, "queue"));
    char text[300];
    struct pw_error err;
    int i;

    (void)v;
    if (!queue)
        return control_nok("TypeError('cancel_consumer needs a queue name')");
    if ((i = control_queue_index(ctl, queue)) >= 0)
        json_array_remove(ctl->queues, (size_t)i);
    if (b && broker_remove_queue(b, queue, &err))
        pw_log_event(ctl->log, PW_LOG_ERROR, "cancel_consumer_failed",
                     json_pack("{s:s}", "queue", queue), err.msg);
    else
        pw_log_event(ctl->log, PW_LOG_INFO, "consumer_cancelled",
                     json_pack("{s:s}", "queue", queue), NULL);
    snprintf(text, sizeof text, "no longer consuming from %.250s", queue);
    return control_ok(text);
}
