/* operations.c - operations.status transitions (see operations.h). */
#include "operations.h"

#include <stdio.h>
#include <string.h>

#include "pg.h"

int operations_set_status(PGconn *conn, const char *uuid, const char *status,
                          const char *error_message, struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {uuid, status, error_message};
    if (strcmp(status, "processing") && strcmp(status, "completed") && strcmp(status, "failed") &&
        strcmp(status, "cancelled"))
        return pw_error_set(err, PW_EINVAL, "unknown operation status");
    /* $2 is compared as text so the statement also works where operation_status has
     * more values than ours. */
    int rc =
        pg_exec(conn,
                "WITH target AS (SELECT id, status::text AS old FROM operations"
                "                WHERE uuid = $1 FOR UPDATE)"
                " , upd AS ("
                "  UPDATE operations o SET"
                "    status = $2::text::operation_status,"
                "    started_at = CASE WHEN $2 = 'processing'"
                "                      THEN coalesce(o.started_at, now()) ELSE o.started_at END,"
                "    completed_at = CASE WHEN $2 = 'processing' THEN o.completed_at ELSE now() END,"
                "    error_message = CASE WHEN $2 IN ('processing', 'completed') THEN NULL"
                "                         ELSE $3 END"
                "  FROM target t WHERE o.id = t.id"
                "    AND t.old NOT IN ('completed', 'failed', 'cancelled')"
                "  RETURNING o.id)"
                " SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM upd)",
                3, params, &res, err);
    if (rc < 0)
        return rc;
    if (!strcmp(PQgetvalue(res, 0, 0), "0"))
        rc = pw_error_set(err, PW_ENOTFOUND, "operation not found");
    PQclear(res);
    return rc;
}

int operations_get_status(PGconn *conn, const char *uuid, char *buf, size_t bufsz,
                          struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {uuid};
    int rc =
        pg_exec(conn, "SELECT status::text FROM operations WHERE uuid = $1", 1, params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1)
        rc = pw_error_set(err, PW_ENOTFOUND, "operation not found");
    else
        snprintf(buf, bufsz, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int operations_set_task_id(PGconn *conn, const char *uuid, const char *task_id,
                           struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {uuid, task_id};
    int rc = pg_exec(conn, "UPDATE operations SET task_id = $2 WHERE uuid = $1 RETURNING id", 2,
                     params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1)
        rc = pw_error_set(err, PW_ENOTFOUND, "operation not found");
    PQclear(res);
    return rc;
}
