/* events.c - Celery's monitoring events (see header). */
#include "events.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "clock.h"

/* What Celery's workers put in sw_* (celery.worker.state.SOFTWARE_INFO); monitors show
 * sw_ident/sw_ver, and Flower and `celery events` expect Celery-like values. */
#define SW_IDENT "py-celery"
#define SW_VER   "5.2.6"

struct events {
    struct events_config cfg;
    const struct pw_log *log;
    unsigned long clock;
    double next_heartbeat;      /* monotonic */
    struct broker *declared_on; /* the connection celeryev was declared on */
};

int events_create(struct events **out, const struct events_config *cfg, const struct pw_log *log,
                  struct pw_error *err)
{
    struct events *ev = calloc(1, sizeof *ev);

    *out = NULL;
    if (!ev)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    ev->cfg = *cfg;
    ev->log = log;
    *out = ev;
    return 0;
}

void events_free(struct events *ev)
{
    free(ev);
}

static int wanted(const struct events *ev)
{
    return ev->cfg.task_events || ev->cfg.worker_events;
}

int events_attach(struct events *ev, struct broker *b, struct pw_error *err)
{
    int rc;

    ev->declared_on = NULL;
    if (!b || !wanted(ev))
        return 0;
    if ((rc = broker_declare_exchange(b, EVENTS_EXCHANGE, "topic", 1, err)))
        return rc;
    ev->declared_on = b;
    return 0;
}

int events_set_task_events(struct events *ev, struct broker *b, int on)
{
    struct pw_error err;

    if (!ev->cfg.task_events == !on)
        return 0;
    ev->cfg.task_events = on;
    if (on && b && ev->declared_on != b && events_attach(ev, b, &err))
        pw_log_event(ev->log, PW_LOG_ERROR, "events_declare_failed", NULL, err.msg);
    return 1;
}

int events_task_events(const struct events *ev)
{
    return ev->cfg.task_events;
}

unsigned long events_clock(const struct events *ev)
{
    return ev->clock;
}

unsigned long events_clock_forward(struct events *ev)
{
    return ++ev->clock;
}

void events_clock_adjust(struct events *ev, unsigned long other)
{
    ev->clock = (other > ev->clock ? other : ev->clock) + 1;
}

/* Celery's utcoffset(): hours WEST of UTC (time.timezone // 3600), 0 here in UTC. */
static int utcoffset_hours(void)
{
    time_t now = time(NULL);
    struct tm tm;
    long west;

    localtime_r(&now, &tm);
    west = -tm.tm_gmtoff;
    return (int)(west >= 0 ? west / 3600 : -((-west + 3599) / 3600));
}

/* Adds the fields every event has and publishes; steals `e`. */
static void publish(struct events *ev, struct broker *b, const char *type, const char *key,
                    json_t *e, int as_array)
{
    struct broker_publish_props props = {.delivery_mode = 1};
    json_t *headers, *body;
    struct pw_error err;
    char *text;

    json_object_set_new(e, "hostname", json_string(ev->cfg.hostname));
    json_object_set_new(e, "utcoffset", json_integer(utcoffset_hours()));
    json_object_set_new(e, "pid", json_integer(getpid()));
    json_object_set_new(e, "clock", json_integer((json_int_t)events_clock_forward(ev)));
    json_object_set_new(e, "timestamp", json_real(pw_wall_now()));
    json_object_set_new(e, "type", json_string(type));
    body = as_array ? json_pack("[o]", e) : e;
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!b || b != ev->declared_on || !text) {
        free(text);
        return; /* no connection (or celeryev not declared on it): dropped */
    }
    headers = json_pack("{s:s}", "hostname", ev->cfg.hostname);
    props.headers = headers;
    if (broker_publish(b, EVENTS_EXCHANGE, key, &props, text, strlen(text), &err))
        pw_log_event(ev->log, PW_LOG_WARNING, "event_publish_failed",
                     json_pack("{s:s}", "type", type), err.msg);
    json_decref(headers);
    free(text);
}

void events_worker(struct events *ev, struct broker *b, const char *type, int active,
                   unsigned long processed)
{
    struct utsname u;
    double load[3] = {0, 0, 0};
    char key[32];
    json_t *e;

    if (!ev || !ev->cfg.worker_events)
        return;
    if (uname(&u))
        strcpy(u.sysname, "Linux");
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = 0;
    e = json_pack("{s:f, s:i, s:I, s:[f,f,f], s:s, s:s, s:s}", "freq", EVENTS_HEARTBEAT_S, "active",
                  active, "processed", (json_int_t)processed, "loadavg",
                  (long)(load[0] * 100 + 0.5) / 100.0, (long)(load[1] * 100 + 0.5) / 100.0,
                  (long)(load[2] * 100 + 0.5) / 100.0, "sw_ident", SW_IDENT, "sw_ver", SW_VER,
                  "sw_sys", u.sysname);
    snprintf(key, sizeof key, "%s", type);
    for (char *p = key; *p; p++)
        if (*p == '-')
            *p = '.';
    if (e)
        publish(ev, b, type, key, e, 0);
    ev->next_heartbeat = pw_mono_now() + EVENTS_HEARTBEAT_S;
}

void events_tick(struct events *ev, struct broker *b, int active, unsigned long processed,
                 double *next_s)
{
    double now = pw_mono_now();

    if (!ev || !ev->cfg.worker_events || !b) {
        *next_s = 3600;
        return;
    }
    if (now >= ev->next_heartbeat)
        events_worker(ev, b, "worker-heartbeat", active, processed);
    *next_s = ev->next_heartbeat - now;
}

void events_task(struct events *ev, struct broker *b, const char *type, const char *uuid,
                 json_t *fields)
{
    json_t *e;

    if (!ev || !ev->cfg.task_events) {
        json_decref(fields);
        return;
    }
    e = fields ? fields : json_object();
    if (!e)
        return;
    json_object_set_new(e, "uuid", json_string(uuid));
    publish(ev, b, type, "task.multi", e, 1);
}

void events_task_retried(struct events *ev, struct broker *b, const char *uuid,
                         const char *exception, const char *traceback)
{
    events_task(ev, b, "task-retried", uuid,
                json_pack("{s:s?, s:s?}", "exception", exception, "traceback", traceback));
}
