/* umap_graph.h - UMAP's fuzzy simplicial set of the k-NN graph (umap-learn 0.5's
 * smooth_knn_dist, compute_membership_strengths and fuzzy union), pruned of weights
 * below max / n_epochs as simplicial_set_embedding does.
 *
 * The graph is a symmetric CSR matrix with sorted columns and no diagonal: edge (i, j)
 * and (j, i) carry the same weight, which the SGD relies on (umap_sgd.h).  The arrays
 * are owned by the struct; umap_graph_free releases them. */
#ifndef PW_UMAP_GRAPH_H
#define PW_UMAP_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "knn.h"
#include "pw_error.h"
#include "umap.h"

struct umap_graph {
    size_t n, nnz;
    size_t *rowptr; /* n + 1 */
    int32_t *col;   /* nnz, sorted within a row */
    float *val;     /* nnz */
};

void umap_graph_free(struct umap_graph *g);

/* The graph of `knn` (k real neighbours per row, the point itself excluded) with the
 * options' local_connectivity, set_op_mix_ratio and n_epochs (> 0, for the pruning).
 * 0 or PW_ENOMEM; on error *g is empty. */
int umap_graph_build(const struct knn_graph *knn, size_t n_neighbors, const struct umap_options *o,
                     int threads, struct umap_graph *g, struct pw_error *err);

#endif
