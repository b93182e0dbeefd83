/* reducer.c - projection.py's reducer step: config reading, dispatch, fall-back to PCA.
 *
 * The config is read with Python's int(), float() and str() semantics because the
 * Python task applies exactly those to params.get(key, default); the numbers go to
 * compute/ bounded only by the operator's limits (compute/ owns the structural clamps,
 * such as n_neighbors to n - 1) and the parameters reported are the Python task's: the
 * values read (after the limits), or t-SNE's effective values after a fit.  The limits
 * live here rather than in compute/ because they are a deployment's policy, not a
 * property of the algorithms, and their reasons name the settings that set them.
 * This module sits below the pipeline (compute/, pycompat and jansson only) so that the
 * `project` binary links it without PostgreSQL or libcurl. */
#include "reducer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pca.h"
#include "pycompat.h"

/* ---- params.get(key, default) as the Python task converts it ---------------------------- */

static int read_int(const json_t *config, const char *key, long long def, long long *out,
                    struct pw_error *err)
{
    const json_t *v = json_object_get(config, key);

    *out = def;
    if (v && py_int(v, out))
        return pw_error_set(err, PW_EINVAL, "invalid literal for int() with %s", key);
    return 0;
}

static int read_float(const json_t *config, const char *key, double def, double *out,
                      struct pw_error *err)
{
    const json_t *v = json_object_get(config, key);

    *out = def;
    if (v && py_float(v, out))
        return pw_error_set(err, PW_EINVAL, "could not convert %s to float", key);
    return 0;
}

/* str(params.get(key, def)) into buf (cut to cap - 1 bytes). */
static const char *read_str(const json_t *config, const char *key, const char *def, char *buf,
                            size_t cap)
{
    const json_t *v = json_object_get(config, key);

    if (!v)
        return def;
    py_str(v, buf, cap); /* a cut text still names the value */
    return buf;
}

/* jansson holds no NaN or infinity: parameters with one are left as they were ({}). */
static void set_params(struct reducer_result *out, json_t *params)
{
    if (!params)
        return;
    json_decref(out->params);
    out->params = params;
}

/* ---- the operator's bounds ----------------------------------------------------------- */

/* value, or max when value is above it: then the bound is recorded in limits_applied
 * with the request as written (the default when the config lacks the key) and the name
 * of the setting, var.  integer says whether the parameter is an int (for "used"). */
static double bounded(struct reducer_result *out, const json_t *config, const char *param,
                      const char *var, double value, double max, int integer)
{
    const json_t *given = json_object_get(config, param);
    char reason[160];

    if (!(value > max)) /* NaN passes: compute/ refuses it with its own message */
        return value;
    snprintf(reason, sizeof reason, "%s above %s (%.15g)", param, var, max);
    json_array_append_new(out->limits_applied,
                          json_pack("{s:s, s:o, s:o, s:s}", "param", param, "requested",
                                    given     ? json_deep_copy(given)
                                    : integer ? json_integer((json_int_t)value)
                                              : json_real(value),
                                    "used",
                                    integer ? json_integer((json_int_t)max) : json_real(max),
                                    "reason", reason));
    return max;
}

void reducer_limits_default(struct reducer_limits *limits)
{
    /* umap-learn 0.5 docstring: "values should be in the range 2 to 100" */
    limits->max_n_neighbors = 200;
    /* sklearn TSNE docstring: "Consider selecting a value between 5 and 50" */
    limits->max_perplexity = 100;
    /* five times sklearn TSNE's default n_iter (max_iter) of 1000 */
    limits->max_n_iter = 5000;
}

/* *out = float(the variable's text), as Python reads it, when the variable is set. */
static int limit_from_env(const char *name, double lo, double *out, struct pw_error *err)
{
    const char *text = getenv(name);
    int set = text && *text;
    json_t *v = set ? json_string(text) : NULL; /* NULL too when text is not UTF-8 */
    double d = *out;
    int ok = !set || (v && !py_float(v, &d) && d >= lo && d <= 1e9);

    json_decref(v);
    if (!ok)
        return pw_error_set(err, PW_EINVAL, "%s must be a number in %g..1e9", name, lo);
    *out = d;
    return 0;
}

int reducer_limits_from_env(struct reducer_limits *limits, struct pw_error *err)
{
    double nn, perplexity, n_iter;
    int rc;

    reducer_limits_default(limits);
    nn = (double)limits->max_n_neighbors;
    perplexity = limits->max_perplexity;
    n_iter = (double)limits->max_n_iter;
    if ((rc = limit_from_env("PW_MAX_N_NEIGHBORS", 2, &nn, err)) ||
        (rc = limit_from_env("PW_MAX_PERPLEXITY", 1, &perplexity, err)) ||
        (rc = limit_from_env("PW_MAX_N_ITER", 1, &n_iter, err)))
        return rc;
    limits->max_n_neighbors = (long long)nn;
    limits->max_perplexity = perplexity;
    limits->max_n_iter = (long long)n_iter;
    return 0;
}

void reducer_limits_describe(const struct reducer_result *r, char *buf, size_t cap)
{
    size_t i, len = 0;
    json_t *entry;

    if (cap)
        buf[0] = '\0';
    json_array_foreach(r->limits_applied, i, entry)
    {
        const char *reason = json_string_value(json_object_get(entry, "reason"));
        int w = snprintf(buf + len, cap - len, "%s%s", i ? "; " : "", reason ? reason : "");
        if (w < 0 || (size_t)w >= cap - len)
            return; /* cut: the text stays NUL-terminated */
        len += (size_t)w;
    }
}

/* ---- the reducers ---------------------------------------------------------------------- */

static int run_pca(const float *x, size_t n, size_t d, const struct reducer_env *env,
                   struct reducer_result *out, struct pw_error *err)
{
    struct pca_options opt;
    float sv[2], evr[2];
    struct pca_result res = {NULL, NULL, sv, evr};
    int rc;

    pca_options_default(&opt);
    opt.threads = env->threads;
    if ((rc = pca_fit(x, n, d, &opt, out->xy, &res, env->progress, err)))
        return rc;
    json_object_set_new(out->extras, "explained_variance_ratio",
                        json_pack("[f, f]", (double)evr[0], (double)evr[1]));
    json_object_set_new(out->extras, "singular_values",
                        json_pack("[f, f]", (double)sv[0], (double)sv[1]));
    return 0;
}

static int run_umap(const json_t *config, const float *x, size_t n, size_t d,
                    const struct reducer_env *env, struct reducer_result *out, struct pw_error *err)
{
    struct umap_options opt;
    long long nn;
    double md;
    char metric_buf[128];
    const char *metric;
    int rc;

    if ((rc = read_int(config, "n_neighbors", 15, &nn, err)) ||
        (rc = read_float(config, "min_dist", 0.1, &md, err)))
        return rc;
    nn = (long long)bounded(out, config, "n_neighbors", "PW_MAX_N_NEIGHBORS", (double)nn,
                            (double)env->limits.max_n_neighbors, 1);
    metric = read_str(config, "metric", "cosine", metric_buf, sizeof metric_buf);
    set_params(out, json_pack("{s:I, s:f, s:s}", "n_neighbors", (json_int_t)nn, "min_dist", md,
                              "metric", metric));
    if (nn < 0) /* umap_fit's own rule, for the values its size_t cannot carry */
        return pw_error_set(err, PW_EINVAL, "umap: n_neighbors must be at least 2, got %lld", nn);
    umap_options_default(&opt);
    opt.n_neighbors = (size_t)nn;
    opt.min_dist = (float)md;
    opt.seed = env->seed;
    opt.threads = env->threads;
    opt.knn_method = env->knn_method;
    if ((rc = knn_parse_metric(metric, &opt.metric, err)))
        return rc;
    return umap_fit(x, n, d, &opt, out->xy, &out->umap, env->progress, err);
}

static int run_tsne(const json_t *config, const float *x, size_t n, size_t d,
                    const struct reducer_env *env, struct reducer_result *out, struct pw_error *err)
{
    struct tsne_options opt;
    struct tsne_result *res = &out->tsne;
    double perplexity, lr;
    long long n_iter;
    char metric_buf[128], init_buf[64];
    const char *metric, *init;
    int rc;

    if ((rc = read_float(config, "perplexity", 30.0, &perplexity, err)) ||
        (rc = read_float(config, "learning_rate", 200.0, &lr, err)) ||
        (rc = read_int(config, "n_iter", 1000, &n_iter, err)))
        return rc;
    perplexity = bounded(out, config, "perplexity", "PW_MAX_PERPLEXITY", perplexity,
                         env->limits.max_perplexity, 0);
    n_iter = (long long)bounded(out, config, "n_iter", "PW_MAX_N_ITER", (double)n_iter,
                                (double)env->limits.max_n_iter, 1);
    metric = read_str(config, "metric", "euclidean", metric_buf, sizeof metric_buf);
    init = read_str(config, "init", "pca", init_buf, sizeof init_buf);
    set_params(out,
               json_pack("{s:f, s:f, s:I, s:s, s:s}", "perplexity", perplexity, "learning_rate", lr,
                         "n_iter", (json_int_t)n_iter, "metric", metric, "init", init));
    tsne_options_default(&opt);
    opt.perplexity = perplexity;
    opt.learning_rate = lr;
    opt.n_iter = n_iter < 0 ? 0 : (size_t)n_iter; /* tsne_fit raises it to >= 250 */
    opt.init = !strcmp(init, "random") ? TSNE_INIT_RANDOM : TSNE_INIT_PCA;
    opt.seed = env->seed;
    opt.threads = env->threads;
    opt.knn_method = env->knn_method;
    if ((rc = knn_parse_metric(metric, &opt.metric, err)) ||
        (rc = tsne_fit(x, n, d, &opt, out->xy, res, env->progress, err)))
        return rc;
    set_params(out, json_pack("{s:f, s:f, s:I, s:s, s:s}", "perplexity", res->perplexity,
                              "learning_rate", res->learning_rate, "n_iter",
                              (json_int_t)res->n_iter, "metric", metric, "init", init));
    if (isfinite(res->kl_divergence))
        json_object_set_new(out->extras, "kl_divergence", json_real(res->kl_divergence));
    return 0;
}

/* ---- the step ------------------------------------------------------------------------------ */

void reducer_env_default(struct reducer_env *env)
{
    reducer_limits_default(&env->limits);
    env->threads = 0;
    env->seed = 42; /* projection.py's random_state */
    env->knn_method = KNN_AUTO;
    env->progress = NULL;
}

static int run_requested(const json_t *config, const float *x, size_t n, size_t d,
                         const struct reducer_env *env, struct reducer_result *out,
                         struct pw_error *err)
{
    if (!strcmp(out->requested, "umap")) {
        out->used = "umap";
        return run_umap(config, x, n, d, env, out, err);
    }
    if (!strcmp(out->requested, "tsne")) {
        out->used = "tsne";
        return run_tsne(config, x, n, d, env, out, err);
    }
    if (!strcmp(out->requested, "pca")) {
        out->used = "pca";
        return run_pca(x, n, d, env, out, err);
    }
    return pw_error_set(err, PW_EINVAL, "Unsupported reducer '%s'", out->requested);
}

int reducer_run(const char *name, const json_t *config, const float *x, size_t n, size_t d,
                const struct reducer_env *env, struct reducer_result *out, struct pw_error *err)
{
    struct reducer_env defaults;
    struct pw_error attempt = {0, ""};
    int rc;

    memset(out, 0, sizeof *out);
    if (!env) {
        reducer_env_default(&defaults);
        env = &defaults;
    }
    if (!json_is_object(config)) /* `config if isinstance(config, dict) else {}` */
        config = NULL;
    snprintf(out->requested, sizeof out->requested, "%s", name && *name ? name : "pca");
    for (char *p = out->requested; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    out->used = "pca";
    out->xy = malloc((n ? n : 1) * 2 * sizeof *out->xy);
    out->params = json_object();
    out->extras = json_object();
    out->limits_applied = json_array();
    if (!out->xy || !out->params || !out->extras || !out->limits_applied)
        return pw_error_set(err, PW_ENOMEM, "out of memory for the projection of %zu points", n);

    rc = run_requested(config, x, n, d, env, out, &attempt);
    /* t-SNE with a huge learning_rate diverges to inf/NaN without an error (sklearn
     * segfaults there); a layout that cannot be drawn is a failure of that reducer. */
    for (size_t i = 0; !rc && i < 2 * n; i++)
        if (!isfinite(out->xy[i]))
            rc = pw_error_set(&attempt, PW_EINVAL, "%s: the layout is not finite (diverged)",
                              out->used);
    if (!rc)
        return 0;
    if (rc == PW_ECANCELED) {
        if (err)
            *err = attempt;
        return rc;
    }
    /* The Python task's rule: any reducer failure falls back to PCA. */
    out->fell_back = 1;
    snprintf(out->fallback_reason, sizeof out->fallback_reason, "%s", attempt.msg);
    if (strcmp(out->requested, "umap") && strcmp(out->requested, "tsne"))
        set_params(out, config ? json_deep_copy(config) : json_object());
    json_object_clear(out->extras);
    memset(&out->umap, 0, sizeof out->umap);
    memset(&out->tsne, 0, sizeof out->tsne);
    out->used = "pca";
    return run_pca(x, n, d, env, out, err);
}

void reducer_result_free(struct reducer_result *r)
{
    if (!r)
        return;
    free(r->xy);
    json_decref(r->params);
    json_decref(r->extras);
    json_decref(r->limits_applied);
    r->xy = NULL;
    r->params = r->extras = r->limits_applied = NULL;
}
