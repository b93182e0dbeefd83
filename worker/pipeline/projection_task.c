/* projection_task.c - the projection pipeline (see header).
 *
 * One struct projection_job travels down the steps of DESIGN.md's data flow, each a
 * function that returns 0 or a negative code with err filled:
 *
 *   load_run -> compute_hash -> lock_hash -> (already done | reuse | compute)
 *   compute:  fetch_vectors -> derive_categories -> reduce -> build_meta -> publish -> commit
 *
 * Anything that fails after the run was loaded marks the run and its operation failed
 * (fail_run) before the task reports FAILURE.  The advisory lock is a session lock on
 * the job's own connection: closing the connection releases it, whatever happened.  So
 * when the session dies (PostgreSQL restarted, backend terminated), each write goes
 * through write_db: a new session, the lock taken again, the run read again, the write
 * redone.  When the database stays out of reach nothing is recorded and the task asks
 * for the message to be delivered again (task_outcome.retry). */
#include "clock.h"
#include "projection_task.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#include "advisory_lock.h"
#include "artifacts.h"
#include "categories.h"
#include "collections.h"
#include "fault.h"
#include "metadata_hash.h"
#include "pg.h"
#include "pg_url.h"
#include "pycompat.h"
#include "reducer.h"
#include "runs.h"

struct projection_job {
    const struct projection_app *app;
    const struct task_env *env;
    const char *run_id;
    PGconn *conn;
    struct run run;
    struct collection coll;
    int run_loaded, coll_loaded;
    int locked;          /* this session took the advisory lock on lock_key */
    int reused;          /* the run was completed by reusing another run's artifacts */
    const char *failure; /* fail_run's message, for mark_failed */
    int revoked;         /* revoke --terminate stopped it: mark_failed marks it cancelled */
    int db_lost;         /* the database could not be reached (again): nothing can be recorded */
    int disk_unwritable; /* DATA_DIR full or read-only: the operator fixes it, then a redelivery */
    int qdrant_unavailable; /* Qdrant still failing after the client's retries: a Celery retry */
    json_t *config;         /* the run's config (object; {} when absent) */
    char hash[METADATA_HASH_HEX_LEN + 1];
    int64_t lock_key;
    enum color_by color_by;
    size_t sample_limit;
    int force;
    char *parent_run_id; /* force: the run that would have been reused */
    /* fetched data */
    struct qdrant_matrix m;
    struct qdrant_scroll_stats stats;
    struct category_table *cats;
    uint8_t *cat;
    int32_t *ids;
    json_t *original_ids;
    /* reduction */
    float *xy; /* n x 2 */
    float *x, *y;
    char reducer_requested[64];
    const char *reducer_used;
    json_t *reducer_params;
    json_t *extras;         /* explained_variance_ratio, singular_values, kl_divergence */
    json_t *limits_applied; /* the operator's bounds the request ran into ([] when none) */
    char fallback_reason[300];
    /* output */
    char *abs_dir, *rel_dir;
    json_t *meta;
    double last_progress;
    int scroll_fault_passed, compute_fault_passed; /* fault points fire on first progress */
    double started;
    double fetch_s, categories_s, reduce_s, publish_s; /* phase timings: log line, metrics */
};

static void log_job(const struct projection_job *job, int level, const char *event, json_t *extra,
                    const char *msg)
{
    json_t *f = json_pack("{s:s?, s:s?, s:s?}", "task_id", job->env->msg->id, "run", job->run_id,
                          "collection", job->run_loaded ? job->run.collection_id : NULL);
    if (json_is_object(extra))
        json_object_update(f, extra);
    json_decref(extra);
    pw_log_event(job->env->log, level, event, f, msg);
}

/* ---- helpers ------------------------------------------------------------------------ */

static int is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* datetime.now(UTC).isoformat() */
static void iso_now(char *buf, size_t cap)
{
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    if (tv.tv_usec)
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
    else
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d+00:00", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- step 1: load ------------------------------------------------------------------ */

/* Tries to connect for about 30 s (0.25 s doubling up to 5 s between tries): a restart
 * of PostgreSQL fits, an outage does not and the message is delivered again later. */
#define DB_CONNECT_ATTEMPTS 10

/* Opens job->conn, closing a previous one.  A failure of any kind (server down, wrong
 * password, database missing) sets db_lost: nothing about the run can be recorded, so
 * the task asks for the message to come back rather than answering FAILURE, and a
 * worker whose database is unreachable stops taking work. */
static int connect_db(struct projection_job *job, struct pw_error *err)
{
    struct pg_connect_options opt;
    int rc;

    pg_close(job->conn);
    job->conn = NULL;
    pg_connect_options_default(&opt);
    opt.attempts = DB_CONNECT_ATTEMPTS;
    if ((rc = pg_connect(job->app->database_url, &opt, &job->conn, err)))
        job->db_lost = 1;
    return rc;
}

static int load_run(struct projection_job *job, struct pw_error *err)
{
    json_error_t jerr;
    int rc;

    if ((rc = connect_db(job, err)))
        return rc;
    rc = runs_load(job->conn, job->run_id, &job->run, err);
    if (rc == PW_ENOTFOUND)
        return pw_error_set(err, PW_ENOTFOUND, "Projection run %s not found", job->run_id);
    if (rc)
        return rc;
    job->run_loaded = 1;
    if ((rc = artifacts_check_ids(job->run.collection_id, job->run.uuid, err)))
        return rc;
    rc = collections_load(job->conn, job->run.collection_id, &job->coll, err);
    if (rc == PW_ENOTFOUND)
        return pw_error_set(err, PW_ENOTFOUND, "Collection %.64s for projection %s not found",
                            job->run.collection_id, job->run_id);
    if (rc)
        return rc;
    job->coll_loaded = 1;
    job->config = job->run.config_json ? json_loads(job->run.config_json, 0, &jerr) : NULL;
    if (!json_is_object(job->config)) {
        json_decref(job->config);
        job->config = json_object();
    }
    job->force = py_truthy(json_object_get(job->config, "force"));
    return 0;
}

/* ---- step 2: hash and the effective request ---------------------------------------- */

static int compute_hash(struct projection_job *job, struct pw_error *err)
{
    struct metadata_hash_input in = {job->run.collection_id,
                                     job->run.reducer,
                                     job->run.dimensionality,
                                     job->run.config_json,
                                     job->coll.embedding_model ? job->coll.embedding_model : "",
                                     job->coll.vector_count,
                                     job->coll.updated_at_us};
    struct metadata_hash_effective eff;
    int rc;

    if ((rc = metadata_hash_request(&in, job->hash, &eff, err)))
        return rc;
    job->color_by = categories_parse_color_by(eff.color_by);
    job->sample_limit = eff.sample_limit >= 1e9 ? 1000000000u : (size_t)eff.sample_limit;
    return 0;
}

/* ---- step 3: the advisory lock ------------------------------------------------------ */

static int lock_hash(struct projection_job *job, struct pw_error *err)
{
    double deadline = pw_mono_now() + job->app->lock_wait_s;
    int acquired = 0, rc;

    if ((rc = advisory_lock_key(job->run.collection_id, job->hash, &job->lock_key, err)) ||
        (rc = advisory_lock_try(job->conn, job->lock_key, &acquired, err)) || acquired)
        return rc;
    log_job(job, PW_LOG_INFO, "projection_waiting_for_duplicate",
            json_pack("{s:s}", "metadata_hash", job->hash),
            "another worker holds this (collection, hash); waiting for its result");
    /* Block on the lock a second at a time: woken the moment the other run commits,
     * and the cancel flag is still read once a second. */
    for (;;) {
        if (atomic_load(job->env->cancel))
            return pw_error_set(err, PW_ECANCELED, "cancelled while waiting for a duplicate run");
        if (pw_mono_now() > deadline)
            return pw_error_set(err, PW_ETIMEOUT,
                                "another worker has been computing the same projection "
                                "(collection %.64s, hash %.12s) for over %.0f s; giving up",
                                job->run.collection_id, job->hash, job->app->lock_wait_s);
        rc = advisory_lock_acquire(job->conn, job->lock_key, 1000, err);
        if (rc != PW_ETIMEOUT)
            return rc;
        pw_error_clear(err);
    }
}

/* ---- results ------------------------------------------------------------------------ */

static json_t *task_result(const struct projection_job *job, const char *reducer,
                           int64_t point_count, const char *abs_dir)
{
    return json_pack("{s:s, s:s, s:s?, s:n, s:I, s:s?}", "projection_id", job->run.uuid, "status",
                     "completed", "reducer", reducer, "message", "point_count",
                     (json_int_t)point_count, "storage_path", abs_dir);
}

/* Result for a run that a previous delivery (or a duplicate) already completed. */
static int already_completed(struct projection_job *job, struct task_outcome *out,
                             struct pw_error *err)
{
    char *abs = NULL, *rel = NULL;
    const char *reducer = job->run.reducer;
    json_t *meta = job->run.meta_json ? json_loads(job->run.meta_json, 0, NULL) : NULL;
    json_t *art = json_object_get(meta, "projection_artifacts");
    int rc;

    if (json_is_string(json_object_get(art, "reducer_used")))
        reducer = json_string_value(json_object_get(art, "reducer_used"));
    rc = artifacts_run_dir(job->app->data_dir, job->run.collection_id, job->run.uuid, &abs, &rel,
                           err);
    if (!rc)
        out->result = task_result(job, reducer, job->run.point_count, abs);
    log_job(job, PW_LOG_INFO, "projection_already_completed", NULL,
            "run was completed by an earlier delivery; returning its result");
    json_decref(meta);
    free(abs);
    free(rel);
    return rc;
}

/* ---- step 4a: reuse ------------------------------------------------------------------ */

static int try_reuse(struct projection_job *job, struct task_outcome *out, int *reused,
                     struct pw_error *err)
{
    struct run src;
    int found = 0, rc;
    json_t *summary = NULL, *patch = NULL;
    char *patch_text = NULL, *abs = NULL, *rel = NULL;
    const char *reducer;
    double t0 = pw_mono_now(), t_lookup = 0, t_link = 0;
    static const char *const view_keys[] = {"color_by",    "legend",      "sampled",
                                            "shown_count", "total_count", "limits_applied"};

    *reused = 0;
    memset(&src, 0, sizeof src);
    if ((rc = runs_find_reusable(job->conn, job->run.collection_id, job->hash, job->run.uuid, &src,
                                 &found, err)))
        return rc;
    if (!found)
        return 0;
    if (job->force) { /* computed anew; remember what it supersedes */
        job->parent_run_id = strdup(src.uuid);
        runs_free(&src);
        return 0;
    }
    t_lookup = pw_mono_now() - t0;
    if (!src.storage_path) {
        log_job(job, PW_LOG_WARNING, "projection_reuse_skipped",
                json_pack("{s:s}", "candidate", src.uuid), "candidate has no storage path");
        goto done;
    }
    /* All five files, meta.json included, are linked: the reuse costs the same for ten
     * points or a million, and readers that fall back to meta.json see the source's. */
    rc = artifacts_publish_reuse(job->app->data_dir, src.storage_path, job->run.collection_id,
                                 job->run.uuid, NULL, 0, err);
    if (rc == PW_ENOTFOUND) { /* artifacts gone from disk: compute instead */
        log_job(job, PW_LOG_WARNING, "projection_reuse_skipped",
                json_pack("{s:s}", "candidate", src.uuid), err->msg);
        pw_error_clear(err);
        rc = 0;
        goto done;
    }
    if (rc || (rc = artifacts_run_dir(job->app->data_dir, job->run.collection_id, job->run.uuid,
                                      &abs, &rel, err)))
        goto done;
    t_link = pw_mono_now() - t0 - t_lookup;
    summary = src.meta_json ? json_loads(src.meta_json, 0, NULL) : NULL;
    patch = json_pack("{s:s, s:b}", "reused_from", src.uuid, "idempotent_reuse", 1);
    for (size_t i = 0; i < sizeof view_keys / sizeof view_keys[0]; i++) {
        json_t *v = json_object_get(summary, view_keys[i]);
        if (v && !json_is_null(v))
            json_object_set(patch, view_keys[i], v);
    }
    patch_text = json_dumps(patch, JSON_COMPACT);
    {
        /* projection_artifacts as the source carries it, like a computed run's (its
         * meta.json is the one linked here) */
        struct run_completion c = {rel, src.point_count < 0 ? 0 : src.point_count, patch_text,
                                   job->hash, src.uuid};
        if ((rc = runs_mark_completed(job->conn, job->run.uuid, &c, err)))
            goto done;
    }
    reducer = json_string_value(
        json_object_get(json_object_get(summary, "projection_artifacts"), "reducer_used"));
    out->result = task_result(job, reducer ? reducer : src.reducer, src.point_count, abs);
    *reused = 1;
    log_job(job, PW_LOG_INFO, "projection_reused",
            json_pack("{s:s, s:s, s:b, s:I, s:f, s:f, s:f}", "reused_from", src.uuid,
                      "metadata_hash", job->hash, "idempotent_reuse", 1, "point_count",
                      (json_int_t)src.point_count, "duration_s", pw_mono_now() - t0, "lookup_s",
                      t_lookup, "link_s", t_link),
            "identical request: artifacts linked from a completed run, no vectors fetched");
done:
    json_decref(summary);
    json_decref(patch);
    free(patch_text);
    free(abs);
    free(rel);
    runs_free(&src);
    return rc;
}

/* ---- step 4b: fetch -------------------------------------------------------------------- */

static void report_progress(struct projection_job *job, json_t *progress)
{
    struct pw_error ignored;
    json_t *patch;
    char *text;
    double now = pw_mono_now();

    if (now - job->last_progress < 1.0) {
        json_decref(progress);
        return;
    }
    job->last_progress = now;
    patch = json_pack("{s:o}", "progress", progress);
    text = json_dumps(patch, JSON_COMPACT);
    if (text)
        runs_update_progress(job->conn, job->run.uuid, text, &ignored);
    free(text);
    json_decref(patch);
}

static int scroll_progress(void *ud, size_t fetched, size_t limit)
{
    struct projection_job *job = ud;

    if (fetched > 0 && !job->scroll_fault_passed) {
        job->scroll_fault_passed = 1;
        pw_fault_point("mid_scroll");
    }

    report_progress(job, json_pack("{s:s, s:I, s:I}", "phase", "fetching", "fetched",
                                   (json_int_t)fetched, "sample_limit", (json_int_t)limit));
    return atomic_load(job->env->cancel) ? 1 : 0;
}

#define UNKNOWN_COUNT_RESERVE 65536 /* rows reserved when the collection size is unknown */

static int fetch_vectors(struct projection_job *job, struct pw_error *err)
{
    struct qdrant_client *client = NULL;
    struct qdrant_scroll_opts so;
    const char *name = job->coll.vector_store_name;
    size_t reserve = job->sample_limit;
    int rc;

    if (!name || !*name)
        return pw_error_set(err, PW_EINVAL,
                            "Collection is missing a vector store name for projection computation");
    /* Rows reserved up front: the collection's vector_count when it is known, otherwise
     * (0, the column's default) a small start the matrix grows from geometrically; never
     * sample_limit itself, which may be 10^9 for "everything". */
    if (job->coll.vector_count > 0 && (size_t)job->coll.vector_count < reserve)
        reserve = (size_t)job->coll.vector_count;
    else if (job->coll.vector_count <= 0 && reserve > UNKNOWN_COUNT_RESERVE)
        reserve = UNKNOWN_COUNT_RESERVE;
    if ((rc = qdrant_client_new(&client, &job->app->qdrant, err)))
        return rc;
    if ((rc = qdrant_matrix_reserve(&job->m, reserve, 0, err)))
        goto done;
    memset(&so, 0, sizeof so);
    so.collection = name;
    so.sample_limit = job->sample_limit;
    so.vector_name = job->app->vector_name;
    so.parse_threads = job->app->compute_threads;
    so.progress = scroll_progress;
    so.progress_ud = job;
    rc = qdrant_scroll_matrix(client, &so, &job->m, &job->stats, err);
    /* unreachable, 5xx or timing out after the client's own retries: transient */
    job->qdrant_unavailable = rc == PW_EUNAVAIL || rc == PW_ETIMEOUT;
done:
    qdrant_client_free(client);
    return rc;
}

/* ---- step 5: categories and ids ------------------------------------------------------- */

static int derive_categories(struct projection_job *job, struct pw_error *err)
{
    size_t n = job->m.n;
    struct timeval tv;
    double now;
    int all_int32 = 1, rc;

    gettimeofday(&tv, NULL);
    now = tv.tv_sec + tv.tv_usec / 1e6;
    if ((rc = category_table_new(&job->cats, job->color_by, err)))
        return rc;
    job->cat = malloc(n ? n : 1);
    job->ids = malloc((n ? n : 1) * sizeof *job->ids);
    job->original_ids = json_array();
    if (!job->cat || !job->ids || !job->original_ids)
        return pw_error_set(err, PW_ENOMEM, "out of memory for %zu points", n);
    for (size_t i = 0; i < n; i++) {
        char idtext[QDRANT_ID_TEXT_MAX], *doc, *label;
        int idx;
        json_t *payload = categories_point_payload(&job->m, i);

        label = categories_label(payload, job->color_by, now, &doc);
        json_decref(payload);
        idx = label ? category_table_add(job->cats, label, doc) : PW_ENOMEM;
        free(label);
        free(doc);
        if (idx < 0)
            return pw_error_set(err, PW_ENOMEM, "out of memory for categories");
        job->cat[i] = (uint8_t)idx;
        qdrant_id_format(&job->m.ids[i], idtext);
        json_array_append_new(job->original_ids, json_string(idtext));
        if (job->m.ids[i].kind != QDRANT_ID_NUM || job->m.ids[i].u.num > INT32_MAX)
            all_int32 = 0;
    }
    /* ids.i32.bin: the point ids when all are int32, else sequential indexes for all. */
    for (size_t i = 0; i < n; i++)
        job->ids[i] = all_int32 ? (int32_t)job->m.ids[i].u.num : (int32_t)i;
    if (!all_int32 && n)
        log_job(job, PW_LOG_WARNING, "projection_sequential_ids", NULL,
                "point ids are not all int32; ids.i32.bin holds sequential indexes "
                "(meta.json original_ids has the real ids)");
    if (category_table_overflowed(job->cats))
        log_job(job, PW_LOG_WARNING, "projection_category_overflow", NULL,
                "more than 255 categories; using overflow bucket 255 \"Other\"");
    return 0;
}

/* ---- step 6: reduce ---------------------------------------------------------------------- */

static void compute_progress(void *ctx, const char *phase, double fraction)
{
    struct projection_job *job = ctx;

    if (!job->compute_fault_passed) {
        job->compute_fault_passed = 1;
        pw_fault_point("mid_compute");
    }
    report_progress(ctx, json_pack("{s:s, s:f}", "phase", phase, "fraction", fraction));
}

static int reduce(struct projection_job *job, struct pw_error *err)
{
    struct pw_progress pg = {.cancel = job->env->cancel, .report = compute_progress, .ctx = job};
    struct reducer_env env;
    struct reducer_result r;
    size_t n = job->m.n;
    int rc;

    if (n < 2)
        return pw_error_set(err, PW_EINVAL,
                            "Not enough vectors available to compute projection (need at least 2)");
    reducer_env_default(&env);
    env.limits = job->app->limits;
    env.threads = job->app->compute_threads;
    env.progress = &pg;
    rc = reducer_run(job->run.reducer, job->config, job->m.x, n, job->m.dim, &env, &r, err);
    snprintf(job->reducer_requested, sizeof job->reducer_requested, "%s", r.requested);
    job->reducer_used = r.used;
    job->xy = r.xy;
    job->reducer_params = r.params;
    job->extras = r.extras;
    job->limits_applied = r.limits_applied; /* the job owns them from here, whatever rc says */
    if (json_array_size(job->limits_applied)) {
        char reasons[512];
        reducer_limits_describe(&r, reasons, sizeof reasons);
        log_job(job, PW_LOG_WARNING, "projection_request_limited",
                json_pack("{s:O}", "limits_applied", job->limits_applied), reasons);
    }
    if (rc)
        return rc;
    if (r.fell_back) {
        snprintf(job->fallback_reason, sizeof job->fallback_reason, "%s", r.fallback_reason);
        log_job(job, PW_LOG_WARNING, "projection_reducer_fallback",
                json_pack("{s:s}", "reducer", job->reducer_requested), r.fallback_reason);
    }
    job->x = malloc(n * sizeof *job->x);
    job->y = malloc(n * sizeof *job->y);
    if (!job->x || !job->y)
        return pw_error_set(err, PW_ENOMEM, "out of memory for the projection of %zu points", n);
    for (size_t i = 0; i < n; i++) {
        job->x[i] = job->xy[2 * i];
        job->y[i] = job->xy[2 * i + 1];
    }
    return 0;
}

/* ---- step 7: meta.json and publication --------------------------------------------------- */

static int64_t total_count(const struct projection_job *job)
{
    int64_t n = (int64_t)job->m.n, vc = job->coll.vector_count;
    return vc > 0 ? (vc > n ? vc : n) : n;
}

static int build_meta(struct projection_job *job, struct pw_error *err)
{
    char created[64];
    int64_t n = (int64_t)job->m.n, total = total_count(job);
    const char *key;
    json_t *v;

    iso_now(created, sizeof created);
    job->meta = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:s, s:s, s:O, s:i, s:s, s:I, "
        "s:{s:s, s:s, s:s, s:s}, s:s, s:o, s:O}",
        "projection_id", job->run.uuid, "collection_id", job->run.collection_id, "created_at",
        created, "point_count", (json_int_t)n, "total_count", (json_int_t)total, "shown_count",
        (json_int_t)n, "sampled", n < total, "reducer_requested", job->reducer_requested,
        "reducer_used", job->reducer_used, "reducer_params", job->reducer_params, "dimensionality",
        2, "source_vector_collection", job->coll.vector_store_name, "sample_limit",
        (json_int_t)job->sample_limit, "files", "x", ARTIFACTS_X_FILE, "y", ARTIFACTS_Y_FILE, "ids",
        ARTIFACTS_IDS_FILE, "categories", ARTIFACTS_CAT_FILE, "color_by",
        categories_color_by_name(job->color_by), "legend", category_table_legend(job->cats),
        "original_ids", job->original_ids);
    if (!job->meta)
        return pw_error_set(err, PW_ENOMEM, "cannot build meta.json");
    json_object_foreach(job->extras, key, v) json_object_set(job->meta, key, v);
    if (job->fallback_reason[0])
        json_object_set_new(job->meta, "fallback_reason", json_string(job->fallback_reason));
    if (json_array_size(job->limits_applied))
        json_object_set(job->meta, "limits_applied", job->limits_applied);
    if (job->color_by == COLOR_BY_DOCUMENT_ID)
        json_object_set_new(job->meta, "category_map", category_table_doc_map(job->cats));
    json_object_set_new(job->meta, "category_counts", category_table_counts(job->cats));
    if (job->parent_run_id)
        json_object_set_new(job->meta, "parent_run_id", json_string(job->parent_run_id));
    return 0;
}

/* The files, in place under the run's directory (artifacts.h: all or nothing). */
static int publish(struct projection_job *job, struct pw_error *err)
{
    struct artifacts a;
    char *meta_text = NULL;
    int rc;

    if ((rc = py_json_dumps(job->meta, 2, &meta_text, err)))
        goto done;
    a.n = job->m.n;
    a.x = job->x;
    a.y = job->y;
    a.ids = job->ids;
    a.cat = job->cat;
    a.meta_json = meta_text;
    rc = artifacts_publish(job->app->data_dir, job->run.collection_id, job->run.uuid, &a, 0, err);
    if (rc == PW_EUNAVAIL)
        job->disk_unwritable = 1;
    if (rc)
        goto done;
    rc = artifacts_run_dir(job->app->data_dir, job->run.collection_id, job->run.uuid, &job->abs_dir,
                           &job->rel_dir, err);
done:
    free(meta_text);
    return rc;
}

/* One transaction: run completed with the published artifacts, operation completed. */
static int commit_completion(struct projection_job *job, struct task_outcome *out,
                             struct pw_error *err)
{
    char *patch_text = NULL;
    json_t *patch;
    int rc;

    /* meta merged as the Python task's update_metadata call does */
    patch = json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "projection_artifacts", job->meta,
                      "color_by", json_object_get(job->meta, "color_by"), "legend",
                      json_object_get(job->meta, "legend"), "sampled",
                      json_object_get(job->meta, "sampled"), "shown_count",
                      json_object_get(job->meta, "shown_count"), "total_count",
                      json_object_get(job->meta, "total_count"));
    if (job->parent_run_id)
        json_object_set_new(patch, "parent_run_id", json_string(job->parent_run_id));
    if (json_array_size(job->limits_applied)) /* the request ran at the operator's bounds */
        json_object_set(patch, "limits_applied", job->limits_applied);
    json_object_set_new(patch, "progress", json_null());
    patch_text = json_dumps(patch, JSON_COMPACT);
    {
        struct run_completion c = {job->rel_dir, (int64_t)job->m.n, patch_text, job->hash, NULL};
        pw_fault_point("before_commit");
        if ((rc = runs_mark_completed(job->conn, job->run.uuid, &c, err)))
            goto done;
        pw_fault_point("after_commit");
    }
    out->result = task_result(job, job->reducer_used, (int64_t)job->m.n, job->abs_dir);
    {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru); /* the task process: its peak is this projection's */
        log_job(job, PW_LOG_INFO, "projection_completed",
                json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:s}", "reducer",
                          job->reducer_used, "metadata_hash", job->hash, "point_count",
                          (json_int_t)job->m.n, "dim", (json_int_t)job->m.dim, "qdrant_requests",
                          (json_int_t)job->stats.requests, "duration_s",
                          pw_mono_now() - job->started, "fetch_s", job->fetch_s, "categories_s",
                          job->categories_s, "reduce_s", job->reduce_s, "peak_rss_kb",
                          (json_int_t)ru.ru_maxrss, "storage_path", job->rel_dir),
                NULL);
    }
done:
    json_decref(patch);
    free(patch_text);
    return rc;
}

/* ---- the task ------------------------------------------------------------------------------- */

static void job_free(struct projection_job *job)
{
    if (job->conn)
        pg_close(job->conn); /* also releases the session advisory lock */
    if (job->run_loaded)
        runs_free(&job->run);
    if (job->coll_loaded)
        collections_free(&job->coll);
    json_decref(job->config);
    free(job->parent_run_id);
    qdrant_matrix_free(&job->m);
    category_table_free(job->cats);
    free(job->cat);
    free(job->ids);
    json_decref(job->original_ids);
    free(job->xy);
    free(job->x);
    free(job->y);
    json_decref(job->reducer_params);
    json_decref(job->extras);
    json_decref(job->limits_applied);
    free(job->abs_dir);
    free(job->rel_dir);
    json_decref(job->meta);
}

static const char *exc_type_for(int code)
{
    switch (code) {
    case PW_ENOTFOUND:
    case PW_EINVAL:
    case PW_EPROTO:
        return "ValueError";
    case PW_ETIMEOUT:
        return "TimeoutError";
    case PW_EUNAVAIL:
    case PW_EIO:
        return "ConnectionError";
    case PW_EDENIED:
        return "PermissionError";
    case PW_ENOMEM:
        return "MemoryError";
    default:
        return "RuntimeError";
    }
}

static int run_id_argument(const struct celery_task_msg *m, const char **id, struct pw_error *err)
{
    json_t *v = json_array_size(m->args) > 0 ? json_array_get(m->args, 0)
                                             : json_object_get(m->kwargs, "projection_id");

    if (json_array_size(m->args) > 1)
        return pw_error_set(err, PW_EINVAL,
                            "compute_projection takes one argument, the projection run id");
    if (!json_is_string(v))
        return pw_error_set(err, PW_EINVAL,
                            "compute_projection needs the projection run id (args=[run_uuid] or "
                            "kwargs={\"projection_id\": run_uuid})");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return pw_error_set(
            err, PW_EINVAL,
            "projection run id '%.64s...' is not a UUID: it contains a NUL character",
            json_string_value(v));
    if (!is_uuid(json_string_value(v)))
        return pw_error_set(err, PW_EINVAL, "projection run id '%.64s' is not a UUID",
                            json_string_value(v));
    *id = json_string_value(v);
    return 0;
}

/* A refused id may still name a row (projection_runs.uuid is text): that row is loaded
 * so that report_failure marks it and its operation failed instead of leaving them
 * pending.  Nothing here touches the filesystem. */
static void load_refused_run(struct projection_job *job)
{
    const json_t *v = json_array_size(job->env->msg->args) > 0
                          ? json_array_get(job->env->msg->args, 0)
                          : json_object_get(job->env->msg->kwargs, "projection_id");
    struct pw_error ignored;

    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) || !job->app ||
        !job->app->database_url || pg_connect(job->app->database_url, NULL, &job->conn, &ignored))
        return;
    if (runs_load(job->conn, json_string_value(v), &job->run, &ignored))
        return;
    job->run_loaded = 1;
    job->run_id = job->run.uuid;
}

/* Step 2 of DESIGN.md, first half: the run id, the connection, the run and collection. */
static int load(struct projection_job *job, struct pw_error *err)
{
    int rc;

    if ((rc = run_id_argument(job->env->msg, &job->run_id, err))) {
        load_refused_run(job);
        return rc;
    }
    if (!job->app || !job->app->database_url)
        return pw_error_set(err, PW_EINVAL,
                            "projection-worker has no DATABASE_URL configured: cannot load run %s",
                            job->run_id);
    return load_run(job, err);
}

/* The run read again (its status may have changed). */
static int runs_load_again(struct projection_job *job, struct pw_error *err)
{
    int rc;

    runs_free(&job->run);
    job->run_loaded = 0;
    if ((rc = runs_load(job->conn, job->run_id, &job->run, err)))
        return rc;
    job->run_loaded = 1;
    return 0;
}

/* The lock on (collection, hash) for this session, then the run read again under it:
 * it may have changed while we waited. */
static int lock_and_reload(struct projection_job *job, struct pw_error *err)
{
    int rc;

    if ((rc = lock_hash(job, err)))
        return rc;
    job->locked = 1;
    pw_fault_point("under_lock");
    return runs_load_again(job, err);
}

/* Step 2, second half: the hash and the lock on (collection, hash). */
static int lock(struct projection_job *job, struct pw_error *err)
{
    int rc;

    if ((rc = compute_hash(job, err)))
        return rc;
    return lock_and_reload(job, err);
}

/* A run already completed or cancelled is settled as it is (*settled = 1, whatever rc
 * says); otherwise *settled = 0 and nothing is done. */
static int settle_finished(struct projection_job *job, struct task_outcome *out, int *settled,
                           struct pw_error *err)
{
    int rc;

    *settled = 1;
    if (!strcmp(job->run.status, "completed"))
        return already_completed(job, out, err);
    if (!strcmp(job->run.status, "cancelled")) {
        out->revoked = 1;
        rc = pw_error_set(err, PW_ECANCELED, "projection run %s was cancelled", job->run_id);
        log_job(job, PW_LOG_INFO, "projection_cancelled", NULL, err->msg);
        return rc;
    }
    *settled = 0;
    return 0;
}

/* ---- a lost database session ------------------------------------------------------------ */

/* The session died (PostgreSQL restarted, backend terminated) and the advisory lock with
 * it, so another replica may have taken the lock and finished this run meanwhile: a new
 * connection, the lock taken again (waiting as lock_hash does) and the run read again. */
static int recover_session(struct projection_job *job, const struct pw_error *why,
                           struct pw_error *err)
{
    int rc;

    log_job(job, PW_LOG_WARNING, "projection_db_reconnect", NULL, why->msg);
    if ((rc = connect_db(job, err)))
        return rc;
    rc = job->locked ? lock_and_reload(job, err) : runs_load_again(job, err);
    if (rc) {
        if (pg_session_lost(job->conn, err))
            job->db_lost = 1;
        return rc;
    }
    job->db_lost = 0;
    return 0;
}

typedef int (*db_write)(struct projection_job *job, struct task_outcome *out, struct pw_error *err);

/* Runs write; when the session died under it, recovers and, unless the run was settled
 * meanwhile (*settled = 1: completed or cancelled by another attempt; settled may be
 * NULL to redo the write regardless), runs it once more.  db_lost says whether the
 * database is still out of reach at the end. */
static int write_db(struct projection_job *job, db_write write, struct task_outcome *out,
                    int *settled, struct pw_error *err)
{
    struct pw_error why;
    int rc = write(job, out, err);

    if (!rc || !pg_session_lost(job->conn, err))
        return rc;
    job->db_lost = 1;
    why = *err;
    if ((rc = recover_session(job, &why, err)))
        return rc;
    if (settled && ((rc = settle_finished(job, out, settled, err)) || *settled))
        return rc;
    if ((rc = write(job, out, err)) && pg_session_lost(job->conn, err))
        job->db_lost = 1;
    return rc;
}

/* Under the lock: the hash stored, and a completed run with the same hash reused
 * (job->reused). */
static int store_hash_and_reuse(struct projection_job *job, struct task_outcome *out,
                                struct pw_error *err)
{
    int rc, reused = 0;

    if ((rc = runs_store_metadata_hash(job->conn, job->run.uuid, job->hash, err)) ||
        (rc = try_reuse(job, out, &reused, err)))
        return rc;
    job->reused = reused;
    return 0;
}

/* Step 2, under the lock: a run already completed or cancelled is settled as it is
 * (*settled = 1, whatever rc says), a completed run with the same hash is reused
 * (*settled = 1, rc 0); otherwise the run is to be computed. */
static int settle_under_lock(struct projection_job *job, struct task_outcome *out, int *settled,
                             struct pw_error *err)
{
    int rc;

    if ((rc = settle_finished(job, out, settled, err)) || *settled)
        return rc;
    if ((rc = write_db(job, store_hash_and_reuse, out, settled, err)) || *settled)
        return rc;
    *settled = job->reused;
    return 0;
}

/* Temp directories of task processes killed mid-publish (kill -9, OOM) are swept as soon
 * as the lock is taken, whatever the attempt then does (compute, reuse, revoke, settle,
 * give up): this run's own at once (an earlier attempt of it died, maybe while it
 * published a reuse), others' once they are an hour old (another run may be publishing
 * them now). */
static void sweep_stale_temps(struct projection_job *job)
{
    struct pw_error sweep;

    if (artifacts_remove_stale_temps(job->app->data_dir, job->run.collection_id, job->run.uuid,
                                     3600, &sweep))
        log_job(job, PW_LOG_WARNING, "projection_stale_temp_sweep_failed", NULL, sweep.msg);
}

/* Earlier attempts of this message died (env->give_up says how): the run and its
 * operation are failed with that reason and nothing is computed again.  Under the lock
 * when it can be had, as every attempt: the dead attempts' temp directories are swept
 * (sweep_stale_temps) and a run that finished meanwhile (completed by an attempt before
 * it died, or cancelled) keeps its outcome.  Without the lock (a duplicate held it past
 * lock_wait_s, the database failed) the run is given up all the same; its temp
 * directories then go at the hourly sweep of later runs. */
static int give_up(struct projection_job *job, struct task_outcome *out, int *settled,
                   struct pw_error *err)
{
    struct pw_error why;
    int rc;

    if (lock(job, &why))
        log_job(job, PW_LOG_WARNING, "projection_give_up_unlocked", NULL, why.msg);
    else
        sweep_stale_temps(job);
    if ((rc = settle_finished(job, out, settled, err)) || *settled)
        return rc;
    /* What Celery reports for a pool process that died under a task. */
    out->exc_type = "WorkerLostError";
    out->exc_module = "billiard.exceptions";
    return pw_error_set(err, PW_EINTERNAL, "%s", job->env->give_up);
}

/* revoke --terminate killed the attempt that ran this before it stopped by itself: under
 * the lock (the attempt's temp directories swept, sweep_stale_temps), a run that finished
 * meanwhile stays as it is; otherwise report_failure marks the run and operation
 * cancelled. */
static int record_revoked(struct projection_job *job, struct task_outcome *out, int *settled,
                          struct pw_error *err)
{
    int rc;

    if ((rc = settle_finished(job, out, settled, err)) || *settled)
        return rc;
    job->revoked = out->revoked = 1;
    return pw_error_set(err, PW_ECANCELED, "revoked: the task was terminated");
}

/* Seconds since *t, and *t moved to now: one phase's duration. */
static double lap(double *t)
{
    double now = pw_mono_now(), d = now - *t;
    *t = now;
    return d;
}

static int mark_running(struct projection_job *job, struct task_outcome *out, struct pw_error *err)
{
    (void)out;
    return runs_mark_running(job->conn, job->run.uuid, err);
}

/* Steps 3 to 6 of DESIGN.md: fetch, categories and ids, reduce, publish and commit.
 * *settled = 1 when a lost session was recovered and the run had been finished
 * meanwhile by another attempt (its outcome is then the task's). */
static int compute_and_publish(struct projection_job *job, struct task_outcome *out, int *settled,
                               struct pw_error *err)
{
    double t = pw_mono_now();
    int rc;

    if ((rc = write_db(job, mark_running, out, settled, err)) || *settled ||
        (rc = fetch_vectors(job, err)))
        return rc;
    job->fetch_s = lap(&t);
    if ((rc = derive_categories(job, err)))
        return rc;
    job->categories_s = lap(&t);
    if ((rc = reduce(job, err)))
        return rc;
    job->reduce_s = lap(&t);
    if ((rc = build_meta(job, err)) || (rc = publish(job, err)) ||
        (rc = write_db(job, commit_completion, out, settled, err)))
        return rc;
    job->publish_s = lap(&t);
    return 0;
}

static int mark_failed(struct projection_job *job, struct task_outcome *out, struct pw_error *err)
{
    char clean[512];

    (void)out;
    pg_url_sanitize_error(job->failure, clean, sizeof clean);
    if (job->revoked)
        return runs_mark_cancelled(job->conn, job->run.uuid, "revoked", err);
    return runs_mark_failed(job->conn, job->run.uuid, clean, err);
}

/* The run and its operation marked failed with why's message, on a new session if the
 * one in hand died; db_lost is set when the database stayed out of reach. */
static void fail_run(struct projection_job *job, const struct pw_error *why,
                     struct task_outcome *out)
{
    struct pw_error failed;

    if (!job->run_loaded)
        return;
    job->failure = why->msg;
    if (write_db(job, mark_failed, out, NULL, &failed))
        log_job(job, PW_LOG_ERROR, "projection_mark_failed_failed", NULL, failed.msg);
}

/* A failure after the message was understood: the exception the client sees, a log
 * line, and the run and operation marked failed where they exist.  When the database
 * is out of reach, or DATA_DIR cannot take the artifacts (full, read-only), nothing
 * could be decided: the run is left as it is and the message is to be delivered again
 * once the operator has fixed it (out->retry).  Qdrant still failing after the client's
 * retries is a retry too, except on the last try, where it fails the run. */
static void report_failure(struct projection_job *job, int rc, struct task_outcome *out,
                           const struct pw_error *err)
{
    if (!out->exc_type) {
        out->exc_type = exc_type_for(rc);
        out->exc_module = "builtins";
    }
    if (!job->db_lost && job->conn && pg_session_lost(job->conn, err))
        job->db_lost = 1;
    if (job->disk_unwritable) {
        out->retry = 1;
        log_job(job, PW_LOG_ERROR, "projection_disk_unavailable", json_pack("{s:i}", "code", rc),
                err->msg);
        return;
    }
    /* revoke --terminate: the run and operation are cancelled, and the client sees
     * REVOKED (the consumer reports it as Celery's "terminated") */
    if (rc == PW_ECANCELED && atomic_load(job->env->cancel) == TASK_CANCEL_REVOKED)
        out->revoked = job->revoked = 1;
    if (job->qdrant_unavailable && !job->db_lost && !job->env->last_try) {
        /* a Celery retry follows: the run stays as it is for the next attempt */
        out->retry = 1;
        log_job(job, PW_LOG_WARNING, "projection_qdrant_unavailable",
                json_pack("{s:i, s:i}", "code", rc, "retries", job->env->msg->retries), err->msg);
        return;
    }
    if (!job->db_lost)
        fail_run(job, err, out);
    if (job->db_lost) {
        out->retry = 1;
        log_job(job, PW_LOG_ERROR, "projection_db_unavailable", json_pack("{s:i}", "code", rc),
                err->msg);
        return;
    }
    log_job(job, PW_LOG_ERROR, "projection_failed", json_pack("{s:i}", "code", rc), err->msg);
}

/* What the metrics count of this attempt (task_outcome.stats). */
static json_t *job_stats(const struct projection_job *job)
{
    const char *reducer = job->reducer_used ? job->reducer_used : job->reducer_requested;

    return json_pack(
        "{s:s, s:b, s:I, s:I, s:{s:f, s:f, s:f, s:f}}", "reducer", *reducer ? reducer : "none",
        "reused", job->reused, "points", (json_int_t)job->m.n, "vector_bytes",
        (json_int_t)(job->m.n * job->m.dim * sizeof(float)), "phases", "fetch", job->fetch_s,
        "categories", job->categories_s, "reduce", job->reduce_s, "publish", job->publish_s);
}

int projection_task_run(const struct task_env *env, struct task_outcome *out, struct pw_error *err)
{
    struct projection_job job;
    int rc, settled = 0;

    memset(&job, 0, sizeof job);
    job.env = env;
    job.app = env->app;
    job.started = pw_mono_now();
    qdrant_matrix_init(&job.m);
    rc = load(&job, err);
    if (!rc && env->give_up)
        rc = give_up(&job, out, &settled, err);
    else if (!rc && !(rc = lock(&job, err))) {
        sweep_stale_temps(&job);
        rc = env->record_revoked ? record_revoked(&job, out, &settled, err)
                                 : settle_under_lock(&job, out, &settled, err);
    }
    if (!rc && !settled)
        rc = compute_and_publish(&job, out, &settled, err);
    if (rc && !settled) {
        /* A server's error text may echo a secret (a proxy quoting the api-key header);
         * the message goes to the log, the run row and the task result. */
        secrets_scrub(job.app ? job.app->secrets : NULL, err->msg);
        report_failure(&job, rc, out, err);
    }
    out->stats = job_stats(&job);
    job_free(&job);
    return rc;
}
