/* pca.c - PCA via the scatter matrix and a symmetric eigensolver.
 *
 * Why not an SVD: for n >> d (embeddings: n up to 10^6, d ~ 384..4096) the d x d
 * scatter matrix costs one pass of n*d^2 flops in BLAS-3 and the eigensolve is
 * tiny, while a thin SVD of the n x d matrix is several times slower and needs a
 * copy.  Accuracy: rows are centred in float32 per block, each block's scatter is
 * summed in float32 by ssyrk (at most PCA_BLOCK rows), blocks are summed in double.
 * The column mean is summed in double over fixed-size chunks in a fixed order, so
 * results depend only on the input (and OpenBLAS's thread count). */
#include "pca.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

#define PCA_BLOCK 2048

void pca_options_default(struct pca_options *opt)
{
    opt->n_components = 2; /* projection.py: vt[:2] */
    opt->threads = 0;
}

static void column_mean(const float *x, size_t n, size_t d, int threads, double *mean)
{
    size_t nchunks = (n + PCA_BLOCK - 1) / PCA_BLOCK;
    double *part = calloc(nchunks * d, sizeof *part);
    if (!part) { /* fall back to a serial sum: same order, no extra memory */
        memset(mean, 0, d * sizeof *mean);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                mean[j] += x[i * d + j];
    } else {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t c = 0; c < nchunks; c++) {
            size_t end = (c + 1) * PCA_BLOCK < n ? (c + 1) * PCA_BLOCK : n;
            double *p = part + c * d;
            for (size_t i = c * PCA_BLOCK; i < end; i++)
                for (size_t j = 0; j < d; j++)
                    p[j] += x[i * d + j];
        }
        memset(mean, 0, d * sizeof *mean);
        for (size_t c = 0; c < nchunks; c++)
            for (size_t j = 0; j < d; j++)
                mean[j] += part[c * d + j];
        free(part);
    }
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n;
}

/* One thread on purpose: this is memory-bound, and an OpenMP team spinning here would
 * compete with OpenBLAS's own threads in the BLAS call that follows. */
static void centre_block(const float *x, size_t rows, size_t d, const float *mean, float *block)
{
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < d; j++)
            block[i * d + j] = x[i * d + j] - mean[j];
}

int pca_fit(const float *x, size_t n, size_t d, const struct pca_options *opt, float *out,
            struct pca_result *res, const struct pw_progress *progress, struct pw_error *err)
{
    struct pca_options defaults;
    if (!opt) {
        pca_options_default(&defaults);
        opt = &defaults;
    }
    int rc = dense_validate("pca", x, n, d, err);
    if (rc)
        return rc;
    size_t k = opt->n_components;
    if (k < 1 || k > d || k > n)
        return pw_error_set(err, PW_EINVAL, "pca: n_components must be in [1, min(n, d)], got %zu",
                            k);
    if (!out)
        return pw_error_set(err, PW_EINVAL, "pca: no output buffer");
    int threads = dense_threads(opt->threads);

    double *mean = malloc(d * sizeof *mean), *scatter = calloc(d * d, sizeof *scatter);
    double *evals = malloc(d * sizeof *evals), *evecs = malloc(d * k * sizeof *evecs);
    float *block = malloc((size_t)PCA_BLOCK * d * sizeof *block);
    float *blockcov = malloc(d * d * sizeof *blockcov), *fmean = malloc(d * sizeof *fmean);
    float *fvecs = malloc(d * k * sizeof *fvecs);
    lapack_int *isuppz = malloc(2 * k * sizeof *isuppz);
    if (!mean || !scatter || !evals || !evecs || !block || !blockcov || !fmean || !fvecs ||
        !isuppz) {
        rc = pw_error_set(err, PW_ENOMEM, "pca: out of memory (d = %zu)", d);
        goto cleanup;
    }

    pw_progress_report(progress, "pca", 0.0);
    column_mean(x, n, d, threads, mean);
    for (size_t j = 0; j < d; j++)
        fmean[j] = (float)mean[j];

    /* Scatter = sum over blocks of Xc_b^T Xc_b (upper triangle, column-major = row-major
     * lower; we only ever read it through LAPACK with the matching uplo). */
    for (size_t b0 = 0; b0 < n; b0 += PCA_BLOCK) {
        if ((rc = pw_progress_check(progress, err, "pca")))
            goto cleanup;
        size_t rows = n - b0 < PCA_BLOCK ? n - b0 : PCA_BLOCK;
        centre_block(x + b0 * d, rows, d, fmean, block);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)rows, 1.0f, block, (int)d,
                    0.0f, blockcov, (int)d);
        for (size_t i = 0; i < d; i++)
            for (size_t j = i; j < d; j++)
                scatter[i * d + j] += blockcov[i * d + j];
        pw_progress_report(progress, "pca", 0.9 * (double)(b0 + rows) / (double)n);
    }

    double trace = 0.0;
    for (size_t j = 0; j < d; j++)
        trace += scatter[j * d + j];

    /* Top-k eigenpairs: dsyevr returns ascending eigenvalues for index range [d-k+1, d]. */
    lapack_int found = 0;
    lapack_int info = LAPACKE_dsyevr(
        LAPACK_ROW_MAJOR, 'V', 'I', 'U', (lapack_int)d, scatter, (lapack_int)d, 0.0, 0.0,
        (lapack_int)(d - k + 1), (lapack_int)d, 0.0, &found, evals, evecs, (lapack_int)k, isuppz);
    if (info != 0 || (size_t)found != k) {
        rc = pw_error_set(err, PW_EINTERNAL, "pca: LAPACKE_dsyevr failed (info %d)", (int)info);
        goto cleanup;
    }

    for (size_t c = 0; c < k; c++) {
        size_t src = k - 1 - c; /* descending order */
        double lambda = evals[src] > 0 ? evals[src] : 0.0;
        /* Sign: largest-magnitude entry positive, so the result does not depend on LAPACK. */
        size_t arg = 0;
        for (size_t j = 1; j < d; j++)
            if (fabs(evecs[j * k + src]) > fabs(evecs[arg * k + src]))
                arg = j;
        double sign = evecs[arg * k + src] < 0 ? -1.0 : 1.0;
        for (size_t j = 0; j < d; j++)
            fvecs[c * d + j] = (float)(sign * evecs[j * k + src]);
        if (res && res->singular_values)
            res->singular_values[c] = (float)sqrt(lambda);
        if (res && res->explained_variance)
            res->explained_variance[c] = trace > 0 ? (float)(lambda / trace) : 0.0f;
    }

    /* Projection = Xc V^T, read straight from x (no centred copy: k is tiny, so this
     * pass is bound by reading x once); one thread, as centre_block, and a block of
     * rows between cancellation checks. */
    for (size_t b0 = 0; b0 < n; b0 += PCA_BLOCK) {
        if ((rc = pw_progress_check(progress, err, "pca")))
            goto cleanup;
        size_t end = n - b0 < PCA_BLOCK ? n : b0 + PCA_BLOCK;
        for (size_t i = b0; i < end; i++)
            for (size_t c = 0; c < k; c++)
                out[i * k + c] = dense_centred_dot(x + i * d, fmean, fvecs + c * d, d);
    }
    if (res && res->components)
        memcpy(res->components, fvecs, d * k * sizeof *fvecs);
    if (res && res->mean)
        memcpy(res->mean, fmean, d * sizeof *fmean);
    pw_progress_report(progress, "pca", 1.0);
    rc = 0;

cleanup:
    free(mean);
    free(scatter);
    free(evals);
    free(evecs);
    free(block);
    free(blockcov);
    free(fmean);
    free(fvecs);
    free(isuppz);
    return rc;
}
