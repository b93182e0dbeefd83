/* knn_probe.c - exact neighbours of a sample of rows (knn_probe.h). */
#include "knn_probe.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_fixed.h"
#include "dense.h"
#include "knn_heap.h"
#include "rng.h"

/* Rows of x per sgemm block: BLAS_FIXED_ROWS x 1024 dots (256 KB) a thread at a time.
 * The probe is built while the k-NN graph is held: its scratch adds to the k-NN's peak
 * memory. */
#define PROBE_COLS 1024

/* What probe_share shares: the probe's rows (a: count x d) and their wide heaps. */
struct probe_job {
    const float *x, *a, *inv_norm, *sqnorm;
    const int32_t *rows;
    size_t n, d, count, wide;
    int cosine;
    float *hd;
    int32_t *hi;
};

/* Thread t of T: the probe's blocks of BLAS_FIXED_ROWS rows t, t + T, ... against every
 * row of x, PROBE_COLS rows of x at a time (read once a thread, while in cache, for all
 * its blocks) into dots, each value offered to its row's heap in column order.  The
 * products are blas_nt's blocks of BLAS_FIXED_ROWS rows: the same bytes for any T. */
static void probe_share(const struct probe_job *j, size_t t, size_t T, float *dots)
{
    size_t d = j->d, blocks = (j->count + BLAS_FIXED_ROWS - 1) / BLAS_FIXED_ROWS;
    for (size_t c0 = 0; c0 < j->n; c0 += PROBE_COLS) {
        size_t cols = j->n - c0 < PROBE_COLS ? j->n - c0 : PROBE_COLS;
        for (size_t s0 = t * BLAS_FIXED_ROWS; s0 < blocks * BLAS_FIXED_ROWS;
             s0 += T * BLAS_FIXED_ROWS) {
            size_t m = j->count - s0 < BLAS_FIXED_ROWS ? j->count - s0 : BLAS_FIXED_ROWS;
            struct blas_nt prod = {j->a + s0 * d, j->x + c0 * d, dots, m, cols, d, d, d, cols};
            blas_nt_share(&prod, 0, 1);
            for (size_t s = s0; s < s0 + m; s++) {
                size_t i = (size_t)j->rows[s];
                float *rd = j->hd + s * j->wide;
                int32_t *ri = j->hi + s * j->wide;
                for (size_t c = 0; c < cols; c++) {
                    size_t jj = c0 + c;
                    float dot = dots[(s - s0) * cols + c];
                    float v = j->cosine ? 1.0f - dot * j->inv_norm[i] * j->inv_norm[jj]
                                        : j->sqnorm[i] + j->sqnorm[jj] - 2.0f * dot;
                    if (jj != i)
                        heap_push_new(rd, ri, NULL, j->wide, v, (int32_t)jj, 0);
                }
            }
        }
    }
}

void knn_probe_free(struct knn_probe *p)
{
    free(p->rows);
    free(p->idx);
    memset(p, 0, sizeof *p);
}

/* The distance knn.c ranks by: cosine distance or squared euclidean. */
static float probe_dist(const float *x, size_t d, int cosine, const float *inv_norm, size_t a,
                        size_t b)
{
    if (cosine) {
        float c = 1.0f - dense_dot(x + a * d, x + b * d, d) * inv_norm[a] * inv_norm[b];
        return c < 0.0f ? 0.0f : c;
    }
    return dense_sqdist(x + a * d, x + b * d, d);
}

/* Sum over j < k - 1 of ln(T_k / T_j), T the sorted euclidean distances (from squared
 * ones, or cosine distances: proportional to squared chord lengths on unit rows, so the
 * half log ratio is the chord's), into *sum and its count of terms into *terms; zero
 * distances (duplicates) are left out, as is a row whose k-th is zero. */
static void lid_terms(const float *sq, size_t k, double *sum, size_t *terms)
{
    *sum = 0.0;
    *terms = 0;
    if (k < 2 || !(sq[k - 1] > 0.0f))
        return;
    for (size_t j = 0; j + 1 < k; j++)
        if (sq[j] > 0.0f) {
            *sum += 0.5 * log((double)sq[k - 1] / (double)sq[j]);
            (*terms)++;
        }
}

int knn_probe_build(const float *x, size_t n, size_t d, size_t k, int cosine, const float *inv_norm,
                    const float *sqnorm, size_t count, uint64_t seed, int threads,
                    struct knn_probe *p, struct pw_error *err)
{
    size_t wide = 2 * k < n - 1 ? 2 * k : n - 1; /* shortlist re-ranked directly */
    memset(p, 0, sizeof *p);
    p->rows = malloc(count * sizeof *p->rows);
    p->idx = malloc(count * k * sizeof *p->idx);
    size_t blocks = (count + BLAS_FIXED_ROWS - 1) / BLAS_FIXED_ROWS;
    int team = threads < (int)blocks ? threads : (int)blocks;
    team = team > 0 ? team : 1;
    float *a = malloc(count * d * sizeof *a);
    float *dots = malloc((size_t)team * BLAS_FIXED_ROWS * PROBE_COLS * sizeof *dots);
    float *hd = malloc(count * wide * sizeof *hd);
    int32_t *hi = malloc(count * wide * sizeof *hi);
    double *lsum = malloc(count * sizeof *lsum);
    size_t *lcnt = malloc(count * sizeof *lcnt);
    if (!p->rows || !p->idx || !a || !dots || !hd || !hi || !lsum || !lcnt) {
        free(lsum);
        free(lcnt);
        free(a);
        free(dots);
        free(hd);
        free(hi);
        knn_probe_free(p);
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for the recall probe");
    }
    p->count = count;
    p->k = k;
    size_t stride = n / count;
    for (size_t s = 0; s < count; s++) {
        p->rows[s] = (int32_t)(s * n / count + rng_below(seed, 0x9b0be, s, stride ? stride : 1));
        memcpy(a + s * d, x + (size_t)p->rows[s] * d, d * sizeof *a);
    }
    heap_init(hd, hi, count * wide);
    /* one parallel region for the whole of x, not one per chunk (~400 barriers at 200k
     * rows, each a wait for the slower thread): each thread takes its blocks of the
     * probe's rows through x */
    struct probe_job job = {x, a, inv_norm, sqnorm, p->rows, n, d, count, wide, cosine, hd, hi};
#pragma omp parallel num_threads(team)
    {
        size_t t = (size_t)omp_get_thread_num(), T = (size_t)omp_get_num_threads();
        probe_share(&job, t, T, dots + t * BLAS_FIXED_ROWS * PROBE_COLS);
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t s = 0; s < count; s++) {
        size_t i = (size_t)p->rows[s];
        float *rd = hd + s * wide;
        int32_t *ri = hi + s * wide;
        for (size_t e = 0; e < wide; e++)
            rd[e] = probe_dist(x, d, cosine, inv_norm, i, (size_t)ri[e]);
        for (size_t e = wide / 2; e-- > 0;)
            heap_sift_down(rd, ri, NULL, wide, e);
        heap_sort_row(rd, ri, wide);
        memcpy(p->idx + s * k, ri, k * sizeof *ri);
        lid_terms(rd, k, &lsum[s], &lcnt[s]);
    }
    double sum = 0.0;
    size_t terms = 0;
    for (size_t s = 0; s < count; s++) { /* in row order: the same for any thread count */
        sum += lsum[s];
        terms += lcnt[s];
    }
    p->lid = sum > 0.0 ? (double)terms / sum : 0.0;
    p->x = x;
    p->inv_norm = inv_norm;
    p->d = d;
    p->cosine = cosine;
    free(lsum);
    free(lcnt);
    free(a);
    free(dots);
    free(hd);
    free(hi);
    return 0;
}

/* 1 when j is among want[0..k). */
static int listed(const int32_t *want, size_t k, int32_t j)
{
    for (size_t a = 0; a < k; a++)
        if (want[a] == j)
            return 1;
    return 0;
}

double knn_probe_recall(const struct knn_probe *p, const int32_t *graph, size_t gk)
{
    size_t hit = 0, k = p->k;
    for (size_t s = 0; s < p->count; s++) {
        size_t i = (size_t)p->rows[s], found = 0;
        const int32_t *row = graph + i * gk, *want = p->idx + s * k;
        float kth = NAN; /* the k-th exact distance, once a listed row is not one of want */
        for (size_t b = 0; b < gk && found < k; b++) {
            int32_t j = row[b];
            if (j < 0 || (size_t)j == i)
                continue;
            if (listed(want, k, j)) {
                found++;
                continue;
            }
            if (isnan(kth))
                kth = want[k - 1] < 0
                          ? INFINITY
                          : probe_dist(p->x, p->d, p->cosine, p->inv_norm, i, (size_t)want[k - 1]);
            found += probe_dist(p->x, p->d, p->cosine, p->inv_norm, i, (size_t)j) <= kth;
        }
        hit += found;
    }
    return p->count ? (double)hit / (double)(p->count * k) : 1.0;
}
