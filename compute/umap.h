/* umap.h - UMAP to 2-D with umap-learn 0.5's defaults and semantics.
 *
 * Pipeline (each step named after the umap-learn function it reproduces):
 * k-NN (knn.h; the point itself counts as the first of n_neighbors, as in
 * umap-learn) -> smooth_knn_dist (binary search of sigma, rho) ->
 * compute_membership_strengths -> fuzzy union (A + A^T - A.A^T) -> pruning of
 * weights below max/n_epochs -> spectral_layout (normalised-Laplacian eigenvectors,
 * per connected component, random fallback) -> optimize_layout_euclidean (edge
 * sampling by epochs_per_sample, 5 negative samples, gradient clip 4, learning rate
 * decaying linearly).
 *
 * Determinism: umap-learn's parallel SGD lets threads race on shared rows.  Here
 * each epoch reads the other endpoint's position from a snapshot taken at the start
 * of the epoch and moves only the edge's head point, immediately; the move umap-learn
 * gives the tail of edge (k, i) is taken from i's side as i's own head move along
 * (i, k) (the reverse edge has the same weight, so it is sampled in the same epochs).
 * Negative samples are a function of (seed, edge, epoch, draw).  The spectral solver
 * sums over fixed row blocks.  The result is therefore identical for any `threads`
 * value and OpenBLAS thread count, given the same input and seed (the k-NN and the PCA
 * placing many graph components run OpenBLAS on fixed blocks; see blas_fixed.h).  Negative samples
 * of one positive sample all push from the same position (umap-learn moves the point between them),
 * so they can be computed as one vector operation, and their number is counted per positive sample
 * (negative_sample_rate each; umap-learn counts them by the epochs elapsed since the edge's last
 * sample, which gives the same rate), so every edge draws the same number (umap_sgd_rounds.h).
 *
 * `out` is n*2 floats owned by the caller; nothing else survives the call. */
#ifndef PW_UMAP_H
#define PW_UMAP_H

#include <stddef.h>
#include <stdint.h>

#include "knn.h"
#include "progress.h"
#include "pw_error.h"

/* The spectral init's eigensolver stops after at most this many operator applications
 * per graph component (each one pass over the component's edges) and keeps the best
 * subspace found; it stops earlier at umap-learn's tolerance. */
#define UMAP_SPECTRAL_MAX_APPLICATIONS 64

enum umap_init { UMAP_INIT_SPECTRAL = 0, UMAP_INIT_RANDOM = 1 };

struct umap_options {
    size_t n_neighbors;         /* 15: umap-learn 0.5 default and projection.py */
    float min_dist;             /* 0.1: umap-learn 0.5 default and projection.py */
    float spread;               /* 1.0: umap-learn 0.5 default */
    enum knn_metric metric;     /* cosine: projection.py default (umap-learn's is euclidean) */
    size_t n_epochs;            /* 0: umap-learn's rule, 500 if n <= 10000 else 200 */
    float learning_rate;        /* 1.0: umap-learn 0.5 default (initial alpha) */
    float negative_sample_rate; /* 5: umap-learn 0.5 default */
    float repulsion_strength;   /* 1.0: umap-learn 0.5 default (gamma) */
    float local_connectivity;   /* 1.0: umap-learn 0.5 default */
    float set_op_mix_ratio;     /* 1.0: umap-learn 0.5 default (pure fuzzy union) */
    enum umap_init init;        /* spectral: umap-learn 0.5 default */
    uint64_t seed;              /* 42: projection.py's random_state */
    int threads;                /* <= 0: all cores; the result does not depend on it */
    enum knn_method knn_method; /* auto: exact where knn_auto_exact (knn.h) says so */
    size_t knn_exact_max_n;     /* 0: knn.h's work rule; else auto is exact up to this many
                                   points (umap-learn 0.5: below 4096) */
};

struct umap_result {
    float a, b;      /* the fitted curve 1 / (1 + a d^(2b)) */
    size_t n_epochs; /* epochs run */
    size_t n_edges;  /* directed edges of the fuzzy graph after pruning */
    size_t n_graph_components;
    int spectral_ok;          /* 0 when spectral init fell back to random (umap-learn's rule) */
    size_t init_applications; /* the spectral eigensolver's operator applications (each one
                                 pass over the graph's edges), summed over components */
    double seconds_knn, seconds_graph, seconds_init, seconds_optimize;
};

void umap_options_default(struct umap_options *opt);

/* 0, PW_EINVAL (bad input: n < 2, d < 2, NaN/Inf, n_neighbors < 2, min_dist < 0,
 * min_dist > spread, ...), PW_ENOMEM, PW_ECANCELED.  `res` may be NULL. */
int umap_fit(const float *x, size_t n, size_t d, const struct umap_options *opt, float *out,
             struct umap_result *res, const struct pw_progress *progress, struct pw_error *err);

#endif
