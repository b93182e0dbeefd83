/* knn_screen_gate.c - which k-NN cells join on int8 products (knn_screen_gate.h): the
 * cost model of rows wide enough for the int8 products to pay, a sample of the cell's
 * rows joined exactly to predict how many the pre-screen (knn_screen.h) would join again,
 * and the members' error bounds both the sample and the pre-screen's re-ranking use. */
#include <math.h>
#include <omp.h>

#include "gram.h"
#include "knn_heap.h"
#include "knn_screen_gate.h"

/* The int8 dots' error bound of each member's internal distances in this cell (the
 * members' scales and lengths against the cell's largest: knn_screen.h) into
 * cs->bound.  Rows are measured from the cell's centre, as packed (cosine: unit rows
 * less their mean); the distance |a|^2 + |b|^2 - 2 a.b has twice the dot's error, the
 * cosine distance (|a|^2 + |b|^2) / 2 - a.b once; a few ulps more for the float
 * arithmetic that turns dots into distances.  cs->bound holds the members' int8 scales,
 * written there by knn_cell_centre with cs->centre and cs->g. */
void knn_screen_bounds(const struct nnd *s, size_t cnt, struct cell_scratch *cs)
{
    const struct metric_ctx *m = s->m;
    size_t d = m->d;
    int cosine = m->metric == KNN_COSINE;
    double smax = 0.0, nmax = 0.0;
    for (size_t a = 0; a < cnt; a++) {
        double sc = cs->bound[a], len = sqrt((double)cs->g[a]);
        smax = sc > smax ? sc : smax;
        nmax = len > nmax ? len : nmax;
    }
    for (size_t a = 0; a < cnt; a++) {
        double len = sqrt((double)cs->g[a]);
        double e = (cosine ? 1.0 : 2.0) * gram_i8_bound(cs->bound[a], len, smax, nmax, d);
        cs->bound[a] = (float)(e + 4.0 * nmax * nmax * 0x1p-20);
    }
}

/* The int8 products (GRAM_VNNI_I8: four times float's multiply-adds an instruction)
 * save three quarters of a pair's d multiply-adds when the pool holds the cell (each
 * pair once), half when it is joined in ranges (each pair twice).  What int8 costs more
 * per pair grows with the wide heap's knn_screen_width(k) slots (pushes into wider heaps,
 * the ranges' second scan of each pair, the re-ranking): about 4/3 of a multiply-add a
 * slot.  The float joins pay a selection per pair of their own (every product turned
 * into a distance and scanned), about SCREEN_FLOAT_SELECT multiply-adds' worth, which
 * the int8 kernel's filter mostly skips.  A cell also pays fixed costs (the gate's
 * sample, the bounds, the pool's first use), which cells of SCREEN_AMORTISED_ROWS and
 * more amortise; smaller ones keep SCREEN_PAIR_D a pair.  Measured: on exact graphs of
 * 6,000 rows at t-SNE's k = 91 (in ranges) float is the faster up to ~256 values, at
 * UMAP's k = 15 (one pool) int8 from ~192; on 16k to 200k rows at k = 15 (30 slots) int8
 * is the faster at every width tried, 16 to 768 values (exact graph of 100k x 32
 * isotropic rows, one thread: 9.1 s float, 4.4 s int8; larger cells of 200k x 128 in five
 * broad clusters: 19.2 and 12.2 CPU s); at k = 91 (144 slots) float was the faster at
 * 16 to 64 values on 20k to 100k rows, and the rule gives the same 128 as on small cells. */
#define SCREEN_PAIR_D         128
#define SCREEN_FLOAT_SELECT   64
#define SCREEN_AMORTISED_ROWS 16384

int knn_screen_pays(const struct nnd *s, size_t cnt, size_t pool_rows)
{
    size_t d = s->m->d, saved = cnt <= pool_rows ? 3 * d / 4 : d / 2;
    if (cnt < SCREEN_AMORTISED_ROWS)
        return saved > SCREEN_PAIR_D;
    return 3 * (SCREEN_FLOAT_SELECT + saved) > 4 * knn_screen_width(s->k);
}

/* Rows of a cell whose k nearest members are found exactly to choose int8 or float for
 * the cell: one per SCREEN_ROWS_PER_SAMPLE members, from SCREEN_SAMPLE_MIN to
 * SCREEN_SAMPLE_MAX (the sample's cost, its rows against every member on float, stays
 * near a tenth of a 4,096-row cell's int8 join and under 1 % of a 40,000-row one's). */
#define SCREEN_SAMPLE_MIN      8
#define SCREEN_SAMPLE_MAX      32
#define SCREEN_ROWS_PER_SAMPLE 1024

static size_t screen_sample(size_t cnt)
{
    size_t r = cnt / SCREEN_ROWS_PER_SAMPLE;
    r = r < SCREEN_SAMPLE_MIN ? SCREEN_SAMPLE_MIN : r > SCREEN_SAMPLE_MAX ? SCREEN_SAMPLE_MAX : r;
    return r / 4 * 4;
}

/* A sampled row counts as one the pre-screen would join again when the gap between its
 * k-th and (k + margin)-th nearest members is under SCREEN_GAP_BOUNDS of its bound.
 * knn_screen_finish joins a row again when its wide heap's (k + margin)-th approximate
 * distance less the bound does not exceed its k-th exact one, so below one bound of gap
 * a row is joined again for sure and above two never; in between it depends on the
 * approximate distance's own error.  Measured: rows sampled under 1.5 bounds were 6 to
 * 12 times those joined again (ten tight clusters of 2,000 x 96 rows: 3 of 8 sampled, 6 %
 * joined again; a 44,000-row cell of an isotropic cluster in 768-d: 1 of 40, 0.2 %). */
#define SCREEN_GAP_BOUNDS 1.5f

/* 1 when the cell should be joined on int8 products: at most one in eight of a sample
 * of its rows would be joined a second time (SCREEN_GAP_BOUNDS), that is about 1-2 % of
 * its rows.  A row joined again costs about twenty times its share of the cell's float
 * join (the whole cell streamed from memory for that row), and int8 saves about three
 * quarters of the float join, so int8 pays while under ~4 % of the rows are joined
 * again.  Many tight clusters in one cell, whose distances are small against the rows'
 * lengths, send most of them and stay on float.  cs holds the cell's centre
 * (knn_cell_centre, unit rows for cosine). */
int knn_screen_cell(const struct nnd *s, const int32_t *mem, size_t cnt, struct cell_scratch *cs)
{
    size_t k = s->k, w = knn_screen_width(k), ns = screen_sample(cnt);
    if (cnt < 4 * ns || w > 1024) /* the sample's heaps live on the stack */
        return 0;
    if (s->m->metric == KNN_COSINE) /* a zero row is at distance 1 from all: not a unit row */
        for (size_t a = 0; a < cnt; a++)
            if (s->m->inv_norm[mem[a]] == 0.0f)
                return 0;
    knn_screen_bounds(s, cnt, cs);
    float hd[SCREEN_SAMPLE_MAX][w];
    int32_t hi[SCREEN_SAMPLE_MAX][w], rows[SCREEN_SAMPLE_MAX];
    size_t at[SCREEN_SAMPLE_MAX];
    for (size_t r = 0; r < ns; r++) {
        at[r] = (2 * r + 1) * cnt / (2 * ns);
        rows[r] = mem[at[r]];
        heap_init(hd[r], hi[r], w);
    }
    /* the threads share the sample's rows, four at a time, each thread reading the
     * members once for all of its rows; a row's heap sees the members in order */
    int groups = (int)(ns / 4), T = s->threads < groups ? s->threads : groups;
#pragma omp parallel num_threads(T > 0 ? T : 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t g0 = (size_t)(groups * t / nt), g1 = (size_t)(groups * (t + 1) / nt);
        float out[4][4];
        for (size_t c0 = 0; c0 < cnt; c0 += 4) {
            int32_t cols[4];
            size_t nc = knn_take4(mem + c0, cnt - c0, cols);
            for (size_t r0 = 4 * g0; r0 < 4 * g1; r0 += 4) {
                knn_pair4x4(s->m, rows + r0, cols, out);
                for (size_t u = 0; u < 4; u++)
                    for (size_t v = 0; v < nc; v++)
                        if (c0 + v != at[r0 + u])
                            heap_push_new(hd[r0 + u], hi[r0 + u], NULL, w, out[u][v], cols[v], 0);
            }
        }
    }
    size_t again = 0;
    for (size_t r = 0; r < ns; r++) {
        float wide = hd[r][0]; /* the (k + margin)-th */
        heap_sort_row(hd[r], hi[r], w);
        again += !(wide - hd[r][k - 1] > SCREEN_GAP_BOUNDS * cs->bound[at[r]]);
    }
    return again <= ns / 8;
}
