/* gram_i8.c - int8 dot products on AVX512-VNNI (gram.h's GRAM_VNNI_I8).
 *
 * VPDPBUSD multiplies unsigned by signed bytes, four at a time into each int32 lane.
 * The set's values (the columns) are stored unsigned, q + 128, the row block's signed:
 * sum (q_b + 128) q_a = q_a.q_b + 128 sum q_a, so each block row's 128 sum q_a (corr)
 * is taken off and the int32 sum is exact (|q| <= 127: at most 255 * 127 a term, 66k
 * dims before it could overflow).  Then dot = (sum - corr) * s_a * s_b in float, one
 * fixed sequence per value, so results do not depend on how calls are split.
 *
 * Layout.  The set is kept in panels of 16 rows: for each group of 4 dims, 64 bytes,
 * row j's 4 values at byte 4j, so one load feeds 16 rows; a block row's 4 values are
 * broadcast to every lane.  The kernel is 8 rows by 32 columns (two panels, 16 int32
 * accumulators); an odd last panel takes an 8 x 16 kernel with the same sums. */
#include "gram_i8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GRAM_VNNI 1
#include <immintrin.h>
#define I8_VEC __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define I8_VEC
#endif

#define I8_MR 8 /* block rows per kernel call; GRAM_ROWS is a multiple */

static size_t round_up(size_t x, size_t m)
{
    return (x + m - 1) / m * m;
}

int gram_i8_usable(void)
{
#ifdef GRAM_VNNI
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

/* max |row[t] f - centre[t]| (centre may be NULL); a maximum is exact in any order.
 * The product and the difference are rounded apart, as in quantize. */
I8_VEC static float row_top(const float *row, float f, const float *centre, size_t d)
{
#ifdef GRAM_VNNI
    __m512 top = _mm512_setzero_ps(), vf = _mm512_set1_ps(f);
    for (size_t t = 0; t < d; t += 16) {
        __mmask16 live = d - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (d - t)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(live, row + t), vf);
        if (centre)
            v = _mm512_maskz_sub_ps(live, v, _mm512_maskz_loadu_ps(live, centre + t));
        top = _mm512_max_ps(top, _mm512_abs_ps(v));
    }
    return _mm512_reduce_max_ps(top);
#else
    float top = 0.0f;
    for (size_t t = 0; t < d; t++) {
        volatile float p = row[t] * f; /* rounded before the difference */
        float v = fabsf(centre ? p - centre[t] : p);
        top = v > top ? v : top;
    }
    return top;
#endif
}

float gram_i8_scale(const float *row, float f, const float *centre, size_t d)
{
    return row_top(row, f, centre, d) / 127.0f;
}

/* The scale and the values of row f - centre; dims past d (up to dp) are 0; a NULL row
 * is all 0.  Only VNNI machines run it: AVX-512, where the conversion rounds to nearest
 * even, as lrintf. */
I8_VEC static float quantize(const float *row, float f, const float *centre, size_t d, size_t dp,
                             int8_t *q)
{
    float top = row ? row_top(row, f, centre, d) : 0.0f;
    size_t t = 0;
#ifdef GRAM_VNNI
    if (top > 0.0f) {
        __m512 inv = _mm512_set1_ps(127.0f / top), vf = _mm512_set1_ps(f);
        for (; t < d; t += 16) {
            __mmask16 live = d - t >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (d - t)) - 1);
            __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(live, row + t), vf);
            if (centre)
                v = _mm512_maskz_sub_ps(live, v, _mm512_maskz_loadu_ps(live, centre + t));
            __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(v, inv));
            r = _mm512_max_epi32(_mm512_min_epi32(r, _mm512_set1_epi32(127)),
                                 _mm512_set1_epi32(-127));
            _mm_mask_storeu_epi8(q + t, live, _mm512_cvtepi32_epi8(r));
        }
        t = d;
    }
#endif
    memset(q + t, 0, dp - t);
    return top / 127.0f;
}

int gram_i8_init(struct gram *g, size_t cap, size_t block_rows)
{
    size_t c16 = round_up(cap, 16);
    g->p8 = aligned_alloc(64, c16 * g->dp);
    g->a8 = aligned_alloc(64, g->a_cap * g->dp);
    g->sset = aligned_alloc(64, c16 * sizeof *g->sset);
    g->srow = malloc(g->a_cap * sizeof *g->srow);
    g->corr = malloc(g->a_cap * sizeof *g->corr);
    (void)block_rows;
    return g->p8 && g->a8 && g->sset && g->srow && g->corr ? 0 : -1;
}

void gram_i8_free(struct gram *g)
{
    free(g->p8);
    free(g->a8);
    free(g->sset);
    free(g->srow);
    free(g->corr);
}

/* Panels [share of t of T]: each row quantized into the thread's scratch (16 rows of dp
 * bytes), then its groups of 4 values placed at 4j of each 64-byte group, plus 128. */
void gram_i8_pack(const struct gram *g, int t, int T)
{
    size_t d = g->d, dp = g->dp, groups = dp / 4, np = round_up(g->cnt, 16) / 16;
    int8_t *q = (int8_t *)g->scratch + (size_t)t * 64 * dp; /* scratch: 64 dp bytes a thread */
    for (size_t p = np * (size_t)t / (size_t)T; p < np * (size_t)(t + 1) / (size_t)T; p++) {
        uint32_t *panel = (uint32_t *)(g->p8 + p * 16 * dp);
        for (size_t j = 0; j < 16; j++) {
            size_t c = p * 16 + j;
            size_t i = c < g->cnt ? (size_t)g->idx[c] : 0;
            const float *row = c < g->cnt ? g->x + i * d : NULL;
            g->sset[c] = quantize(row, g->fac ? g->fac[i] : 1.0f, g->centre, d, dp, q);
            for (size_t s = 0; s < groups; s++) {
                uint32_t w;
                memcpy(&w, q + 4 * s, 4);
                panel[s * 16 + j] = w ^ 0x80808080u; /* each byte + 128 */
            }
        }
    }
}

void gram_i8_block(const struct gram *g, int t, int T)
{
    size_t d = g->d, dp = g->dp, rows = g->rows, pad = round_up(rows, GRAM_ROWS);
    for (size_t r = pad * (size_t)t / (size_t)T; r < pad * (size_t)(t + 1) / (size_t)T; r++) {
        int8_t *q = g->a8 + r * dp;
        size_t i = r < rows ? (size_t)g->aidx[r] : 0;
        g->srow[r] = quantize(r < rows ? g->x + i * d : NULL, g->fac ? g->fac[i] : 1.0f, g->centre,
                              d, dp, q);
        int32_t sum = 0;
        for (size_t u = 0; u < dp; u++)
            sum += q[u];
        g->corr[r] = 128 * sum;
    }
}

#ifdef GRAM_VNNI
/* out[r][c] = (acc - corr_r) * (s_r * s_c) for 16 columns from col. */
I8_VEC static inline void store16(__m512i acc, int32_t corr, float sr, const float *sc, float *o)
{
    __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_set1_epi32(corr)));
    __m512 s = _mm512_mul_ps(_mm512_set1_ps(sr), _mm512_loadu_ps(sc));
    _mm512_storeu_ps(o, _mm512_mul_ps(v, s));
}

/* A gram_filter's values for one panel of 16 set rows from column c: which lanes are
 * set rows (live), their values and column limits (-inf where there is none).  Kept in
 * memory, not registers: the kernel needs every register. */
struct panel_filter {
    __mmask16 live;
    float gc[16], clim[16];
};

I8_VEC static void panel_filter_at(const struct gram_filter *f, size_t c, size_t c2,
                                   struct panel_filter *pf)
{
    pf->live = c2 - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (c2 - c)) - 1);
    _mm512_storeu_ps(pf->gc, _mm512_maskz_loadu_ps(pf->live, f->gc + c));
    __mmask16 lim = 0;
    if (f->clim)
        lim = f->cfrom <= c        ? pf->live
              : f->cfrom >= c + 16 ? 0
                                   : (__mmask16)(pf->live & ~((1u << (f->cfrom - c)) - 1));
    _mm512_storeu_ps(pf->clim, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lim, f->clim + c));
}

/* Block row r's 16 values against panel pf (set rows from sc: their scales): v =
 * max(0, a (gr + gc) - b dot) (the dot as store16 makes it), the lanes at most
 * max(rlim, clim) into *mask, and the values into o when a lane passed. */
I8_VEC static inline void filter16(__m512i acc, const struct gram *g, const struct gram_filter *f,
                                   size_t r, const float *sc, const struct panel_filter *pf,
                                   float *o, uint16_t *mask)
{
    __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, _mm512_set1_epi32(g->corr[r])));
    __m512 dot = _mm512_mul_ps(v, _mm512_mul_ps(_mm512_set1_ps(g->srow[r]), _mm512_loadu_ps(sc)));
    __m512 sum = _mm512_add_ps(_mm512_set1_ps(f->gr[r]), _mm512_loadu_ps(pf->gc));
    __m512 t = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(f->a), sum),
                             _mm512_mul_ps(_mm512_set1_ps(f->b), dot));
    t = _mm512_max_ps(_mm512_setzero_ps(), t); /* 0 for t < 0, else t (as t < 0 ? 0 : t) */
    __m512 lim =
        _mm512_max_ps(_mm512_set1_ps(f->rlim ? f->rlim[r] : -INFINITY), _mm512_loadu_ps(pf->clim));
    __mmask16 m = _mm512_mask_cmp_ps_mask(pf->live, t, lim, _CMP_LE_OQ);
    *mask = (uint16_t)m;
    if (m)
        _mm512_storeu_ps(o, t);
}

/* 8 block rows from a against the two panels b0, b1 (two) or b0 alone, into sums (row
 * i's 32 or 16 int32 sums from sums + 32 i).  The sums leave through memory so that the
 * loop keeps its 16 accumulators in registers whatever the caller does with them. */
__attribute__((always_inline)) I8_VEC static inline void
kernel(const int8_t *a, size_t dp, const uint8_t *b0, const uint8_t *b1, int two, int32_t *sums)
{
    __m512i acc[I8_MR][2];
    for (int i = 0; i < I8_MR; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (size_t s = 0; s < dp / 4; s++) {
        __m512i p0 = _mm512_load_si512((const void *)(b0 + s * 64));
        __m512i p1 = two ? _mm512_load_si512((const void *)(b1 + s * 64)) : p0;
        for (int i = 0; i < I8_MR; i++) {
            int32_t w;
            memcpy(&w, a + (size_t)i * dp + s * 4, 4);
            __m512i q = _mm512_set1_epi32(w);
            acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], p0, q);
            if (two)
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], p1, q);
        }
    }
    for (int i = 0; i < I8_MR; i++) {
        _mm512_store_si512((void *)(sums + 32 * i), acc[i][0]);
        if (two)
            _mm512_store_si512((void *)(sums + 32 * i + 16), acc[i][1]);
    }
}

/* A kernel's sums out as dots (store16), rows r.. of the block, panels from p. */
I8_VEC static void tile_dots(const struct gram *g, const int32_t *sums, size_t r, size_t p,
                             size_t c0, int two, float *out, size_t ld)
{
    for (int i = 0; i < I8_MR; i++) {
        size_t row = r + (size_t)i;
        float *o = out + row * ld + (p * 16 - c0);
        for (int h = 0; h <= two; h++)
            store16(_mm512_load_si512((const void *)(sums + 32 * i + 16 * h)), g->corr[row],
                    g->srow[row], g->sset + p * 16 + 16 * (size_t)h, o + 16 * h);
    }
}

/* A kernel's sums out through the filter f (rows past the block's are padding, left
 * out). */
I8_VEC static void tile_filtered(const struct gram *g, const struct gram_filter *f,
                                 const int32_t *sums, size_t r, size_t rows, size_t p, size_t c0,
                                 int two, const struct panel_filter pf[2], float *out, size_t ld)
{
    for (int i = 0; i < I8_MR && r + (size_t)i < rows; i++) {
        size_t row = r + (size_t)i;
        float *o = out + row * ld + (p * 16 - c0);
        uint16_t *mask = f->mask + row * f->mld + (p * 16 - c0) / 16;
        for (int h = 0; h <= two; h++)
            filter16(_mm512_load_si512((const void *)(sums + 32 * i + 16 * h)), g, f, row,
                     g->sset + p * 16 + 16 * (size_t)h, &pf[h], o + 16 * h, mask + h);
    }
}

I8_VEC static void vnni_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2,
                             float *out, size_t ld, const struct gram_filter *f)
{
    size_t dp = g->dp, pad = round_up(rows, GRAM_ROWS);
    size_t p = c1 / 16, pend = (c2 + 15) / 16;
    int32_t sums[I8_MR * 32] __attribute__((aligned(64)));
    struct panel_filter pf[2];
    while (p < pend) {
        int two = p + 2 <= pend;
        const uint8_t *b0 = g->p8 + p * 16 * dp, *b1 = b0 + 16 * dp;
        if (f) {
            panel_filter_at(f, p * 16, c2, &pf[0]);
            if (two)
                panel_filter_at(f, p * 16 + 16, c2, &pf[1]);
        }
        for (size_t r = 0; r < pad; r += I8_MR) {
            if (two)
                kernel(g->a8 + r * dp, dp, b0, b1, 1, sums);
            else
                kernel(g->a8 + r * dp, dp, b0, b0, 0, sums);
            if (f)
                tile_filtered(g, f, sums, r, rows, p, c0, two, pf, out, ld);
            else
                tile_dots(g, sums, r, p, c0, two, out, ld);
        }
        p += two ? 2 : 1;
    }
}
#endif

void gram_i8_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2, float *out,
                  size_t ld, const struct gram_filter *f)
{
#ifdef GRAM_VNNI
    vnni_rows(g, rows, c0, c1, c2, out, ld, f);
#else
    (void)g, (void)rows, (void)c0, (void)c1, (void)c2, (void)out, (void)ld, (void)f;
#endif
}
