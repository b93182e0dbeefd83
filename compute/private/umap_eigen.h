/* umap_eigen.h - the eigenvectors UMAP's spectral init needs, for one connected graph.
 *
 * The eigenvectors of the 2nd and 3rd smallest eigenvalues of the normalised Laplacian
 * I - D^-1/2 W D^-1/2 of a connected graph, i.e. the top ones of S = (I + that) / 2
 * once its known top eigenvector D^1/2 1 is deflated, by Chebyshev-filtered block
 * subspace iteration with Rayleigh-Ritz.  umap-learn asks ARPACK for tol 1e-4 with a
 * bounded number of iterations; the solver stops at ARPACK's criterion with that tol,
 * or before the next filter would take the operator applications (each one pass over
 * the graph's edges) past max_it, and then keeps the current Ritz vectors: the best
 * subspace found, already smooth on the graph (a graph without a spectral gap, such
 * as an isotropic cloud's or a ring's, converges slowly and ends there). */
#ifndef PW_UMAP_EIGEN_H
#define PW_UMAP_EIGEN_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"
#include "umap_graph.h"

/* emb (g->n x 2, the caller's) gets the two eigenvectors, *applications the operator
 * applications spent.  The random start is stream `stream` of `seed`.  The result does
 * not depend on `threads`.  0, or -1 on numerical failure, out of memory or a
 * cancel request (the caller checks which). */
int umap_eigen_solve(const struct umap_graph *g, uint64_t seed, uint64_t stream, int threads,
                     size_t max_it, double *emb, size_t *applications,
                     const struct pw_progress *progress);

#endif
