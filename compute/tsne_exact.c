/* tsne_exact.c - the exact O(n^2) t-SNE repulsion (see tsne_forces.h): for small layouts,
 * for the layouts where it costs less than the FFT grid (tsne_fft.c), and as the tests'
 * reference. */
#include "tsne_forces.h"

#include <stdint.h>
#include <string.h>

/* The exact sums visit each unordered pair once: block b takes the rows [r_b, r_b+1) of an
 * equal share of the pairs (i, j > i), adds the pair's force to row i in registers and
 * subtracts it from j in the block's own buffer, and the buffers are summed in block order:
 * half the kernel evaluations of the all-pairs loop, the same bytes for any thread count.
 * Coordinates and buffers are split into x and y arrays (scratch) so that the inner loop
 * runs on contiguous floats. */
#define EXACT_BLOCKS 8

size_t tsne_exact_scratch(size_t n)
{
    return 2 * n * (EXACT_BLOCKS + 1);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static double
exact_rows(const float *X, const float *Yc, size_t n, size_t lo, size_t hi, float *fx_b,
           float *fy_b)
{
    double z = 0;
    for (size_t i = lo; i < hi; i++) {
        float xi = X[i], yi = Yc[i], s = 0, fx = 0, fy = 0;
#pragma omp simd reduction(+ : s, fx, fy)
        for (size_t j = i + 1; j < n; j++) {
            float dx = xi - X[j], dy = yi - Yc[j];
            float q = 1.0f / (1.0f + dx * dx + dy * dy), q2 = q * q;
            s += q;
            fx += q2 * dx;
            fy += q2 * dy;
            fx_b[j] -= q2 * dx;
            fy_b[j] -= q2 * dy;
        }
        fx_b[i] += fx;
        fy_b[i] += fy;
        z += (double)s;
    }
    return z;
}

void tsne_exact_repulsion(const float *Y, size_t n, int threads, float *rep, float *scratch,
                          double *z)
{
    float *X = scratch, *Yc = scratch + n, *F = scratch + 2 * n; /* F: block b's x then y */
    size_t row[EXACT_BLOCKS + 1];
    double total = (double)n * (double)(n - (n > 0)) / 2.0, done = 0, zb[EXACT_BLOCKS];
    row[0] = 0;
    for (size_t b = 1, i = 0; b <= EXACT_BLOCKS; b++) { /* equal pair counts per block */
        double target = total * (double)b / EXACT_BLOCKS;
        while (i < n && (b == EXACT_BLOCKS || done + (double)(n - 1 - i) <= target))
            done += (double)(n - 1 - i++);
        row[b] = i;
    }
    for (size_t i = 0; i < n; i++) {
        X[i] = Y[2 * i];
        Yc[i] = Y[2 * i + 1];
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t b = 0; b < EXACT_BLOCKS; b++) {
        float *fx_b = F + 2 * n * b, *fy_b = fx_b + n;
        size_t lo = row[b];
        memset(fx_b + lo, 0, (n - lo) * sizeof *fx_b);
        memset(fy_b + lo, 0, (n - lo) * sizeof *fy_b);
        zb[b] = exact_rows(X, Yc, n, lo, row[b + 1], fx_b, fy_b);
    }
    double zsum = 0;
    for (size_t b = 0; b < EXACT_BLOCKS; b++)
        zsum += zb[b];
    *z = 2.0 * zsum;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) { /* block b touches rows >= row[b] only */
        float fx = 0, fy = 0;
        for (size_t b = 0; b < EXACT_BLOCKS && row[b] <= i; b++) {
            fx += F[2 * n * b + i];
            fy += F[2 * n * b + n + i];
        }
        rep[2 * i] = fx;
        rep[2 * i + 1] = fy;
    }
}
