/* runs.c - projection_runs access (see runs.h).
 *
 * Every status change is a guarded UPDATE ... WHERE status IN (allowed sources), run in
 * one transaction with the operation's change, so two workers racing on the same run
 * cannot both move it and a finished run is never reopened.  meta is merged in SQL
 * (jsonb ||) so the merge is atomic with the status change. */
#include "runs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "operations.h"
#include "pg.h"
#include "pg_url.h"
#include "pycompat.h"

#define RUN_COLUMNS                                                                                \
    "id, uuid, collection_id, operation_uuid, status::text, dimensionality, reducer, "             \
    "storage_path, point_count, config::text, meta::text, metadata_hash, " PG_EPOCH_US(            \
        "created_at")

/* meta merged with the JSON object text in parameter N (SQL fragment). */
#define META_MERGE(n)                                                                              \
    "((CASE WHEN json_typeof(meta) = 'object' THEN meta::jsonb ELSE '{}'::jsonb END) || $" n       \
    "::jsonb)::json"

void runs_free(struct run *r)
{
    if (!r)
        return;
    free(r->uuid);
    free(r->collection_id);
    free(r->operation_uuid);
    free(r->status);
    free(r->reducer);
    free(r->storage_path);
    free(r->config_json);
    free(r->meta_json);
    free(r->metadata_hash);
    memset(r, 0, sizeof *r);
}

static int run_from_row(PGresult *res, int row, struct run *out, struct pw_error *err)
{
    int nomem = 0;
    memset(out, 0, sizeof *out);
    out->id = strtoll(PQgetvalue(res, row, 0), NULL, 10);
    out->uuid = pg_strdup_value(res, row, 1, &nomem);
    out->collection_id = pg_strdup_value(res, row, 2, &nomem);
    out->operation_uuid = pg_strdup_value(res, row, 3, &nomem);
    out->status = pg_strdup_value(res, row, 4, &nomem);
    out->dimensionality = (int32_t)strtol(PQgetvalue(res, row, 5), NULL, 10);
    out->reducer = pg_strdup_value(res, row, 6, &nomem);
    out->storage_path = pg_strdup_value(res, row, 7, &nomem);
    out->point_count = PQgetisnull(res, row, 8) ? -1 : strtoll(PQgetvalue(res, row, 8), NULL, 10);
    out->config_json = pg_strdup_value(res, row, 9, &nomem);
    out->meta_json = pg_strdup_value(res, row, 10, &nomem);
    out->metadata_hash = pg_strdup_value(res, row, 11, &nomem);
    out->created_at_us = strtoll(PQgetvalue(res, row, 12), NULL, 10);
    if (nomem) {
        runs_free(out);
        return pw_error_set(err, PW_ENOMEM, "out of memory loading a projection run");
    }
    return 0;
}

int runs_load(PGconn *conn, const char *uuid, struct run *out, struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {uuid};
    memset(out, 0, sizeof *out);
    int rc = pg_exec(conn, "SELECT " RUN_COLUMNS " FROM projection_runs WHERE uuid = $1", 1, params,
                     &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1)
        rc = pw_error_set(err, PW_ENOTFOUND, "projection run not found");
    else
        rc = run_from_row(res, 0, out, err);
    PQclear(res);
    return rc;
}

/* bool(meta.get("degraded") or meta["projection_artifacts"].get("degraded")), as the
 * API's projection endpoint computes it.  Meta that does not parse counts as degraded:
 * a run we cannot read is not one to reuse. */
static int meta_is_degraded(const char *meta_text)
{
    if (!meta_text)
        return 0;
    json_error_t jerr;
    json_t *meta = json_loads(meta_text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!meta) /* integers beyond 64 bits land here too */
        return 1;
    int degraded = 0;
    if (json_is_object(meta)) {
        json_t *d = json_object_get(meta, "degraded");
        json_t *pa = json_object_get(meta, "projection_artifacts");
        degraded = (d && py_truthy(d)) || (json_is_object(pa) && json_object_get(pa, "degraded") &&
                                           py_truthy(json_object_get(pa, "degraded")));
    }
    json_decref(meta);
    return degraded;
}

/* One candidate's columns with, instead of its (possibly megabytes of) meta, the summary
 * the reuse needs: the degraded flags, reducer_used and the top-level view keys.  The meta
 * text is walked once by json_each (top level) and once more for projection_artifacts,
 * without building it as jsonb: converting a run's whole meta (every point id, twice) to
 * jsonb cost ten times as much.  A key that appears twice counts with its last value, as
 * jsonb, Python's json and jansson read it. */
#define REUSE_SUMMARY_COLUMNS                                                                      \
    "id, uuid, collection_id, operation_uuid, status::text, dimensionality, reducer, "             \
    "storage_path, point_count, config::text,"                                                     \
    " (SELECT json_build_object('degraded', t.degraded,"                                           \
    "   'projection_artifacts', (SELECT json_build_object("                                        \
    "      'degraded', (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "       \
    "'degraded'))[1]::json,"                                                                       \
    "      'reducer_used', (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "   \
    "'reducer_used'))[1]::json)"                                                                   \
    "    FROM json_each(CASE WHEN json_typeof(t.pa) = 'object' THEN t.pa ELSE '{}'::json END)"     \
    "      WITH ORDINALITY AS e(key, value, ord)),"                                                \
    "   'color_by', t.color_by, 'legend', t.legend, 'sampled', t.sampled,"                         \
    "   'shown_count', t.shown_count, 'total_count', t.total_count)"                               \
    "  FROM (SELECT (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "          \
    "'degraded'))[1]::json AS degraded,"                                                           \
    "     (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "                    \
    "'projection_artifacts'))[1]::json AS pa,"                                                     \
    "     (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "                    \
    "'color_by'))[1]::json AS color_by,"                                                           \
    "     (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "                    \
    "'legend'))[1]::json AS legend,"                                                               \
    "     (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "                    \
    "'sampled'))[1]::json AS sampled,"                                                             \
    "     (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "                    \
    "'shown_count'))[1]::json AS shown_count,"                                                     \
    "     (array_agg(e.value::text ORDER BY e.ord DESC) FILTER (WHERE e.key = "                    \
    "'total_count'))[1]::json AS total_count"                                                      \
    "    FROM json_each(CASE WHEN json_typeof(meta) = 'object' THEN meta ELSE '{}'::json END)"     \
    "      WITH ORDINALITY AS e(key, value, ord)) AS t)::text,"                                    \
    " metadata_hash, " PG_EPOCH_US("created_at")

int runs_find_reusable(PGconn *conn, const char *collection_id, const char *metadata_hash,
                       const char *exclude_uuid, struct run *out, int *found, struct pw_error *err)
{
    PGresult *list = NULL;
    const char *params[] = {collection_id, metadata_hash, exclude_uuid ? exclude_uuid : ""};
    memset(out, 0, sizeof *out);
    *found = 0;
    if (!metadata_hash || !*metadata_hash)
        return pw_error_set(err, PW_EINVAL, "reuse lookup needs a metadata hash");
    /* Candidates first, without their meta (index ix_..._collection_id_metadata_hash);
     * then the newest one that is not degraded, judged in C with Python's truthiness. */
    int rc = pg_exec(conn,
                     "SELECT uuid FROM projection_runs"
                     " WHERE collection_id = $1 AND metadata_hash = $2 AND uuid <> $3"
                     "   AND status = 'completed'"
                     " ORDER BY completed_at DESC NULLS LAST, id DESC LIMIT 50",
                     3, params, &list, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(list) && !*found; i++) {
        PGresult *res = NULL;
        const char *one[] = {PQgetvalue(list, i, 0)};
        rc = pg_exec(conn, "SELECT " REUSE_SUMMARY_COLUMNS " FROM projection_runs WHERE uuid = $1",
                     1, one, &res, err);
        if (rc < 0)
            break;
        if (PQntuples(res) == 1 &&
            !meta_is_degraded(PQgetisnull(res, 0, 10) ? NULL : PQgetvalue(res, 0, 10))) {
            rc = run_from_row(res, 0, out, err);
            *found = rc == 0;
        }
        PQclear(res);
    }
    PQclear(list);
    return rc < 0 ? rc : 0;
}

static int check_object_text(const char *text, const char *what, struct pw_error *err)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    int ok = json_is_object(v);
    json_decref(v);
    return ok ? 0 : pw_error_set(err, PW_EINVAL, "%s is not a JSON object", what);
}

/* Explains why a guarded UPDATE touched no row: missing run or a status not allowed. */
static int explain_no_update(PGconn *conn, const char *uuid, const char *action,
                             struct pw_error *err)
{
    struct run r;
    struct pw_error lerr = {0};
    int rc = runs_load(conn, uuid, &r, &lerr);
    if (rc < 0)
        return pw_error_set(err, rc, "%s", lerr.msg);
    rc = pw_error_set(err, PW_EINVAL, "cannot %s a projection run that is %s", action, r.status);
    runs_free(&r);
    return rc;
}

/* Runs one guarded UPDATE ... RETURNING operation_uuid and then the operation change, in
 * one transaction. */
static int transition(PGconn *conn, const char *uuid, const char *action, const char *sql,
                      int nparams, const char *const *params, const char *op_status,
                      const char *op_error, struct pw_error *err)
{
    PGresult *res = NULL;
    char *op_uuid = NULL;
    int rc = pg_begin(conn, err);
    if (rc < 0)
        return rc;
    if ((rc = pg_exec(conn, sql, nparams, params, &res, err)) < 0)
        goto cleanup;
    if (PQntuples(res) != 1) {
        PQclear(res);
        res = NULL;
        pg_rollback(conn);
        return explain_no_update(conn, uuid, action, err);
    }
    if (!PQgetisnull(res, 0, 0)) {
        op_uuid = strdup(PQgetvalue(res, 0, 0));
        if (!op_uuid) {
            rc = pw_error_set(err, PW_ENOMEM, "out of memory");
            goto cleanup;
        }
        rc = operations_set_status(conn, op_uuid, op_status, op_error, err);
        if (rc == PW_ENOTFOUND) /* FK is ON DELETE SET NULL: cannot happen, but harmless */
            rc = 0;
        if (rc < 0)
            goto cleanup;
    }
    rc = pg_commit(conn, err);
cleanup:
    PQclear(res);
    free(op_uuid);
    if (rc < 0)
        pg_rollback(conn);
    return rc;
}

int runs_mark_running(PGconn *conn, const char *uuid, struct pw_error *err)
{
    const char *params[] = {uuid};
    return transition(conn, uuid, "start",
                      "UPDATE projection_runs SET status = 'running',"
                      " started_at = coalesce(started_at, now()), updated_at = now()"
                      " WHERE uuid = $1 AND status IN ('pending', 'running')"
                      " RETURNING operation_uuid",
                      1, params, "processing", NULL, err);
}

int runs_mark_completed(PGconn *conn, const char *uuid, const struct run_completion *c,
                        struct pw_error *err)
{
    char count[24];
    if (!c || !c->storage_path || c->point_count < 0)
        return pw_error_set(err, PW_EINVAL, "completion needs a storage path and a point count");
    if (c->meta_patch_json && check_object_text(c->meta_patch_json, "meta patch", err) < 0)
        return err ? err->code : PW_EINVAL;
    snprintf(count, sizeof count, "%lld", (long long)c->point_count);
    const char *params[] = {uuid,
                            c->storage_path,
                            count,
                            c->meta_patch_json ? c->meta_patch_json : "{}",
                            c->metadata_hash,
                            c->artifacts_from};
    /* The source's projection_artifacts (megabytes with original_ids) never leave
     * PostgreSQL. */
    return transition(
        conn, uuid, "complete",
        "UPDATE projection_runs SET status = 'completed',"
        " storage_path = $2, point_count = $3::integer,"
        " meta = CASE WHEN $4::jsonb = '{}'::jsonb AND $6::text IS NULL THEN meta"
        "   ELSE ((CASE WHEN json_typeof(meta) = 'object' THEN meta::jsonb ELSE '{}'::jsonb END)"
        "         || $4::jsonb || coalesce((SELECT jsonb_build_object('projection_artifacts',"
        "                                          s.meta::jsonb -> 'projection_artifacts')"
        "                                   FROM projection_runs s WHERE s.uuid = $6::text"
        "                                    AND json_typeof(s.meta) = 'object'"
        "                                    AND s.meta::jsonb ? 'projection_artifacts'),"
        "                                  '{}'::jsonb))::json END,"
        " metadata_hash = coalesce($5, metadata_hash),"
        " completed_at = now(), updated_at = now(), error_message = NULL"
        " WHERE uuid = $1 AND status IN ('pending', 'running')"
        " RETURNING operation_uuid",
        6, params, "completed", NULL, err);
}

static int mark_finished(PGconn *conn, const char *uuid, const char *status, const char *message,
                         struct pw_error *err)
{
    char clean[1024];
    pg_url_sanitize_error(message ? message : "", clean, sizeof clean);
    const char *params[] = {uuid, status, clean};
    return transition(conn, uuid, !strcmp(status, "failed") ? "fail" : "cancel",
                      "UPDATE projection_runs SET status = $2::text::projection_run_status,"
                      " error_message = $3, completed_at = now(), updated_at = now()"
                      " WHERE uuid = $1 AND status IN ('pending', 'running')"
                      " RETURNING operation_uuid",
                      3, params, status, clean, err);
}

int runs_mark_failed(PGconn *conn, const char *uuid, const char *error_message,
                     struct pw_error *err)
{
    return mark_finished(conn, uuid, "failed", error_message, err);
}

int runs_mark_cancelled(PGconn *conn, const char *uuid, const char *reason, struct pw_error *err)
{
    return mark_finished(conn, uuid, "cancelled", reason, err);
}

int runs_update_progress(PGconn *conn, const char *uuid, const char *meta_patch_json,
                         struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {uuid, meta_patch_json};
    if (!meta_patch_json || check_object_text(meta_patch_json, "progress patch", err) < 0)
        return pw_error_set(err, PW_EINVAL, "progress patch is not a JSON object");
    int rc = pg_exec(conn,
                     "UPDATE projection_runs SET meta = " META_MERGE(
                         "2") ", updated_at = now()"
                              " WHERE uuid = $1 AND status = 'running' RETURNING id",
                     2, params, &res, err);
    if (rc < 0)
        return rc;
    int n = PQntuples(res);
    PQclear(res);
    return n == 1 ? 0 : explain_no_update(conn, uuid, "report progress on", err);
}

int runs_store_metadata_hash(PGconn *conn, const char *uuid, const char *metadata_hash,
                             struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {uuid, metadata_hash};
    if (!metadata_hash || !*metadata_hash)
        return pw_error_set(err, PW_EINVAL, "empty metadata hash");
    /* The SET expressions read the row's old values, so the old hash is still there. */
    int rc = pg_exec(
        conn,
        "UPDATE projection_runs SET metadata_hash = $2, updated_at = now(),"
        " meta = CASE WHEN coalesce(metadata_hash, '') NOT IN ('', $2)"
        "        THEN ((CASE WHEN json_typeof(meta) = 'object' THEN meta::jsonb"
        "               ELSE '{}'::jsonb END)"
        "              || jsonb_build_object('requested_metadata_hash', metadata_hash))::json"
        "        ELSE meta END"
        " WHERE uuid = $1 RETURNING id",
        2, params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1)
        rc = pw_error_set(err, PW_ENOTFOUND, "projection run not found");
    PQclear(res);
    return rc;
}

/* ---- for the backfill ----------------------------------------------------------------- */

static void copy_value(char *dst, size_t cap, PGresult *res, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

int runs_find_in_flight(PGconn *conn, const char *collection_id, const char *metadata_hash,
                        struct run_in_flight *out, int *found, struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {collection_id, metadata_hash};
    memset(out, 0, sizeof *out);
    *found = 0;
    int rc = pg_exec(conn,
                     "SELECT r.uuid, r.operation_uuid, r.status::text,"
                     " r.status = 'pending' AND r.operation_uuid IS NOT NULL"
                     "   AND o.task_id IS NULL AND json_typeof(r.meta) = 'object'"
                     "   AND (r.meta->>'backfill') = 'true'"
                     " FROM projection_runs r LEFT JOIN operations o ON o.uuid = r.operation_uuid"
                     " WHERE r.collection_id = $1 AND r.metadata_hash = $2"
                     "   AND r.status IN ('pending', 'running')"
                     " ORDER BY r.id DESC LIMIT 1",
                     2, params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1) {
        copy_value(out->uuid, sizeof out->uuid, res, 0, 0);
        copy_value(out->operation_uuid, sizeof out->operation_uuid, res, 0, 1);
        copy_value(out->status, sizeof out->status, res, 0, 2);
        out->unpublished = !strcmp(PQgetvalue(res, 0, 3), "t");
        *found = 1;
    }
    PQclear(res);
    return 0;
}

int runs_create_with_operation(PGconn *conn, const struct run_request *req, struct pw_error *err)
{
    char user[32], dim[16];
    snprintf(user, sizeof user, "%lld", (long long)req->user_id);
    snprintf(dim, sizeof dim, "%d", req->dimensionality);
    const char *params[] = {
        req->run_uuid, req->operation_uuid, req->collection_id, user, req->reducer,
        dim,           req->config_json,    req->metadata_hash};
    int rc = check_object_text(req->config_json, "run config", err);
    if (rc)
        return rc;
    /* One statement: the foreign key from the run to its operation is checked at its end,
     * and nobody ever sees one row without the other. */
    return pg_exec(
        conn,
        "WITH op AS (INSERT INTO operations (uuid, collection_id, user_id, type, status,"
        "   config, created_at, meta)"
        " VALUES ($2, $3, $4::int, 'projection_build', 'pending',"
        "   json_build_object('projection_run_id', $1::text, 'reducer', $5::text,"
        "     'dimensionality', $6::int, 'config', $7::json),"
        "   now(), json_build_object('projection_run_uuid', $1::text)) RETURNING uuid)"
        " INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status,"
        "   dimensionality, reducer, config, meta, metadata_hash, created_at, updated_at)"
        " SELECT $1, $3, op.uuid, 'pending', $6::int, $5, $7::json,"
        "   json_build_object('initiated_by', $4::int, 'backfill', true), $8, now(), now()"
        " FROM op",
        8, params, NULL, err);
}

int runs_statuses(PGconn *conn, const char *const *uuids, size_t n, char (*status)[16],
                  struct pw_error *err)
{
    PGresult *res = NULL;
    char *array = pg_text_array(uuids, n);
    if (!array)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    const char *params[] = {array};
    int rc = pg_exec(conn,
                     "SELECT coalesce(r.status::text, '')"
                     " FROM unnest($1::text[]) WITH ORDINALITY AS q(u, i)"
                     " LEFT JOIN projection_runs r ON r.uuid = q.u ORDER BY q.i",
                     1, params, &res, err);
    free(array);
    for (size_t i = 0; rc == 0 && i < n; i++)
        snprintf(status[i], sizeof status[i], "%s",
                 (int)i < PQntuples(res) ? PQgetvalue(res, (int)i, 0) : "");
    PQclear(res);
    return rc;
}

int runs_hash_presence(PGconn *conn, const char *const *collection_ids,
                       const char *const *metadata_hashes, size_t n, unsigned char *flags,
                       struct pw_error *err)
{
    PGresult *res = NULL;
    char *ids = pg_text_array(collection_ids, n), *hashes = pg_text_array(metadata_hashes, n);
    int rc = 0;
    memset(flags, 0, n);
    if (!ids || !hashes) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto cleanup;
    }
    const char *params[] = {ids, hashes};
    rc = pg_exec(conn,
                 "SELECT q.i, bool_or(r.status = 'completed'),"
                 "  bool_or(r.status IN ('pending', 'running'))"
                 " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(c, h, i)"
                 " JOIN projection_runs r ON r.collection_id = q.c AND r.metadata_hash = q.h"
                 " GROUP BY q.i",
                 2, params, &res, err);
    for (int row = 0; rc == 0 && row < PQntuples(res); row++) {
        long long i = strtoll(PQgetvalue(res, row, 0), NULL, 10) - 1;
        if (i < 0 || (size_t)i >= n)
            continue;
        flags[i] =
            (unsigned char)((!strcmp(PQgetvalue(res, row, 1), "t") ? RUNS_HAS_COMPLETED : 0) |
                            (!strcmp(PQgetvalue(res, row, 2), "t") ? RUNS_HAS_IN_FLIGHT : 0));
    }
cleanup:
    PQclear(res);
    free(ids);
    free(hashes);
    return rc;
}
