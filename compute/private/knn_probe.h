/* knn_probe.h - the exact neighbours of a sample of rows, to measure a k-NN graph.
 *
 * An approximate graph's quality depends on the data: NN-descent on clustered or
 * low-dimensional data finds nearly every neighbour, on a cloud of high intrinsic
 * dimension it stalls far from them.  A probe holds the exact k nearest neighbours of
 * `count` rows picked at even strides (a seeded offset inside each stride): one sgemm of
 * the sampled rows against every row (fixed blocks, blas_fixed.h; the caller has
 * OpenBLAS on one thread), the 2k best by dot product re-ranked by distances computed
 * directly.  knn_probe_recall then estimates any graph's recall for count * n * d
 * multiply-adds spent once.  The probe also estimates the data's local intrinsic
 * dimension from those neighbours' distances (Levina and Bickel's maximum likelihood
 * estimate, the log ratios averaged over every sampled row before inverting, as MacKay
 * and Ghahramani advise).  The probe depends on the input, k, metric and seed only. */
#ifndef PW_KNN_PROBE_H
#define PW_KNN_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

struct knn_probe {
    size_t count, k;
    int32_t *rows;             /* count sampled rows, ascending */
    int32_t *idx;              /* count * k: their exact neighbours (as a set) */
    const float *x, *inv_norm; /* the rows and metric it was built on (borrowed), for */
    size_t d;                  /* knn_probe_recall's distances */
    int cosine;
    double lid; /* local intrinsic dimension at the k-th neighbour's scale; 0 when no
                   row has distinct distances (duplicates, k = 1) */
};

/* inv_norm: 1/|x_i| (0 for a zero row), used when cosine; sqnorm: |x_i|^2, used when not.
 * count <= n, k < n.  0 or PW_ENOMEM (then p is empty). */
int knn_probe_build(const float *x, size_t n, size_t d, size_t k, int cosine, const float *inv_norm,
                    const float *sqnorm, size_t count, uint64_t seed, int threads,
                    struct knn_probe *p, struct pw_error *err);

/* The graph's recall on the probe's rows (graph: n * gk indices; gk = p->k measures
 * recall): the fraction of each row's k exact neighbours it holds, a neighbour being any
 * row at most as far as the k-th exact one (as ANN benchmarks count it): where rows tie
 * at the k-th distance (duplicates, or rows repeated in groups), which of them an exact
 * graph lists is a matter of numbering, and each is as near.  p's rows (x) must still be
 * alive. */
double knn_probe_recall(const struct knn_probe *p, const int32_t *graph, size_t gk);

void knn_probe_free(struct knn_probe *p);

#endif
