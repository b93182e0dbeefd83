/* knn.c - exact (BLAS) and approximate (k-means cells or RP forest, then NN-descent)
 * k-NN graphs.
 *
 * Both paths keep, per point, a bounded max-heap of (distance, index) ordered with
 * the index as tie-break so every comparison is total and results reproducible.
 *
 * Determinism of the approximate path: work is split into jobs (a tree leaf, or a
 * point's local join).  Jobs of a block run in parallel and only *propose* updates
 * (target, candidate, distance) into per-job buffers, reading heaps that nobody
 * writes meanwhile; then each thread applies the proposals for its own range of
 * targets, scanning the buffers in job order.  The order of pushes into any heap is
 * therefore fixed by the input and the seed alone. */
#include "knn.h"

#include <malloc.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_fixed.h"
#include "dense.h"
#include "gram.h"
#include "kmeans.h"
#include "knn_heap.h"
#include "knn_probe.h"
#include "knn_screen.h"
#include "rng.h"
#include "team.h"

/* The values knn.h documents; a field not named is 0 (n_trees, leaf_size, n_iters,
 * max_candidates, list_rows: "pick from n and k"), which is also how a field added later
 * keeps its old behaviour. */
void knn_options_default(struct knn_options *opt)
{
    *opt = (struct knn_options){
        .metric = KNN_EUCLIDEAN,
        .method = KNN_AUTO,
        .exact_max_n = 4096,
        .part_size = 4096,
        .spill = 0.1,
        .delta = 0.001, /* pynndescent 0.5 default */
        .recall_target = 0.97,
        .seed = 42,
        .threads = 0,
        .amx = 1,
        .screen = 1,
    };
}

int knn_parse_metric(const char *name, enum knn_metric *out, struct pw_error *err)
{
    if (name && !strcmp(name, "euclidean")) {
        *out = KNN_EUCLIDEAN;
        return 0;
    }
    if (name && !strcmp(name, "cosine")) {
        *out = KNN_COSINE;
        return 0;
    }
    return pw_error_set(err, PW_EINVAL, "unsupported metric '%s' (expected euclidean or cosine)",
                        name ? name : "(null)");
}

void knn_free(struct knn_graph *g)
{
    if (!g)
        return;
    free(g->idx);
    free(g->dist);
    g->idx = NULL;
    g->dist = NULL;
    g->n = g->k = 0;
}

/* ---- distances ---- */

struct metric_ctx {
    const float *x;
    size_t d;
    enum knn_metric metric;
    const float *inv_norm; /* cosine only */
    const float *sqnorm;   /* |x_i|^2, euclidean only */
};

/* The local joins' kernel: dot products of 4 rows against 4 rows of x at once, so each
 * loaded vector feeds four FMAs (a plain dot product is bound by loading both rows).
 * Compiled for AVX-512, AVX2 and baseline x86-64, picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define KNN_CLONES                                                                                 \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),                   \
                   optimize("fp-contract=fast")))
#else
#define KNN_CLONES
#endif

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

/* pair_dist of 4 rows against 4 rows: cosine from dot products, euclidean from the
 * differences. */
static void pair4x4(const struct metric_ctx *m, const int32_t *rows, const int32_t *cols,
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
static void finish_rows(const struct metric_ctx *m, struct knn_graph *g, const int32_t *order,
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

/* ---- approximate: proposals buffer ---- */

struct proposal {
    int32_t target, cand;
    float dist;
};

struct propbuf {
    struct proposal *p;
    size_t len, cap;
    int oom;
};

static void prop_add(struct propbuf *b, int32_t target, int32_t cand, float dist)
{
    if (b->len == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        struct proposal *p = realloc(b->p, cap * sizeof *p);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    b->p[b->len++] = (struct proposal){target, cand, dist};
}

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

/* Apply every buffer's proposals, targets split by thread, buffers read in order. */
static size_t apply_proposals(struct nnd *s, struct propbuf *bufs, size_t nbufs, int *oom)
{
    size_t changed = 0;
    int T = s->threads;
    for (size_t b = 0; b < nbufs; b++)
        if (bufs[b].oom)
            *oom = 1;
#pragma omp parallel for schedule(static, 1) num_threads(T) reduction(+ : changed)
    for (int t = 0; t < T; t++) {
        size_t lo = s->n * (size_t)t / (size_t)T, hi = s->n * (size_t)(t + 1) / (size_t)T;
        for (size_t b = 0; b < nbufs; b++)
            for (size_t q = 0; q < bufs[b].len; q++) {
                const struct proposal *p = &bufs[b].p[q];
                size_t tg = (size_t)p->target;
                if (tg < lo || tg >= hi)
                    continue;
                changed += (size_t)heap_push(s->hd + tg * s->k, s->hi + tg * s->k, nnd_hf(s, tg),
                                             s->k, p->dist, p->cand, FLAG_NEW);
            }
    }
    for (size_t b = 0; b < nbufs; b++)
        bufs[b].len = 0;
    return changed;
}

/* Random projection tree: split idx[0..count) recursively, leaves emit all pairs. */
struct rptree_job {
    const struct metric_ctx *m;  /* distances in leaves */
    const struct metric_ctx *sm; /* hyperplanes: m, or its random sketch (knn_sketch) */
    int32_t *idx;
    size_t count, leaf_size;
    uint64_t seed, tree;
    float *normal; /* sm->d scratch */
    struct propbuf *out;
    const float *hd; /* heap roots (thresholds), read-only during jobs */
    size_t k;
};

static void rptree_leaf(struct rptree_job *j, int32_t *idx, size_t count)
{
    float dots[4][4];
    for (size_t a = 0; a < count; a += 4) {
        int32_t rows[4], cols[4];
        size_t nr = count - a < 4 ? count - a : 4;
        for (size_t t = 0; t < 4; t++)
            rows[t] = idx[a + (t < nr ? t : nr - 1)];
        for (size_t c0 = a; c0 < count; c0 += 4) {
            size_t ncc = count - c0 < 4 ? count - c0 : 4;
            for (size_t t = 0; t < 4; t++)
                cols[t] = idx[c0 + (t < ncc ? t : ncc - 1)];
            pair4x4(j->m, rows, cols, dots);
            for (size_t r = 0; r < nr; r++)
                for (size_t cc = 0; cc < ncc; cc++) {
                    if (c0 + cc <= a + r)
                        continue; /* each pair once */
                    int32_t p = rows[r], q = cols[cc];
                    float dd = dots[r][cc];
                    if (dd < j->hd[(size_t)p * j->k])
                        prop_add(j->out, p, q, dd);
                    if (dd < j->hd[(size_t)q * j->k])
                        prop_add(j->out, q, p, dd);
                }
        }
    }
}

static void rptree_split(struct rptree_job *j, int32_t *idx, size_t count, uint64_t node, int depth)
{
    if (count <= j->leaf_size || depth > 64) {
        rptree_leaf(j, idx, count);
        return;
    }
    const struct metric_ctx *m = j->sm;
    size_t d = m->d;
    size_t ia = rng_below(j->seed, j->tree, 2 * node, count);
    size_t ib = rng_below(j->seed, j->tree, 2 * node + 1, count - 1);
    if (ib >= ia)
        ib++;
    const float *xa = m->x + (size_t)idx[ia] * d, *xb = m->x + (size_t)idx[ib] * d;
    float offset = 0.0f;
    if (m->metric == KNN_COSINE) {
        float na = m->inv_norm[idx[ia]], nb = m->inv_norm[idx[ib]];
        for (size_t t = 0; t < d; t++)
            j->normal[t] = xa[t] * na - xb[t] * nb;
    } else {
        for (size_t t = 0; t < d; t++) {
            j->normal[t] = xa[t] - xb[t];
            offset -= j->normal[t] * 0.5f * (xa[t] + xb[t]);
        }
    }
    /* partition in place: left side first */
    size_t left = 0;
    for (size_t t = 0; t < count; t++) {
        float side = dense_dot(j->normal, m->x + (size_t)idx[t] * d, d) + offset;
        int go_left = side > 0.0f ||
                      (side == 0.0f &&
                       (rng_u64(j->seed, j->tree ^ 0x5eed, node * 1315423911u + (uint64_t)t) & 1));
        if (go_left) {
            int32_t tmp = idx[left];
            idx[left] = idx[t];
            idx[t] = tmp;
            left++;
        }
    }
    if (left == 0 || left == count)
        left = count / 2; /* degenerate (duplicates): split arbitrarily */
    rptree_split(j, idx, left, 2 * node + 1, depth + 1);
    rptree_split(j, idx + left, count - left, 2 * node + 2, depth + 1);
}

/* Random projection trees only need the side of a hyperplane, so on wide rows they
 * split in a KNN_SKETCH_D-dimensional Gaussian sketch of the data (s_i = R^T x_i):
 * projections stay within a few percent of the full ones, and the forest reads
 * n * KNN_SKETCH_D floats per tree level instead of n * d.  Leaves use full rows. */
#define KNN_SKETCH_D 64
/* Points per NN-descent job between two applications of the proposals: their buffers
 * (12 bytes a proposal) hold one such block.  64 held 4.8 MB of proposals at 20k with
 * k = 91; 16 holds a quarter of that. */
#define JOIN_BLOCK_ROWS 16
/* Rows whose exact neighbours measure the approximate graph (knn_probe.h): 256 rows give
 * 3,840 neighbour pairs at k = 15, a standard error under 0.005 near recall 0.97. */
#define KNN_PROBE_ROWS 256

static void knn_sketch(const float *x, size_t n, size_t d, uint64_t seed, float *R, float *sk,
                       int threads)
{
    for (size_t t = 0; t < d * KNN_SKETCH_D; t++)
        R[t] = (float)rng_normal(seed, 0x5e7c, t);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        float acc[KNN_SKETCH_D] = {0};
        const float *xi = x + i * d;
        for (size_t t = 0; t < d; t++)
            for (size_t c = 0; c < KNN_SKETCH_D; c++)
                acc[c] += xi[t] * R[t * KNN_SKETCH_D + c];
        memcpy(sk + i * KNN_SKETCH_D, acc, sizeof acc);
    }
}

/* NN-descent's local join of one point: every (new, new) and (new, old) pair of its
 * candidate lists, four rows by four columns at a time; proposals as rptree_leaf.
 * scratch holds 3 * maxc ints. */
static void local_join(const struct metric_ctx *m, const struct knn_graph *g, const int32_t *nw,
                       const int32_t *od, size_t maxc, int32_t *scratch, struct propbuf *out)
{
    size_t k = g->k, nn = 0, no = 0;
    int32_t *nl = scratch, *cl = scratch + maxc; /* cl: 2 maxc */
    for (size_t a = 0; a < maxc; a++)
        if (nw[a] >= 0)
            nl[nn++] = nw[a];
    for (size_t a = 0; a < maxc; a++)
        if (od[a] >= 0)
            cl[no++] = od[a];
    if (nn == 0)
        return;
    /* columns: new[a..nn) then old[0..no); cl holds the old ones at the end */
    memmove(cl + nn, cl, no * sizeof *cl);
    memcpy(cl, nl, nn * sizeof *cl);
    size_t ncol = nn + no;
    float dots[4][4];
    for (size_t a = 0; a < nn; a += 4) {
        int32_t rows[4];
        size_t nr = nn - a < 4 ? nn - a : 4;
        for (size_t t = 0; t < 4; t++)
            rows[t] = nl[a + (t < nr ? t : nr - 1)];
        for (size_t c0 = a; c0 < ncol; c0 += 4) {
            int32_t cols[4];
            size_t ncc = ncol - c0 < 4 ? ncol - c0 : 4;
            for (size_t t = 0; t < 4; t++)
                cols[t] = cl[c0 + (t < ncc ? t : ncc - 1)];
            pair4x4(m, rows, cols, dots);
            for (size_t r = 0; r < nr; r++)
                for (size_t cc = 0; cc < ncc; cc++) {
                    size_t ci = c0 + cc;
                    if (ci < nn && ci <= a + r)
                        continue; /* a (new, new) pair once, never a point with itself */
                    int32_t p = rows[r], q = cols[cc];
                    if (q == p)
                        continue;
                    float dd = dots[r][cc];
                    float tp = g->dist[(size_t)p * k];
                    if (dd < tp || (dd == tp && q < g->idx[(size_t)p * k]))
                        prop_add(out, p, q, dd);
                    float tq = g->dist[(size_t)q * k];
                    if (dd < tq || (dd == tq && p < g->idx[(size_t)q * k]))
                        prop_add(out, q, p, dd);
                }
        }
    }
}

/* ---- approximate, seeding: exact k-NN inside k-means cells ---- */

#define PART_ROWS 256
#define PART_COLS 512 /* members per column chunk at least; see cs.cols in partition_seed */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* How a cell's dots become internal distances (dist_from_dot): */
enum dot_form {
    FORM_EUCLIDEAN = 0, /* g: squared norms (of the centred rows) */
    FORM_COSINE = 1,    /* g: inverse norms */
    FORM_UNIT = 2       /* cosine of unit rows less their mean, |u - v|^2 / 2: g squared norms */
};

/* v[c] = the internal distance of a member pair from its dot product row[c]; gi and
 * g[c] the members' values in `form`. */
KNN_CLONES static void dists_from_dots(const float *row, const float *g, float gi,
                                       enum dot_form form, size_t len, float *v)
{
    if (form == FORM_COSINE)
        for (size_t c = 0; c < len; c++) {
            float t = 1.0f - row[c] * gi * g[c];
            v[c] = t < 0.0f ? 0.0f : t;
        }
    else if (form == FORM_UNIT)
        for (size_t c = 0; c < len; c++) {
            float t = 0.5f * (gi + g[c]) - row[c];
            v[c] = t < 0.0f ? 0.0f : t;
        }
    else
        for (size_t c = 0; c < len; c++) {
            float t = gi + g[c] - 2.0f * row[c];
            v[c] = t < 0.0f ? 0.0f : t;
        }
}

/* Scratch of one cell join: members' norms, their heaps' current roots (thresholds),
 * one row of distances per thread. */
struct cell_scratch {
    float *buf;                /* sgemm: a chunk of cols members' rows, gathered and (euclidean)
                                  centred: never the whole cell's, a copy of up to a quarter of
                                  the input */
    size_t biggest;            /* the most members a cell has */
    struct gram gram;          /* or: members' rows for AMX or int8 (gram.h) */
    int amx;                   /* gram holds the rows, on AMX */
    int unit;                  /* this cell's cosine rows are unit rows less their mean */
    struct knn_screen *screen; /* or: the int8 pre-screen's pool of wide heaps (gram packs
                                  int8 rows for the cells screen_cell picks) */
    float *bound;              /* int8: members' error bounds (screen_cell) */
    uint32_t *fin;             /* int8: knn_screen_finish's scratch, its counts */
    size_t *counts;
    int in_place;  /* the cell is the whole set in index order (whole_join): sgemm reads
                      cosine rows where they are */
    float *rowbuf; /* sgemm: PART_ROWS members' rows, a block before the chunk */
    double p0;     /* in_place: the progress fraction the join starts from */
    float *centre; /* euclidean: the members' mean, taken off before the dots */
    double *sum;   /* d: its accumulator */
    float *dots;   /* PART_ROWS x cols */
    size_t cols;   /* members packed as columns at a time */
    float *g;      /* members' inverse or squared norms */
    float *thr;    /* members' heap roots */
    float *vals;   /* threads x members */
    uint8_t *seen; /* n: 1 once a point's heap has had a cell (only then can a
                      candidate come twice) */
};

static void cell_scratch_free(struct cell_scratch *cs)
{
    free(cs->buf);
    free(cs->rowbuf);
    gram_free(&cs->gram);
    free(cs->centre);
    free(cs->sum);
    free(cs->dots);
    free(cs->g);
    free(cs->thr);
    free(cs->vals);
    free(cs->seen);
    free(cs->bound);
    memset(cs, 0, sizeof *cs);
}

/* One block of a cell join: the block's rows against a chunk of ccols columns (see
 * join_rows).  Symmetric joins also offer each row to the columns' heaps: the columns
 * are then members bm[cc0..cc0 + ccols), and thr holds the heap roots from bm on. */
struct cell_block {
    struct nnd *s;
    struct cell_scratch *cs;
    const int32_t *bm; /* the members from the block's first row on */
    const float *g;    /* their norms */
    float *thr;        /* their heap roots (symmetric joins) */
    size_t rows, cnt;
    size_t cc0, ccols, ld; /* the chunk of columns the dots hold, their row pitch */
    const int32_t *cm;     /* the chunk's members, */
    const float *gc;       /* their norms */
    ptrdiff_t self0;       /* row r's own column is r + self0 (when in the chunk) */
    float *phd;            /* int8: the heaps are the pool's (pool row pos0 + p for the
                              member at bm[p]); else the graph's */
    int32_t *phi;
    size_t pw, pos0;
};

/* The heap of the member at bm[p]: its slots (returned), arrays and flags, and whether a
 * candidate may come twice (its heap had an earlier cell). */
static inline size_t blk_heap(const struct cell_block *b, size_t p, float **hd, int32_t **hi,
                              uint8_t **hf, int *dup)
{
    if (b->phd) {
        size_t q = (b->pos0 + p) * b->pw;
        *hd = b->phd + q;
        *hi = b->phi + q;
        *hf = NULL;
        *dup = 0;
        return b->pw;
    }
    size_t i = (size_t)b->bm[p], k = b->s->k;
    *hd = b->s->hd + i * k;
    *hi = b->s->hi + i * k;
    *hf = nnd_hf(b->s, i);
    *dup = b->cs->seen[i];
    return k;
}

/* The selection's scans: every v[c] that beats its threshold goes to a heap, in column
 * order.  Thresholds only fall, so a 16-wide compare against the threshold at a chunk's
 * start finds a superset of the pushes; each is checked again before it is made.  Most
 * chunks have none once the heaps fill (the scalar scan cost more than the pushes). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KNN_SCAN_AVX512 1
__attribute__((target("avx512f"))) static inline uint32_t le_mask(const float *v, const float *lim,
                                                                  float one_lim, size_t len)
{
    __mmask16 live = len >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << len) - 1);
    __m512 a = _mm512_maskz_loadu_ps(live, v);
    __m512 b = lim ? _mm512_maskz_loadu_ps(live, lim) : _mm512_set1_ps(one_lim);
    return _mm512_mask_cmp_ps_mask(live, a, b, _CMP_LE_OQ);
}

/* Row r's heap (hd, hi, hf) against v[0..cols), skipping column `self`. */
__attribute__((target("avx512f"))) static void scan_row_avx512(const float *v, size_t cols,
                                                               size_t self, const int32_t *bm,
                                                               float *hd, int32_t *hi, uint8_t *hf,
                                                               size_t k, int seen)
{
    for (size_t c0 = 0; c0 < cols; c0 += 16) {
        uint32_t m = le_mask(v + c0, NULL, hd[0], cols - c0);
        while (m) {
            size_t c = c0 + (size_t)__builtin_ctz(m);
            m &= m - 1;
            if (v[c] <= hd[0] && c != self)
                (seen ? heap_push : heap_push_new)(hd, hi, hf, k, v[c], bm[c], FLAG_NEW);
        }
    }
}

/* Columns [c0, c1) (from the block's first row): v[c - c0] against column c's heap root
 * thr[c]; row i is the candidate. */
__attribute__((target("avx512f"))) static void
scan_cols_avx512(const struct cell_block *b, const float *v, size_t c0, size_t c1, int32_t i)
{
    for (size_t a = c0; a < c1; a += 16) {
        uint32_t m = le_mask(v + (a - c0), b->thr + a, 0.0f, c1 - a);
        while (m) {
            size_t c = a + (size_t)__builtin_ctz(m);
            m &= m - 1;
            float *hd;
            int32_t *hi;
            uint8_t *hf;
            int dup;
            size_t kk = blk_heap(b, c, &hd, &hi, &hf, &dup);
            (dup ? heap_push : heap_push_new)(hd, hi, hf, kk, v[c - c0], i, FLAG_NEW);
            b->thr[c] = hd[0];
        }
    }
}
#endif

/* One chunk of columns of a block (see join_rows).  Thread t of T: a share of the
 * block's rows (every column of the chunk), then, in symmetric joins, a share of the
 * chunk's columns past the block's own rows (every row).  The two sets of heaps are
 * disjoint and each heap sees its candidates in column (row) order, whatever T is. */
static void select_block(void *arg, int t, int T)
{
    const struct cell_block *b = arg;
    struct nnd *s = b->s;
    size_t rows = b->rows, cc0 = b->cc0, ccols = b->ccols;
    enum dot_form form = b->cs->unit                  ? FORM_UNIT
                         : s->m->metric == KNN_COSINE ? FORM_COSINE
                                                      : FORM_EUCLIDEAN;
    const int32_t *bm = b->bm, *cm = b->cm;
    const float *g = b->g, *dots = b->cs->dots;
    float *v = b->cs->vals + (size_t)t * b->cnt, *thr = b->thr;
    size_t lo = rows * (size_t)t / (size_t)T, hi = rows * (size_t)(t + 1) / (size_t)T;
    for (size_t r = lo; r < hi; r++) {
        ptrdiff_t own = (ptrdiff_t)r + b->self0;
        size_t self = own >= 0 && own < (ptrdiff_t)ccols ? (size_t)own : SIZE_MAX;
        float *hd;
        int32_t *hx;
        uint8_t *hf;
        int dup;
        size_t kk = blk_heap(b, r, &hd, &hx, &hf, &dup);
        float root = hd[0];
        dists_from_dots(dots + r * b->ld, b->gc, g[r], form, ccols, v);
#ifdef KNN_SCAN_AVX512
        if (s->avx512) {
            scan_row_avx512(v, ccols, self, cm, hd, hx, hf, kk, dup);
            continue;
        }
#endif
        for (size_t c = 0; c < ccols; c++)
            if (v[c] <= root && c != self) {
                (dup ? heap_push : heap_push_new)(hd, hx, hf, kk, v[c], cm[c], FLAG_NEW);
                root = hd[0];
            }
    }
    size_t first = rows > cc0 ? rows : cc0, end = cc0 + ccols, rest = end > first ? end - first : 0;
    size_t c0 = first + rest * (size_t)t / (size_t)T,
           c1 = first + rest * (size_t)(t + 1) / (size_t)T;
    for (size_t r = 0; r < rows && c1 > c0; r++) {
        int32_t i = bm[r];
        dists_from_dots(dots + r * b->ld + (c0 - cc0), g + c0, g[r], form, c1 - c0, v);
#ifdef KNN_SCAN_AVX512
        if (s->avx512) {
            scan_cols_avx512(b, v, c0, c1, i);
            continue;
        }
#endif
        for (size_t c = c0; c < c1; c++)
            if (v[c - c0] <= thr[c]) {
                float *hd;
                int32_t *hx;
                uint8_t *hf;
                int dup;
                size_t kk = blk_heap(b, c, &hd, &hx, &hf, &dup);
                (dup ? heap_push : heap_push_new)(hd, hx, hf, kk, v[c - c0], i, FLAG_NEW);
                thr[c] = hd[0];
            }
    }
}

static void gram_pack_run(void *arg, int t, int T)
{
    gram_pack(arg, t, T);
}

static void gram_block_run(void *arg, int t, int T)
{
    gram_block(arg, t, T);
}

/* The AMX dot products of a block against the packed chunk's members [from, to): thread t
 * of T takes a share of its 16-column panels. */
struct gram_job {
    const struct gram *g;
    size_t rows, from, to, ld;
    float *dots;
};

static void gram_job_run(void *arg, int t, int T)
{
    const struct gram_job *j = arg;
    size_t panels = (j->to - j->from + GRAM_COLS - 1) / GRAM_COLS;
    size_t lo = panels * (size_t)t / (size_t)T, hi = panels * (size_t)(t + 1) / (size_t)T;
    size_t c2 = j->from + hi * GRAM_COLS < j->to ? j->from + hi * GRAM_COLS : j->to;
    if (lo < hi)
        gram_rows(j->g, j->rows, j->from, j->from + lo * GRAM_COLS, c2, j->dots, j->ld);
}

/* to[r] = x[r] - centre for rows rows of d values. */
/* to[r] = x[mem[r]] less the cell's centre (cosine rows: as they are), for rows rows. */
static void gather_rows(const struct metric_ctx *m, const int32_t *mem, size_t rows,
                        const float *centre, float *to)
{
    size_t d = m->d;
    for (size_t r = 0; r < rows; r++) {
        const float *row = m->x + (size_t)mem[r] * d;
        if (m->metric == KNN_COSINE)
            memcpy(to + r * d, row, d * sizeof *to);
        else
            for (size_t t = 0; t < d; t++)
                to[r * d + t] = row[t] - centre[t];
    }
}

/* The int8 dots' error bound of each member's internal distances in this cell (the
 * members' scales and lengths against the cell's largest: knn_screen.h) into
 * cs->bound.  Rows are measured from the cell's centre, as packed (cosine: unit rows
 * less their mean); the distance |a|^2 + |b|^2 - 2 a.b has twice the dot's error, the
 * cosine distance (|a|^2 + |b|^2) / 2 - a.b once; a few ulps more for the float
 * arithmetic that turns dots into distances. */
static void screen_bounds(const struct nnd *s, const int32_t *mem, size_t cnt,
                          struct cell_scratch *cs)
{
    const struct metric_ctx *m = s->m;
    size_t d = m->d;
    int cosine = m->metric == KNN_COSINE;
    double smax = 0.0, nmax = 0.0;
    for (size_t a = 0; a < cnt; a++) {
        size_t i = (size_t)mem[a];
        double sc = gram_i8_scale(m->x + i * d, cosine ? m->inv_norm[i] : 1.0f, cs->centre, d);
        double len = sqrt((double)cs->g[a]);
        cs->bound[a] = (float)sc;
        smax = sc > smax ? sc : smax;
        nmax = len > nmax ? len : nmax;
    }
    for (size_t a = 0; a < cnt; a++) {
        double len = sqrt((double)cs->g[a]);
        double e = (cosine ? 1.0 : 2.0) * gram_i8_bound(cs->bound[a], len, smax, nmax, d);
        cs->bound[a] = (float)(e + 4.0 * nmax * nmax * 0x1p-20);
    }
}

/* Rows of a cell whose k nearest its members' distances are sampled to choose int8 or
 * float for the cell: SCREEN_SAMPLE of them, of which SCREEN_VOUCHED must do. */
#define SCREEN_SAMPLE  8
#define SCREEN_VOUCHED 6

/* 1 when the cell should be joined on int8 products: most of a sample of its rows
 * have a gap between their k-th and (k + margin)-th nearest members (exact, pair4x4)
 * wider than twice their bound, so the wide heaps will vouch for them (knn_screen.h);
 * else the cell's rows would mostly be joined a second time, and float costs less
 * (many tight clusters in one cell, whose distances are small against the rows'
 * lengths).  cs holds the cell's centre (cell_centre, unit rows for cosine). */
static int screen_cell(const struct nnd *s, const int32_t *mem, size_t cnt, struct cell_scratch *cs)
{
    size_t k = s->k, w = knn_screen_width(k);
    if (cnt < 4 * SCREEN_SAMPLE || w > 4096) /* the sample's heaps live on the stack */
        return 0;
    if (s->m->metric == KNN_COSINE) /* a zero row is at distance 1 from all: not a unit row */
        for (size_t a = 0; a < cnt; a++)
            if (s->m->inv_norm[mem[a]] == 0.0f)
                return 0;
    screen_bounds(s, mem, cnt, cs);
    float hd[SCREEN_SAMPLE][w];
    int32_t hi[SCREEN_SAMPLE][w], rows[SCREEN_SAMPLE];
    size_t at[SCREEN_SAMPLE];
    for (size_t r = 0; r < SCREEN_SAMPLE; r++) {
        at[r] = (2 * r + 1) * cnt / (2 * SCREEN_SAMPLE);
        rows[r] = mem[at[r]];
        heap_init(hd[r], hi[r], w);
    }
    float out[4][4];
    for (size_t c0 = 0; c0 < cnt; c0 += 4) {
        int32_t cols[4];
        size_t nc = cnt - c0 < 4 ? cnt - c0 : 4;
        for (size_t t = 0; t < 4; t++)
            cols[t] = mem[c0 + (t < nc ? t : nc - 1)];
        for (size_t r0 = 0; r0 < SCREEN_SAMPLE; r0 += 4) {
            pair4x4(s->m, rows + r0, cols, out);
            for (size_t u = 0; u < 4; u++)
                for (size_t v = 0; v < nc; v++)
                    if (c0 + v != at[r0 + u])
                        heap_push_new(hd[r0 + u], hi[r0 + u], NULL, w, out[u][v], cols[v], 0);
        }
    }
    int vouched = 0;
    for (size_t r = 0; r < SCREEN_SAMPLE; r++) {
        float wide = hd[r][0]; /* the (k + margin)-th */
        heap_sort_row(hd[r], hi[r], w);
        vouched += wide - hd[r][k - 1] > 2.0f * cs->bound[at[r]];
    }
    return vouched >= SCREEN_VOUCHED;
}

/* The cell's mean taken off its rows (cs->centre; unit: of the unit rows) and the
 * members' squared lengths from it in cs->g, for euclidean rows and unit ones; cosine
 * rows otherwise keep their inverse norms in cs->g. */
static void cell_centre(const struct nnd *s, const int32_t *mem, size_t cnt,
                        struct cell_scratch *cs, int unit)
{
    const struct metric_ctx *m = s->m;
    size_t d = m->d;
    int cosine = m->metric == KNN_COSINE;
    for (size_t a = 0; a < cnt; a++)
        cs->g[a] = cosine ? m->inv_norm[mem[a]] : m->sqnorm[mem[a]];
    if (!cosine || unit) {
        /* |a|^2 + |b|^2 - 2 a.b loses the digits the rows share: measured from the
         * cell's mean (euclidean distances stay the same), the dots' error is relative
         * to the rows' spread rather than to their lengths. */
        memset(cs->sum, 0, d * sizeof *cs->sum);
        for (size_t a = 0; a < cnt; a++) {
            const float *row = m->x + (size_t)mem[a] * d;
            float f = unit ? m->inv_norm[mem[a]] : 1.0f;
            for (size_t t = 0; t < d; t++)
                cs->sum[t] += row[t] * f;
        }
        for (size_t t = 0; t < d; t++)
            cs->centre[t] = (float)(cs->sum[t] / (double)cnt);
        for (size_t a = 0; a < cnt; a++) {
            const float *row = m->x + (size_t)mem[a] * d;
            float f = unit ? m->inv_norm[mem[a]] : 1.0f;
            double q = 0;
            for (size_t t = 0; t < d; t++) {
                double v = (double)row[t] * f - cs->centre[t];
                q += v * v;
            }
            cs->g[a] = (float)q;
        }
    }
}

/* A cell (members mem[0..cnt)) joined into the heaps `pool` names (the pre-screen's:
 * pool row p for the member at p) or the graph's (pool NULL): blocks of PART_ROWS rows
 * against the members from the block on, each pair's dot product computed once and
 * offered to both heaps (AMX or int8 on the team, or sgemm while the team sleeps); the
 * team selects. */
static int join_rows(struct nnd *s, const int32_t *mem, size_t cnt, struct knn_screen *pool,
                     struct cell_scratch *cs, struct team *tm, const struct pw_progress *progress,
                     struct pw_error *err)
{
    const struct metric_ctx *m = s->m;
    size_t d = m->d;
    int cosine = m->metric == KNN_COSINE, gram = cs->amx || pool;
    /* A chunk of cs->cols members at a time is packed as columns, then joined with
     * every block of PART_ROWS rows from the start of the cell up to the chunk's end,
     * each block packed again per chunk (a cell's panels took 16-23 MB at 20k-50k; the
     * chunks take 1.5 MB there).  Every heap ends with the k smallest (distance, index)
     * pairs it was offered whatever the order: same graph as the whole cell at once. */
    for (size_t C0 = 0; C0 < cnt; C0 += cs->cols) {
        size_t to = cnt - C0 < cs->cols ? cnt : C0 + cs->cols;
        if (gram) {
            gram_set(&cs->gram, mem + C0, to - C0);
            team_run(tm, gram_pack_run, &cs->gram);
        } else if (!cs->in_place || !cosine) {
            gather_rows(m, mem + C0, to - C0, cs->centre, cs->buf);
        }
        for (size_t r0 = 0; r0 < to; r0 += PART_ROWS) {
            int rc = pw_progress_check(progress, err, "knn");
            if (rc)
                return rc;
            size_t rows = cnt - r0 < PART_ROWS ? cnt - r0 : PART_ROWS;
            size_t from = r0 > C0 ? r0 : C0, ccols = to - from, ld = ccols;
            if (gram) {
                gram_rowset(&cs->gram, mem + r0, rows);
                team_run(tm, gram_block_run, &cs->gram);
                ld = (ccols + GRAM_COLS - 1) / GRAM_COLS * GRAM_COLS;
                struct gram_job job = {&cs->gram, rows, from - C0, to - C0, ld, cs->dots};
                team_run(tm, gram_job_run, &job);
            } else {
                const float *a, *b; /* buf is NULL for cosine rows read in place */
                if (cs->in_place && cosine) {
                    a = m->x + r0 * d;
                    b = m->x + from * d;
                } else { /* buf holds the chunk, gathered and centred */
                    if (r0 < C0)
                        gather_rows(m, mem + r0, rows, cs->centre, cs->rowbuf);
                    a = r0 < C0 ? cs->rowbuf : cs->buf + (r0 - C0) * d;
                    b = cs->buf + (from - C0) * d;
                }
                struct blas_nt prod = {a, b, cs->dots, rows, ccols, d, d, d, ccols};
                team_run(tm, blas_nt_share, &prod);
            }
            struct cell_block blk = {.s = s,
                                     .cs = cs,
                                     .bm = mem + r0,
                                     .g = cs->g + r0,
                                     .thr = cs->thr + r0,
                                     .rows = rows,
                                     .cnt = cnt,
                                     .cc0 = from - r0,
                                     .ccols = ccols,
                                     .ld = ld,
                                     .cm = mem + from,
                                     .gc = cs->g + from,
                                     .self0 = (ptrdiff_t)r0 - (ptrdiff_t)from,
                                     .phd = pool ? pool->hd : NULL,
                                     .phi = pool ? pool->hi : NULL,
                                     .pw = pool ? pool->width : 0,
                                     .pos0 = r0};
            team_run(tm, select_block, &blk);
        }
        if (cs->in_place) /* chunks so far: the first to^2 / 2 pairs */
            pw_progress_report(progress, "knn",
                               cs->p0 + (1.0 - cs->p0) * ((double)to / (double)cnt) *
                                            ((double)to / (double)cnt));
    }
    return 0;
}

#ifdef KNN_SCAN_AVX512
/* select_cols' scan of columns [c0, c1) (v[c - c0]) for candidate i, as scan_cols_avx512. */
__attribute__((target("avx512f"))) static void
scan_range_avx512(const struct cell_block *b, const float *v, size_t c0, size_t c1, int32_t i)
{
    size_t pw = b->pw;
    for (size_t a = c0; a < c1; a += 16) {
        uint32_t m = le_mask(v + (a - c0), b->thr + a, 0.0f, c1 - a);
        while (m) {
            size_t c = a + (size_t)__builtin_ctz(m);
            m &= m - 1;
            if (b->cm[c] == i)
                continue;
            float *hd = b->phd + c * pw;
            heap_push_new(hd, b->phi + c * pw, NULL, pw, v[c - c0], i, 0);
            b->thr[c] = hd[0];
        }
    }
}
#endif

/* Range joins (join_range): the block's rows (members of the cell) against the range's
 * rows (the columns; column c's heap is the pool's row c).  Thread t of T takes a share
 * of the columns and every row, so each heap sees its candidates in member order
 * whatever T is. */
static void select_cols(void *arg, int t, int T)
{
    const struct cell_block *b = arg;
    const struct nnd *s = b->s;
    size_t ccols = b->ccols, pw = b->pw;
    size_t c0 = ccols * (size_t)t / (size_t)T, c1 = ccols * (size_t)(t + 1) / (size_t)T;
    enum dot_form form = b->cs->unit                  ? FORM_UNIT
                         : s->m->metric == KNN_COSINE ? FORM_COSINE
                                                      : FORM_EUCLIDEAN;
    float *v = b->cs->vals + (size_t)t * b->cnt, *thr = b->thr;
    for (size_t r = 0; r < b->rows && c1 > c0; r++) {
        int32_t i = b->bm[r];
        dists_from_dots(b->cs->dots + r * b->ld + c0, b->gc + c0, b->g[r], form, c1 - c0, v);
#ifdef KNN_SCAN_AVX512
        if (s->avx512) {
            scan_range_avx512(b, v, c0, c1, i);
            continue;
        }
#endif
        for (size_t c = c0; c < c1; c++)
            if (v[c - c0] <= thr[c] && b->cm[c] != i) {
                float *hd = b->phd + c * pw;
                heap_push_new(hd, b->phi + c * pw, NULL, pw, v[c - c0], i, 0);
                thr[c] = hd[0];
            }
    }
}

/* Rows [r_lo, r_hi) of an int8 cell (at most cs->cols of them) against every member,
 * into the pool's first heaps (pool row p - r_lo for row p): the range is packed once as
 * the columns, each block of PART_ROWS members once as rows.  Each pair of the range and
 * the cell gets its product here, so every pair of the cell twice over its ranges; only
 * the range's wide heaps are held. */
static int join_range(struct nnd *s, const int32_t *mem, size_t cnt, size_t r_lo, size_t r_hi,
                      struct cell_scratch *cs, struct team *tm, const struct pw_progress *progress,
                      struct pw_error *err)
{
    size_t span = r_hi - r_lo, ld = (span + GRAM_COLS - 1) / GRAM_COLS * GRAM_COLS;
    gram_set(&cs->gram, mem + r_lo, span);
    team_run(tm, gram_pack_run, &cs->gram);
    for (size_t b0 = 0; b0 < cnt; b0 += PART_ROWS) {
        int rc = pw_progress_check(progress, err, "knn");
        if (rc)
            return rc;
        size_t rows = cnt - b0 < PART_ROWS ? cnt - b0 : PART_ROWS;
        gram_rowset(&cs->gram, mem + b0, rows);
        team_run(tm, gram_block_run, &cs->gram);
        struct gram_job job = {&cs->gram, rows, 0, span, ld, cs->dots};
        team_run(tm, gram_job_run, &job);
        struct cell_block blk = {.s = s,
                                 .cs = cs,
                                 .bm = mem + b0,
                                 .g = cs->g + b0,
                                 .thr = cs->thr + r_lo,
                                 .rows = rows,
                                 .cnt = cnt,
                                 .ccols = span,
                                 .ld = ld,
                                 .cm = mem + r_lo,
                                 .gc = cs->g + r_lo,
                                 .phd = cs->screen->hd,
                                 .phi = cs->screen->hi,
                                 .pw = cs->screen->width};
        team_run(tm, select_cols, &blk);
    }
    if (cs->in_place)
        pw_progress_report(progress, "knn", cs->p0 + (1.0 - cs->p0) * (double)r_hi / (double)cnt);
    return 0;
}

/* The pre-screen's wide heaps of rows [r_lo, r_hi) of the cell (the pool's first ones)
 * ranked again exactly and merged into the graph's heaps (knn_screen.h). */
static void finish_rows_of_cell(struct nnd *s, const int32_t *mem, size_t cnt, size_t r_lo,
                                size_t r_hi, struct cell_scratch *cs, struct team *tm)
{
    const struct metric_ctx *m = s->m;
    struct knn_screen_job job = {.sc = cs->screen,
                                 .x = m->x,
                                 .d = m->d,
                                 .cosine = m->metric == KNN_COSINE,
                                 .inv_norm = m->inv_norm,
                                 .mem = mem,
                                 .cnt = cnt,
                                 .rows = mem + r_lo,
                                 .count = r_hi - r_lo,
                                 .bound = cs->bound + r_lo,
                                 .hd = s->hd,
                                 .hi = s->hi,
                                 .seen = cs->seen,
                                 .scratch = cs->fin,
                                 .counts = cs->counts};
    team_run(tm, knn_screen_finish, &job);
}

/* One cell into the graph's heaps.  On float products (sgemm or AMX) the joins write the
 * graph's heaps themselves.  On int8 ones (i8) they fill the pre-screen's pool of wide
 * heaps: the whole cell at once when the pool holds it (a symmetric join), else ranges of
 * the pool's size, each finished (ranked again exactly, knn_screen.h) before the next. */
static int cell_join(struct nnd *s, const int32_t *mem, size_t cnt, int i8, struct cell_scratch *cs,
                     struct team *tm, const struct pw_progress *progress, struct pw_error *err)
{
    const struct metric_ctx *m = s->m;
    size_t d = m->d, k = s->k;
    int cosine = m->metric == KNN_COSINE, gram = cs->amx || i8;
    cs->unit = cosine && i8;
    cell_centre(s, mem, cnt, cs, cs->unit);
    for (size_t a = 0; a < cnt; a++)
        cs->thr[a] = i8 ? INFINITY : s->hd[(size_t)mem[a] * k];
    if (i8)
        screen_bounds(s, mem, cnt, cs);
    if (!gram && !cs->buf && (!cs->in_place || !cosine)) {
        /* a chunk of the cell's rows (gathered, centred) and a block of them */
        cs->buf = malloc(cs->cols * d * sizeof *cs->buf);
        cs->rowbuf = malloc((size_t)PART_ROWS * d * sizeof *cs->rowbuf);
        if (!cs->buf || !cs->rowbuf)
            return pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell of %zu rows", cnt);
    }
    if (gram) {
        gram_source(&cs->gram, m->x, cosine && !cs->unit ? NULL : cs->centre);
        if (cs->unit)
            gram_row_factors(&cs->gram, m->inv_norm);
    }
    int rc = 0;
    if (!i8 || cnt <= cs->screen->rows) {
        if (i8)
            knn_screen_clear(cs->screen, cnt);
        rc = join_rows(s, mem, cnt, i8 ? cs->screen : NULL, cs, tm, progress, err);
        if (!rc && i8)
            finish_rows_of_cell(s, mem, cnt, 0, cnt, cs, tm);
    } else {
        /* ranges as big as the pool and the packed columns allow */
        size_t span = cs->screen->rows < cs->cols ? cs->screen->rows : cs->cols;
        for (size_t r0 = 0; r0 < cnt && !rc; r0 += span) {
            size_t r1 = cnt - r0 < span ? cnt : r0 + span;
            knn_screen_clear(cs->screen, r1 - r0);
            rc = join_range(s, mem, cnt, r0, r1, cs, tm, progress, err);
            if (!rc)
                finish_rows_of_cell(s, mem, cnt, r0, r1, cs, tm);
        }
    }
    if (rc)
        return rc;
    for (size_t a = 0; a < cnt; a++)
        cs->seen[mem[a]] = 1;
    return 0;
}

/* Scratch for cells of up to `biggest` rows (in_place: the one cell of whole_join).
 * Columns per chunk: the packed chunk is at most 1% of the input (n / 100 rows; int8
 * rows are a quarter of float ones: n / 25) but 512 rows at least.  Smaller chunks pack
 * each block more often, which costs time on large inputs; whole cells would set the
 * peak RSS on mid-sized ones. */
static int cell_scratch_init(struct cell_scratch *cs, const struct nnd *s, size_t biggest,
                             int use_amx, struct knn_screen *screen, int in_place,
                             struct pw_error *err)
{
    size_t n = s->n, d = s->m->d;
    memset(cs, 0, sizeof *cs);
    cs->amx = use_amx && gram_amx_usable();
    if (!cs->amx && screen) {
        cs->screen = screen;
        cs->bound = malloc(biggest * sizeof *cs->bound);
    }
    size_t share = cs->screen ? 25 : 100;
    cs->cols = (n / share + PART_ROWS - 1) / PART_ROWS * PART_ROWS;
    cs->cols = cs->cols > PART_COLS ? cs->cols : PART_COLS;
    cs->in_place = in_place && !cs->amx;
    cs->centre = malloc(d * sizeof *cs->centre);
    cs->sum = malloc(d * sizeof *cs->sum);
    int rc = 0;
    if (cs->amx || cs->screen)
        rc = gram_init(&cs->gram, cs->screen ? GRAM_VNNI_I8 : GRAM_AMX_BF16, cs->cols, d, PART_ROWS,
                       s->threads, err);
    cs->biggest = biggest; /* buf and rowbuf: on demand, by the first float cell */
    if (rc)
        return rc;
    /* 64-byte aligned: AMX stores whole rows of 16 floats */
    cs->dots = aligned_alloc(64, (size_t)PART_ROWS * cs->cols * sizeof *cs->dots);
    cs->g = malloc(biggest * sizeof *cs->g);
    cs->thr = malloc(biggest * sizeof *cs->thr);
    cs->vals = malloc((size_t)s->threads * biggest * sizeof *cs->vals);
    cs->seen = calloc(n, 1);
    if ((cs->screen && !cs->bound) || !cs->centre || !cs->sum || !cs->dots || !cs->g || !cs->thr ||
        !cs->vals || !cs->seen)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell of %zu rows", biggest);
    return 0;
}

/* Last resort for cells k-means cannot split (duplicate rows, one tight blob): rows of a
 * cell still over 2 part_size are dealt, in index order, into new cells of part_size;
 * they do not spill, and the NN-descent rounds see all their pairs across the cuts.
 * Without it 200k identical rows would be one cell: 614 MB gathered and n^2 products. */
static int cut_cells(struct kmeans_cells *cells, size_t n, size_t part_size, struct pw_error *err)
{
    size_t c = cells->c, *count = calloc(c, sizeof *count), *seen = calloc(c, sizeof *seen);
    int32_t *cur = malloc(c * sizeof *cur); /* the cell a row of cell a now goes to */
    if (!count || !seen || !cur) {
        free(count);
        free(seen);
        free(cur);
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells");
    }
    for (size_t i = 0; i < n; i++)
        count[cells->first[i]]++;
    for (size_t a = 0; a < c; a++)
        cur[a] = (int32_t)a;
    size_t next = c;
    for (size_t i = 0; i < n; i++) {
        size_t a = (size_t)cells->first[i];
        if (count[a] <= 2 * part_size)
            continue;
        if (seen[a] > 0 && seen[a] % part_size == 0)
            cur[a] = (int32_t)next++;
        seen[a]++;
        cells->first[i] = cur[a];
        cells->second[i] = cur[a];
        cells->border[i] = INFINITY;
    }
    cells->c = next;
    free(count);
    free(seen);
    free(cur);
    return 0;
}

/* Cells of about part_size rows: k-means with n / part_size centroids, then every cell
 * of over 3/2 part_size rows split by k-means on its own rows and all rows assigned
 * again to the nearest of the centroids (twice at most).  k-means alone makes uneven
 * cells: 968 to 11783 rows on the 50k benchmark set for a target of 4096, and a cell's
 * join costs the square of its size and holds its rows. */
#define CELL_SPLITS 2

static int make_cells(const struct metric_ctx *m, size_t n, size_t part_size, uint64_t seed,
                      int threads, struct kmeans_cells *cells, const struct pw_progress *progress,
                      struct pw_error *err)
{
    size_t d = m->d, c = (n + part_size - 1) / part_size, limit = part_size + part_size / 2;
    int cosine = m->metric == KNN_COSINE;
    float *cent = malloc(c * d * sizeof *cent);
    size_t *count = NULL;
    int32_t *rows = NULL;
    memset(cells, 0, sizeof *cells);
    if (!cent)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for %zu centroids", c);
    int rc = kmeans_fit(m->x, NULL, n, d, cosine, c, seed, threads, cent, progress, err);
    if (!rc)
        rc = kmeans_assign(m->x, n, d, cosine, cent, c, threads, cells, progress, err);
    for (int split = 0; split < CELL_SPLITS && !rc; split++) {
        free(count);
        if (!(count = calloc(c, sizeof *count)) || (!rows && !(rows = malloc(n * sizeof *rows)))) {
            rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells");
            break;
        }
        size_t more = 0;
        for (size_t i = 0; i < n; i++)
            count[cells->first[i]]++;
        for (size_t a = 0; a < c; a++)
            if (count[a] > limit)
                more += (count[a] + part_size - 1) / part_size - 1;
        if (!more)
            break;
        float *grown = realloc(cent, (c + more) * d * sizeof *cent);
        if (!grown) {
            rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for %zu centroids", c + more);
            break;
        }
        cent = grown;
        size_t next = c;
        for (size_t a = 0; a < c && !rc; a++) {
            if (count[a] <= limit)
                continue;
            size_t cnt = 0, c2 = (count[a] + part_size - 1) / part_size;
            for (size_t i = 0; i < n; i++)
                if ((size_t)cells->first[i] == a)
                    rows[cnt++] = (int32_t)i;
            /* centroid 0 of the split replaces the cell's, the others are appended */
            float *sub = malloc(c2 * d * sizeof *sub);
            if (!sub) {
                rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for %zu centroids", c2);
                break;
            }
            rc = kmeans_fit(m->x, rows, cnt, d, cosine, c2, seed + 0x5117 * (split + 1) + a,
                            threads, sub, progress, err);
            if (!rc) {
                memcpy(cent + a * d, sub, d * sizeof *cent);
                memcpy(cent + next * d, sub + d, (c2 - 1) * d * sizeof *cent);
                next += c2 - 1;
            }
            free(sub);
        }
        if (rc)
            break;
        c = next;
        kmeans_cells_free(cells);
        rc = kmeans_assign(m->x, n, d, cosine, cent, c, threads, cells, progress, err);
    }
    if (!rc)
        rc = cut_cells(cells, n, part_size, err);
    free(cent);
    free(count);
    free(rows);
    if (rc)
        kmeans_cells_free(cells);
    return rc;
}

/* Rows whose distance to their cell's border (kmeans_cells.border) is below *thr also
 * join their second cell: the `spill` fraction of rows nearest a border (-inf: none). */
static int spill_threshold(const struct kmeans_cells *cells, double spill, float *thr,
                           struct pw_error *err)
{
    size_t n = cells->n;
    *thr = -INFINITY;
    if (cells->c <= 1 || spill <= 0.0)
        return 0;
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells (n = %zu)", n);
    memcpy(tmp, cells->border, n * sizeof *tmp);
    qsort(tmp, n, sizeof *tmp, cmp_float);
    size_t q = (size_t)(spill * (double)n);
    *thr = tmp[q < n ? q : n - 1];
    free(tmp);
    return 0;
}

/* Which cells join on int8 (screen_cell) into i8[0..c), with cs made ready for the
 * pre-screen; when none does, *screen becomes 0 and cs is freed (the joins then run
 * on float with heaps of k). */
static int choose_cells(const struct nnd *s, const int32_t *mem, const size_t *start, size_t c,
                        uint8_t *i8, struct cell_scratch *cs, size_t biggest, int use_amx,
                        struct knn_screen *sc, int in_place, int *screen, struct pw_error *err)
{
    int rc = cell_scratch_init(cs, s, biggest, use_amx, sc, in_place, err), any = 0;
    int cosine = s->m->metric == KNN_COSINE;
    for (size_t a = 0; a < c && !rc; a++) {
        size_t cnt = start[a + 1] - start[a];
        cell_centre(s, mem + start[a], cnt, cs, cosine);
        i8[a] = (uint8_t)screen_cell(s, mem + start[a], cnt, cs);
        any |= i8[a];
    }
    if (!rc && !any) {
        cell_scratch_free(cs);
        *screen = 0;
    }
    return rc;
}

/* The pre-screen's pool (knn_screen.h: a pool the size of a cell joins it symmetrically,
 * each pair's int8 product once; a smaller one in ranges, each pair twice).  The k-NN's
 * own arrays, the graph and the pool, are kept within a quarter of the input's bytes,
 * with 1 MiB of pool at least, and no more pool than the biggest cell needs.  So the
 * pool is large where the graph is small against the rows: UMAP's k = 15 on 768-float
 * rows joins the exact graph of 20k rows at once.  t-SNE's k = 91 graph takes nearly the
 * quarter by itself on such rows: 910 rows of pool at 20k, 3,400 at 70k x 784. */
static size_t screen_pool_rows(const struct nnd *s, size_t biggest)
{
    size_t input = s->n * s->m->d * sizeof(float), graph = s->n * s->k * 2 * sizeof(float);
    size_t budget = input / 4 > graph ? input / 4 - graph : 0, least = (size_t)1 << 20;
    size_t rows = (budget > least ? budget : least) / (knn_screen_width(s->k) * 2 * sizeof(float));
    rows = s->pool_rows ? s->pool_rows : rows > 1 ? rows : 1;
    return rows < biggest ? rows : biggest;
}

/* The joins of the cells mem[start[a]..start[a+1]) (c of them, the biggest of
 * `biggest` rows) into s's heaps, from empty heaps: on int8 products through the
 * pre-screen's pool of wide heaps, then ranked again exactly (screen: knn_screen.h),
 * else on AMX or sgemm.  Progress from p0 to p0 + share over the cells, unless the one
 * cell reports its own (in_place). */
static int join_cells(struct nnd *s, const int32_t *mem, const size_t *start, size_t c,
                      size_t biggest, int in_place, int use_amx, int screen, double p0,
                      double share, const struct pw_progress *progress, struct pw_error *err)
{
    struct cell_scratch cs = {0};
    struct knn_screen sc = {0};
    struct team *tm = NULL;
    size_t *counts = calloc(2 * (size_t)s->threads, sizeof *counts); /* knn_screen_job's */
    uint32_t *fin = NULL;
    screen = screen && !(use_amx && gram_amx_usable());
    uint8_t *i8 = screen ? calloc(c, 1) : NULL; /* the cells joined on int8 */
    int rc = counts && (i8 || !screen) ? 0 : pw_error_set(err, PW_ENOMEM, "knn: out of memory");
    heap_init(s->hd, s->hi, s->n * s->k);
    if (!rc && screen) /* each cell's choice first: with none on int8, no pool */
        rc = choose_cells(s, mem, start, c, i8, &cs, biggest, use_amx, &sc, in_place, &screen, err);
    if (!rc && screen && !(rc = knn_screen_init(&sc, screen_pool_rows(s, biggest), s->k, err)) &&
        !(fin = malloc(knn_screen_scratch(s->k) * (size_t)s->threads * sizeof *fin)))
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell of %zu", biggest);
    if (!rc && !screen)
        rc = cell_scratch_init(&cs, s, biggest, use_amx, NULL, in_place, err);
    if (!rc)
        rc = team_start(s->threads, &tm, err);
    cs.p0 = p0;
    cs.fin = fin;
    cs.counts = counts;
    for (size_t a = 0; a < c && !rc; a++) {
        rc = cell_join(s, mem + start[a], start[a + 1] - start[a], screen && i8[a], &cs, tm,
                       progress, err);
        if (!rc && !in_place)
            pw_progress_report(progress, "knn", p0 + share * (double)(a + 1) / (double)c);
    }
    team_stop(tm);
    s->exact_dist = screen;
    for (int t = 0; t < s->threads && counts; t++) {
        s->rejoined += counts[2 * t];
        s->screened += counts[2 * t + 1];
    }
    cell_scratch_free(&cs);
    knn_screen_free(&sc);
    free(fin);
    free(counts);
    free(i8);
    return rc;
}

/* Seeds every heap with the exact neighbours inside its k-means cell (make_cells); the
 * `spill` fraction of rows nearest a cell border also joins the neighbouring cell.
 * order receives the rows grouped by cell (NN-descent's visiting order). */
static int partition_seed(struct nnd *s, const struct kmeans_cells *cells_in, double spill,
                          int use_amx, int screen, int32_t *order, double share,
                          const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = s->n, c;
    const struct kmeans_cells cells = *cells_in;
    int rc = 0;
    /* The k-means sample's heap pages go back before the graph's are touched. */
    malloc_trim(0);
    uint8_t *flags = s->hf; /* not kept by the joins: all set at the end, s->hf at done */
    s->hf = NULL;
    c = cells.c;
    float thr = -INFINITY;
    size_t *start = calloc(c + 1, sizeof *start), *fill = malloc(c * sizeof *fill);
    int32_t *mem = malloc(2 * n * sizeof *mem);
    if (!start || !fill || !mem) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells (n = %zu)", n);
        goto done;
    }
    if ((rc = spill_threshold(&cells, spill, &thr, err)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        start[cells.first[i] + 1]++;
        if (cells.border[i] < thr)
            start[cells.second[i] + 1]++;
    }
    size_t biggest = 0, o = 0;
    for (size_t a = 0; a < c; a++) {
        if (start[a + 1] > biggest)
            biggest = start[a + 1];
        start[a + 1] += start[a];
        fill[a] = start[a];
    }
    for (size_t i = 0; i < n; i++) {
        mem[fill[cells.first[i]]++] = (int32_t)i;
        if (cells.border[i] < thr)
            mem[fill[cells.second[i]]++] = (int32_t)i;
    }
    for (size_t a = 0; a < c; a++) /* visiting order: each row in its own cell's place */
        for (size_t p = start[a]; p < start[a + 1]; p++)
            if (cells.first[mem[p]] == (int32_t)a)
                order[o++] = mem[p];
    if ((rc = join_cells(s, mem, start, c, biggest, 0, use_amx, screen, 0.0, share, progress, err)))
        goto done;
    /* glibc keeps the freed scratch's pages resident inside its heaps (the threads' arenas
     * included); NN-descent's candidate lists and proposals would be placed elsewhere. */
    malloc_trim(0);
    /* NN-descent joins "new" entries only.  Two rows of one cell were compared there, so
     * a neighbour pair is news to the rounds only across cells: when the two rows' cells
     * differ or either row also sat in a second cell.  Leaving every entry new would cost
     * a full round that finds nothing on the benchmark sets. */
    for (size_t i = 0; i < n && !rc && flags; i++) {
        int bi = cells.border[i] < thr;
        uint8_t *fi = flags + i * s->kb;
        memset(fi, 0, s->kb);
        for (size_t e = 0; e < s->k; e++) {
            int32_t j = s->hi[i * s->k + e];
            if (j >= 0 && (bi || cells.border[j] < thr || cells.first[i] != cells.first[j]))
                flag_put(fi, e, FLAG_NEW);
        }
    }
done:
    s->hf = flags;
    free(start);
    free(fill);
    free(mem);
    return rc;
}

/* The exact k-NN of every row: the whole set as one cell (each pair's dot product once,
 * rows read in place, euclidean ones centred a chunk at a time), from empty heaps.  The
 * caller computes the distances again directly (finish_rows). */
static int whole_join(struct nnd *s, int use_amx, int screen, double p0,
                      const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = s->n, start[2] = {0, n};
    int32_t *mem = malloc(n * sizeof *mem);
    uint8_t *flags = s->hf;
    if (!mem)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory (n = %zu)", n);
    for (size_t i = 0; i < n; i++)
        mem[i] = (int32_t)i;
    s->hf = NULL;
    int rc = join_cells(s, mem, start, 1, n, 1, use_amx, screen, p0, 0.0, progress, err);
    s->hf = flags;
    free(mem);
    return rc;
}

/* Whether the selection's scans may use AVX-512 on this CPU. */
static void nnd_scan_init(struct nnd *s)
{
#ifdef KNN_SCAN_AVX512
    __builtin_cpu_init();
    s->avx512 = __builtin_cpu_supports("avx512f");
#else
    s->avx512 = 0;
#endif
}

/* The exact graph: whole_join, then every distance computed again directly (unless the
 * pre-screen left them exact).  g's arrays hold cap slots a row.  Progress reports run
 * from p0 to 1. */
static int knn_exact(const struct metric_ctx *m, size_t n, size_t k, const struct knn_options *o,
                     int threads, double p0, struct knn_graph *g,
                     const struct pw_progress *progress, struct pw_error *err)
{
    struct nnd s = {.m = m,
                    .n = n,
                    .k = k,
                    .hd = g->dist,
                    .hi = g->idx,
                    .kb = flag_bytes(k),
                    .threads = threads,
                    .pool_rows = o->screen_rows};
    nnd_scan_init(&s);
    int rc = whole_join(&s, o->amx, o->screen, p0, progress, err);
    if (!rc) /* the dots' distances again directly; the pre-screen's are already */
        finish_rows(m, g, NULL, !s.exact_dist, threads);
    g->rejoined = s.rejoined;
    g->screened = s.screened;
    g->built = KNN_BUILT_EXACT;
    g->recall_estimate = 1.0;
    return rc;
}

/* NN-descent's candidate lists are sampled for lblock points at a time (list_block):
 * their four arrays take 16 maxc bytes a point, 8% of a 768-float row at t-SNE's
 * maxc = 16 and 16% at UMAP's 30.  A block holds the lists of about 1/64 of the input's
 * bytes, n/8 points at least (each block costs one more scan of the graph's edges per
 * thread) and 4096 at least. */
static size_t list_block(size_t n, size_t d, size_t maxc)
{
    size_t rows = n * d / (256 * maxc), least = (n + 7) / 8;
    if (rows < least)
        rows = least;
    if (rows < 4096)
        rows = 4096;
    return rows < n ? rows : n;
}

/* Candidate lists of the points at positions [l0, l1): bounded max-heaps on a random
 * priority (seed, stream, edge), new (FLAG_NEW) and old neighbours apart, each edge
 * offered to both of its ends.  Each thread scans every edge but pushes only into the
 * lists of its own share of the positions, so a list sees the same pushes in the same
 * order whatever the thread count.
 *
 * Then a new edge i -> j sampled into i's list becomes old, as in pynndescent, once j's
 * block has had its lists too: j must still see i as new (one round, one block at a
 * time).  Until then it stays new and FLAG_PENDING, and the block of j clears both. */
static void sample_lists(const struct nnd *s, uint8_t *flags, const int32_t *slot, size_t l0,
                         size_t l1, size_t maxc, uint64_t seed, uint64_t stream, int32_t *newc,
                         float *newp, int32_t *oldc, float *oldp)
{
    size_t n = s->n, k = s->k, kb = s->kb, ln = l1 - l0;
    int T = s->threads;
    const int32_t *idx = s->hi;
    heap_init(newp, newc, ln * maxc);
    heap_init(oldp, oldc, ln * maxc);
#pragma omp parallel for schedule(static, 1) num_threads(T)
    for (int t = 0; t < T; t++) {
        size_t lo = l0 + ln * (size_t)t / (size_t)T, hi = l0 + ln * (size_t)(t + 1) / (size_t)T;
        for (size_t i = 0; i < n; i++) {
            size_t si = (size_t)slot[i];
            int mine_i = si >= lo && si < hi;
            const uint8_t *fi = flags + i * kb;
            for (size_t e = 0; e < k; e++) {
                int32_t j = idx[i * k + e];
                if (j < 0)
                    continue;
                size_t sj = (size_t)slot[j];
                int mine_j = sj >= lo && sj < hi;
                if (!mine_i && !mine_j)
                    continue;
                float pr = (float)rng_unit(seed, stream, i * k + e);
                int fresh = flag_get(fi, e) & FLAG_NEW;
                float *cp = fresh ? newp : oldp;
                int32_t *ci = fresh ? newc : oldc;
                if (mine_i)
                    heap_push(cp + (si - l0) * maxc, ci + (si - l0) * maxc, NULL, maxc, pr, j, 0);
                if (mine_j)
                    heap_push(cp + (sj - l0) * maxc, ci + (sj - l0) * maxc, NULL, maxc, pr,
                              (int32_t)i, 0);
            }
        }
    }
#pragma omp parallel for schedule(static) num_threads(T)
    for (size_t i = 0; i < n; i++) {
        size_t si = (size_t)slot[i];
        int block_i = si >= l0 && si < l1;
        uint8_t *fi = flags + i * kb;
        const int32_t *nl = block_i ? newc + (si - l0) * maxc : NULL;
        for (size_t e = 0; e < k; e++) {
            int f = flag_get(fi, e);
            int32_t j = idx[i * k + e];
            if (!f || j < 0)
                continue;
            size_t sj = (size_t)slot[j];
            if (f & FLAG_PENDING) { /* i's block sampled it; j's block has now too */
                if (sj >= l0 && sj < l1)
                    flag_put(fi, e, 0);
                continue;
            }
            if (!block_i)
                continue;
            for (size_t c = 0; c < maxc; c++)
                if (nl[c] == j) {
                    flag_put(fi, e, sj < l1 ? 0 : FLAG_NEW | FLAG_PENDING);
                    break;
                }
        }
    }
}

/* NN-descent's rounds stop once the probe's estimate reaches this (and the target):
 * the rounds after it add little (Fashion-MNIST 20k, k = 91: the last three of five
 * moved it from 0.9956 to 0.9994) and cost a round each. */
#define KNN_RECALL_ENOUGH 0.98

/* Fraction of the probe's (row, exact neighbour) pairs that share a cell, a spilled row
 * counting in both of its cells: the recall the cells' exact joins alone would give. */
static double cells_hold(const struct kmeans_cells *cl, float thr, const struct knn_probe *p)
{
    size_t hit = 0, all = 0;
    for (size_t r = 0; r < p->count; r++) {
        int32_t i = p->rows[r];
        int32_t a0 = cl->first[i], a1 = cl->border[i] < thr ? cl->second[i] : a0;
        for (size_t e = 0; e < p->k; e++) {
            int32_t j = p->idx[r * p->k + e];
            if (j < 0)
                continue;
            int32_t b0 = cl->first[j], b1 = cl->border[j] < thr ? cl->second[j] : b0;
            all++;
            hit += a0 == b0 || a0 == b1 || a1 == b0 || a1 == b1;
        }
    }
    return all ? (double)hit / (double)all : 1.0;
}

/* Before the exact graph (n^2 d / 2 multiply-adds) when NN-descent stalled below the
 * target: the exact joins inside larger k-means cells, of n/16, n/8 or n/4 rows (each a
 * sixteenth to a quarter of the exact graph's work), the smallest whose cells hold
 * recall_target of the probe's neighbours.  That is data whose clusters are bigger than
 * part_size cells and of high intrinsic dimension inside, where the rounds cannot cross
 * a cell border; cells that would not hold them are not joined (a k-means each to know).
 * The heaps are rebuilt from the chosen cells, perm gets their visiting order and *rec
 * the probe's estimate of the new graph; *rec is unchanged when no size qualifies. */
static int larger_cells(struct nnd *s, const struct knn_options *o, const struct knn_probe *p,
                        int32_t *perm, const struct pw_progress *progress, double *rec,
                        struct pw_error *err)
{
    size_t n = s->n;
    /* the cells report no progress of their own: "knn" stays where the rounds left it */
    struct pw_progress quiet = {progress ? progress->cancel : NULL, NULL, NULL, NULL, NULL};
    for (size_t div = 16; div >= 4; div /= 2) {
        size_t part = n / div;
        if (part < 2 * o->part_size)
            continue;
        struct kmeans_cells cells;
        float thr;
        int rc = make_cells(s->m, n, part, o->seed, s->threads, &cells, &quiet, err);
        if (!rc)
            rc = spill_threshold(&cells, o->spill, &thr, err);
        double hold = rc ? 0.0 : cells_hold(&cells, thr, p);
        if (rc || hold < o->recall_target) {
            kmeans_cells_free(&cells);
            if (rc)
                return rc;
            continue;
        }
        /* the cells just measured are the ones joined, from empty heaps */
        s->rejoined = s->screened = 0;
        rc = partition_seed(s, &cells, o->spill, o->amx, o->screen, perm, 0.0, &quiet, err);
        kmeans_cells_free(&cells);
        if (rc)
            return rc;
        *rec = knn_probe_recall(p, s->hi, s->k);
        return 0;
    }
    return 0;
}

/* 1 when the rounds left will not bring the estimate from rec to target: a round's gain
 * shrinks round after round (by a factor q = gain / previous gain), so what is left to
 * gain is at most gain q / (1 - q), and never more than `left` times the last gain.
 * Then building the exact graph at once beats more rounds.  Data of high intrinsic
 * dimension stall this way: NN-descent gains under 0.01 a round there, far from 0.95. */
static int rounds_fall_short(double rec, double gain, double prev_gain, size_t left, double target)
{
    double more = gain * (double)left;
    if (prev_gain > 0.0 && gain < prev_gain) {
        double q = gain / prev_gain;
        if (gain * q / (1.0 - q) < more)
            more = gain * q / (1.0 - q);
    }
    return rec + (more > 0.0 ? more : 0.0) < target;
}

static int knn_approx(const struct metric_ctx *m, size_t n, size_t k, const struct knn_options *o,
                      int threads, struct knn_graph *g, const struct pw_progress *progress,
                      struct pw_error *err)
{
    size_t d = m->d;
    size_t n_trees = o->n_trees, leaf = o->leaf_size, iters = o->n_iters, maxc = o->max_candidates;
    if (!n_trees) {
        n_trees = 5 + (size_t)llround(pow((double)n, 0.25));
        if (n_trees > 16)
            n_trees = 16;
    }
    if (!leaf)
        leaf = k > 10 ? k : 10;
    size_t forest = o->part_size ? 0 : n_trees; /* trees built (none when seeding by cells) */
    if (!iters) {
        iters = (size_t)llround(log2((double)n));
        if (iters < 5)
            iters = 5;
    } else if (iters == KNN_NO_ROUNDS) {
        iters = 0;
    }
    double seeded = forest ? 0.2 : 0.6; /* progress fraction once the heaps are seeded */
    /* Candidates per point per iteration; the local join costs their square.  Small k
     * (UMAP's 14) needs 2k candidates for recall >= 0.95 on clustered embeddings, while
     * t-SNE's k = 91 reaches 0.999 with 16 (bench/compute/RESULTS.md, k-NN recall). */
    if (!maxc)
        maxc = k <= 30 ? 2 * k : 16;
    size_t kb = flag_bytes(k), lblock = o->list_rows ? o->list_rows : list_block(n, d, maxc);
    if (lblock > n)
        lblock = n;
    struct nnd s = {.m = m,
                    .n = n,
                    .k = k,
                    .hd = g->dist,
                    .hi = g->idx,
                    .kb = kb,
                    .threads = threads,
                    .pool_rows = o->screen_rows};
    nnd_scan_init(&s);
    int rc = 0, oom = 0;
    struct knn_probe probe = {0};
    double rec = 1.0, rec_prev = 0.0, done = 0.0; /* done: progress when the rounds end */
    size_t njobs = n_trees > (size_t)threads ? n_trees : (size_t)threads;
    if (njobs < 64)
        njobs = 64;
    struct propbuf *bufs = calloc(njobs, sizeof *bufs);
    int32_t *perm = malloc((forest ? forest : 1) * n * sizeof *perm);
    int sketch = forest && d > 2 * KNN_SKETCH_D;
    size_t sd = sketch ? KNN_SKETCH_D : d;
    float *normals = malloc((forest ? forest : 1) * sd * sizeof *normals);
    float *sk = sketch ? malloc(n * sd * sizeof *sk) : NULL;
    float *R = sketch ? malloc(d * sd * sizeof *R) : NULL;
    uint8_t *flags = malloc(n * kb);
    size_t nc = iters ? lblock * maxc : 1; /* candidate lists: only when NN-descent runs */
    int32_t *newc = malloc(nc * sizeof *newc), *oldc = malloc(nc * sizeof *oldc);
    float *newp = malloc(nc * sizeof *newp), *oldp = malloc(nc * sizeof *oldp);
    int32_t *cand = malloc(njobs * 3 * maxc * sizeof *cand);
    int32_t *slot = malloc((iters ? n : 1) * sizeof *slot);
    if (!bufs || !perm || !normals || !flags || !newc || !oldc || !newp || !oldp || !cand ||
        !slot || (sketch && (!sk || !R))) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for NN-descent (n = %zu)", n);
        goto cleanup;
    }
    s.hf = flags;
    /* The cells fill the heaps after their k-means (partition_seed) and set every flag
     * at their end: neither array is resident before it is needed. */
    if (!o->part_size) {
        heap_init(g->dist, g->idx, n * k);
        memset(flags, 0, n * kb);
    }
    if (o->part_size) {
        /* 1. exact neighbours inside k-means cells */
        struct kmeans_cells cells;
        if ((rc = make_cells(m, n, o->part_size, o->seed, threads, &cells, progress, err)))
            goto cleanup;
        rc = partition_seed(&s, &cells, o->spill, o->amx, o->screen, perm, seeded, progress, err);
        kmeans_cells_free(&cells);
        if (rc)
            goto cleanup;
    } else {
        struct metric_ctx sm = *m;
        if (sketch) {
            knn_sketch(m->x, n, d, o->seed, R, sk, threads);
            sm.x = sk;
            sm.d = sd;
            free(R);
            R = NULL;
        }

        /* 1. (pynndescent) random projection forest: one job per tree, leaves propose all their
         * pairs */
        for (size_t t0 = 0; t0 < n_trees; t0 += (size_t)threads) {
            if ((rc = pw_progress_check(progress, err, "knn")))
                goto cleanup;
            size_t t1 = t0 + (size_t)threads < n_trees ? t0 + (size_t)threads : n_trees;
#pragma omp parallel for schedule(static, 1) num_threads(threads)
            for (size_t t = t0; t < t1; t++) {
                int32_t *p = perm + t * n;
                for (size_t i = 0; i < n; i++)
                    p[i] = (int32_t)i;
                struct rptree_job job = {
                    m, &sm, p, n, leaf, o->seed, t, normals + t * sd, &bufs[t - t0], g->dist, k};
                rptree_split(&job, p, n, 0, 0);
            }
            apply_proposals(&s, bufs, t1 - t0, &oom);
            pw_progress_report(progress, "knn", seeded * (double)t1 / (double)n_trees);
        }
        free(sk); /* only the trees use the sketch: not held through NN-descent's peak */
        sk = NULL;
        int32_t *first = realloc(perm, n * sizeof *perm); /* the first tree's order is kept */
        if (first)
            perm = first;
    }
    /* Fill rows a tiny leaf or cell left short with random points. */
    for (size_t i = 0; i < n; i++)
        for (uint64_t tries = 0; g->idx[i * k] < 0 && tries < 64 * k; tries++) {
            size_t j = rng_below(o->seed, 0xf111 + i, tries, n);
            if (j != i)
                heap_push(g->dist + i * k, g->idx + i * k, nnd_hf(&s, i), k, pair_dist(m, i, j),
                          (int32_t)j, FLAG_NEW);
        }

    /* 2. NN-descent.  Points are joined in the first tree's leaf order (or the cells'):
     * consecutive points share candidates, whose rows then come from cache rather than
     * memory.  Each round takes the points lblock at a time in that order: their
     * candidate lists are sampled from the graph as it stands, then joined.  A later
     * block's lists see what the earlier blocks found. */
    const int32_t *order = perm;
    if (iters)
        for (size_t t = 0; t < n; t++)
            slot[order[t]] = (int32_t)t;
    done = seeded;
    if (o->recall_target > 0.0) {
        size_t pc = n < KNN_PROBE_ROWS ? n : KNN_PROBE_ROWS;
        if ((rc = knn_probe_build(m->x, n, d, k, m->metric == KNN_COSINE, m->inv_norm, m->sqnorm,
                                  pc, o->seed, threads, &probe, err)))
            goto cleanup;
        rec = knn_probe_recall(&probe, g->idx, k);
        rec_prev = rec;
        malloc_trim(0); /* the probe's scratch: before the rounds place theirs */
    }
    for (size_t it = 0; it < iters; it++) {
        size_t changed = 0;
        for (size_t l0 = 0; l0 < n; l0 += lblock) {
            size_t l1 = l0 + lblock < n ? l0 + lblock : n;
            if ((rc = pw_progress_check(progress, err, "knn")))
                goto cleanup;
            sample_lists(&s, flags, slot, l0, l1, maxc, o->seed, 0x1000 + it, newc, newp, oldc,
                         oldp);
            /* local joins, a block of points at a time */
            size_t block = njobs * JOIN_BLOCK_ROWS;
            for (size_t b0 = l0; b0 < l1; b0 += block) {
                if ((rc = pw_progress_check(progress, err, "knn")))
                    goto cleanup;
                size_t b1 = b0 + block < l1 ? b0 + block : l1;
#pragma omp parallel for schedule(static, 1) num_threads(threads)
                for (size_t jb = 0; jb < njobs; jb++) {
                    size_t lo = b0 + (b1 - b0) * jb / njobs, hi = b0 + (b1 - b0) * (jb + 1) / njobs;
                    for (size_t t = lo; t < hi; t++)
                        local_join(m, g, newc + (t - l0) * maxc, oldc + (t - l0) * maxc, maxc,
                                   cand + jb * 3 * maxc, &bufs[jb]);
                }
                changed += apply_proposals(&s, bufs, njobs, &oom);
                pw_progress_report(progress, "knn",
                                   seeded + (1.0 - seeded) * ((double)it + (double)b1 / (double)n) /
                                                (double)iters);
            }
        }
        if (oom) {
            rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for NN-descent proposals");
            goto cleanup;
        }
        done = seeded + (1.0 - seeded) * (double)(it + 1) / (double)iters;
        if (probe.count) {
            double gain = rec - rec_prev;
            rec_prev = rec;
            rec = knn_probe_recall(&probe, g->idx, k);
            if (rec >= KNN_RECALL_ENOUGH && rec >= o->recall_target)
                break;
            if (rounds_fall_short(rec, rec - rec_prev, gain, iters - it - 1, o->recall_target))
                break;
        }
        if ((double)changed <= o->delta * (double)k * (double)n)
            break;
    }
    g->built = KNN_BUILT_APPROX;
    g->recall_estimate = probe.count ? rec : -1.0;
    if (probe.count && rec < o->recall_target) {
        /* The rounds' scratch goes before a fallback's is placed: they hold the graph and
         * their own at once. */
        for (size_t b = 0; b < njobs; b++)
            free(bufs[b].p);
        free(bufs);
        free(flags);
        free(newc);
        free(oldc);
        free(newp);
        free(oldp);
        free(cand);
        bufs = NULL;
        flags = NULL;
        newc = oldc = cand = NULL;
        newp = oldp = NULL;
        s.hf = NULL;
        malloc_trim(0);
    }
    if (probe.count && rec < o->recall_target && o->part_size) {
        if ((rc = larger_cells(&s, o, &probe, perm, progress, &rec, err)))
            goto cleanup;
        if (rec >= o->recall_target) {
            g->built = KNN_BUILT_LARGER_CELLS;
            g->recall_estimate = rec;
        }
    }
    g->rejoined = s.rejoined;
    g->screened = s.screened;
    if (probe.count && rec < o->recall_target) {
        if ((rc = knn_exact(m, n, k, o, threads, done, g, progress, err)))
            goto cleanup;
    } else {
        /* Every distance here was computed from differences or centred rows (cells: the
         * cell's mean taken off; NN-descent and the trees: pair4x4), so the rows are only
         * sorted: computing them again would be a fifth of t-SNE's k-NN time. */
        finish_rows(m, g, order, 0, threads);
    }
    pw_progress_report(progress, "knn", 1.0);

cleanup:
    if (bufs)
        for (size_t b = 0; b < njobs; b++)
            free(bufs[b].p);
    free(bufs);
    free(perm);
    free(normals);
    free(sk);
    free(R);
    free(flags);
    free(newc);
    free(oldc);
    free(newp);
    free(oldp);
    free(cand);
    free(slot);
    knn_probe_free(&probe);
    return oom && !rc ? pw_error_set(err, PW_ENOMEM, "knn: out of memory") : rc;
}

int knn_build(const float *x, size_t n, size_t d, size_t k, const struct knn_options *opt,
              struct knn_graph *g, const struct pw_progress *progress, struct pw_error *err)
{
    struct knn_options defaults;
    if (!opt) {
        knn_options_default(&defaults);
        opt = &defaults;
    }
    g->idx = NULL;
    g->dist = NULL;
    g->n = g->k = 0;
    g->rejoined = g->screened = 0;
    int rc = dense_validate("knn", x, n, d, err);
    if (rc)
        return rc;
    if (k < 1 || k >= n)
        return pw_error_set(err, PW_EINVAL, "knn: k must be in [1, n-1] = [1, %zu], got %zu", n - 1,
                            k);
    int threads = dense_threads(opt->threads), blas_saved = blas_fixed_enter();
    float *norms = malloc(n * sizeof *norms), *inv = malloc(n * sizeof *inv);
    float *sq = malloc(n * sizeof *sq);
    g->idx = malloc(n * k * sizeof *g->idx);
    g->dist = malloc(n * k * sizeof *g->dist);
    if (!norms || !inv || !sq || !g->idx || !g->dist) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory (n = %zu, k = %zu)", n, k);
        goto cleanup;
    }
    g->n = n;
    g->k = k;
    dense_row_norms(x, n, d, norms, threads);
    for (size_t i = 0; i < n; i++) {
        inv[i] = norms[i] > 0.0f ? 1.0f / norms[i] : 0.0f;
        sq[i] = norms[i] * norms[i];
    }
    struct metric_ctx m = {x, d, opt->metric, inv, sq};
    int exact = opt->method == KNN_EXACT || (opt->method == KNN_AUTO && n <= opt->exact_max_n);
    pw_progress_report(progress, "knn", 0.0);
    rc = exact ? knn_exact(&m, n, k, opt, threads, 0.0, g, progress, err)
               : knn_approx(&m, n, k, opt, threads, g, progress, err);
cleanup:
    free(norms);
    free(inv);
    free(sq);
    blas_fixed_leave(blas_saved);
    if (rc)
        knn_free(g);
    return rc;
}

double knn_recall(const struct knn_graph *approx, const struct knn_graph *exact)
{
    size_t hit = 0, k = exact->k;
    for (size_t i = 0; i < exact->n; i++)
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                if (approx->idx[i * k + a] == exact->idx[i * k + b]) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(exact->n * k);
}
