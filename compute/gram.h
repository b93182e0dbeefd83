/* gram.h - dot products among a gathered set of rows (a k-NN cell), on Intel AMX.
 *
 * AMX multiplies bf16 tiles (8-bit mantissas) into float sums, 16x the float FMA rate
 * of AVX-512.  Each value is split as x = hi + lo, both bf16, and a.b is summed as
 * hi.hi' + hi.lo' + lo.hi': the dropped lo.lo' and the rest of the split are ~2^-16 of
 * each term, so neighbour rankings match float32 sgemm's (the test checks the error
 * against double sums).  gram_amx_usable() says whether the CPU has AMX-BF16 and the
 * kernel grants it to this process; on other machines callers keep sgemm.
 *
 * gram_pack() converts and lays out the set's rows once; gram_rows() then fills a row
 * block's dot products against a range of the set's rows.  One gram_rows call runs on
 * one thread; calls on disjoint outputs may run at once.  Every value comes from one
 * fixed sequence of instructions, so results do not depend on how callers split work. */
#ifndef PW_GRAM_H
#define PW_GRAM_H

#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

#define GRAM_ROWS 32 /* row blocks are padded to a multiple of this */
#define GRAM_COLS 16 /* column ranges start at a multiple of this */

struct gram {
    size_t cap, cnt, d, dp; /* capacity and count of rows; dims, padded to 32 */
    uint32_t *panels;       /* per 16 rows, per 32 dims: 16 x 16 bf16 pairs, hi then lo */
    uint16_t *a;            /* the current row block: GRAM_ROWS-padded rows, hi then lo */
    size_t a_cap;           /* rows the row-block buffer holds */
    const float *x;         /* gram_pack's arguments, read again by gram_block */
    const int32_t *idx;
    const float *centre;
};

/* 1 when this process may use AMX-BF16 (CPU, OS and the kernel's permission). */
int gram_amx_usable(void);

/* Room for `cap` rows of dimension d and row blocks of up to block_rows rows.
 * 0 or PW_ENOMEM. */
int gram_init(struct gram *g, size_t cap, size_t d, size_t block_rows, struct pw_error *err);
void gram_free(struct gram *g);

/* The set: rows idx[0..cnt) of x (cnt <= cap), less `centre` (d values) unless it is
 * NULL: euclidean distances do not change, and the dots' error, relative to the rows'
 * lengths, shrinks with them.  x, idx and centre must outlive the set's gram_block
 * calls.  Single-threaded. */
void gram_pack(struct gram *g, const float *x, const int32_t *idx, size_t cnt, const float *centre);

/* The row block: set rows [r0, r0 + rows) (rows <= block_rows) made ready for
 * gram_rows.  Single-threaded; call before the gram_rows calls of that block. */
void gram_block(struct gram *g, size_t r0, size_t rows);

/* out[r * ld + (c - c0)] = dot(set row r0 + r, set row c) for r < rows padded up to
 * GRAM_ROWS and c in [c1, c2), padded up to GRAM_COLS (padding reads as zero rows).
 * c0 and c1 are multiples of GRAM_COLS; out has room for the padding. */
void gram_rows(const struct gram *g, size_t rows, size_t c0, size_t c1, size_t c2, float *out,
               size_t ld);

#endif
