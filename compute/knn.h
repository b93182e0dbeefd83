/* knn.h - k nearest neighbours of every row, exact or approximate.
 *
 * KNN_AUTO (default) picks the exact graph or the approximate one by their predicted
 * work (knn_auto_exact).  Exact: the whole set joined as one cell (below): each pair's
 * dot product once, by sgemm over fixed blocks (euclidean rows centred first), a bounded
 * max-heap per row, then the k survivors' distances recomputed directly.  Approximate: k-means
 * cells of ~part_size rows (kmeans.h) with the `spill` fraction of rows nearest a border
 * also in the neighbouring cell; the exact k-NN inside each cell (sgemm, each pair once)
 * seeds the heaps, then NN-descent rounds repair what crossed cell borders.  With
 * part_size 0 the seed is pynndescent's random projection forest instead (on rows wider
 * than 128 the trees split in a 64-d random sketch; leaves and joins use full rows).
 * The approximate graph is checked against the exact neighbours of 256 sampled rows
 * (knn_probe.h): the rounds stop once that recall estimate reaches 0.98, or as soon as
 * the rounds left cannot bring it to recall_target; then, if it is below the target
 * (data of high intrinsic dimension, where NN-descent stalls), the exact graph is built
 * instead, unless k-means cells of n/16 to n/4 rows are predicted by the probe to hold
 * the neighbours (clusters too big for part_size cells, isotropic inside): then the
 * exact joins inside those cells, with the least spill that holds them, at a sixteenth
 * to a quarter of the exact graph's cost.  Where the probe's estimate of the local
 * intrinsic dimension is above 40 and the part_size cells would not hold the target,
 * neither they nor the rounds run: NN-descent does not repair such data.  So the recall
 * holds on any shape; the price on data of high intrinsic dimension without such
 * clusters is the exact graph's n^2 d / 2 multiply-adds.  On CPUs with AVX512-VNNI and
 * without AMX those multiply-adds (cells and the exact graph) run in int8 on rows wide
 * enough (~200 values) and where a sample of a cell's rows says it pays (knn_screen_gate.h):
 * k + k/2 + 8 candidates a row of the cell on approximate distances, then their exact
 * distances keep k, and rows whose error bound says a neighbour may have been cut are
 * joined again exactly; the graph is the same as on float products but for near-ties.
 * Those wide heaps are held for a range of rows at a time (a pool of them, whose size keeps the
 * graph and the pool within a quarter of the input's bytes), never for every row: a
 * cell bigger than the pool is joined a range at a time, each pair's product computed
 * twice, so the k-NN's memory is the input's, the graph's and a few MB.  Candidate
 * distances are computed in parallel and applied to the heaps in a fixed order, and
 * every sgemm runs on one OpenBLAS thread over fixed row blocks (blas_fixed.h), so the
 * graph depends only on the input, the metric and the seed, not on `threads` nor on
 * the caller's OpenBLAS thread count (restored on return).
 * A point is never its own neighbour; rows are sorted by (distance, index).
 * Distances: euclidean = |a - b|, cosine = 1 - a.b / (|a| |b|) (1 for a zero row).
 * knn_build allocates the graph's arrays; the caller releases them with knn_free. */
#ifndef PW_KNN_H
#define PW_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"
#include "pw_error.h"

enum knn_metric { KNN_EUCLIDEAN = 0, KNN_COSINE = 1 };
enum knn_method { KNN_AUTO = 0, KNN_EXACT = 1, KNN_APPROX = 2 };
#define KNN_NO_ROUNDS     ((size_t)-1)
#define KNN_SCREEN_ALWAYS 2

struct knn_options {
    enum knn_metric metric; /* euclidean */
    enum knn_method method; /* auto: exact when knn_auto_exact says so */
    size_t exact_max_n;     /* 0: auto follows the work (knn_auto_exact); else auto is exact
                               for n <= exact_max_n (umap-learn: below 4096) */
    size_t part_size;       /* 4096: seed NN-descent with the exact k-NN inside k-means cells
                               of this many rows; 0: with pynndescent's RP forest */
    double spill;           /* 0.1: fraction of rows (nearest a cell border) also joined
                               into the neighbouring cell */
    size_t n_trees;         /* 0: pynndescent's min(32, 5 + round(n^0.25)), capped at 16 */
    size_t leaf_size;       /* 0: pynndescent's max(10, k) */
    size_t n_iters;         /* NN-descent rounds at most (they stop early when < delta k n
                               updates); 0: pynndescent's max(5, round(log2 n));
                               KNN_NO_ROUNDS: none (cells only) */
    size_t max_candidates;  /* 0: 2k for k <= 30, else 16 (pynndescent: min(60, k)); see knn.c */
    size_t list_rows;       /* 0: NN-descent samples candidate lists for about 1/64 of the
                               input's bytes at a time (knn_descent.c's knn_list_block); else
                               for this many points at a time */
    double delta;           /* 0.001: pynndescent's early-stop fraction of k*n updates */
    double recall_target;   /* 0.97: the approximate graph's recall, estimated on the exact
                               neighbours of a sample of rows (knn_probe.h), must reach
                               this, else the exact graph is built instead; 0: no check */
    uint64_t seed;          /* 42: the Python task's random_state */
    int threads;            /* <= 0: all cores */
    int amx;                /* 1: the cells' dot products on AMX-BF16 where the CPU has it
                               (gram.h; float-accurate); 0: not on AMX */
    int screen;             /* 1: where AMX is not used and the CPU has AVX512-VNNI, the
                               cells' dot products in int8 pre-screen k + margin candidates
                               per row, ranked again on exact distances (see above), on
                               cells whose rows are wide enough for it to pay (about 200
                               values and more); KNN_SCREEN_ALWAYS: on any width (tests);
                               0: OpenBLAS sgemm there */
    size_t screen_rows;     /* 0: the pre-screen's wide heaps for as many rows as keep the
                               graph and them within a quarter of the input's bytes
                               (knn_cells.c's screen_pool_rows); else for this many rows at a time */
};

enum knn_built {
    KNN_BUILT_EXACT = 0,       /* every pair compared */
    KNN_BUILT_APPROX = 1,      /* cells (or trees) and NN-descent's rounds */
    KNN_BUILT_LARGER_CELLS = 2 /* exact joins inside k-means cells of n/16 to n/4 rows */
};

struct knn_graph {
    size_t n, k;
    int32_t *idx;           /* n*k neighbour indices */
    float *dist;            /* n*k distances, ascending per row */
    enum knn_built built;   /* how the rows were found */
    double recall_estimate; /* the probe's estimate (approximate graphs), 1 for the exact
                               graph, -1 when not measured (recall_target 0) */
    size_t screened;        /* (row, cell) pairs whose neighbours came through the int8
                               pre-screen (the joins that made the graph; a row in two such
                               cells counts twice; 0 without it) */
    size_t rejoined;        /* of those, pairs the error bound could not vouch for, joined
                               again exactly */
    size_t rounds;          /* NN-descent rounds run (0: none, as when the probe found the
                               part_size cells cut neighbours the rounds cannot repair) */
};

void knn_options_default(struct knn_options *opt);

/* "euclidean" | "cosine" -> 0, else PW_EINVAL. */
int knn_parse_metric(const char *name, enum knn_metric *out, struct pw_error *err);

/* 0, PW_EINVAL (bad input, k < 1 or k >= n), PW_ENOMEM, PW_ECANCELED.  On success
 * g owns two arrays; on failure g is left empty.  */
int knn_build(const float *x, size_t n, size_t d, size_t k, const struct knn_options *opt,
              struct knn_graph *g, const struct pw_progress *progress, struct pw_error *err);

void knn_free(struct knn_graph *g);

/* 1 when KNN_AUTO builds the exact graph for n rows of d values.  With exact_max_n set:
 * n <= exact_max_n.  Else, with cells (part_size > 0), when the exact graph's pairs cost
 * less than the approximate path's predicted work: n / 2 pairs a row of blocked
 * products against about part_size a row of the cells', NN-descent's and the probe's,
 * each of which costs a few hundred multiply-adds more than its d (knn.c): at
 * part_size 4096, up to ~20k rows of 96 values, ~10k of 768, never past 6 part_size
 * rows.  With the RP forest (part_size 0): n <= 4096, umap-learn's switch. */
int knn_auto_exact(size_t n, size_t d, const struct knn_options *opt);

/* Fraction of approx's neighbours that are in exact's lists (same n, k). */
double knn_recall(const struct knn_graph *approx, const struct knn_graph *exact);

#endif
