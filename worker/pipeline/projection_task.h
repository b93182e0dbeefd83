/* projection_task.h - webui.tasks.compute_projection: one projection run, end to end.
 *
 * Given a run uuid (args [uuid] or kwargs {"projection_id": uuid}) it loads the run and
 * its collection from PostgreSQL, recomputes the metadata hash, takes a session
 * advisory lock on (collection_id, hash) and, under it, either finishes at once (run
 * already completed or cancelled), reuses the artifacts of a completed run with the
 * same hash (hard links, no vector fetched), or fetches vectors from Qdrant, derives
 * categories as the Python task does, reduces them to 2-D (PCA, UMAP, t-SNE, with the
 * Python task's fall-back to PCA), publishes the artifacts atomically and marks the run
 * and its operation completed in one transaction.  A duplicate that finds the lock
 * taken waits (bounded by lock_wait_s) and then reuses the finished result.
 *
 * The task's return value is the dict the Python task returns (projection_id, status,
 * reducer, message, point_count, storage_path).  Failures mark the run and operation
 * failed with a sanitized message and come back as a FAILURE whose message says why.
 * struct projection_app is built by `run` from its configuration and shared read-only
 * by all task threads; each task opens its own database connection. */
#ifndef PW_PROJECTION_TASK_H
#define PW_PROJECTION_TASK_H

#include "log.h"
#include "qdrant.h"
#include "tasks.h"

struct projection_app {
    const char *database_url; /* DATABASE_URL (libpq URI) */
    const char *data_dir;     /* DATA_DIR: artifacts go to {data_dir}/semantik/projections/ */
    struct qdrant_config qdrant;
    const char *vector_name; /* named vector to project; NULL = the first non-null */
    int compute_threads;     /* threads for one computation (<= 0: all cores) */
    double lock_wait_s;      /* how long a duplicate waits for the run computing its hash */
};

int projection_task_run(const struct task_env *env, struct task_outcome *out, struct pw_error *err);

/* Reads the configuration from the environment (DATABASE_URL, DATA_DIR, QDRANT_URL,
 * QDRANT_API_KEY, QDRANT_TIMEOUT_MS, QDRANT_MAX_RETRIES, PW_VECTOR_NAME,
 * PW_COMPUTE_THREADS, PW_LOCK_WAIT).  The strings point into the environment. */
int projection_app_from_env(struct projection_app *app, struct pw_error *err);

#endif
