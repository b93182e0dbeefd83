/* runs.h - projection_runs: loading a run, finding a reusable one, moving it through
 * its states with its operation, progress in meta.
 *
 * Transitions (DESIGN.md, contracts): run pending|running -> running ->
 * completed|failed|cancelled; its operation pending -> processing -> completed|failed.
 * Each runs_mark_* call is ONE transaction covering the run and its operation, so a
 * reader never sees a completed run with a processing operation.  A run that is already
 * finished is not moved: runs_mark_* then return PW_EINVAL (the message names its
 * status) and change nothing.
 *
 * meta merges follow ProjectionRunRepository.update_metadata: top-level keys of the patch
 * replace those of the stored object (shallow dict.update); a stored meta that is not an
 * object counts as {}.  Patches are JSON object texts.
 *
 * Memory: struct run's strings are malloc'd and owned by the struct (runs_free()).
 * Errors: PW_ENOTFOUND no such run; PW_EINVAL bad argument or finished run; pg.h's
 * codes otherwise.  Error texts stored in the database go through pg_url_sanitize_error(). */
#ifndef PW_RUNS_H
#define PW_RUNS_H

#include <stdint.h>

#include <libpq-fe.h>

#include "pw_error.h"

struct run {
    int64_t id;
    char *uuid;
    char *collection_id;
    char *operation_uuid; /* NULL when the run has no operation */
    char *status;         /* pending, running, completed, failed, cancelled */
    int32_t dimensionality;
    char *reducer;
    char *storage_path;  /* NULL until completed */
    int64_t point_count; /* -1 when NULL */
    char *config_json;   /* projection_runs.config as stored; NULL when SQL NULL */
    char *meta_json;     /* projection_runs.meta as stored; NULL when SQL NULL */
    char *metadata_hash; /* NULL or "" for runs created by an older API */
    int64_t created_at_us;
};

void runs_free(struct run *run);

int runs_load(PGconn *conn, const char *uuid, struct run *out, struct pw_error *err);

/* The newest completed, non-degraded run of collection_id with metadata_hash, other than
 * exclude_uuid (may be NULL).  Degraded as the Python API reads it:
 * bool(meta.degraded or meta.projection_artifacts.degraded) with Python truthiness.
 * *found = 0 and out zeroed when there is none.  out->meta_json is NOT the whole meta
 * (which holds every point id) but a summary: {degraded, projection_artifacts:
 * {degraded, reducer_used}, color_by, legend, sampled, shown_count, total_count}. */
int runs_find_reusable(PGconn *conn, const char *collection_id, const char *metadata_hash,
                       const char *exclude_uuid, struct run *out, int *found, struct pw_error *err);

/* Stores the recomputed hash.  When the run carried a different non-empty hash, that one
 * is kept in meta.requested_metadata_hash (contracts/METADATA_HASH.md). */
int runs_store_metadata_hash(PGconn *conn, const char *uuid, const char *metadata_hash,
                             struct pw_error *err);

/* run -> running (started_at set unless already set), operation -> processing. */
int runs_mark_running(PGconn *conn, const char *uuid, struct pw_error *err);

struct run_completion {
    const char *storage_path;    /* relative to DATA_DIR */
    int64_t point_count;         /* >= 0 */
    const char *meta_patch_json; /* JSON object merged into meta; NULL for none */
    const char *metadata_hash;   /* stored on the run; NULL keeps the stored one */
    const char *artifacts_from;  /* a reuse's source run: its meta.projection_artifacts is
                                    copied into this run's meta (in SQL); NULL for none */
};

/* run -> completed with the fields above, completed_at, error_message cleared;
 * operation -> completed.  One transaction. */
int runs_mark_completed(PGconn *conn, const char *uuid, const struct run_completion *c,
                        struct pw_error *err);

/* run -> failed and operation -> failed with the sanitized error_message. */
int runs_mark_failed(PGconn *conn, const char *uuid, const char *error_message,
                     struct pw_error *err);

/* run -> cancelled and operation -> cancelled (revoke). */
int runs_mark_cancelled(PGconn *conn, const char *uuid, const char *reason, struct pw_error *err);

/* Merges meta_patch_json into meta of a running run (progress visible while it runs).
 * PW_EINVAL when the run is not running. */
int runs_update_progress(PGconn *conn, const char *uuid, const char *meta_patch_json,
                         struct pw_error *err);

/* ---- for the backfill (worker/pipeline/backfill.h) --------------------------------- */

/* The newest pending or running run of collection_id with metadata_hash: the same
 * request already in flight.  *unpublished = 1 when it is a pending run a backfill
 * created (meta.backfill true) whose operation has no task_id yet: the backfill died
 * between committing its rows and publishing its message, so nothing will run it
 * unless the message is sent (operations_set_task_id records that it was). */
struct run_in_flight {
    char uuid[64];
    char operation_uuid[64]; /* "" when the run has no operation */
    char status[16];
    int unpublished;
};
int runs_find_in_flight(PGconn *conn, const char *collection_id, const char *metadata_hash,
                        struct run_in_flight *out, int *found, struct pw_error *err);

/* A run and its operation as the API's start_projection_build creates them, in one
 * statement (one transaction): operation projection_build, pending, user_id, config
 * {projection_run_id, reducer, dimensionality, config}, meta {projection_run_uuid};
 * run pending with reducer, dimensionality, config, meta {initiated_by: user_id,
 * backfill: true}, operation_uuid and metadata_hash. */
struct run_request {
    const char *run_uuid, *operation_uuid; /* new ids, chosen by the caller */
    const char *collection_id;
    int64_t user_id;
    const char *reducer;
    int dimensionality;
    const char *config_json; /* JSON object text */
    const char *metadata_hash;
};
int runs_create_with_operation(PGconn *conn, const struct run_request *req, struct pw_error *err);

/* The status of each run in uuids[0..n) into status[i] ("" when there is no such run),
 * in one query. */
int runs_statuses(PGconn *conn, const char *const *uuids, size_t n, char (*status)[16],
                  struct pw_error *err);

/* In one query, for each pair (collection_ids[i], metadata_hashes[i]): flags[i] gets
 * RUNS_HAS_COMPLETED when some completed run has that hash (degraded or not: only
 * runs_find_reusable judges that) and RUNS_HAS_IN_FLIGHT when a pending or running one
 * does.  A pair with neither needs no further lookup: nothing to reuse, nothing in
 * flight. */
#define RUNS_HAS_COMPLETED 1
#define RUNS_HAS_IN_FLIGHT 2
int runs_hash_presence(PGconn *conn, const char *const *collection_ids,
                       const char *const *metadata_hashes, size_t n, unsigned char *flags,
                       struct pw_error *err);

#endif
