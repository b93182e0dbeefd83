/* knn_screen.c - the int8 pre-screen's pool of wide heaps and the exact re-ranking of
 * their candidates (see knn_screen.h); which cells go through it: knn_screen_gate.c. */
#include "knn_screen.h"

#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "knn_heap.h"
#include "knn_internal.h"

/* k + margin: the margin costs memory (8 bytes a slot and row of the pool) and
 * re-ranking time; too small a one sends rows to the second join.  The
 * bound's window (twice the error) spans a number of ranks that grows with k: on
 * isotropic 768-d rows, where neighbours crowd the closest, k / 2 + 8 left the second
 * join to no row of 20k at k = 15 and k = 91 where k / 4 + 8 left it to 1%. */
size_t knn_screen_width(size_t k)
{
    return k + 8 + k / 2;
}

/* Rows joined again wait in groups of REJOIN_ROWS (knn_screen_finish): a group streams the
 * cell's rows from memory once rather than once a row.  The group's rows (16 x 3 KB at
 * 768 values) stay in the core's cache while the members go by. */
#define REJOIN_ROWS 16

/* A thread's scratch: the candidates of one row (width), then the group's heaps of k
 * (distances, indices) and its rows. */
size_t knn_screen_scratch(size_t k)
{
    return knn_screen_width(k) + REJOIN_ROWS * (2 * k + 1);
}

int knn_screen_init(struct knn_screen *sc, size_t rows, size_t k, struct pw_error *err)
{
    memset(sc, 0, sizeof *sc);
    sc->rows = rows;
    sc->k = k;
    sc->width = knn_screen_width(k);
    sc->hd = malloc(rows * sc->width * sizeof *sc->hd);
    sc->hi = malloc(rows * sc->width * sizeof *sc->hi);
    if (!sc->hd || !sc->hi) {
        knn_screen_free(sc);
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for the pre-screen (%zu rows)",
                            rows);
    }
    return 0;
}

void knn_screen_free(struct knn_screen *sc)
{
    free(sc->hd);
    free(sc->hi);
    memset(sc, 0, sizeof *sc);
}

void knn_screen_clear(struct knn_screen *sc, size_t rows)
{
    heap_init(sc->hd, sc->hi, rows * sc->width);
}

/* The candidates' exact distances, four at a time (one row against four: each load of
 * the row feeds four independent sums).  Compiled for AVX-512, AVX2 and baseline x86-64,
 * picked at load time. */
#define SCREEN_CLONES PW_CLONES_V4_FMA

typedef float v16f __attribute__((vector_size(64)));

/* out[v]: squared euclidean or cosine distance (pair_dist, knn_internal.h) of row a to
 * rows b[v].  next (or NULL): the next call's four rows, prefetched a line per step: the
 * candidates are rows from anywhere in the input, and their loads missed the caches. */
SCREEN_CLONES static void dist1x4(const float *x, size_t d, int cosine, const float *inv, size_t a,
                                  const int32_t b[4], const int32_t *next, float out[4])
{
    const float *r = x + a * d, *c[4], *pn[4];
    for (int v = 0; v < 4; v++) {
        c[v] = x + (size_t)b[v] * d;
        pn[v] = next ? x + (size_t)next[v] * d : c[v];
    }
    v16f acc[4];
    memset(acc, 0, sizeof acc);
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        v16f va;
        memcpy(&va, r + j, sizeof va);
        for (int v = 0; v < 4; v++) {
            __builtin_prefetch(pn[v] + j);
            v16f vb;
            memcpy(&vb, c[v] + j, sizeof vb);
            if (cosine) {
                acc[v] += va * vb;
            } else {
                v16f e = va - vb;
                acc[v] += e * e;
            }
        }
    }
    for (int v = 0; v < 4; v++) {
        float sum = 0.0f;
        for (int l = 0; l < 16; l++)
            sum += acc[v][l];
        for (size_t t = j; t < d; t++)
            sum += cosine ? r[t] * c[v][t] : (r[t] - c[v][t]) * (r[t] - c[v][t]);
        if (cosine)
            sum = 1.0f - sum * inv[a] * inv[b[v]];
        out[v] = sum < 0.0f ? 0.0f : sum;
    }
}

/* out[u][v]: dist1x4's distance of row a[u] to row b[v], to the bit (each pair's sums in
 * dist1x4's order); each load of a member feeds four rows' sums. */
SCREEN_CLONES static void dist4x4(const float *x, size_t d, int cosine, const float *inv,
                                  const int32_t a[4], const int32_t b[4], float out[4][4])
{
    const float *r[4], *c[4];
    for (int v = 0; v < 4; v++) {
        r[v] = x + (size_t)a[v] * d;
        c[v] = x + (size_t)b[v] * d;
    }
    v16f acc[4][4];
    memset(acc, 0, sizeof acc);
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        v16f va[4];
        for (int u = 0; u < 4; u++)
            memcpy(&va[u], r[u] + j, sizeof va[u]);
        for (int v = 0; v < 4; v++) {
            v16f vb;
            memcpy(&vb, c[v] + j, sizeof vb);
            for (int u = 0; u < 4; u++) {
                if (cosine) {
                    acc[u][v] += va[u] * vb;
                } else {
                    v16f e = va[u] - vb;
                    acc[u][v] += e * e;
                }
            }
        }
    }
    for (int u = 0; u < 4; u++)
        for (int v = 0; v < 4; v++) {
            float sum = 0.0f;
            for (int l = 0; l < 16; l++)
                sum += acc[u][v][l];
            for (size_t t = j; t < d; t++)
                sum += cosine ? r[u][t] * c[v][t] : (r[u][t] - c[v][t]) * (r[u][t] - c[v][t]);
            if (cosine)
                sum = 1.0f - sum * inv[a[u]] * inv[b[v]];
            out[u][v] = sum < 0.0f ? 0.0f : sum;
        }
}

/* Row i's heap (hd, hi, k slots) offered the cnt candidates cand[], exactly; dup: a
 * candidate may come twice (heap_push). */
static void push_exact(const float *x, size_t d, int cosine, const float *inv, size_t i,
                       const int32_t *cand, size_t cnt, int dup, float *hd, int32_t *hi, size_t k)
{
    int32_t b[4], nb[4];
    size_t m = cnt ? knn_take4(cand, cnt, b) : 0;
    for (size_t e = 0; e < cnt; e += 4) {
        float v[4];
        int more = e + 4 < cnt;
        size_t nm = more ? knn_take4(cand + e + 4, cnt - e - 4, nb) : 0;
        dist1x4(x, d, cosine, inv, i, b, more ? nb : NULL, v);
        for (size_t t = 0; t < m; t++)
            if ((size_t)b[t] != i)
                (dup ? heap_push : heap_push_new)(hd, hi, NULL, k, v[t], b[t], 0);
        memcpy(b, nb, sizeof b);
        m = nm;
    }
}

/* Row i's k-heap (hd, hi) from its wide heap (wd, wi); 1 when the bound vouches for it. */
static int rerank_row(const struct knn_screen_job *j, size_t i, const float *wd, const int32_t *wi,
                      float bound, float *hd, int32_t *hi, int32_t *cand)
{
    size_t w = j->sc->width, k = j->sc->k, cnt = 0;
    heap_init(hd, hi, k);
    for (size_t e = 0; e < w; e++)
        if (wi[e] >= 0)
            cand[cnt++] = wi[e];
    push_exact(j->x, j->d, j->cosine, j->inv_norm, i, cand, cnt, 0, hd, hi, k);
    /* not full: every member of the cell was kept */
    return wi[0] < 0 || wd[0] - bound > hd[0];
}

/* Row i's k results (hd, hx) into its heap in the graph. */
static void merge_row(const struct knn_screen_job *j, size_t i, const float *hd, const int32_t *hx)
{
    size_t k = j->sc->k;
    float *gd = j->hd + i * k;
    int32_t *gi = j->hi + i * k;
    if (!j->seen[i]) { /* an empty heap: the k results are one already */
        memcpy(gd, hd, k * sizeof *hd);
        memcpy(gi, hx, k * sizeof *hx);
        return;
    }
    for (size_t s = 0; s < k; s++) /* an earlier cell may have found the same point */
        if (hx[s] >= 0)
            heap_push(gd, gi, NULL, k, hd[s], hx[s], 0);
}

/* A thread's rows waiting to be joined again: rows[u]'s heap of k at hd + u k, hi + u k. */
struct rejoin_group {
    float *hd;
    int32_t *hi, *rows;
    size_t count;
};

/* The group's rows joined exactly with every member of the cell (a cell holds a point
 * once), then merged into the graph.  Members come four at a time, each four offered to
 * every row of the group in turn: a row's heap is offered the members in the order and
 * with the distances (dist1x4) that one row alone would get. */
static void rejoin_flush(const struct knn_screen_job *j, struct rejoin_group *grp)
{
    size_t k = j->sc->k, g = grp->count;
    heap_init(grp->hd, grp->hi, g * k);
    for (size_t e = 0; e < j->cnt; e += 4) {
        int32_t b[4];
        size_t m = knn_take4(j->mem + e, j->cnt - e, b);
        for (size_t u0 = 0; u0 < g; u0 += 4) {
            int32_t a[4];
            float v[4][4];
            size_t ra = knn_take4(grp->rows + u0, g - u0, a);
            dist4x4(j->x, j->d, j->cosine, j->inv_norm, a, b, v);
            for (size_t u = 0; u < ra; u++)
                for (size_t t = 0; t < m; t++)
                    if (b[t] != a[u])
                        heap_push_new(grp->hd + (u0 + u) * k, grp->hi + (u0 + u) * k, NULL, k,
                                      v[u][t], b[t], 0);
        }
    }
    for (size_t u = 0; u < g; u++)
        merge_row(j, (size_t)grp->rows[u], grp->hd + u * k, grp->hi + u * k);
    grp->count = 0;
}

/* Rows the bound vouches for are merged at once; the others wait in the group (each
 * row's heap is its own, so when it is joined does not change it). */
void knn_screen_finish(void *job, int t, int T)
{
    const struct knn_screen_job *j = job;
    size_t k = j->sc->k, w = j->sc->width, rejoined = 0;
    size_t lo = j->count * (size_t)t / (size_t)T, hi = j->count * (size_t)(t + 1) / (size_t)T;
    uint32_t *mine = j->scratch + knn_screen_scratch(k) * (size_t)t;
    int32_t *cand = (int32_t *)mine;
    struct rejoin_group grp = {.hd = (float *)(mine + w),
                               .hi = (int32_t *)(mine + w + REJOIN_ROWS * k),
                               .rows = (int32_t *)(mine + w + 2 * REJOIN_ROWS * k)};
    for (size_t p = lo; p < hi; p++) {
        size_t i = (size_t)j->rows[p];
        float *hd = grp.hd + grp.count * k;
        int32_t *hx = grp.hi + grp.count * k;
        if (rerank_row(j, i, j->sc->hd + p * w, j->sc->hi + p * w, j->bound[p], hd, hx, cand)) {
            merge_row(j, i, hd, hx);
            continue;
        }
        grp.rows[grp.count++] = (int32_t)i;
        rejoined++;
        if (grp.count == REJOIN_ROWS)
            rejoin_flush(j, &grp);
    }
    if (grp.count)
        rejoin_flush(j, &grp);
    j->counts[2 * t] += rejoined;
    j->counts[2 * t + 1] += hi - lo;
}
