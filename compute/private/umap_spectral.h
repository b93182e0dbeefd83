/* umap_spectral.h - UMAP's spectral initialisation (umap-learn 0.5's spectral_layout
 * and multi_component_layout) of a fuzzy graph (umap_graph.h).
 *
 * The result does not depend on `threads`.  `emb` is n * 2 doubles owned by the caller. */
#ifndef PW_UMAP_SPECTRAL_H
#define PW_UMAP_SPECTRAL_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"
#include "pw_error.h"
#include "umap_graph.h"

struct umap_spectral_stats {
    size_t n_components; /* connected components of the graph */
    size_t applications; /* operator applications of the eigensolver, summed over components */
};

/* The layout of g (x, n x d, places several components; graph vertex v is x's row
 * order[v]).  Returns the number of
 * components whose spectral solve failed and got umap-learn's random fallback (0 is
 * umap-learn's success path), or PW_ENOMEM; *st gets the counts. */
int umap_spectral_layout(const float *x, size_t d, const int32_t *order, const struct umap_graph *g,
                         uint64_t seed, int threads, double *emb, struct umap_spectral_stats *st,
                         const struct pw_progress *progress, struct pw_error *err);

#endif
