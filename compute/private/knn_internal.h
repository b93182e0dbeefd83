/* knn_internal.h - what the k-NN's files share (knn.c drives them; knn.h is the API).
 *
 *   knn_metric.c   distances: the 4 x 4 block kernel, final sorted rows
 *   knn_descent.c  NN-descent and the random projection trees: proposals, local joins,
 *                  candidate lists
 *   knn_cells.c    k-means cells and the joins of all of them (or of the whole set)
 *   knn_join.c     one cell's join: sgemm, AMX or the int8 pre-screen (knn_screen.h)
 *
 * Internal distances are squared euclidean (monotone in the real one) or cosine
 * distances; knn_finish_rows turns them into knn.h's.  Every function here runs on
 * s->threads threads (OpenMP or team.h) over fixed blocks: the graph depends on the
 * input, the options and the seed only.  Errors: PW_ENOMEM, or the progress callback's
 * cancellation (pw_progress_check). */
#ifndef PW_KNN_INTERNAL_H
#define PW_KNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dense.h"
#include "knn.h"

/* The kernels compiled for AVX-512, AVX2 and baseline x86-64, picked at load time. */
#define KNN_CLONES PW_CLONES_V4_FMA

struct metric_ctx {
    const float *x;
    size_t d;
    enum knn_metric metric;
    const float *inv_norm; /* cosine only */
    const float *sqnorm;   /* |x_i|^2, euclidean only */
};

/* Internal distance from a dot product (see pair_dist). */
static inline float dist_from_dot(const struct metric_ctx *m, size_t a, size_t b, float dot)
{
    float v = m->metric == KNN_COSINE ? 1.0f - dot * m->inv_norm[a] * m->inv_norm[b]
                                      : m->sqnorm[a] + m->sqnorm[b] - 2.0f * dot;
    return v < 0.0f ? 0.0f : v;
}

/* Internal distance: squared euclidean (monotone in the real one) or cosine distance. */
static inline float pair_dist(const struct metric_ctx *m, size_t a, size_t b)
{
    const float *xa = m->x + a * m->d, *xb = m->x + b * m->d;
    if (m->metric == KNN_COSINE) {
        float c = 1.0f - dense_dot(xa, xb, m->d) * m->inv_norm[a] * m->inv_norm[b];
        return c < 0.0f ? 0.0f : c;
    }
    return dense_sqdist(xa, xb, m->d);
}

/* The next min(left, 4) indices from src into out, the last of them repeated to fill the
 * four (the 4-wide kernels always compute four); returns how many are real. */
static inline size_t knn_take4(const int32_t *src, size_t left, int32_t out[4])
{
    size_t got = left < 4 ? left : 4;
    for (size_t t = 0; t < 4; t++)
        out[t] = src[t < got ? t : got - 1];
    return got;
}

/* pair_dist of 4 rows against 4 rows: cosine from dot products, euclidean from the
 * differences. */
void knn_pair4x4(const struct metric_ctx *m, const int32_t *rows, const int32_t *cols,
                 float out[4][4]);

/* Rows from internal to final distances (recompute: computed again directly, for the
 * exact path's sgemm distances; else the square root of the squared euclidean ones),
 * then sorted by (dist, idx); order: the rows' visiting order (NULL: index order). */
void knn_finish_rows(const struct metric_ctx *m, struct knn_graph *g, const int32_t *order,
                     int recompute, int threads);

/* The graph under construction: n heaps of k (knn_heap.h) and their flags. */
struct nnd {
    const struct metric_ctx *m;
    size_t n, k;
    float *hd;
    int32_t *hi;
    uint8_t *hf;
    size_t kb; /* flag_bytes(k): one row's flags */
    int threads;
    int avx512;                /* the selection's scans may use AVX-512 */
    size_t rejoined, screened; /* (row, cell) pairs the pre-screen joined again
                                  (knn_screen.h); pairs it finished */
    size_t pool_rows;          /* knn_options.screen_rows */
    int exact_dist;            /* the last join_cells left exact distances (the pre-screen ran) */
};

/* Point i's "new" flags, or NULL while they are not kept (the cell joins). */
static inline uint8_t *nnd_hf(const struct nnd *s, size_t i)
{
    return s->hf ? s->hf + i * s->kb : NULL;
}

/* Sets s->avx512: whether the selection's scans may use AVX-512 on this CPU. */
void knn_nnd_scan_init(struct nnd *s);

#endif
