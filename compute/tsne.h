/* tsne.h - Barnes-Hut t-SNE to 2-D with scikit-learn 1.2's method and the Python
 * task's parameter rules.
 *
 * Affinities: k = min(n - 1, floor(3 * perplexity + 1)) nearest neighbours (knn.h),
 * squared distances, per-point binary search of the Gaussian precision to the target
 * perplexity (sklearn's _binary_search_perplexity), P = (P + P^T) / sum.
 * Optimisation: sklearn's _gradient_descent: early exaggeration 12 for 250
 * iterations with momentum 0.5, then momentum 0.8; gains +0.2 / *0.8 with min_gain
 * 0.01; gradient 4 * (attraction - repulsion / Z) with the repulsion from a quadtree
 * (Barnes-Hut, theta 0.5).  Init "pca": the 2-D PCA scaled to std 1e-4 of the first
 * coordinate (sklearn since 1.2); "random": N(0, 1e-4^2) from the seed.
 *
 * Seed semantics: draws are a function of (seed, purpose, index) (rng.h), not numpy's
 * RandomState, so seed 42 gives a different (equally valid) layout than sklearn's
 * random_state=42.  Every force is computed per point and summed in a fixed order:
 * the result does not depend on `threads` (given the OpenBLAS thread count, which
 * the exact k-NN and the PCA init use).  The repulsion walks the quadtree once per
 * cell of <= 32 points with a criterion at least as strict as per-point Barnes-Hut.
 *
 * Parameter rules (projection.py's _compute_tsne_projection): perplexity is clamped
 * to [1, n - 1], learning_rate raised to >= 10, n_iter raised to >= 250; the values
 * used are reported in struct tsne_result.  `out` is n*2 floats owned by the caller. */
#ifndef PW_TSNE_H
#define PW_TSNE_H

#include <stddef.h>
#include <stdint.h>

#include "knn.h"
#include "progress.h"
#include "pw_error.h"

enum tsne_init { TSNE_INIT_PCA = 0, TSNE_INIT_RANDOM = 1 };

struct tsne_options {
    double perplexity;         /* 30: projection.py and sklearn default */
    double learning_rate;      /* 200: projection.py (sklearn 1.2 passes it through) */
    size_t n_iter;             /* 1000: projection.py and sklearn default */
    enum knn_metric metric;    /* euclidean: projection.py and sklearn default */
    enum tsne_init init;       /* pca: projection.py (and sklearn >= 1.2) default */
    double early_exaggeration; /* 12: sklearn default */
    size_t exploration_iters;  /* 250: sklearn's _EXPLORATION_N_ITER */
    double theta;              /* 0.5: sklearn's angle default */
    double min_gain;           /* 0.01: sklearn's _gradient_descent default */
    uint64_t seed;             /* 42: projection.py's random_state (see seed semantics) */
    int threads;               /* <= 0: all cores; the result does not depend on it */
    enum knn_method knn_method;
    size_t knn_exact_max_n; /* 20000: k = 91 makes NN-descent dearer than GEMM below (measured) */
};

struct tsne_result {
    double perplexity, learning_rate; /* effective values after the clamping rules */
    size_t n_iter;                    /* sklearn's n_iter_: index of the last iteration */
    double kl_divergence;             /* KL(P || Q) of the final layout (Z from the tree) */
    double seconds_knn, seconds_affinity, seconds_optimize;
};

void tsne_options_default(struct tsne_options *opt);

/* 0, PW_EINVAL (bad input, NaN parameters, theta outside [0, 1]), PW_ENOMEM,
 * PW_ECANCELED.  `res` may be NULL. */
int tsne_fit(const float *x, size_t n, size_t d, const struct tsne_options *opt, float *out,
             struct tsne_result *res, const struct pw_progress *progress, struct pw_error *err);

#endif
