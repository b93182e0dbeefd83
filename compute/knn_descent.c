/* knn_descent.c - NN-descent (pynndescent's rounds: candidate lists sampled from the
 * graph, local joins that propose, proposals applied in a fixed order) and the random
 * projection trees that seed it when no k-means cells do (knn_descent.h). */
#include <stdlib.h>
#include <string.h>

#include "knn_descent.h"
#include "knn_heap.h"
#include "rng.h"

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

/* Apply every buffer's proposals, targets split by thread, buffers read in order. */
size_t knn_apply_proposals(struct nnd *s, struct propbuf *bufs, size_t nbufs, int *oom)
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

static void rptree_leaf(struct rptree_job *j, int32_t *idx, size_t count)
{
    float dots[4][4];
    for (size_t a = 0; a < count; a += 4) {
        int32_t rows[4], cols[4];
        size_t nr = knn_take4(idx + a, count - a, rows);
        for (size_t c0 = a; c0 < count; c0 += 4) {
            size_t ncc = knn_take4(idx + c0, count - c0, cols);
            knn_pair4x4(j->m, rows, cols, dots);
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

void knn_rptree_split(struct rptree_job *j, int32_t *idx, size_t count, uint64_t node, int depth)
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
    knn_rptree_split(j, idx, left, 2 * node + 1, depth + 1);
    knn_rptree_split(j, idx + left, count - left, 2 * node + 2, depth + 1);
}

void knn_sketch(const float *x, size_t n, size_t d, uint64_t seed, float *R, float *sk, int threads)
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
void knn_local_join(const struct metric_ctx *m, const struct knn_graph *g, const int32_t *nw,
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
        size_t nr = knn_take4(nl + a, nn - a, rows);
        for (size_t c0 = a; c0 < ncol; c0 += 4) {
            int32_t cols[4];
            size_t ncc = knn_take4(cl + c0, ncol - c0, cols);
            knn_pair4x4(m, rows, cols, dots);
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

/* NN-descent's candidate lists are sampled for lblock points at a time (knn_list_block):
 * their four arrays take 16 maxc bytes a point, 8% of a 768-float row at t-SNE's
 * maxc = 16 and 16% at UMAP's 30.  A block holds the lists of about 1/64 of the input's
 * bytes, n/8 points at least (each block costs one more scan of the graph's edges per
 * thread) and 4096 at least. */
size_t knn_list_block(size_t n, size_t d, size_t maxc)
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
void knn_sample_lists(const struct nnd *s, uint8_t *flags, const int32_t *slot, size_t l0,
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
