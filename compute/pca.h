/* pca.h - principal component analysis to 2 (or a few) dimensions, the fast path.
 *
 * Matches the Python task's numpy version (SVD of the centred matrix) without an
 * SVD: the d x d scatter matrix of the centred rows is accumulated block by block
 * (float32 OpenBLAS products per block, float64 sum across blocks) and its top
 * eigenpairs come from LAPACKE_dsyevr.  Memory beyond the input: d*d doubles and
 * one block of rows.  Components are numpy's up to sign; the sign is fixed so the
 * largest-magnitude entry of each component is positive.
 *
 * Results are identical for identical input whatever the thread counts: OpenBLAS runs on
 * one thread during the call, on fixed blocks spread over `threads` (blas_fixed.h), and
 * the caller's OpenBLAS thread count is restored on return.
 * The caller owns every buffer: `out` is n*k floats (row-major), the optional
 * result arrays are sized as documented in struct pca_result. */
#ifndef PW_PCA_H
#define PW_PCA_H

#include <stddef.h>

#include "progress.h"
#include "pw_error.h"

struct pca_options {
    size_t n_components; /* 2: the Python task's projection */
    int threads;         /* <= 0: all cores (OpenMP; BLAS threads are the caller's) */
};

struct pca_result {            /* every pointer may be NULL when not wanted */
    float *components;         /* k*d, row c = component c (numpy vt[:k]) */
    float *mean;               /* d */
    float *singular_values;    /* k, = numpy svd(centred).s[:k] */
    float *explained_variance; /* k, ratio over ALL components (eigenvalue / trace) */
};

void pca_options_default(struct pca_options *opt);

/* 0, PW_EINVAL (bad input or k > min(n, d)), PW_ENOMEM, PW_ECANCELED, PW_EINTERNAL
 * (LAPACK failed).  On error `out` and `res` contents are unspecified. */
int pca_fit(const float *x, size_t n, size_t d, const struct pca_options *opt, float *out,
            struct pca_result *res, const struct pw_progress *progress, struct pw_error *err);

#endif
