/* events.h - Celery's monitoring events on the `celeryev` topic exchange.
 *
 * What a Celery 5.2 worker sends, field for field (celery/events/dispatcher.py,
 * celery/worker/heartbeat.py): worker-online at start, worker-heartbeat every 2 s,
 * worker-offline at every clean exit (routing keys worker.online, worker.heartbeat,
 * worker.offline, body one JSON object), and with task events on (-E, or the
 * enable_events control command) task-received/started/succeeded/failed/retried/
 * rejected/revoked, published as Celery's buffered dispatcher does: routing key
 * task.multi, body a JSON array (here of one event).  Every event carries hostname,
 * utcoffset, pid, clock (Lamport), timestamp and type; messages are transient
 * (delivery_mode 1) with headers {"hostname": node}.  As in Celery, worker events are
 * sent without -E too (its heartbeat step); --without-heartbeat turns them off.
 *
 * The Lamport clock lives here and is shared with remote-control replies
 * (events_clock_*), as Celery's app.clock is.
 *
 * A struct events belongs to the consumer.  Sending never fails the caller: with no
 * connection, or when publishing fails, the event is dropped and logged (monitoring
 * is best effort, as Celery's dispatcher without buffering). */
#ifndef PW_EVENTS_H
#define PW_EVENTS_H

#include <jansson.h>

#include "log.h"
#include "pw_error.h"

#define EVENTS_EXCHANGE    "celeryev"
#define EVENTS_HEARTBEAT_S 2.0

struct broker;
struct events;

struct events_config {
    const char *hostname;
    int task_events;   /* -E */
    int worker_events; /* online/heartbeat/offline (off with --without-heartbeat) */
};

int events_create(struct events **out, const struct events_config *cfg, const struct pw_log *log,
                  struct pw_error *err);
void events_free(struct events *ev);

/* Declares celeryev on a new connection when anything is to be sent there. */
int events_attach(struct events *ev, struct broker *b, struct pw_error *err);
/* enable_events / disable_events: 1 when the setting changed. */
int events_set_task_events(struct events *ev, struct broker *b, int on);
int events_task_events(const struct events *ev);

/* Lamport clock: value, advance by one, merge a peer's value (max + 1). */
unsigned long events_clock(const struct events *ev);
unsigned long events_clock_forward(struct events *ev);
void events_clock_adjust(struct events *ev, unsigned long other);

/* worker-online / worker-heartbeat / worker-offline with the worker's counters. */
void events_worker(struct events *ev, struct broker *b, const char *type, int active,
                   unsigned long processed);
/* Sends a heartbeat when one is due; seconds until the next one in *next_s. */
void events_tick(struct events *ev, struct broker *b, int active, unsigned long processed,
                 double *next_s);
/* A task-* event with uuid and `fields` (stolen; NULL = none), when task events are on. */
void events_task(struct events *ev, struct broker *b, const char *type, const char *uuid,
                 json_t *fields);

/* task-retried, for a task republished with retries + 1: exception is the repr-style
 * text of what happened ("ConnectionError('qdrant unreachable')"), traceback may be
 * NULL. */
void events_task_retried(struct events *ev, struct broker *b, const char *uuid,
                         const char *exception, const char *traceback);

#endif
