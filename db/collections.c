/* collections.c - SELECTs of collections: one by id, or a list for a backfill (see
 * collections.h).  Both read the same columns through collection_from_row(). */
#include "collections.h"

#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define COLLECTION_COLUMNS                                                                         \
    "id, name, vector_store_name, embedding_model, vector_count, " PG_EPOCH_US(                    \
        "updated_at") ", owner_id, status::text"

static int collection_from_row(PGresult *res, int row, struct collection *out, struct pw_error *err)
{
    int nomem = 0;
    memset(out, 0, sizeof *out);
    out->id = pg_strdup_value(res, row, 0, &nomem);
    out->name = pg_strdup_value(res, row, 1, &nomem);
    out->vector_store_name = pg_strdup_value(res, row, 2, &nomem);
    out->embedding_model = pg_strdup_value(res, row, 3, &nomem);
    out->vector_count = strtoll(PQgetvalue(res, row, 4), NULL, 10);
    out->updated_at_us = strtoll(PQgetvalue(res, row, 5), NULL, 10);
    out->owner_id = strtoll(PQgetvalue(res, row, 6), NULL, 10);
    out->status = pg_strdup_value(res, row, 7, &nomem);
    if (!nomem)
        return 0;
    collections_free(out);
    return pw_error_set(err, PW_ENOMEM, "out of memory loading a collection");
}

int collections_load(PGconn *conn, const char *id, struct collection *out, struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {id};
    memset(out, 0, sizeof *out);
    int rc = pg_exec(conn, "SELECT " COLLECTION_COLUMNS " FROM collections WHERE id = $1", 1,
                     params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1)
        rc = pw_error_set(err, PW_ENOTFOUND, "collection not found");
    else
        rc = collection_from_row(res, 0, out, err);
    PQclear(res);
    return rc;
}

void collections_free(struct collection *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->name);
    free(c->vector_store_name);
    free(c->embedding_model);
    free(c->status);
    memset(c, 0, sizeof *c);
}

int collections_list(PGconn *conn, const char *status, struct collection **out, size_t *n_out,
                     struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {status};
    int rc = pg_exec(conn,
                     "SELECT " COLLECTION_COLUMNS " FROM collections"
                     " WHERE $1::text IS NULL OR upper(status::text) = upper($1::text)"
                     " ORDER BY id",
                     1, params, &res, err);
    *out = NULL;
    *n_out = 0;
    if (rc < 0)
        return rc;
    size_t n = (size_t)PQntuples(res);
    struct collection *list = n ? calloc(n, sizeof *list) : NULL;
    if (n && !list)
        rc = pw_error_set(err, PW_ENOMEM, "out of memory listing %zu collections", n);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = collection_from_row(res, (int)i, &list[i], err);
    PQclear(res);
    if (rc < 0) {
        collections_free_list(list, n);
        return rc;
    }
    *out = list;
    *n_out = n;
    return 0;
}

void collections_free_list(struct collection *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        collections_free(&list[i]);
    free(list);
}
