/* celery_result.h - result messages as Celery's rpc:// backend publishes them.
 *
 * Body: {"task_id", "status", "result", "traceback", "children": []} in that order,
 * no date_done (rpc results have none).  Exceptions travel as
 * {"exc_type", "exc_message": [args...], "exc_module"}; the Python client rebuilds them
 * from exc_module (NULL -> JSON null: a synthesised class of that name).
 * Returned strings are malloc'd (free()); json_t results are new references. */
#ifndef PW_CELERY_RESULT_H
#define PW_CELERY_RESULT_H

#include <jansson.h>

#define CELERY_SUCCESS "SUCCESS"
#define CELERY_FAILURE "FAILURE"
#define CELERY_STARTED "STARTED"
#define CELERY_REVOKED "REVOKED"
#define CELERY_RETRY   "RETRY"

/* `result` is borrowed (may be NULL = JSON null); traceback NULL = null. */
char *celery_result_body(const char *task_id, const char *status, json_t *result,
                         const char *traceback);

/* {"exc_type": type, "exc_message": [message], "exc_module": module-or-null} */
json_t *celery_exception(const char *exc_type, const char *exc_module, const char *message);

#endif
