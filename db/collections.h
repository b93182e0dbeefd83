/* collections.h - reading the collections row a projection run belongs to.
 *
 * collections_load() fills a struct collection with the fields the task and the metadata
 * hash need; updated_at comes back as exact integer microseconds since the Unix epoch
 * (PG_EPOCH_US), never through a float.  The strings are malloc'd and owned by the
 * struct: release them with collections_free().
 * Errors: PW_ENOTFOUND when no collection has that id; pg.h's codes otherwise. */
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
};

int collections_load(PGconn *conn, const char *id, struct collection *out, struct pw_error *err);
void collections_free(struct collection *c);

#endif
