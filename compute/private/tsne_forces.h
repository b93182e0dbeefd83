/* tsne_forces.h - the repulsive half of the t-SNE gradient, for tsne.c (internal to compute/).
 *
 * For a 2-D layout Y (n points, float, row-major) these compute, for every point i,
 * rep_i = sum_j q_ij^2 (y_i - y_j) and the normaliser Z = sum_{i != j} q_ij, with
 * q_ij = 1 / (1 + |y_i - y_j|^2).
 *
 * tsne_fft: FFT-accelerated interpolation (FIt-SNE, Linderman et al. 2019; openTSNE's 2-D
 * layout of the grid): equispaced nodes cover the layout's bounding square plus a margin;
 * every coordinate takes the `p` nodes around it (a centred Lagrange stencil, not
 * FIt-SNE's fixed intervals of p nodes, at whose ends the interpolation extrapolates and
 * is about 12 times less accurate for p = 4); the charges (1, y_1, y_2) are spread onto
 * the nodes, convolved with the kernel 1/(1+d^2)^2 by FFTW and interpolated back.  The
 * node spacing is at most interval_width / p, the node count at least min_intervals * p,
 * rounded up to 2^a * {1, 3, 5}; the spacing is taken from a fixed ladder so that the
 * kernel's spectrum is recomputed only when it or the node count changes.  Work
 * O(n p^2 + G^2 log G), G = nodes per axis.  Defaults: 5 nodes per stencil, spacing <= 0.5:
 * relative L2 force error 0.6-2.2 % on 6k and 20k final layouts (isotropic, clustered,
 * Fashion-MNIST), at or below FIt-SNE's layout with 4 nodes per interval of 1.5 (0.9-3.5 %)
 * with a quarter fewer nodes per axis (bench/compute/CHANGES-16.md, "tsne8").  The result
 * depends only on the layout and the options, not on the team that runs it: each charge grid
 * is filled by one thread in point order and every sum runs in a fixed order.  FFTW's
 * planner is not thread-safe: one tsne_fft_* call at a time per process.
 *
 * When a layout is wide for its point count (many well-separated tight clusters, duplicated
 * rows collapsed into far-apart points), the grid's transforms cost more than sums over
 * blocks of points (tsne_far, below: exact between near blocks, interpolated between
 * well-separated ones): tsne_fft_repulsion then computes those instead, by cost models of
 * both (of n, the grid's size and the layout's blocks; not by timing, so the bytes do not
 * depend on the machine).
 *
 * tsne_exact: the O(n^2) sums, in float, for small n (and as a test reference).
 *
 * Memory: tsne_fft_new allocates the workspace (freed by tsne_fft_free), the grids and, the
 * first time the block sums are considered, their workspace (tsne_far_new); rep is 2n floats
 * owned by the caller.  Errors: PW_ENOMEM; PW_EINVAL when the layout has non-finite
 * coordinates (a diverged optimisation).  A few points far from the rest (at most about
 * sqrt(n), beyond a quantile box widened by half its width) are left off the grid and summed
 * exactly, O(n) each: the grid is sized for the others, so its cost and accuracy do not
 * follow a handful of flung-out points.  Layouts still wider than 2,560 nodes (1,280 units
 * by default) get a wider spacing, hence larger errors, instead of larger grids. */
#ifndef PW_TSNE_FORCES_H
#define PW_TSNE_FORCES_H

#include <stddef.h>

#include "pw_error.h"
#include "team.h"

struct tsne_fft;

struct tsne_fft_options {
    size_t interp_points;  /* 5 nodes per stencil (openTSNE's n_interpolation_points: 3) */
    size_t min_intervals;  /* 16: at least 16 * interp_points nodes per axis (openTSNE: 50 * 3) */
    double interval_width; /* 2.5: node spacing <= interval_width / interp_points (openTSNE: 1/3) */
    int always_grid;       /* 0: the block sums when they cost less (below); 1: the grid always */
};

void tsne_fft_options_default(struct tsne_fft_options *opt);

int tsne_fft_new(size_t n, const struct tsne_fft_options *opt, struct tsne_fft **out,
                 struct pw_error *err);
void tsne_fft_free(struct tsne_fft *f);

/* Independent work the caller wants done during the repulsion: task(ctx, i) runs once
 * for every i < ntasks, on any thread, interleaved with the repulsion's own tasks so that
 * no thread idles at the end of its jobs (t-SNE passes its attraction blocks). */
struct tsne_side_work {
    void (*task)(void *ctx, size_t i);
    void *ctx;
    size_t ntasks;
};

/* rep (2n) and *z for layout Y (2n) as described above, on the threads of team tm (team.h;
 * NULL: the caller's only - the result does not depend on it); side may be NULL. */
int tsne_fft_repulsion(struct tsne_fft *f, struct team *tm, const float *Y, float *rep, double *z,
                       const struct tsne_side_work *side, struct pw_error *err);

/* Exact sums over all pairs, each pair evaluated once (scratch: tsne_exact_scratch(n)
 * floats), on team tm (NULL: the caller), with the side tasks (may be NULL) in the same job;
 * the result does not depend on the team. */
size_t tsne_exact_scratch(size_t n);
void tsne_exact_repulsion(const float *Y, size_t n, struct team *tm, float *rep, float *scratch,
                          double *z, const struct tsne_side_work *side);

/* Exact sums between near blocks of points, interpolation between well-separated ones
 * (tsne_far.c): for the layouts where the grid costs more.  tsne_far_new allocates the
 * workspace for n points (about 27n floats, and 6n more per level of blocks: 4 levels at
 * 6,000 points); tsne_far_plan takes layout Y, finds the well-separated block pairs and
 * returns the method's estimated cost in ns on one core (the grid's cost model's unit,
 * tsne_fft.c; infinite when the plan does not fit its workspace); tsne_far_repulsion then
 * computes rep and *z for that layout on team tm (NULL: the caller), with the side tasks
 * (may be NULL).  tsne_far_min_cost(n) is a lower bound of the planned cost for any layout
 * of n points.  The result depends on the layout only, not on the team. */
struct tsne_far;
int tsne_far_new(size_t n, struct tsne_far **out, struct pw_error *err);
void tsne_far_free(struct tsne_far *f);
double tsne_far_min_cost(size_t n);
double tsne_far_plan(struct tsne_far *f, const float *Y);
void tsne_far_repulsion(struct tsne_far *f, struct team *tm, float *rep, double *z,
                        const struct tsne_side_work *side);

#endif
