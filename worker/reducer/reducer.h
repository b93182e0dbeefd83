/* reducer.h - the reduction step shared by the projection task and `project`: one run
 * config in, a 2-D layout and the meta.json fields describing it out.
 *
 * reducer_run follows projection.py: the requested name is `(name or "pca").lower()`;
 * "umap" reads n_neighbors (int(), 15), min_dist (float(), 0.1) and metric (str(),
 * "cosine"); "tsne" reads perplexity (float(), 30), learning_rate (float(), 200), n_iter
 * (int(), 1000), metric (str(), "euclidean") and init (str(), "pca"; anything but
 * "random" means pca); "pca" reads nothing; other keys are ignored.  The clamping rules
 * (n_neighbors to n - 1, perplexity to [1, n - 1], ...) are compute/'s (umap.h, tsne.h).
 * Before compute/ sees them, n_neighbors, perplexity and n_iter are lowered to the
 * operator's bounds (struct reducer_limits): a request for 10^6 neighbours or 10^9
 * iterations would otherwise run for hours or be killed for its memory.  Each bound
 * applied is listed in limits_applied and the reported parameters are the bounded ones.
 * Any failure of the requested reducer except cancellation falls back to PCA: the
 * result then says why (fallback_reason) and reducer_params are what the Python task
 * reports - for umap/tsne the values read before the failure ({} when reading them
 * failed), for an unsupported name the whole config.
 *
 * Memory: the caller owns x and env.  After the call, whatever it returned, `out` owns
 * xy (malloc, NULL only if that allocation failed) and the params, extras and
 * limits_applied values;
 * reducer_result_free releases them (or the caller takes them over).
 * The progress hooks watch the fallback too; input_done may already have been called
 * when PCA reads x again, so it must leave x readable (project_io_drop_pages does).
 * Errors: PW_EINVAL when PCA itself rejects the input (fewer than 2 points or
 * dimensions, NaN), PW_ENOMEM, PW_ECANCELED (the env's cancel flag), PW_EINTERNAL. */
#ifndef PW_REDUCER_H
#define PW_REDUCER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "knn.h"
#include "progress.h"
#include "pw_error.h"
#include "tsne.h"
#include "umap.h"

/* Upper bounds on what one request may ask for; a value above a bound runs at the bound.
 * n_neighbors sets the k-NN graph's size (memory n x k, time ~ n x k); t-SNE computes
 * 3 x perplexity + 1 neighbours per point; n_iter is t-SNE's gradient steps. */
struct reducer_limits {
    long long max_n_neighbors; /* PW_MAX_N_NEIGHBORS, 200: twice umap-learn's 2..100 */
    double max_perplexity;     /* PW_MAX_PERPLEXITY, 100: twice sklearn's 5..50 guidance */
    long long max_n_iter;      /* PW_MAX_N_ITER, 5000: five times sklearn's default 1000 */
};

struct reducer_env {
    struct reducer_limits limits;       /* reducer_limits_default's unless the caller sets them */
    int threads;                        /* compute threads; <= 0: all cores */
    uint64_t seed;                      /* 42: projection.py's random_state */
    enum knn_method knn_method;         /* auto: compute/'s choice, as the task uses */
    const struct pw_progress *progress; /* may be NULL; also watches the PCA fallback */
};

struct reducer_result {
    float *xy;                 /* n x 2, row-major */
    char requested[64];        /* (name or "pca").lower(), meta.json's reducer_requested */
    const char *used;          /* "pca", "umap" or "tsne" (static), reducer_used */
    json_t *params;            /* reducer_params */
    json_t *extras;            /* explained_variance_ratio, singular_values (PCA) or a finite
                                  kl_divergence (t-SNE): keys meta.json takes as they are */
    json_t *limits_applied;    /* [{"param", "requested", "used", "reason"}], one per bound
                                  applied ([] when none): meta.json's limits_applied */
    int fell_back;             /* 1 when the requested reducer failed and PCA ran instead */
    char fallback_reason[256]; /* why, when fell_back ("" otherwise) */
    struct umap_result umap;   /* diagnostics, meaningful when used is "umap" */
    struct tsne_result tsne;   /* diagnostics, meaningful when used is "tsne" */
};

/* The task's settings: default limits, all cores, seed 42, k-NN method auto, no progress. */
void reducer_env_default(struct reducer_env *env);

void reducer_limits_default(struct reducer_limits *limits);

/* The defaults overridden by PW_MAX_N_NEIGHBORS, PW_MAX_PERPLEXITY and PW_MAX_N_ITER
 * when set (their text read as Python's float() reads it); PW_EINVAL names a variable that is not a
 * number in its range (2..10^9 for n_neighbors, 1..10^9 for the others). */
int reducer_limits_from_env(struct reducer_limits *limits, struct pw_error *err);

/* The reasons of r->limits_applied joined by "; " into buf ("" when none). */
void reducer_limits_describe(const struct reducer_result *r, char *buf, size_t cap);

/* name may be NULL; config may be NULL or a non-object (both read as {}, as
 * `config if isinstance(config, dict) else {}`); env NULL means reducer_env_default's.
 * x is n x d float32, row-major. */
int reducer_run(const char *name, const json_t *config, const float *x, size_t n, size_t d,
                const struct reducer_env *env, struct reducer_result *out, struct pw_error *err);

void reducer_result_free(struct reducer_result *r);

#endif
