/* tsne_affinity.c - t-SNE's input affinities (tsne_affinity.h): each row's Gaussian
 * conditional P to the target perplexity, in place of its k-NN distances, then the
 * symmetric joint P, stored once per unordered pair in the graph's own arrays. */
#include "tsne_affinity.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dense.h"

/* One row's Gaussian precision beta to the target perplexity, as sklearn's
 * _binary_search_perplexity: entropy H(beta) = log(sum e_j) + beta sum d_j e_j / sum e_j,
 * e_j = exp(-beta d_j), within 1e-5 of log(perplexity), from beta = 1, at most 100
 * evaluations.  sklearn bisects (doubling or halving until the root is bracketed): 22
 * evaluations a row on the 20k benchmark set.  Here each evaluation also gives
 * dH/dlog(beta) = -beta^2 Var(d), and the step is Newton's in log(beta), or sklearn's
 * bisection step when Newton's leaves the bracket.  The root and the tolerance are
 * sklearn's.  Distances are shifted by their minimum first: P and the entropy are
 * unchanged, exp() stays finite. */
PW_CLONES_V4 static void perplexity_row(const float *sqd, size_t k, double perplexity, float *p)
{
    const double tol = 1e-5, eps = 1e-8;
    double desired = log(perplexity), beta = 1.0, beta_min = -INFINITY, beta_max = INFINITY;
    double dmin = INFINITY;
    for (size_t j = 0; j < k; j++)
        dmin = sqd[j] < dmin ? sqd[j] : dmin;
    double pj[1024], *buf = k <= 1024 ? pj : malloc(k * sizeof *buf);
    if (!buf) { /* degrade to uniform rather than fail deep in a worker thread */
        for (size_t j = 0; j < k; j++)
            p[j] = (float)(1.0 / (double)k);
        return;
    }
    double sum = 1.0;
    for (int step = 0; step < 100; step++) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s0, s1, s2)
        for (size_t j = 0; j < k; j++) {
            double dj = (double)sqd[j] - dmin, e = exp(-dj * beta);
            buf[j] = e;
            s0 += e;
            s1 += dj * e;
            s2 += dj * dj * e;
        }
        sum = s0 > 0.0 ? s0 : eps;
        double mean = s1 / sum, var = s2 / sum - mean * mean;
        double diff = log(sum) + beta * mean - desired;
        if (fabs(diff) <= tol)
            break;
        if (diff > 0)
            beta_min = beta;
        else
            beta_max = beta;
        double next =
            var > 0.0 ? beta * exp(fmin(fmax(diff / (beta * beta * var), -4.0), 4.0)) : NAN;
        if (!(next > beta_min && next < beta_max)) /* sklearn's step (NaN comes here too) */
            next = diff > 0 ? (isinf(beta_max) ? beta * 2.0 : (beta + beta_max) / 2.0)
                            : (isinf(beta_min) ? beta / 2.0 : (beta + beta_min) / 2.0);
        beta = next;
    }
    for (size_t j = 0; j < k; j++)
        p[j] = (float)(buf[j] / sum);
    if (buf != pj)
        free(buf);
}

void tsne_conditional_p(struct knn_graph *g, double perplexity, int threads)
{
    size_t n = g->n, k = g->k;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        float sq[1024], *row = g->dist + i * k;
        float *s2 = k <= 1024 ? sq : row; /* k > 1024: square in place */
        for (size_t j = 0; j < k; j++)
            s2[j] = row[j] * row[j]; /* sklearn squares the k-NN distances, any metric */
        perplexity_row(s2, k, perplexity, row);
    }
}

struct colval {
    int32_t col;
    float val;
};

static int colval_cmp(const void *pa, const void *pb)
{
    const struct colval *a = pa, *b = pb;
    return a->col < b->col ? -1 : a->col > b->col;
}

/* Position of column c in sorted row r of g, or -1. */
static long find_col(const struct knn_graph *g, size_t r, int32_t c)
{
    const int32_t *row = g->idx + r * g->k;
    size_t lo = 0, hi = g->k;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (row[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->k && row[lo] == c ? (long)lo : -1;
}

int tsne_symmetrize(struct knn_graph *g, int threads, struct tsne_pairs *P)
{
    size_t n = g->n, k = g->k;
    uint8_t *keep = malloc(n * k);
    size_t *rowptr = malloc((n + 1) * sizeof *rowptr);
    int oom = 0;
    if (!keep || !rowptr) {
        free(keep);
        free(rowptr);
        return -1;
    }
#pragma omp parallel for schedule(static) num_threads(threads) reduction(| : oom)
    for (size_t i = 0; i < n; i++) { /* rows sorted by column */
        struct colval buf[256], *t = k <= 256 ? buf : malloc(k * sizeof *t);
        if (!t) {
            oom = 1;
            continue;
        }
        for (size_t s = 0; s < k; s++)
            t[s] = (struct colval){g->idx[i * k + s], g->dist[i * k + s]};
        qsort(t, k, sizeof *t, colval_cmp);
        for (size_t s = 0; s < k; s++) {
            g->idx[i * k + s] = t[s].col;
            g->dist[i * k + s] = t[s].val;
        }
        if (t != buf)
            free(t);
    }
    if (oom) {
        free(keep);
        free(rowptr);
        return -1;
    }
    /* A mutual pair is kept in the smaller row, which adds the other row's value; the
     * other row's slot is only read here, the kept slot only written by its row. */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < k; s++) {
            size_t j = (size_t)g->idx[i * k + s];
            long t = find_col(g, j, (int32_t)i);
            keep[i * k + s] = t < 0 || i < j;
            if (t >= 0 && i < j)
                g->dist[i * k + s] += g->dist[j * k + (size_t)t];
        }
    size_t e = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        rowptr[i] = e;
        for (size_t s = 0; s < k; s++)
            if (keep[i * k + s]) {
                g->idx[e] = g->idx[i * k + s];
                g->dist[e] = g->dist[i * k + s];
                sum += g->dist[e++];
            }
    }
    rowptr[n] = e;
    free(keep);
    sum *= 2.0;                                                      /* sum of C + C^T */
    sum = sum > 2.220446049250313e-16 ? sum : 2.220446049250313e-16; /* MACHINE_EPSILON */
    for (size_t q = 0; q < e; q++)
        g->dist[q] = (float)(g->dist[q] / sum);
    P->n = n;
    P->nnz = e;
    P->rowptr = rowptr;
    P->col = g->idx;
    P->val = g->dist;
    for (size_t b = 0, i = 0; b <= TSNE_PAIR_BLOCKS; b++) { /* equal pair counts per block */
        size_t target =
            e / TSNE_PAIR_BLOCKS * b + (b == TSNE_PAIR_BLOCKS ? e % TSNE_PAIR_BLOCKS : 0);
        while (i < n && rowptr[i] < target)
            i++;
        P->blk[b] = b == TSNE_PAIR_BLOCKS ? n : i;
    }
    P->blk[0] = 0;
    /* In the breadth-first numbering a block's pairs stay near its rows (20k benchmark
     * set: a block of 2500 rows touches ~2800 points), so each block's force buffer is
     * cleared and summed over its span only, not over all n points. */
    for (size_t b = 0; b < TSNE_PAIR_BLOCKS; b++) {
        size_t lo = P->blk[b], hi = P->blk[b + 1];
        for (size_t q = rowptr[P->blk[b]]; q < rowptr[P->blk[b + 1]]; q++) {
            size_t j = (size_t)g->idx[q];
            lo = j < lo ? j : lo;
            hi = j + 1 > hi ? j + 1 : hi;
        }
        P->span[b][0] = lo;
        P->span[b][1] = hi > lo ? hi : lo;
    }
    return 0;
}
