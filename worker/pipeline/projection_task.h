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
 * failed with a sanitized message and come back as a FAILURE whose message says why;
 * when PostgreSQL cannot be reached (about 30 s of reconnecting) or DATA_DIR cannot
 * take the files, the run is left as it is and the outcome asks for a retry
 * (out->retry); so does Qdrant still failing after the client's retries, except when
 * env->last_try says no retry follows: then the run fails with that error.
 * env->give_up fails the run with that reason without computing.  out->stats carries
 * the reducer, reuse, points and phase durations for the worker's metrics.
 * The settings come from struct projection_app (projection_app.h); each task opens its
 * own database connection. */
#ifndef PW_PROJECTION_TASK_H
#define PW_PROJECTION_TASK_H

#include "log.h"
#include "projection_app.h"
#include "tasks.h"

int projection_task_run(const struct task_env *env, struct task_outcome *out, struct pw_error *err);

#endif
