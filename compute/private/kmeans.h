/* kmeans.h - a coarse k-means partition of rows, for the partitioned k-NN (knn_cells.c).
 *
 * Lloyd's algorithm on an evenly strided sample of rows, seeded by k-means++ (rng.h),
 * then every row's nearest and second-nearest centroid and its distance to the
 * hyperplane bisecting the two ("border": small means the row sits near the edge of
 * its cell, where its neighbours may lie in the other one).  Euclidean distances are
 * taken about the data's mean (the sample's for Lloyd, the centroids' for the
 * assignment), so rows far from the origin do not cancel.  Cosine runs spherical
 * k-means: rows and centroids are compared as unit vectors, borders are in unit-row
 * units.  Scores against 24 centroids or more use OpenBLAS sgemm on fixed row blocks
 * (blas_fixed.h; the caller has OpenBLAS on one thread): same input, c and seed give
 * the same bytes.  No I/O; cancellable through `progress`. */
#ifndef PW_KMEANS_H
#define PW_KMEANS_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"
#include "pw_error.h"

struct kmeans_cells {
    size_t n, c;
    int32_t *first;  /* n: nearest centroid of each row */
    int32_t *second; /* n: second nearest (== first when c == 1) */
    float *border;   /* n: distance to the bisector of first and second (+inf when c == 1) */
};

/* kmeans_fit then kmeans_assign for the n rows of x.  0, PW_EINVAL (c < 1 or c > n),
 * PW_ENOMEM, PW_ECANCELED; on failure out is empty.  x has passed dense_validate.
 * Samples min(n, 256 c) rows, at most 10 rounds. */
int kmeans_cells(const float *x, size_t n, size_t d, int cosine, size_t c, uint64_t seed,
                 int threads, struct kmeans_cells *out, const struct pw_progress *progress,
                 struct pw_error *err);

/* The two steps of kmeans_cells: c centroids (cent: c * d floats, unit length for
 * cosine) from a sample of the rows x[rows[0]], ..., x[rows[n-1]] (rows NULL: x's first
 * n rows), then the cells of x's first n rows for any centroids. */
int kmeans_fit(const float *x, const int32_t *rows, size_t n, size_t d, int cosine, size_t c,
               uint64_t seed, int threads, float *cent, const struct pw_progress *progress,
               struct pw_error *err);
int kmeans_assign(const float *x, size_t n, size_t d, int cosine, const float *cent, size_t c,
                  int threads, struct kmeans_cells *out, const struct pw_progress *progress,
                  struct pw_error *err);

void kmeans_cells_free(struct kmeans_cells *cells);

#endif
