/* celery_message.h - decode Celery task messages (protocol 2 and 1, JSON only).
 *
 * Input is transport-neutral (struct celery_delivery_in): the AMQP properties the
 * codec needs, the headers table already converted to JSON (amqp_json.h), and the
 * raw body.  Nothing but application/json is ever parsed: pickle, yaml, msgpack and
 * unknown types are refused by content type before the body is looked at.
 *
 * Protocol 2 keeps metadata in headers and the body is [args, kwargs, embed];
 * protocol 1 has empty headers and a JSON object body with the same fields.  As in
 * Celery 5, headers["task"] selects v2, otherwise a dict body with "task" is v1.
 * A v1 message published again for a retry has `retries` and `eta` headers, which
 * override its body's (a worker cannot rewrite a v1 body when it republishes).
 *
 * celery_message_decode() fills *out (which the caller then owns and releases with
 * celery_message_free()) or returns one of the CELERY_MSG_E* codes below with a
 * message in err.  Even on failure out->id and out->reply_to are filled when they
 * could be recovered, so the caller can send a FAILURE result. */
#ifndef PW_CELERY_MESSAGE_H
#define PW_CELERY_MESSAGE_H

#include <jansson.h>
#include <stddef.h>

#include "pw_error.h"

enum {
    CELERY_MSG_EREFUSED = -100,   /* content type not accepted (pickle, yaml, ...) */
    CELERY_MSG_EMALFORMED = -101, /* not JSON, or JSON of the wrong shape */
    CELERY_MSG_EUNKNOWN = -102    /* neither a v2 task header nor a v1 task body */
};

struct celery_delivery_in {
    const char *content_type;     /* NULL when absent */
    const char *content_encoding; /* NULL when absent */
    const char *correlation_id;
    const char *reply_to;
    json_t *headers; /* borrowed; NULL or an object */
    const char *body;
    size_t body_len;
};

struct celery_task_msg {
    int protocol; /* 1 or 2 */
    char *task;
    char *id;
    char *root_id, *parent_id, *group, *shadow, *origin; /* NULL when absent/null */
    char *argsrepr, *kwargsrepr;
    char *reply_to, *correlation_id;
    json_t *args;   /* array, owned */
    json_t *kwargs; /* object, owned */
    json_t *embed;  /* object or NULL (v2 only), owned */
    int retries;
    double eta;             /* unix seconds, 0 = run now */
    double expires;         /* unix seconds, 0 = never */
    double time_limit_hard; /* seconds, 0 = none (timelimit[0]) */
    double time_limit_soft; /* seconds, 0 = none (timelimit[1]) */
    int ignore_result;
    /* How often a process running this task died (the worker that requeued it after a
     * death counts in the AMQP header CELERY_HEADER_DEATHS) and the signal of the last
     * death (CELERY_HEADER_DEATH_SIGNAL); 0 when absent.  Read in both protocols. */
    int deaths;
    int death_signal;
};

#define CELERY_HEADER_DEATHS       "x-pw-task-deaths"
#define CELERY_HEADER_DEATH_SIGNAL "x-pw-task-death-signal"

int celery_message_decode(const struct celery_delivery_in *in, struct celery_task_msg *out,
                          struct pw_error *err);
void celery_message_free(struct celery_task_msg *msg);

#endif
