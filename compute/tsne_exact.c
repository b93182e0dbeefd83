/* tsne_exact.c - the exact O(n^2) t-SNE repulsion (see tsne_forces.h): for small layouts
 * (t-SNE below 3,000 points) and as the tests' reference. */
#include "tsne_forces.h"

#include <stdint.h>
#include <string.h>

#include "dense.h"

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

PW_CLONES_V4
static double exact_rows(const float *X, const float *Yc, size_t n, size_t lo, size_t hi,
                         float *fx_b, float *fy_b)
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

struct exact_job {
    const float *X, *Yc;
    float *F, *rep; /* F: block b's x then y, 2n floats a block */
    size_t n, row[EXACT_BLOCKS + 1];
    double zb[EXACT_BLOCKS];
    const struct tsne_side_work *side;
};

/* Task b < EXACT_BLOCKS: block b's pairs into its buffer and zb[b]; then the side tasks
 * (after the blocks, which take longer: whoever is free takes the next task). */
static void exact_block(void *ctx, size_t b)
{
    struct exact_job *j = ctx;
    if (b >= EXACT_BLOCKS) {
        j->side->task(j->side->ctx, b - EXACT_BLOCKS);
        return;
    }
    size_t n = j->n, lo = j->row[b];
    float *fx_b = j->F + 2 * n * b, *fy_b = fx_b + n;
    memset(fx_b + lo, 0, (n - lo) * sizeof *fx_b);
    memset(fy_b + lo, 0, (n - lo) * sizeof *fy_b);
    j->zb[b] = exact_rows(j->X, j->Yc, n, lo, j->row[b + 1], fx_b, fy_b);
}

/* Task c: rows [c n / EXACT_BLOCKS, (c + 1) n / EXACT_BLOCKS) of rep, the blocks' buffers
 * summed in block order (block b touches rows >= row[b] only). */
static void exact_sum(void *ctx, size_t c)
{
    struct exact_job *j = ctx;
    size_t n = j->n, lo = c * n / EXACT_BLOCKS, hi = (c + 1) * n / EXACT_BLOCKS;
    for (size_t i = lo; i < hi; i++) {
        float fx = 0, fy = 0;
        for (size_t b = 0; b < EXACT_BLOCKS && j->row[b] <= i; b++) {
            fx += j->F[2 * n * b + i];
            fy += j->F[2 * n * b + n + i];
        }
        j->rep[2 * i] = fx;
        j->rep[2 * i + 1] = fy;
    }
}

void tsne_exact_repulsion(const float *Y, size_t n, struct team *tm, float *rep, float *scratch,
                          double *z, const struct tsne_side_work *side)
{
    struct exact_job j = {
        .X = scratch, .Yc = scratch + n, .F = scratch + 2 * n, .rep = rep, .n = n, .side = side};
    double total = (double)n * (double)(n - (n > 0)) / 2.0, done = 0;
    j.row[0] = 0;
    for (size_t b = 1, i = 0; b <= EXACT_BLOCKS; b++) { /* equal pair counts per block */
        double target = total * (double)b / EXACT_BLOCKS;
        while (i < n && (b == EXACT_BLOCKS || done + (double)(n - 1 - i) <= target))
            done += (double)(n - 1 - i++);
        j.row[b] = i;
    }
    for (size_t i = 0; i < n; i++) {
        scratch[i] = Y[2 * i];
        scratch[n + i] = Y[2 * i + 1];
    }
    team_for(tm, EXACT_BLOCKS + (side ? side->ntasks : 0), exact_block, &j);
    double zsum = 0;
    for (size_t b = 0; b < EXACT_BLOCKS; b++)
        zsum += j.zb[b];
    *z = 2.0 * zsum;
    team_for(tm, EXACT_BLOCKS, exact_sum, &j);
}
