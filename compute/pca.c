/* pca.c - PCA via the scatter matrix and a symmetric eigensolver.
 *
 * Why not an SVD: for n >> d (embeddings: n up to 10^6, d ~ 384..4096) the d x d
 * scatter matrix costs one pass of n*d^2 flops in BLAS-3 and the eigensolve is
 * tiny, while a thin SVD of the n x d matrix is several times slower and needs a
 * copy.  Accuracy: rows are centred in float32 per block, each block's scatter is
 * summed in float32 by one-thread sgemm on fixed column panels (blas_fixed.h; at most
 * PCA_BLOCK rows), blocks are summed in double.  The column mean is summed in double
 * over fixed-size chunks in a fixed order, so results depend only on the input. */
#include "pca.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas_fixed.h"
#include "dense.h"
#include "team.h"

#define PCA_BLOCK 2048

void pca_options_default(struct pca_options *opt)
{
    memset(opt, 0, sizeof *opt); /* fields added later start at 0, not garbage */
    opt->n_components = 2;       /* projection.py: vt[:2] */
    opt->threads = 0;
}

/* Column sums of fixed chunks of PCA_BLOCK rows (chunk c into part + c d), thread t of T
 * taking a contiguous run of chunks: the same sums whatever T is. */
struct pca_chunks {
    const float *x;
    size_t n, d, nchunks;
    double *part;
};

static void chunk_sums(void *arg, int t, int T)
{
    const struct pca_chunks *a = arg;
    size_t d = a->d, lo = a->nchunks * (size_t)t / (size_t)T,
           hi = a->nchunks * (size_t)(t + 1) / (size_t)T;
    for (size_t c = lo; c < hi; c++) {
        size_t end = (c + 1) * PCA_BLOCK < a->n ? (c + 1) * PCA_BLOCK : a->n;
        double *p = a->part + c * d;
        for (size_t i = c * PCA_BLOCK; i < end; i++)
            for (size_t j = 0; j < d; j++)
                p[j] += a->x[i * d + j];
    }
}

/* The column means, in double over fixed chunks; 1 when a sum is not finite, i.e. the
 * input holds a NaN or an Inf (sums of up to PCA_BLOCK floats cannot overflow a double),
 * so this pass doubles as the input check. */
static int column_mean(const float *x, size_t n, size_t d, struct team *tm, double *mean)
{
    size_t nchunks = (n + PCA_BLOCK - 1) / PCA_BLOCK;
    double *part = calloc(nchunks * d, sizeof *part);
    if (!part) { /* fall back to a serial sum: same order, no extra memory */
        memset(mean, 0, d * sizeof *mean);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                mean[j] += x[i * d + j];
    } else {
        struct pca_chunks a = {x, n, d, nchunks, part};
        team_run(tm, chunk_sums, &a);
        memset(mean, 0, d * sizeof *mean);
        for (size_t c = 0; c < nchunks; c++)
            for (size_t j = 0; j < d; j++)
                mean[j] += part[c * d + j];
        free(part);
    }
    int bad = 0;
    for (size_t j = 0; j < d; j++) {
        bad |= !isfinite(mean[j]);
        mean[j] /= (double)n;
    }
    return bad;
}

/* A block of rows centred, or projected, by thread t of T of a team (team.h). */
struct pca_rows {
    const float *x, *mean, *vecs;
    size_t rows, d, k;
    float *block; /* centre: the centred rows */
    float *out;   /* project: rows x k */
};

static void centre_rows(void *arg, int t, int T)
{
    const struct pca_rows *b = arg;
    size_t d = b->d, lo = b->rows * (size_t)t / (size_t)T,
           hi = b->rows * (size_t)(t + 1) / (size_t)T;
    for (size_t i = lo; i < hi; i++)
        for (size_t j = 0; j < d; j++)
            b->block[i * d + j] = b->x[i * d + j] - b->mean[j];
}

static void project_rows(void *arg, int t, int T)
{
    const struct pca_rows *b = arg;
    size_t d = b->d, k = b->k, lo = b->rows * (size_t)t / (size_t)T,
           hi = b->rows * (size_t)(t + 1) / (size_t)T;
    for (size_t i = lo; i < hi; i++)
        for (size_t c = 0; c < k; c++)
            b->out[i * k + c] = dense_centred_dot(b->x + i * d, b->mean, b->vecs + c * d, d);
}

int pca_fit(const float *x, size_t n, size_t d, const struct pca_options *opt, float *out,
            struct pca_result *res, const struct pw_progress *progress, struct pw_error *err)
{
    struct pca_options defaults;
    if (!opt) {
        pca_options_default(&defaults);
        opt = &defaults;
    }
    int rc = dense_validate_shape("pca", x, n, d, err);
    if (rc)
        return rc;
    size_t k = opt->n_components;
    if (k < 1 || k > d || k > n)
        return pw_error_set(err, PW_EINVAL, "pca: n_components must be in [1, min(n, d)], got %zu",
                            k);
    if (!out)
        return pw_error_set(err, PW_EINVAL, "pca: no output buffer");
    int threads = dense_threads(opt->threads), blas_saved = blas_fixed_enter();

    double *mean = malloc(d * sizeof *mean), *scatter = calloc(d * d, sizeof *scatter);
    double *evals = malloc(d * sizeof *evals), *evecs = malloc(d * k * sizeof *evecs);
    float *block = malloc((size_t)PCA_BLOCK * d * sizeof *block);
    float *blockcov = malloc(d * d * sizeof *blockcov), *fmean = malloc(d * sizeof *fmean);
    float *fvecs = malloc(d * k * sizeof *fvecs);
    lapack_int *isuppz = malloc(2 * k * sizeof *isuppz);
    struct team *tm = NULL;
    if (!mean || !scatter || !evals || !evecs || !block || !blockcov || !fmean || !fvecs ||
        !isuppz) {
        rc = pw_error_set(err, PW_ENOMEM, "pca: out of memory (d = %zu)", d);
        goto cleanup;
    }

    if ((rc = team_start(threads, &tm, err)))
        goto cleanup;
    pw_progress_report(progress, "pca", 0.0);
    if (column_mean(x, n, d, tm, mean)) { /* names the first bad value */
        rc = dense_validate("pca", x, n, d, err);
        goto cleanup;
    }
    for (size_t j = 0; j < d; j++)
        fmean[j] = (float)mean[j];

    /* Scatter = sum over blocks of Xc_b^T Xc_b (upper triangle, column-major = row-major
     * lower; we only ever read it through LAPACK with the matching uplo). */
    for (size_t b0 = 0; b0 < n; b0 += PCA_BLOCK) {
        if ((rc = pw_progress_check(progress, err, "pca")))
            goto cleanup;
        size_t rows = n - b0 < PCA_BLOCK ? n - b0 : PCA_BLOCK;
        struct pca_rows br = {x + b0 * d, fmean, NULL, rows, d, k, block, NULL};
        team_run(tm, centre_rows, &br);
        struct blas_gram gram = {block, blockcov, rows, d};
        team_run(tm, blas_gram_share, &gram);
        for (size_t i = 0; i < d; i++)
            for (size_t j = i; j < d; j++)
                scatter[i * d + j] += blockcov[i * d + j];
        pw_progress_report(progress, "pca", 0.9 * (double)(b0 + rows) / (double)n);
    }

    double trace = 0.0;
    for (size_t j = 0; j < d; j++)
        trace += scatter[j * d + j];

    /* Top-k eigenpairs: dsyevr returns ascending eigenvalues for index range [d-k+1, d].
     * Called column-major: with a row-major matrix LAPACKE makes a transposed copy of
     * it (d^2 doubles: 4.7 MB at d = 768, the peak of UMAP's small PCAs).  Mirrored,
     * the scatter's column-major upper triangle is the row-major one: LAPACK sees the
     * same numbers as before, and Z comes back column-major (evecs[c * d + j]). */
    for (size_t i = 0; i < d; i++)
        for (size_t j = i + 1; j < d; j++)
            scatter[j * d + i] = scatter[i * d + j];
    lapack_int found = 0;
    lapack_int info = LAPACKE_dsyevr(
        LAPACK_COL_MAJOR, 'V', 'I', 'U', (lapack_int)d, scatter, (lapack_int)d, 0.0, 0.0,
        (lapack_int)(d - k + 1), (lapack_int)d, 0.0, &found, evals, evecs, (lapack_int)d, isuppz);
    if (info != 0 || (size_t)found != k) {
        rc = pw_error_set(err, PW_EINTERNAL, "pca: LAPACKE_dsyevr failed (info %d)", (int)info);
        goto cleanup;
    }

    for (size_t c = 0; c < k; c++) {
        size_t src = k - 1 - c; /* descending order */
        double lambda = evals[src] > 0 ? evals[src] : 0.0;
        /* Sign: largest-magnitude entry positive, so the result does not depend on LAPACK. */
        size_t arg = 0;
        const double *z = evecs + src * d;
        for (size_t j = 1; j < d; j++)
            if (fabs(z[j]) > fabs(z[arg]))
                arg = j;
        double sign = z[arg] < 0 ? -1.0 : 1.0;
        for (size_t j = 0; j < d; j++)
            fvecs[c * d + j] = (float)(sign * z[j]);
        if (res && res->singular_values)
            res->singular_values[c] = (float)sqrt(lambda);
        if (res && res->explained_variance)
            res->explained_variance[c] = trace > 0 ? (float)(lambda / trace) : 0.0f;
    }

    /* Projection = Xc V^T, read straight from x (no centred copy: k is tiny, so this
     * pass is bound by reading x once), a block of rows per team job, with a
     * cancellation check between blocks. */
    for (size_t b0 = 0; b0 < n; b0 += PCA_BLOCK) {
        if ((rc = pw_progress_check(progress, err, "pca")))
            goto cleanup;
        size_t rows = n - b0 < PCA_BLOCK ? n - b0 : PCA_BLOCK;
        struct pca_rows br = {x + b0 * d, fmean, fvecs, rows, d, k, NULL, out + b0 * k};
        team_run(tm, project_rows, &br);
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
    team_stop(tm);
    blas_fixed_leave(blas_saved);
    return rc;
}
