/* knn_screen.h - the k-NN cells' int8 pre-screen: wide heaps, then exact re-ranking.
 *
 * A cell joined on int8 dot products (gram.h, GRAM_VNNI_I8) fills, for each of its rows,
 * a heap of knn_screen_width(k) = k + margin candidates among the cell's members on
 * approximate distances, with bound[p] the error bound of row p's distances in that cell
 * (gram_i8_bound).  knn_screen_finish then computes the candidates' distances exactly
 * (float, from differences or normalised dots, as knn_internal.h's pair_dist) and keeps the k
 * smallest.  A member the margin cut would have an approximate distance at least the wide
 * heap's root R, so an exact one at least R - bound: when that exceeds the k-th exact
 * distance kept, no member outside the heap can enter the top k.  Rows where it does not
 * are joined again exactly with every member of the cell.  The row's k results are then
 * merged into its heap of k in the graph, which holds what its earlier cells found.  So
 * the graph is the exact k-NN within the union of a row's cells, as without the screen, up
 * to the bound's (gram.h) one-in-a-billion chance; the margin only decides how many rows
 * need the second join.
 *
 * The wide heaps are a pool of `rows` heaps that the cells use in turn (knn_join.c's
 * knn_cell_join), never one per point: at t-SNE's k = 91 a wide heap takes 1152 bytes, more
 * than a third of a 768-float row, so heaps for every point would set the k-NN's peak
 * memory.
 *
 * Which cells go through the pre-screen, and the bounds: knn_screen_gate.h. */
#ifndef PW_KNN_SCREEN_H
#define PW_KNN_SCREEN_H

#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

struct knn_screen {
    size_t rows, k, width;
    float *hd;   /* rows * width approximate distances (the heaps) */
    int32_t *hi; /* rows * width candidates */
};

size_t knn_screen_width(size_t k);

/* Values (4 bytes) of a knn_screen_job's scratch a thread needs. */
size_t knn_screen_scratch(size_t k);

/* 0 or PW_ENOMEM; a pool of `rows` wide heaps (not yet emptied: knn_screen_clear). */
int knn_screen_init(struct knn_screen *sc, size_t rows, size_t k, struct pw_error *err);
void knn_screen_free(struct knn_screen *sc);

/* The pool's first `rows` heaps emptied. */
void knn_screen_clear(struct knn_screen *sc, size_t rows);

/* One call of knn_screen_finish: the cell's rows[0..count), whose wide heaps are the
 * pool's first `count` (row p's is the p-th) and bound[p] their error bounds, into the
 * graph's max-heaps of k (knn_heap.h) at hd + i k, hi + i k, holding internal distances
 * (squared euclidean or cosine); seen[i]: row i's heap already holds an earlier cell's
 * neighbours (else it is empty).  x: d values a row; cosine: inv_norm[i] = 1/|x_i| or 0.
 * mem[0..cnt): the cell's members, for the second join.  scratch: knn_screen_scratch(k)
 * values a thread.  counts[2t], counts[2t + 1]: rows thread t joined again, and rows it
 * finished. */
struct knn_screen_job {
    const struct knn_screen *sc;
    const float *x;
    size_t d;
    int cosine;
    const float *inv_norm;
    const int32_t *mem;
    size_t cnt;
    const int32_t *rows;
    size_t count;
    const float *bound;
    float *hd;
    int32_t *hi;
    const uint8_t *seen;
    uint32_t *scratch;
    size_t *counts;
};

/* Thread t of T (team.h) finishes its share of the job's rows; a row's result depends
 * only on its own candidates, the cell and what its heap held. */
void knn_screen_finish(void *job, int t, int T);

#endif
