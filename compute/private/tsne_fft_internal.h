/* tsne_fft_internal.h - what tsne_fft.c (the grid, and the switch to the block sums) and
 * tsne_fft_far.c (the far list: the points left off the grid and their exact sums) share:
 * the workspace struct tsne_fft and the far list's functions.  Private to tsne_fft*.c; the
 * interface is tsne_forces.h.
 *
 * Memory: struct tsne_fft owns every array it points to.  tsne_fft_new (tsne_fft.c)
 * allocates the per-point arrays, the far list's at tsne_fft_far_capacity(n) entries;
 * tsne_fft.c (re)allocates the grids and plans when the node count changes and the block
 * sums' workspace the first time they are considered; tsne_fft_free frees all of it.  The
 * far list's functions allocate nothing: they write the far list's fields (nfar, is_far,
 * far, far_y) and the caller's rep and the workspace's zi. */
#ifndef PW_TSNE_FFT_INTERNAL_H
#define PW_TSNE_FFT_INTERNAL_H

#include <fftw3.h>
#include <stddef.h>
#include <stdint.h>

#include "team.h"
#include "tsne_forces.h"

#define NTERMS 3 /* charges per point: 1, y1, y2 */

struct tsne_fft {
    size_t n, p, min_intervals;
    double interval_width;
    int always_grid;
    size_t far_max, nfar;     /* capacity of the far list (see tsne_fft_find_far), points in it */
    uint8_t *is_far;          /* n: 1 for a point left out of the grid */
    int32_t *far;             /* far_max: those points, in index order */
    float *far_y;             /* 2 far_max: their coordinates */
    struct tsne_far *blocks;  /* once the block sums are considered (tsne_far.c) */
    size_t blocks_skip;       /* calls left before the block sums are planned again */
    int32_t *base;            /* 2n: first node of the point's stencil, per axis */
    float *w;                 /* 2pn: Lagrange weights, per point x then y */
    float *zi;                /* n: per-point part of Z */
    size_t M, N, H;           /* FFT size per axis, nodes per axis (M = 2N), H = M / 2 + 1 */
    float *kr;                /* H rows of 2H floats: the kernel's even rows, then their DFTs */
    fftwf_complex *ks;        /* H x H: kr's columns' DFTs; real parts = the kernel's spectrum */
    fftwf_complex *c[NTERMS]; /* M x H each: charges in rows < N (as floats), then spectra */
    double ks_h;              /* node spacing ks was computed for; 0: none */
    fftwf_plan kern_rows, kern_cols, rows_fwd, cols_fwd, cols_inv, rows_inv;
};

/* Capacity of the far list for n points: at most this many points are left off the grid. */
size_t tsne_fft_far_capacity(size_t n);

/* Shrinks the layout's bounding square [*lo, *hi] to the grid's and fills the far list
 * with the points outside it (none when the whole square is kept). */
void tsne_fft_find_far(struct tsne_fft *f, const float *Y, float *lo, float *hi);

/* rep and zi of the far list's points (exact sums over all points) and the far points'
 * share for all others, added to what the grid wrote; on team tm (NULL: the caller), in
 * fixed 256-point tasks. */
void tsne_fft_far_sums(struct tsne_fft *f, struct team *tm, const float *Y, float *rep);

#endif
