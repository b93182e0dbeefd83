/* collections.c - one SELECT of collections by id (see collections.h). */
#include "collections.h"

#include <stdlib.h>
#include <string.h>

#include "pg.h"

int collections_load(PGconn *conn, const char *id, struct collection *out, struct pw_error *err)
{
    PGresult *res = NULL;
    const char *params[] = {id};
    int nomem = 0;
    memset(out, 0, sizeof *out);
    int rc =
        pg_exec(conn,
                "SELECT id, name, vector_store_name, embedding_model, vector_count, " PG_EPOCH_US(
                    "updated_at") " FROM collections WHERE id = $1",
                1, params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1) {
        rc = pw_error_set(err, PW_ENOTFOUND, "collection not found");
        goto cleanup;
    }
    out->id = pg_strdup_value(res, 0, 0, &nomem);
    out->name = pg_strdup_value(res, 0, 1, &nomem);
    out->vector_store_name = pg_strdup_value(res, 0, 2, &nomem);
    out->embedding_model = pg_strdup_value(res, 0, 3, &nomem);
    out->vector_count = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
    out->updated_at_us = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    if (nomem)
        rc = pw_error_set(err, PW_ENOMEM, "out of memory loading a collection");
cleanup:
    PQclear(res);
    if (rc < 0)
        collections_free(out);
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
    memset(c, 0, sizeof *c);
}
