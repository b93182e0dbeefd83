/* tsne_affinity.h - t-SNE's input affinities, from the k-NN graph to P (tsne_affinity.c).
 *
 * Both steps work in place on the graph's arrays (idx, dist): P costs no memory beyond
 * the graph but its row pointers.  tsne_symmetrize keeps each unordered pair {i, j} once,
 * in the row of the endpoint that listed the other (the smaller index when both did),
 * with value (C_ij + C_ji) / sum, and cuts the rows into TSNE_PAIR_BLOCKS blocks of equal
 * pair counts for the attraction's private force buffers.  The results do not depend on
 * the thread count. */
#ifndef PW_TSNE_AFFINITY_H
#define PW_TSNE_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

#include "knn.h"

#define TSNE_PAIR_BLOCKS 8

/* P stored once per unordered pair: row i lists (col, val) with val = P_ij = P_ji. */
struct tsne_pairs {
    size_t n, nnz;
    size_t *rowptr;                   /* n + 1 */
    const int32_t *col;               /* in the k-NN graph's idx array */
    const float *val;                 /* in the k-NN graph's dist array */
    size_t blk[TSNE_PAIR_BLOCKS + 1]; /* row ranges of the attraction blocks */
    size_t span[TSNE_PAIR_BLOCKS]
               [2]; /* the points a block's pairs touch lie in [span[b][0], span[b][1]) */
};

/* g->dist's rows, the k-NN distances, become the conditional P (each row sums to 1):
 * sklearn's binary search for beta, squared distances, any metric. */
void tsne_conditional_p(struct knn_graph *g, double perplexity, int threads);

/* g holds the conditional P (tsne_conditional_p).  Turns g into P's pairs in place: P's
 * col and val point into g->idx and g->dist (valid while g is), P->rowptr is allocated
 * (the caller frees it).  0, or -1 when out of memory (g unchanged but for row order). */
int tsne_symmetrize(struct knn_graph *g, int threads, struct tsne_pairs *P);

#endif
