/* projection_app.c - the projection task's settings from the environment (see header). */
#include "projection_app.h"

#include <stdlib.h>
#include <string.h>

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static int env_number(const char *name, double lo, double hi, double *out, struct pw_error *err)
{
    const char *v = getenv(name);
    char *end;
    double d;

    if (!v || !*v)
        return 0;
    d = strtod(v, &end);
    if (end == v || *end || d < lo || d > hi)
        return pw_error_set(err, PW_EINVAL, "%s must be a number in %g..%g", name, lo, hi);
    *out = d;
    return 0;
}

int projection_app_from_env(struct projection_app *app, struct pw_error *err)
{
    double timeout_ms = 0, retries = -1, threads = 0, lock_wait = 900;
    int rc;

    memset(app, 0, sizeof *app);
    app->database_url = env_or("DATABASE_URL", NULL);
    app->data_dir = env_or("DATA_DIR", "./data");
    app->qdrant.url = env_or("QDRANT_URL", "http://localhost:6333");
    app->qdrant.api_key = env_or("QDRANT_API_KEY", NULL);
    app->vector_name = env_or("PW_VECTOR_NAME", NULL);
    if ((rc = env_number("QDRANT_TIMEOUT_MS", 1, 3600000, &timeout_ms, err)) ||
        (rc = env_number("QDRANT_MAX_RETRIES", 0, 100, &retries, err)) ||
        (rc = env_number("PW_COMPUTE_THREADS", 0, 1024, &threads, err)) ||
        (rc = env_number("PW_LOCK_WAIT", 0, 7 * 86400, &lock_wait, err)) ||
        (rc = reducer_limits_from_env(&app->limits, err)))
        return rc;
    app->qdrant.timeout_ms = (long)timeout_ms;
    /* qdrant_config: 0 = the client's default (5), negative = no retries */
    app->qdrant.max_retries = retries < 0 ? 0 : retries == 0 ? -1 : (int)retries;
    app->compute_threads = (int)threads;
    app->lock_wait_s = lock_wait;
    return 0;
}
