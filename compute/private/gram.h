/* gram.h - dot products among a gathered set of rows (a k-NN cell), on Intel AMX
 * (float-accurate) or in int8 on AVX512-VNNI (approximate, with a stated error bound).
 *
 * GRAM_AMX_BF16: AMX multiplies bf16 tiles (8-bit mantissas) into float sums, 16x the float FMA
 * rate of AVX-512.  Each value is split as x = hi + lo, both bf16, and a.b is summed as hi.hi' +
 * hi.lo' + lo.hi': the dropped lo.lo' and the rest of the split are ~2^-16 of each term, so
 * neighbour rankings match float32 sgemm's (the test checks the error against double sums).
 * gram_amx_usable() says whether the CPU has AMX-BF16 and the kernel grants it to this process; on
 * other machines callers keep sgemm.
 *
 * GRAM_VNNI_I8 (gram_i8.c): each row is rounded to int8 with its own scale s = max |x_t|
 * / 127 (symmetric, to nearest), the products summed exactly in int32 by VPDPBUSD (64
 * multiply-adds an instruction against a float FMA's 16) and scaled back.  The error of
 * a.b is e_a.b + a.e_b - e_a.e_b with rounding errors e of at most s/2 a value; taken as
 * independent and uniform, e_a.b has the deviation s_a |b| / sqrt(12), and the sum of
 * many such terms is near normal: gram_i8_bound, GRAM_I8_Z = 5 deviations of it, is
 * exceeded with a chance of 6e-7 a pair.  Callers use these dots to pre-screen
 * candidates and rank them again on exact distances; there the bound matters only for
 * each row's true k nearest (n k pairs), so it misses a neighbour about n k 6e-7 times:
 * under 2 in the 3 million pairs of 200k rows at k = 15.  gram_vnni_usable() says whether the CPU
 * has AVX512-VNNI and -BW.
 *
 * A "set" of rows (the columns of the products) is packed once into panels, a "row
 * block" into row-major tiles; gram_rows() then fills the block's dot products against
 * a range of the set.  Packing and products split across threads as the caller likes:
 * every value comes from one fixed sequence of instructions, so results do not depend
 * on the split. */
#ifndef PW_GRAM_H
#define PW_GRAM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

#define GRAM_ROWS 32  /* row blocks are padded to a multiple of this */
#define GRAM_COLS 16  /* column ranges start at a multiple of this */
#define GRAM_I8_Z 5.0 /* deviations in gram_i8_bound; see there */

enum gram_kind { GRAM_AMX_BF16 = 0, GRAM_VNNI_I8 = 1 };

struct gram {
    enum gram_kind kind;
    size_t d, dp;      /* dims, and dims padded to 32 */
    size_t a_cap;      /* rows the row-block buffer holds (a multiple of GRAM_ROWS) */
    uint32_t *panels;  /* per 16 set rows, per 32 dims: 16 x 16 bf16 pairs, hi then lo */
    uint16_t *a;       /* the row block, row-major: a_cap rows' hi, then their lo */
    uint16_t *scratch; /* per thread: 16 rows' hi and lo, for gram_pack */
    uint8_t *p8;       /* int8: per 16 set rows, per 4 dims: the 16 rows' 4 values + 128 */
    int8_t *a8;        /* int8: the row block, row-major, dp values a row */
    float *sset;       /* int8: the set rows' scales (cap padded to 16) */
    float *srow;       /* int8: the block rows' scales (a_cap) */
    int32_t *corr;     /* int8: 128 * the sum of each block row's values (the +128 offset) */
    const float *x;    /* gram_source */
    const float *centre;
    const float *fac;   /* gram_row_factors */
    const int32_t *idx; /* gram_set */
    size_t cnt;
    const int32_t *aidx; /* gram_rowset */
    size_t rows;
};

/* 1 when this process may use AMX-BF16 (CPU, OS and the kernel's permission). */
int gram_amx_usable(void);

/* 1 when the CPU has AVX512-VNNI and AVX512-BW (GRAM_VNNI_I8). */
int gram_vnni_usable(void);

/* Room for sets of `cap` rows of dimension d, row blocks of up to block_rows rows, and
 * packing by up to `threads` threads, for products of the given kind (the caller checked
 * it is usable).  0 or PW_ENOMEM. */
int gram_init(struct gram *g, enum gram_kind kind, size_t cap, size_t d, size_t block_rows,
              int threads, struct pw_error *err);
void gram_free(struct gram *g);

/* Where rows come from: x (d floats per row) less `centre` (d values) unless it is
 * NULL: euclidean distances do not change, and the dots' error, relative to the rows'
 * lengths, shrinks with them.  x and centre must outlive the packing calls. */
void gram_source(struct gram *g, const float *x, const float *centre);

/* GRAM_VNNI_I8 only: row i of the source is x_i f[i] (before the centre is taken off),
 * e.g. f the inverse norms: unit rows; f NULL (gram_source's default): x_i. */
void gram_row_factors(struct gram *g, const float *f);

/* The set (the columns): rows idx[0..cnt) of the source, cnt <= cap; then gram_pack
 * for t = 0..T-1 (T <= threads; the calls may run at once) packs share t of it. */
void gram_set(struct gram *g, const int32_t *idx, size_t cnt);
void gram_pack(const struct gram *g, int t, int T);

/* The row block: rows idx[0..rows) of the source (rows <= block_rows); then gram_block
 * for t = 0..T-1 packs share t of it.  Both pack calls only read the source. */
void gram_rowset(struct gram *g, const int32_t *idx, size_t rows);
void gram_block(const struct gram *g, int t, int T);

/* out[r * ld + (c - c0)] = dot(block row r, set row c) for r < rows padded up to
 * GRAM_ROWS and c in [c1, c2), padded up to GRAM_COLS (padding reads as zero rows).
 * c0 and c1 are multiples of GRAM_COLS; out has room for the padding; rows is the
 * block's.  Calls on disjoint outputs may run at once. */
void gram_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2, float *out,
               size_t ld);

/* GRAM_VNNI_I8: what gram_rows_filtered keeps.  Each product becomes
 * v = max(0, a (gr[r] + gc[c]) - b dot) (a, b powers of two: a distance from a dot
 * product, e.g. a = 1, b = 2 and squared lengths), and lane c of row r passes when
 * v <= rlim[r] or, for set rows c >= cfrom, v <= clim[c]. */
struct gram_filter {
    float a, b;
    const float *gr;   /* the block's rows' values, r < rows padded up to GRAM_ROWS */
    const float *gc;   /* the set's values, by set index */
    const float *rlim; /* the block's rows' limits (padded as gr), or NULL: none */
    const float *clim; /* the set's limits, by set index, or NULL: none */
    size_t cfrom;      /* set rows below this have no column limit */
    uint16_t *mask;    /* out: mask[r * mld + (c - c0) / 16] bit (c - c0) % 16: lane c passed */
    size_t mld;
};

/* gram_rows for GRAM_VNNI_I8 with the filter's values in place of the dots: every
 * row's masks for [c1, c2) are written (padding lanes never pass); out holds the 16
 * values of each lane group with a lane that passed, and the others are left as they
 * were, so that a caller that scans only the passing lanes never waits on the memory
 * traffic of the whole block.  Same values and same threading rules as gram_rows. */
void gram_rows_filtered(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2,
                        float *out, size_t ld, const struct gram_filter *f);

/* GRAM_VNNI_I8: the scale s of a row (row f - centre, centre may be NULL), as packed. */
float gram_i8_scale(const float *row, float f, const float *centre, size_t d);

/* GRAM_VNNI_I8: the bound on |dot - a.b| above for rows of d values, scales sa, sb and
 * lengths na = |a|, nb = |b| (maxima give a bound for every pair they cover): GRAM_I8_Z
 * deviations of e_a.b + a.e_b - e_a.e_b, whose variance is (sa^2 nb^2 + sb^2 na^2) / 12
 * + d sa^2 sb^2 / 144. */
static inline double gram_i8_bound(double sa, double na, double sb, double nb, size_t d)
{
    double var =
        (sa * sa * nb * nb + sb * sb * na * na) / 12.0 + (double)d * sa * sa * sb * sb / 144.0;
    return GRAM_I8_Z * sqrt(var);
}

#endif
