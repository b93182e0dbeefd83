/* umap_sgd.h - UMAP's optimize_layout_euclidean on a fuzzy graph (umap_graph.h):
 * edges sampled by make_epochs_per_sample, negative sampling, gradient clip 4, learning
 * rate decaying linearly; deterministic for any thread count (see umap.h).
 *
 * `Y` (n * 2 floats, the caller's) holds the initial layout and receives the result;
 * the optimiser allocates a float per edge (its sampling rate), a snapshot of the layout
 * and per thread the buffers of one chunk (umap_sgd_rounds.h), and frees them. */
#ifndef PW_UMAP_SGD_H
#define PW_UMAP_SGD_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"
#include "pw_error.h"
#include "umap_graph.h"

struct umap_sgd_params {
    float a, b;                 /* the curve 1 / (1 + a d^(2b)) */
    float gamma;                /* repulsion_strength */
    float learning_rate;        /* the initial alpha */
    float negative_sample_rate; /* negative samples per positive one */
    size_t n_epochs;
    uint64_t seed;
};

/* 0, PW_ENOMEM, PW_ECANCELED, or PW_EINTERNAL when g is not symmetric. */
int umap_sgd_optimize(const struct umap_graph *g, const struct umap_sgd_params *p, int threads,
                      float *Y, const struct pw_progress *progress, struct pw_error *err);

#endif
