/* knn_join.c - one k-means cell's exact k-NN join (knn_join.h): blocks of rows against
 * chunks of members, each pair's dot product once (sgemm on fixed blocks, AMX, or int8
 * through the pre-screen, knn_screen.h, for the cells its gate picks,
 * knn_screen_gate.h), the team selecting into the heaps.  int8 blocks arrive filtered
 * (gram_rows_filtered): their distances made in the kernel and marked where they could
 * enter a heap, so the selection visits only those. */
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "blas_fixed.h"
#include "gram.h"
#include "knn_heap.h"
#include "knn_join.h"
#include "knn_screen_gate.h"

#define PART_ROWS 256
#define PART_COLS 512 /* members per column chunk at least; see cs.cols in knn_partition_seed */

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

void knn_cell_scratch_free(struct cell_scratch *cs)
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
    free(cs->hits);
    free(cs->rlim);
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

/* The AMX or int8 dot products of a block against the packed chunk's members [from,
 * to) (int8 with a filter: the filtered values, gram.h): thread t of T takes a share of
 * its 16-column panels. */
struct gram_job {
    const struct gram *g;
    size_t rows, from, to, ld;
    float *dots;
    const struct gram_filter *f;
};

static void gram_job_run(void *arg, int t, int T)
{
    const struct gram_job *j = arg;
    size_t panels = (j->to - j->from + GRAM_COLS - 1) / GRAM_COLS;
    size_t lo = panels * (size_t)t / (size_t)T, hi = panels * (size_t)(t + 1) / (size_t)T;
    size_t c2 = j->from + hi * GRAM_COLS < j->to ? j->from + hi * GRAM_COLS : j->to;
    if (lo >= hi)
        return;
    if (j->f)
        gram_rows_filtered(j->g, j->rows, j->from, j->from + lo * GRAM_COLS, c2, j->dots, j->ld,
                           j->f);
    else
        gram_rows(j->g, j->rows, j->from, j->from + lo * GRAM_COLS, c2, j->dots, j->ld);
}

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

/* The columns in [o0, o1) of a block row whose lanes passed the int8 filter (its masks,
 * gram_rows_filtered), in order, into out (returns how many).  The lines that hold their
 * values are prefetched on the way: the selection's loads of them, which miss the
 * caches, then overlap instead of waiting one by one behind its branches. */
static size_t row_hits(const uint16_t *mask, const float *v, size_t o0, size_t o1, uint32_t *out)
{
    size_t n = 0;
    for (size_t grp = o0 / 16; grp * 16 < o1; grp++) {
        uint32_t m = mask[grp];
        if (!m)
            continue;
        size_t lo = grp * 16 < o0 ? o0 - grp * 16 : 0, hi = o1 - grp * 16 < 16 ? o1 - grp * 16 : 16;
        m &= ((1u << hi) - 1) & ~((1u << lo) - 1);
        if (!m)
            continue;
        __builtin_prefetch(v + grp * 16);
        for (; m; m &= m - 1)
            out[n++] = (uint32_t)(grp * 16 + (size_t)__builtin_ctz(m));
    }
    return n;
}

/* select_block for int8 joins, whose filter (hit_filter) let through every value that
 * could enter a heap: each heap is offered the same values in the same order, found
 * from the masks instead of a scan of the whole block. */
static void select_hits(void *arg, int t, int T)
{
    const struct cell_block *b = arg;
    size_t rows = b->rows, cc0 = b->cc0, ccols = b->ccols, mld = b->cs->mld;
    float *thr = b->thr, *hd;
    int32_t *hx;
    uint8_t *hf;
    int dup;
    uint32_t *list = b->cs->hit_cols + (size_t)t * b->cnt;
    for (size_t r = rows * (size_t)t / (size_t)T; r < rows * (size_t)(t + 1) / (size_t)T; r++) {
        ptrdiff_t own = (ptrdiff_t)r + b->self0;
        size_t self = own >= 0 && own < (ptrdiff_t)ccols ? (size_t)own : SIZE_MAX;
        size_t kk = blk_heap(b, r, &hd, &hx, &hf, &dup);
        const float *v = b->cs->dots + r * b->ld;
        size_t n = row_hits(b->cs->hits + r * mld, v, 0, ccols, list);
        for (size_t e = 0; e < n; e++) {
            size_t c = list[e];
            if (v[c] <= hd[0] && c != self)
                heap_push_new(hd, hx, hf, kk, v[c], b->cm[c], FLAG_NEW);
        }
    }
    size_t first = rows > cc0 ? rows : cc0, end = cc0 + ccols, rest = end > first ? end - first : 0;
    size_t o0 = first - cc0 + rest * (size_t)t / (size_t)T,
           o1 = first - cc0 + rest * (size_t)(t + 1) / (size_t)T;
    for (size_t r = 0; r < rows && o1 > o0; r++) {
        const float *v = b->cs->dots + r * b->ld;
        size_t n = row_hits(b->cs->hits + r * mld, v, o0, o1, list);
        for (size_t e = 0; e < n; e++) {
            size_t o = list[e];
            if (v[o] <= thr[o + cc0]) {
                size_t kk = blk_heap(b, o + cc0, &hd, &hx, &hf, &dup);
                heap_push_new(hd, hx, hf, kk, v[o], b->bm[r], FLAG_NEW);
                thr[o + cc0] = hd[0];
            }
        }
    }
}

/* Range joins (join_range): the block's rows (members of the cell) against the range's
 * rows (the columns; column c's heap is the pool's row c), the values the filter let
 * through.  Thread t of T takes a share of the columns and every row, so each heap sees
 * its candidates in member order whatever T is. */
static void select_range_hits(void *arg, int t, int T)
{
    const struct cell_block *b = arg;
    size_t ccols = b->ccols, pw = b->pw, mld = b->cs->mld;
    size_t c0 = ccols * (size_t)t / (size_t)T, c1 = ccols * (size_t)(t + 1) / (size_t)T;
    float *thr = b->thr;
    uint32_t *list = b->cs->hit_cols + (size_t)t * b->cnt;
    for (size_t r = 0; r < b->rows && c1 > c0; r++) {
        int32_t i = b->bm[r];
        const float *v = b->cs->dots + r * b->ld;
        size_t n = row_hits(b->cs->hits + r * mld, v, c0, c1, list);
        for (size_t e = 0; e < n; e++) {
            size_t c = list[e];
            if (v[c] <= thr[c] && b->cm[c] != i) {
                float *hd = b->phd + c * pw;
                heap_push_new(hd, b->phi + c * pw, NULL, pw, v[c], i, 0);
                thr[c] = hd[0];
            }
        }
    }
}

/* The int8 filter (gram.h) of a block of `rows` members from r0 against the set packed
 * from member C0: internal distances (unit rows: |u - v|^2 / 2; euclidean: squared),
 * passing where they could enter the block rows' heaps (their roots now, rlim) or, for
 * set rows from member cfrom on, the columns' (thr); the heaps' roots only fall, so the
 * selection finds every push it would have made on the whole block. */
static void hit_filter(struct cell_scratch *cs, size_t r0, size_t rows, size_t C0, size_t cfrom,
                       const struct knn_screen *pool, size_t pos0, struct gram_filter *f)
{
    *f = (struct gram_filter){.a = cs->unit ? 0.5f : 1.0f,
                              .b = cs->unit ? 1.0f : 2.0f,
                              .gr = cs->g + r0,
                              .gc = cs->g + C0,
                              .rlim = pool ? cs->rlim : NULL,
                              .clim = cs->thr + C0,
                              .cfrom = cfrom - C0,
                              .mask = cs->hits,
                              .mld = cs->mld};
    for (size_t r = 0; pool && r < rows; r++)
        cs->rlim[r] = pool->hd[(pos0 + r) * pool->width];
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
    struct gram_filter filter;
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
                size_t cfrom = r0 + rows > from ? r0 + rows : from; /* past the block's rows */
                if (pool)
                    hit_filter(cs, r0, rows, C0, cfrom, pool, r0, &filter);
                struct gram_job job = {
                    &cs->gram, rows, from - C0, to - C0, ld, cs->dots, pool ? &filter : NULL};
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
            team_run(tm, pool ? select_hits : select_block, &blk);
        }
        if (cs->in_place) /* chunks so far: the first to^2 / 2 pairs */
            pw_progress_report(progress, "knn",
                               cs->p0 + (1.0 - cs->p0) * ((double)to / (double)cnt) *
                                            ((double)to / (double)cnt));
    }
    return 0;
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
        struct gram_filter f;
        hit_filter(cs, b0, rows, r_lo, r_lo, NULL, 0, &f);
        struct gram_job job = {&cs->gram, rows, 0, span, ld, cs->dots, &f};
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
        team_run(tm, select_range_hits, &blk);
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
int knn_cell_join(struct nnd *s, const int32_t *mem, size_t cnt, int i8, struct cell_scratch *cs,
                  struct team *tm, const struct pw_progress *progress, struct pw_error *err)
{
    const struct metric_ctx *m = s->m;
    size_t d = m->d, k = s->k;
    int cosine = m->metric == KNN_COSINE, gram = cs->amx || i8;
    cs->unit = cosine && i8;
    knn_cell_centre(s, mem, cnt, cs, cs->unit, tm);
    for (size_t a = 0; a < cnt; a++)
        cs->thr[a] = i8 ? INFINITY : s->hd[(size_t)mem[a] * k];
    if (i8)
        knn_screen_bounds(s, cnt, cs);
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

/* Scratch for cells of up to `biggest` rows (in_place: the one cell of knn_whole_join).
 * Columns per chunk: the packed chunk is at most 1% of the input (n / 100 rows; int8
 * rows are a quarter of float ones: n / 25) but 512 rows at least.  Smaller chunks pack
 * each block more often, which costs time on large inputs; whole cells would set the
 * peak RSS on mid-sized ones. */
int knn_cell_scratch_init(struct cell_scratch *cs, const struct nnd *s, size_t biggest, int use_amx,
                          struct knn_screen *screen, int in_place, struct pw_error *err)
{
    size_t n = s->n, d = s->m->d;
    memset(cs, 0, sizeof *cs);
    cs->amx = use_amx && gram_amx_usable();
    size_t share = !cs->amx && screen ? 25 : 100;
    cs->cols = (n / share + PART_ROWS - 1) / PART_ROWS * PART_ROWS;
    cs->cols = cs->cols > PART_COLS ? cs->cols : PART_COLS;
    if (!cs->amx && screen) {
        cs->screen = screen;
        cs->bound = malloc(biggest * sizeof *cs->bound);
        cs->mld = cs->cols / GRAM_COLS; /* cols is a multiple of PART_ROWS */
        cs->hits = malloc((size_t)PART_ROWS * cs->mld * sizeof *cs->hits);
        cs->rlim = malloc((size_t)PART_ROWS * sizeof *cs->rlim);
    }
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
    _Static_assert(sizeof *cs->vals == sizeof *cs->hit_cols,
                   "vals and hit_cols share their memory");
    cs->vals = malloc((size_t)s->threads * biggest * sizeof *cs->vals);
    cs->seen = calloc(n, 1);
    if ((cs->screen && (!cs->bound || !cs->hits || !cs->rlim)) || !cs->centre || !cs->sum ||
        !cs->dots || !cs->g || !cs->thr || !cs->vals || !cs->seen)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell of %zu rows", biggest);
    return 0;
}
