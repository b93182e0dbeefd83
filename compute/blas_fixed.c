/* blas_fixed.c - fixed-block OpenBLAS products (see blas_fixed.h). */
#include "blas_fixed.h"

#include <cblas.h>

int blas_fixed_enter(void)
{
    int saved = openblas_get_num_threads();
    if (saved != 1)
        openblas_set_num_threads(1);
    return saved;
}

void blas_fixed_leave(int saved)
{
    if (saved != 1 && saved > 0)
        openblas_set_num_threads(saved);
}

static void nt_block(const struct blas_nt *j, size_t r0)
{
    size_t rows = j->m - r0 < BLAS_FIXED_ROWS ? j->m - r0 : BLAS_FIXED_ROWS;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)j->n, (int)j->d, 1.0f,
                j->a + r0 * j->lda, (int)j->lda, j->b, (int)j->ldb, 0.0f, j->c + r0 * j->ldc,
                (int)j->ldc);
}

void blas_nt_share(void *job, int t, int T)
{
    const struct blas_nt *j = job;
    size_t blocks = (j->m + BLAS_FIXED_ROWS - 1) / BLAS_FIXED_ROWS;
    for (size_t b = (size_t)t; b < blocks; b += (size_t)T)
        nt_block(j, b * BLAS_FIXED_ROWS);
}

void blas_nt_run(const struct blas_nt *job, int threads)
{
    size_t blocks = (job->m + BLAS_FIXED_ROWS - 1) / BLAS_FIXED_ROWS;
    if (threads < 1 || blocks < 2)
        threads = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t b = 0; b < blocks; b++)
        nt_block(job, b * BLAS_FIXED_ROWS);
}

void blas_gram_share(void *job, int t, int T)
{
    const struct blas_gram *j = job;
    size_t d = j->d, panels = (d + BLAS_FIXED_ROWS - 1) / BLAS_FIXED_ROWS;
    /* Later panels are taller: dealt first, one per thread in turn. */
    for (size_t q = (size_t)t; q < panels; q += (size_t)T) {
        size_t p = panels - 1 - q, j0 = p * BLAS_FIXED_ROWS;
        size_t w = d - j0 < BLAS_FIXED_ROWS ? d - j0 : BLAS_FIXED_ROWS;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(j0 + w), (int)w, (int)j->rows,
                    1.0f, j->a, (int)d, j->a + j0, (int)d, 0.0f, j->c + j0, (int)d);
    }
}
