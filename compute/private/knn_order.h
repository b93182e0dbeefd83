/* knn_order.h - renumber a k-NN graph's points so that neighbours get near numbers.
 *
 * Loops over a graph's edges that read or write per-point arrays (t-SNE's attraction:
 * a gather and a scatter per edge) run from cache instead of memory when a point's
 * neighbours are numbered close to it.  knn_bfs_order numbers the points breadth-first
 * along the graph's edges (from point 0, then from the lowest point not reached, each
 * row's neighbours in row order): deterministic, O(n k).  knn_renumber then moves the
 * rows in place to that numbering, rewrites the neighbour indices (negative ones stay),
 * and permutes an optional n x ydim float array the same way.  order[r] is the old
 * number of the point numbered r; inv is n words of scratch that ends as the inverse
 * (inv[old] = new).  No allocation beyond one row, errors only PW_ENOMEM. */
#ifndef PW_KNN_ORDER_H
#define PW_KNN_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "knn.h"
#include "pw_error.h"

void knn_bfs_order(const struct knn_graph *g, int32_t *order, int32_t *inv);
int knn_renumber(struct knn_graph *g, int32_t *order, int32_t *inv, float *y, size_t ydim,
                 struct pw_error *err);

#endif
