/* knn_metric.c - the k-NN's distances: the 4 x 4 block kernel the local joins, the
 * trees and the pre-screen's sample use, and the graph's rows turned into final,
 * sorted distances (knn_internal.h). */
#include <math.h>
#include <string.h>

#include "knn_heap.h"
#include "knn_internal.h"

/* The local joins' kernel: dot products of 4 rows against 4 rows of x at once, so each
 * loaded vector feeds four FMAs (a plain dot product is bound by loading both rows).
 * Compiled for AVX-512, AVX2 and baseline x86-64, picked at load time. */
typedef float v16f __attribute__((vector_size(64)));

typedef float v8f __attribute__((vector_size(32)));
typedef float v4f __attribute__((vector_size(16)));

static inline float hsum16(v16f v)
{
    v8f lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    lo += hi;
    v4f a, b;
    memcpy(&a, &lo, sizeof a);
    memcpy(&b, (const char *)&lo + sizeof a, sizeof b);
    a += b;
    return (a[0] + a[2]) + (a[1] + a[3]);
}

/* 4 rows against 4 rows of x, each loaded vector feeding four lanes of work: dot products,
 * or (sq) squared distances from the differences (the dot products' |a|^2 + |b|^2 - 2 a.b
 * loses the digits that rows far from the origin share).  Inlined with a literal sq into
 * the two kernels below. */
__attribute__((always_inline)) static inline void block4x4(const float *x, size_t d,
                                                           const int32_t *rows, const int32_t *cols,
                                                           int sq, float out[4][4])
{
    const float *r[4], *c[4];
    for (int t = 0; t < 4; t++) {
        r[t] = x + (size_t)rows[t] * d;
        c[t] = x + (size_t)cols[t] * d;
    }
    v16f acc[4][4];
    memset(acc, 0, sizeof acc);
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        v16f a[4], b[4];
        for (int t = 0; t < 4; t++) {
            memcpy(&a[t], r[t] + j, sizeof a[t]);
            memcpy(&b[t], c[t] + j, sizeof b[t]);
        }
        for (int u = 0; u < 4; u++)
            for (int v = 0; v < 4; v++) {
                if (sq) {
                    v16f e = a[u] - b[v];
                    acc[u][v] += e * e;
                } else {
                    acc[u][v] += a[u] * b[v];
                }
            }
    }
    for (int u = 0; u < 4; u++)
        for (int v = 0; v < 4; v++) {
            float sum = hsum16(acc[u][v]);
            for (size_t t = j; t < d; t++)
                sum += sq ? (r[u][t] - c[v][t]) * (r[u][t] - c[v][t]) : r[u][t] * c[v][t];
            out[u][v] = sum;
        }
}

KNN_CLONES static void dot4x4(const float *x, size_t d, const int32_t *rows, const int32_t *cols,
                              float out[4][4])
{
    block4x4(x, d, rows, cols, 0, out);
}

KNN_CLONES static void sq4x4(const float *x, size_t d, const int32_t *rows, const int32_t *cols,
                             float out[4][4])
{
    block4x4(x, d, rows, cols, 1, out);
}

/* pair_dist of 4 rows against 4 rows: cosine from dot products, euclidean from the
 * differences. */
void knn_pair4x4(const struct metric_ctx *m, const int32_t *rows, const int32_t *cols,
                 float out[4][4])
{
    if (m->metric == KNN_EUCLIDEAN) {
        sq4x4(m->x, m->d, rows, cols, out);
        return;
    }
    dot4x4(m->x, m->d, rows, cols, out);
    for (int u = 0; u < 4; u++)
        for (int v = 0; v < 4; v++)
            out[u][v] = dist_from_dot(m, (size_t)rows[u], (size_t)cols[v], out[u][v]);
}

static float final_dist(const struct metric_ctx *m, size_t a, size_t b)
{
    float v = pair_dist(m, a, b);
    return m->metric == KNN_EUCLIDEAN ? sqrtf(v) : v;
}

/* Rows from internal to final distances (recompute: computed again directly, for the
 * exact path's sgemm distances; else the square root of the squared euclidean ones),
 * then sorted by (dist, idx). */
void knn_finish_rows(const struct metric_ctx *m, struct knn_graph *g, const int32_t *order,
                     int recompute, int threads)
{
    size_t k = g->k;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t t = 0; t < g->n; t++) {
        size_t i = order ? (size_t)order[t] : t;
        float *hd = g->dist + i * k;
        int32_t *hi = g->idx + i * k;
        for (size_t s = 0; s < k; s++)
            hd[s] = hi[s] < 0                    ? INFINITY
                    : recompute                  ? final_dist(m, i, (size_t)hi[s])
                    : m->metric == KNN_EUCLIDEAN ? sqrtf(hd[s])
                                                 : hd[s];
        /* re-heapify then sort */
        for (size_t s = k / 2; s-- > 0;)
            heap_sift_down(hd, hi, NULL, k, s);
        heap_sort_row(hd, hi, k);
    }
}
