/* control_private.h - what control.c (mailbox, mingle, hooks) and control_commands.c
 * (the command handlers) share.  Not for other modules: see control.h. */
#ifndef PW_CONTROL_PRIVATE_H
#define PW_CONTROL_PRIVATE_H

#include <stddef.h>

#include "control.h"

struct control {
    const struct consumer_config *cfg;
    const struct pw_log *log;
    double started_wall;
    json_t *totals;      /* {task name: tasks started} (stats "total") */
    json_t *time_limits; /* {task name: hard limit s} set by the time_limit command */
    json_t *queues;      /* task queues consumed: -Q, then add_consumer/cancel_consumer */
    struct events *ev;
    struct revoked *revoked;
    unsigned long loaded_clock;
    char pidbox_queue[300];
    int reply_declared; /* reply.celery.pidbox declared on this connection */
    /* mingle: pending until the first connection, then listening until mingle_until */
    int mingle_pending, mingle_nodes;
    char *mingle_tag;
    char mingle_ticket[40];
    double mingle_until;
    struct control_requests requests;
};

/* Runs one command: the reply (new reference; NULL = null), *no_reply for shutdown. */
json_t *control_command(struct control *ctl, struct broker *b, const struct control_view *v,
                        const char *method, json_t *args, int *no_reply);
/* Unix time as Celery's isoformat() with +00:00, into buf; returns buf. */
const char *control_iso_time(double t, char *buf, size_t cap);
/* {exc_type, exc_message: [...]} as Python's repr: "ValueError('...')". */
void control_exception_repr(json_t *exc, char *buf, size_t cap);
void control_save_state(struct control *ctl);
/* Position of queue in ctl->queues, -1 when not consumed. */
int control_queue_index(const struct control *ctl, const char *queue);
json_t *control_ok(const char *text);
json_t *control_nok(const char *text);

/* Commands that change something (control_actions.c). */
#define CONTROL_ACTION(name)                                                                       \
    json_t *control_cmd_##name(struct control *ctl, struct broker *b,                              \
                               const struct control_view *v, json_t *args)
CONTROL_ACTION(revoke);
CONTROL_ACTION(terminate);
CONTROL_ACTION(enable_events);
CONTROL_ACTION(disable_events);
CONTROL_ACTION(time_limit);
CONTROL_ACTION(pool_grow);
CONTROL_ACTION(pool_shrink);
CONTROL_ACTION(autoscale);
CONTROL_ACTION(add_consumer);
CONTROL_ACTION(cancel_consumer);

#endif
