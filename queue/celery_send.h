/* celery_send.h - publishing a Celery task message, protocol 2, as Celery 5.2's
 * send_task() does (shared/celery-wire/README.md section 2; capture
 * 01_send_p2_args.json): default exchange, routing key = queue name, content type
 * application/json, utf-8, persistent, priority 0, correlation_id = task id, the
 * protocol-2 headers (lang, task, id, root_id = id, argsrepr, kwargsrepr, origin,
 * retries 0, timelimit [null, null], the rest null/false) and the body
 * [args, kwargs, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}].
 * celery_message_decode() reads back what this writes; a Python Celery worker runs it.
 *
 * Memory: celery_send_encode() hands the caller a new json_t reference (json_decref)
 * and a malloc'd body (free()); nothing is kept.  Errors: PW_EINVAL for arguments of
 * the wrong JSON type, PW_ENOMEM, and broker_publish()'s codes. */
#ifndef PW_CELERY_SEND_H
#define PW_CELERY_SEND_H

#include <jansson.h>

#include "broker.h"
#include "pw_error.h"

#define CELERY_TASK_ID_LEN 36 /* a uuid4 in its text form, without the NUL */

struct celery_send_task {
    const char *task;     /* task name */
    const char *id;       /* task id; celery_send_new_id() makes one as Celery does */
    const json_t *args;   /* array, borrowed; NULL sends [] */
    const json_t *kwargs; /* object, borrowed; NULL sends {} */
    const char *reply_to; /* rpc:// reply queue; NULL: none, the worker sends no result */
};

/* A random (version 4) UUID in lower-case text form, like str(uuid.uuid4()). */
int celery_send_new_id(char out[CELERY_TASK_ID_LEN + 1], struct pw_error *err);

/* The message's headers (object, in Celery's order) and body text. */
int celery_send_encode(const struct celery_send_task *t, json_t **headers_out, char **body_out,
                       struct pw_error *err);

/* Encodes `t` and publishes it to `queue` through the default exchange. */
int celery_send(struct broker *b, const char *queue, const struct celery_send_task *t,
                struct pw_error *err);

#endif
