/* operations.h - status changes of the operations row behind a projection run.
 *
 * Mirrors what the Python task does through OperationRepository.update_status:
 *   processing: started_at set (kept when already set), error_message cleared;
 *   completed:  completed_at set, error_message cleared;
 *   failed / cancelled: completed_at set, error_message stored (sanitize it first).
 * A finished operation (completed, failed, cancelled) is not moved again: the call then
 * succeeds without changing it, so a redelivered task cannot regress it.  Callers run
 * this inside their own transaction (see runs.h).
 * Errors: PW_ENOTFOUND when no operation has that uuid; pg.h's codes otherwise. */
#ifndef PW_OPERATIONS_H
#define PW_OPERATIONS_H

#include <libpq-fe.h>

#include "pw_error.h"

/* status: "processing", "completed", "failed" or "cancelled". */
int operations_set_status(PGconn *conn, const char *uuid, const char *status,
                          const char *error_message, struct pw_error *err);

/* Current status into buf (e.g. "processing"). */
int operations_get_status(PGconn *conn, const char *uuid, char *buf, size_t bufsz,
                          struct pw_error *err);

/* operations.task_id := task_id (the Celery task id of the message that runs it). */
int operations_set_task_id(PGconn *conn, const char *uuid, const char *task_id,
                           struct pw_error *err);

#endif
