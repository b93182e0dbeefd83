/* projection_app.h - the projection task's settings, read once per task process.
 *
 * `run` passes its projection flags to the task processes in the environment (see
 * cli/cmd_run.c); projection_app_from_env() reads them back: DATABASE_URL, DATA_DIR,
 * QDRANT_URL, QDRANT_API_KEY, QDRANT_TIMEOUT_MS, QDRANT_MAX_RETRIES, PW_VECTOR_NAME,
 * PW_COMPUTE_THREADS, PW_LOCK_WAIT, and the request bounds PW_MAX_N_NEIGHBORS,
 * PW_MAX_PERPLEXITY, PW_MAX_N_ITER (reducer.h).  The strings point into the environment,
 * which the process does not change afterwards.  PW_EINVAL names a variable that is out of range.
 */
#ifndef PW_PROJECTION_APP_H
#define PW_PROJECTION_APP_H

#include "pw_error.h"
#include "qdrant.h"
#include "reducer.h"
#include "secrets.h"

struct projection_app {
    const char *database_url; /* DATABASE_URL (libpq URI) */
    const char *data_dir;     /* DATA_DIR: artifacts go to {data_dir}/semantik/projections/ */
    struct qdrant_config qdrant;
    const char *vector_name;       /* named vector to project; NULL = the first non-null */
    int compute_threads;           /* threads for one computation (<= 0: all cores) */
    double lock_wait_s;            /* how long a duplicate waits for the run computing its hash */
    struct reducer_limits limits;  /* bounds on n_neighbors, perplexity, n_iter */
    const struct secrets *secrets; /* set by main, not from_env: scrubbed from failure
                                      messages before they are logged, stored or returned */
};

int projection_app_from_env(struct projection_app *app, struct pw_error *err);

#endif
