/* blas_fixed.h - OpenBLAS products whose bytes depend on the operands only.
 *
 * OpenBLAS's threaded sgemm and ssyrk block the inner dimension differently from its
 * one-thread path (on 784-d rows a quarter of the products differ in the last bit; with
 * the Haswell kernels at any width), and LAPACK's eigensolver sums partial BLAS-2
 * results per thread.  So compute's public entry points run OpenBLAS on one thread
 * (blas_fixed_enter / blas_fixed_leave, restoring the caller's count) and split every
 * product into fixed blocks of rows themselves, spread over compute's own threads:
 * which thread computes a block never changes its bytes.  Replicas with different core
 * counts then draw the same map for the same input, options and seed.
 *
 * The enter/leave pair changes OpenBLAS's process-wide thread count: one compute call
 * at a time per process (the worker's task process and the project command run one). */
#ifndef PW_BLAS_FIXED_H
#define PW_BLAS_FIXED_H

#include <stddef.h>

#define BLAS_FIXED_ROWS 64 /* rows of c per block */

/* Sets OpenBLAS to one thread; returns the count to give back to blas_fixed_leave. */
int blas_fixed_enter(void);
void blas_fixed_leave(int saved);

/* c (m x n, leading dimension ldc) = a (m x d, lda) . b (n x d, ldb)^T. */
struct blas_nt {
    const float *a, *b;
    float *c;
    size_t m, n, d, lda, ldb, ldc;
};

/* The blocks t, t + T, t + 2T, ... of BLAS_FIXED_ROWS rows of c: a team_fn (team.h), so a
 * caller with a team runs it there; blas_nt_run spreads the blocks over OpenMP threads. */
void blas_nt_share(void *job, int t, int T);
void blas_nt_run(const struct blas_nt *job, int threads);

/* The upper triangle of c (d x d, row-major, ldc = d) = a^T a for a (rows x d): column
 * panels of BLAS_FIXED_ROWS, panel p computed as rows [0, end of p) of a^T times the
 * panel's columns of a.  blas_gram_share is a team_fn (team.h): thread t of T computes
 * the panels t, t + T, ... counted from the last (tallest). */
struct blas_gram {
    const float *a;
    float *c;
    size_t rows, d;
};
void blas_gram_share(void *job, int t, int T);

#endif
