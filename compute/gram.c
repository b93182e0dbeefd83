/* gram.c - dot products among a set of rows (see gram.h): the common calls, and the
 * AMX-BF16 kind (the int8 kind's packing and kernel are gram_i8.c's).
 *
 * Layout.  AMX's TDPBF16PS adds A (16 rows x 32 bf16) times B (16 x 16 pairs of bf16,
 * "VNNI" order) into a 16 x 16 float tile.  The row block is kept row-major (A tiles
 * load straight from it); the set is kept as B tiles: for each 16-row panel and each
 * 32-dim step, tile row r holds, for each of the panel's rows j, the pair of dims
 * (2r, 2r + 1) of the step.  hi and lo tiles alternate.  The kernel is 32 rows by 32
 * columns, C += hi.hi' + hi.lo' + lo.hi' step by step (tiles 0-3 C, 4-5 A, 6-7 B, A's
 * and B's halves loaded in turn); an odd last panel takes a 32 x 16 kernel with the
 * same sums in the same order, so a value does not depend on the pairing. */
#include "gram.h"
#include "gram_i8.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GRAM_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Only machines with AMX run the packing: let it use AVX-512. */
#define GRAM_VEC __attribute__((target("avx512f,avx512bw,avx512vl")))
#else
#define GRAM_VEC
#endif

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

static size_t round_up(size_t x, size_t m)
{
    return (x + m - 1) / m * m;
}

/* float -> bf16, round to nearest even (inputs are finite: dense_validate ran). */
static inline uint16_t bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float bf16_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* x = hi + lo + (a rest of ~2^-16 |x|) */
static inline void split(float x, uint16_t *hi, uint16_t *lo)
{
    *hi = bf16(x);
    *lo = bf16(x - bf16_float(*hi));
}

/* Asked again on every call (a k-NN build asks once): no state kept here. */
int gram_amx_usable(void)
{
#ifdef GRAM_AMX
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    int tile = (d >> 24) & 1, bf = (d >> 22) & 1;
    __cpuid(1, a, b, c, d);
    if (!tile || !bf || !((c >> 27) & 1)) /* AMX-TILE, AMX-BF16, OSXSAVE */
        return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) != 3) /* XTILECFG and XTILEDATA enabled by the OS */
        return 0;
    /* Linux hands out the 8 KB of tile state per thread only once the process asked
     * (asking again is harmless). */
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

int gram_vnni_usable(void)
{
    return gram_i8_usable();
}

int gram_init(struct gram *g, enum gram_kind kind, size_t cap, size_t d, size_t block_rows,
              int threads, struct pw_error *err)
{
    memset(g, 0, sizeof *g);
    g->kind = kind;
    g->d = d;
    g->dp = round_up(d, 32);
    g->a_cap = round_up(block_rows, GRAM_ROWS);
    threads = threads > 0 ? threads : 1;
    /* per thread: 16 rows' hi, then their lo, on their way into a panel (int8: a row) */
    g->scratch = aligned_alloc(64, (size_t)threads * 32 * g->dp * sizeof *g->scratch);
    if (kind == GRAM_VNNI_I8) {
        if (!g->scratch || gram_i8_init(g, cap, block_rows)) {
            gram_free(g);
            return pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell's %zu-row chunks",
                                cap);
        }
        return 0;
    }
    /* one uint32 (a hi and a lo bf16) per value */
    g->panels = aligned_alloc(64, round_up(cap, 16) * g->dp * sizeof *g->panels);
    g->a = aligned_alloc(64, 2 * g->a_cap * g->dp * sizeof *g->a);
    if (!g->panels || !g->a || !g->scratch) {
        gram_free(g);
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell's %zu-row chunks", cap);
    }
    return 0;
}

void gram_free(struct gram *g)
{
    gram_i8_free(g);
    free(g->panels);
    free(g->a);
    free(g->scratch);
    memset(g, 0, sizeof *g);
}

void gram_source(struct gram *g, const float *x, const float *centre)
{
    g->x = x;
    g->centre = centre;
    g->fac = NULL;
}

void gram_row_factors(struct gram *g, const float *f)
{
    g->fac = f;
}

void gram_set(struct gram *g, const int32_t *idx, size_t cnt)
{
    g->idx = idx;
    g->cnt = cnt;
}

void gram_rowset(struct gram *g, const int32_t *idx, size_t rows)
{
    g->aidx = idx;
    g->rows = rows;
}

/* hi[t], lo[t] of row[t] - centre[t] (centre may be NULL) for t < d, zeros up to dp;
 * all zeros for a NULL row (the padding of a panel or a block). */
GRAM_VEC static void split_row(const float *row, const float *centre, size_t d, size_t dp,
                               uint16_t *hi, uint16_t *lo)
{
    if (!row)
        d = 0;
    else if (centre)
        for (size_t t = 0; t < d; t++)
            split(row[t] - centre[t], hi + t, lo + t);
    else
        for (size_t t = 0; t < d; t++)
            split(row[t], hi + t, lo + t);
    for (size_t t = d; t < dp; t++)
        hi[t] = lo[t] = 0;
}

/* Tile rows of a panel: for each step s and pair q, the 16 rows' pair q of step s. */
#ifdef GRAM_AMX
GRAM_VEC static void transpose_panel(const uint32_t *h2, const uint32_t *l2, size_t dp,
                                     size_t steps, uint32_t *panel)
{
    __m512i rows =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)(dp / 2)));
    for (size_t s = 0; s < steps; s++, panel += 512)
        for (size_t q = 0; q < 16; q++) {
            __m512i h = _mm512_i32gather_epi32(rows, (const void *)(h2 + s * 16 + q), 4);
            __m512i l = _mm512_i32gather_epi32(rows, (const void *)(l2 + s * 16 + q), 4);
            _mm512_store_si512((void *)(panel + q * 16), h);
            _mm512_store_si512((void *)(panel + 256 + q * 16), l);
        }
}
#else
static void transpose_panel(const uint32_t *h2, const uint32_t *l2, size_t dp, size_t steps,
                            uint32_t *panel)
{
    for (size_t s = 0; s < steps; s++, panel += 512)
        for (size_t q = 0; q < 16; q++)
            for (size_t j = 0; j < 16; j++) {
                panel[q * 16 + j] = h2[j * dp / 2 + s * 16 + q];
                panel[256 + q * 16 + j] = l2[j * dp / 2 + s * 16 + q];
            }
}
#endif

void gram_pack(const struct gram *g, int t, int T)
{
    if (g->kind == GRAM_VNNI_I8) {
        gram_i8_pack(g, t, T);
        return;
    }
    size_t d = g->d, dp = g->dp, steps = dp / 32, np = round_up(g->cnt, 16) / 16;
    uint16_t *hi = g->scratch + (size_t)t * 32 * dp, *lo = hi + 16 * dp;
    for (size_t p = np * (size_t)t / (size_t)T; p < np * (size_t)(t + 1) / (size_t)T; p++) {
        for (size_t j = 0; j < 16; j++)
            split_row(p * 16 + j < g->cnt ? g->x + (size_t)g->idx[p * 16 + j] * d : NULL, g->centre,
                      d, dp, hi + j * dp, lo + j * dp);
        transpose_panel((const uint32_t *)hi, (const uint32_t *)lo, dp, steps,
                        g->panels + p * steps * 512);
    }
}

void gram_block(const struct gram *g, int t, int T)
{
    if (g->kind == GRAM_VNNI_I8) {
        gram_i8_block(g, t, T);
        return;
    }
    size_t d = g->d, dp = g->dp, rows = g->rows, pad = round_up(rows, GRAM_ROWS);
    uint16_t *hi = g->a, *lo = g->a + g->a_cap * dp;
    for (size_t r = pad * (size_t)t / (size_t)T; r < pad * (size_t)(t + 1) / (size_t)T; r++)
        split_row(r < rows ? g->x + (size_t)g->aidx[r] * d : NULL, g->centre, d, dp, hi + r * dp,
                  lo + r * dp);
}

#ifdef GRAM_AMX
struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* C (tiles 0-3, 2 x 2) += A (tiles 4-5) . B (tiles 6-7); tile numbers must be constants */
#define DP_2X2()                                                                                   \
    do {                                                                                           \
        _tile_dpbf16ps(0, 4, 6);                                                                   \
        _tile_dpbf16ps(1, 4, 7);                                                                   \
        _tile_dpbf16ps(2, 5, 6);                                                                   \
        _tile_dpbf16ps(3, 5, 7);                                                                   \
    } while (0)

__attribute__((target("amx-tile,amx-bf16"))) static void
amx_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2, float *out, size_t ld)
{
    struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    size_t dp = g->dp, steps = dp / 32, pad = round_up(rows, GRAM_ROWS);
    size_t astride = dp * sizeof *g->a;
    const uint16_t *ahi = g->a, *alo = g->a + g->a_cap * dp;
    size_t p = c1 / 16, pend = (c2 + 15) / 16;
    for (; p + 2 <= pend; p += 2) { /* two panels: C tiles 0-3, A in 4-5, B in 6-7 */
        const uint32_t *b0 = g->panels + p * steps * 512, *b1 = b0 + steps * 512;
        for (size_t r = 0; r < pad; r += 32) {
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (size_t s = 0; s < steps; s++) {
                const uint16_t *h = ahi + r * dp + s * 32, *l = alo + r * dp + s * 32;
                _tile_loadd(4, h, astride);
                _tile_loadd(5, h + 16 * dp, astride);
                _tile_loadd(6, b0 + s * 512, 64);
                _tile_loadd(7, b1 + s * 512, 64);
                DP_2X2(); /* hi.hi' */
                _tile_loadd(6, b0 + s * 512 + 256, 64);
                _tile_loadd(7, b1 + s * 512 + 256, 64);
                DP_2X2(); /* hi.lo' */
                _tile_loadd(4, l, astride);
                _tile_loadd(5, l + 16 * dp, astride);
                _tile_loadd(6, b0 + s * 512, 64);
                _tile_loadd(7, b1 + s * 512, 64);
                DP_2X2(); /* lo.hi' */
            }
            float *o = out + r * ld + (p * 16 - c0);
            _tile_stored(0, o, ld * sizeof *out);
            _tile_stored(1, o + 16, ld * sizeof *out);
            _tile_stored(2, o + 16 * ld, ld * sizeof *out);
            _tile_stored(3, o + 16 * ld + 16, ld * sizeof *out);
        }
    }
    for (; p < pend; p++) { /* one panel: C tiles 0-1, A's hi and lo in 2-5, B's in 6-7 */
        const uint32_t *panel = g->panels + p * steps * 512;
        for (size_t r = 0; r < pad; r += 32) {
            _tile_zero(0);
            _tile_zero(1);
            for (size_t s = 0; s < steps; s++) {
                const uint16_t *h = ahi + r * dp + s * 32, *l = alo + r * dp + s * 32;
                _tile_loadd(2, h, astride);
                _tile_loadd(3, h + 16 * dp, astride);
                _tile_loadd(4, l, astride);
                _tile_loadd(5, l + 16 * dp, astride);
                _tile_loadd(6, panel + s * 512, 64);
                _tile_loadd(7, panel + s * 512 + 256, 64);
                _tile_dpbf16ps(0, 2, 6);
                _tile_dpbf16ps(0, 2, 7);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 3, 6);
                _tile_dpbf16ps(1, 3, 7);
                _tile_dpbf16ps(1, 5, 6);
            }
            float *o = out + r * ld + (p * 16 - c0);
            _tile_stored(0, o, ld * sizeof *out);
            _tile_stored(1, o + 16 * ld, ld * sizeof *out);
        }
    }
    _tile_release();
}
#endif

void gram_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2, float *out,
               size_t ld)
{
    if (g->kind == GRAM_VNNI_I8) {
        gram_i8_rows(g, rows, c0, c1, c2, out, ld, NULL);
        return;
    }
#ifdef GRAM_AMX
    amx_rows(g, rows, c0, c1, c2, out, ld);
#else
    (void)g, (void)rows, (void)c0, (void)c1, (void)c2, (void)out, (void)ld;
#endif
}

void gram_rows_filtered(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2,
                        float *out, size_t ld, const struct gram_filter *f)
{
    gram_i8_rows(g, rows, c0, c1, c2, out, ld, f);
}
