/* tsne.h - t-SNE to 2-D with scikit-learn 1.2's objective, affinities and optimiser,
 * the repulsion by FFT-accelerated interpolation (FIt-SNE), and the Python task's
 * parameter rules.
 *
 * Affinities: k = min(n - 1, floor(3 * perplexity + 1)) nearest neighbours (knn.h),
 * squared distances, per-point search of the Gaussian precision to the target
 * perplexity (sklearn's _binary_search_perplexity's equation and tolerance, with Newton
 * steps where they stay inside its bracket), P = (P + P^T) / sum, stored once
 * per unordered pair in float.  Optimisation: sklearn's _gradient_descent in float32:
 * early exaggeration 12 for 250 iterations with momentum 0.5, then momentum 0.8; gains
 * +0.2 / *0.8 with min_gain 0.01; gradient 4 * (attraction - repulsion / Z).  The
 * repulsion and Z come from tsne_forces.h: exact O(n^2) sums when n <= exact_max_n,
 * else FFT interpolation (centred 5-node stencils, node spacing <= 0.5, >= 80 nodes per
 * axis; 0.6-2.2 % force error), or the exact sums in the iterations whose layout is so
 * wide for n that they cost less than the grid - sklearn uses Barnes-Hut (theta 0.5), a
 * different approximation of the same sums.  Init "pca": the 2-D PCA scaled to std 1e-4
 * of the first coordinate (sklearn since 1.2); "random": N(0, 1e-4^2) from the seed.
 * kl_divergence is KL(P || Q) of the final layout, with Z from the same repulsion method.
 *
 * Seed semantics: draws are a function of (seed, purpose, index) (rng.h), not numpy's
 * RandomState, so seed 42 gives a different (equally valid) layout than sklearn's
 * random_state=42.  Determinism: every sum runs over a fixed partition in a fixed order,
 * so the same input, options and library builds give identical bytes for any
 * `threads` and any OpenBLAS thread count (the k-NN and the PCA init run OpenBLAS on fixed
 * blocks, blas_fixed.h; the FFT depends on FFTW's kernels for this CPU, as any BLAS
 * result depends on BLAS's).  FFTW's planner is
 * not thread-safe: run one tsne_fit at a time per process.
 *
 * Memory: besides the caller's input, about 8 * k bytes per point (the k-NN lists are
 * turned into P in place) plus the FFT grids; the caller's `out` (n*2 floats) holds the
 * layout while it is optimised, so it is unspecified after an error.
 *
 * Parameter rules (projection.py's _compute_tsne_projection): perplexity is clamped
 * to [1, n - 1] (NaN gives 1, as Python's min/max do), learning_rate raised to >= 10
 * (NaN gives 10), n_iter raised to >= 250; the values used are reported in struct
 * tsne_result.  These are the only place the rules live: callers pass what they read. */
#ifndef PW_TSNE_H
#define PW_TSNE_H

#include <stddef.h>
#include <stdint.h>

#include "knn.h"
#include "progress.h"
#include "pw_error.h"

enum tsne_init { TSNE_INIT_PCA = 0, TSNE_INIT_RANDOM = 1 };

struct tsne_options {
    double perplexity;          /* 30: projection.py and sklearn default */
    double learning_rate;       /* 200: projection.py (sklearn 1.2 passes it through) */
    size_t n_iter;              /* 1000: projection.py and sklearn default */
    enum knn_metric metric;     /* euclidean: projection.py and sklearn default */
    enum tsne_init init;        /* pca: projection.py (and sklearn >= 1.2) default */
    double early_exaggeration;  /* 12: sklearn default */
    size_t exploration_iters;   /* 250: sklearn's _EXPLORATION_N_ITER */
    double min_gain;            /* 0.01: sklearn's _gradient_descent default */
    uint64_t seed;              /* 42: projection.py's random_state (see seed semantics) */
    int threads;                /* <= 0: all cores; the result does not depend on it */
    enum knn_method knn_method; /* auto: exact where knn_auto_exact (knn.h) says so */
    /* 0: knn.h's work rule (the exact graph up to ~20k rows at d = 96, ~10k at d = 768;
     * sklearn: always exact); else auto is exact up to this many points.  Above, the
     * k-means cells of knn.h, which find the exact 91-NN of the benchmark sets (recall
     * 1.000) at a fraction of the exact graph's n^2 cost (bench/compute/RESULTS.md). */
    size_t knn_exact_max_n;
    size_t exact_max_n;    /* 0: 3000, exact repulsion up to here (sklearn: none, Barnes-Hut) */
    size_t interp_points;  /* 5: see tsne_forces.h (openTSNE: 3) */
    size_t min_intervals;  /* 16: see tsne_forces.h (openTSNE: 50) */
    double interval_width; /* 2.5: see tsne_forces.h (openTSNE: 1) */
};

struct tsne_result {
    double perplexity, learning_rate; /* effective values after the clamping rules */
    size_t n_iter;                    /* sklearn's n_iter_: index of the last iteration */
    double kl_divergence;             /* KL(P || Q) of the final layout */
    double seconds_knn, seconds_affinity, seconds_optimize;
};

void tsne_options_default(struct tsne_options *opt);

/* 0, PW_EINVAL (bad input, an infinite learning_rate, bad FFT options, a layout that diverged to
 * non-finite coordinates), PW_ENOMEM, PW_ECANCELED.
 * `res` may be NULL. */
int tsne_fit(const float *x, size_t n, size_t d, const struct tsne_options *opt, float *out,
             struct tsne_result *res, const struct pw_progress *progress, struct pw_error *err);

#endif
