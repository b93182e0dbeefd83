/* migrate.h - applying migrations/NNNN_name.sql to a database, once each, safely in parallel.
 *
 * A migration is (version, name, sql), from a file named NNNN_name.sql.  migrate_apply()
 * takes a session advisory lock (so replicas starting together apply each file once),
 * makes sure projection_worker_migrations(version, name, checksum, applied_at) exists,
 * and applies every version not recorded there in ascending order, each file and its
 * record in one transaction.  Already-applied versions are skipped; one whose checksum
 * (SHA-256 of the file) changed is reported through the log callback and skipped.
 *
 * The migrations are embedded in the binary at build time (migrate_embedded()); a
 * directory can be read instead with migrate_load_dir().
 *
 * Memory: migrate_load_dir() allocates the list; free it with migrate_list_free().
 * The embedded list is static.  Errors: pg.h's codes; PW_ETIMEOUT when the lock was not
 * obtained within lock_timeout_ms; PW_EINVAL for a badly named file. */
#ifndef PW_MIGRATE_H
#define PW_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "pw_error.h"

struct migration {
    int version;
    const char *name; /* file name without NNNN_ and .sql */
    const char *sql;
};

struct migration_list {
    struct migration *items; /* ascending by version */
    size_t count;
    int owned; /* set by migrate_load_dir */
};

/* Events: "migration_applied", "migration_skipped", "migration_checksum_mismatch",
 * "migration_lock_wait".  version/name are -1/NULL for events not about one file. */
typedef void (*migrate_log_fn)(void *ctx, const char *level, const char *event, int version,
                               const char *name);

struct migrate_options {
    int lock_timeout_ms; /* how long to wait for another migrator; 0 = forever */
    migrate_log_fn log;  /* may be NULL */
    void *ctx;
};

struct migrate_result {
    int applied; /* files applied by this call */
    int skipped; /* files already recorded */
};

/* Fixed advisory lock key that serializes all migrators of one database. */
#define MIGRATE_LOCK_KEY 0x70775f6d69677231LL /* "pw_migr1" */

void migrate_embedded(struct migration_list *out);
int migrate_load_dir(const char *dir, struct migration_list *out, struct pw_error *err);
void migrate_list_free(struct migration_list *list);

/* Parses "0002_metadata_hash.sql" into version 2 and name "metadata_hash" (name points
 * into a caller buffer of namesz bytes).  Returns 0 or PW_EINVAL. */
int migrate_parse_filename(const char *file, int *version, char *name, size_t namesz);

int migrate_apply(PGconn *conn, const struct migration_list *list,
                  const struct migrate_options *opt, struct migrate_result *result,
                  struct pw_error *err);

#endif
