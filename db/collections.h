/* collections.h - reading the collections row a projection run belongs to, and
 * listing collections for a backfill.
 *
 * collections_load() fills a struct collection with the fields the task, the metadata
 * hash and the backfill need; updated_at comes back as exact integer microseconds since the Unix
 * epoch (PG_EPOCH_US), never through a float.  The strings are malloc'd and owned by the struct:
 * release them with collections_free() (a list: collections_free_list()). Errors: PW_ENOTFOUND when
 * no collection has that id; pg.h's codes otherwise. */
#ifndef PW_COLLECTIONS_H
#define PW_COLLECTIONS_H

#include <stdint.h>

#include <libpq-fe.h>

#include "pw_error.h"

struct collection {
    char *id;
    char *name;
    char *vector_store_name; /* the Qdrant collection; may be NULL or empty */
    char *embedding_model;
    int64_t vector_count;
    int64_t updated_at_us;
    int64_t owner_id;
    char *status; /* collection_status as stored (upper-case member names: READY, ...) */
};

int collections_load(PGconn *conn, const char *id, struct collection *out, struct pw_error *err);
void collections_free(struct collection *c);

/* Every collection, ordered by id; with `status` (not NULL) only those whose status is
 * that one, compared case-insensitively ("ready" finds READY).  *out is a malloc'd
 * array of *n_out collections (NULL when none). */
int collections_list(PGconn *conn, const char *status, struct collection **out, size_t *n_out,
                     struct pw_error *err);
void collections_free_list(struct collection *list, size_t n);

#endif
