/* knn_screen.h - the k-NN cells' int8 pre-screen: wide heaps, then exact re-ranking.
 *
 * The cell joins (knn.c) on int8 dot products (gram.h, GRAM_VNNI_I8) fill heaps of
 * knn_screen_width(k) = k + margin candidates per row on approximate distances, and
 * record per row a bound on those distances' error (err: the largest over the row's
 * cells, gram_i8_bound); cells the joins keep on float products fill the same heaps.
 * knn_screen_finish then computes the candidates' distances exactly (float, from differences or
 * normalised dots, as knn.c's pair_dist) and keeps the k smallest.  A neighbour the margin cut
 * would have an approximate distance at least the wide heap's root R, so an exact one at least R -
 * err: when that exceeds the k-th exact distance kept, no row outside the heap can enter the top k.
 * Rows where it does not (or the bound cannot say) are joined again exactly with every member of
 * their cells.  So the result is the cells' exact k-NN, as without the screen, up to the bound's
 * (gram.h) one-in-a-billion chance; the margin only decides how many rows need the second join. */
#ifndef PW_KNN_SCREEN_H
#define PW_KNN_SCREEN_H

#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

struct knn_screen {
    size_t n, k, width;
    float *hd;   /* n * width approximate distances (heaps) */
    int32_t *hi; /* n * width candidates */
    int own;     /* hd and hi are the screen's (else the caller's) */
    float *err;  /* n: the bound on a row's approximate distances' error; -1 while
                    none of its cells was joined on int8 (its distances are float's) */
};

/* Where each row's cells are: members mem[start[a]..start[a+1]) of cell a; row i sits
 * in first[i], and also in second[i] when border[i] < thr.  first NULL: one cell of
 * all rows (mem and start unused). */
struct knn_screen_cells {
    const int32_t *mem;
    const size_t *start;
    const int32_t *first, *second;
    const float *border;
    float thr;
};

size_t knn_screen_width(size_t k);

/* Values (4 bytes) of a knn_screen_job's scratch a thread needs. */
size_t knn_screen_scratch(size_t k);

/* 0 or PW_ENOMEM; the heaps empty, err -1.  hd and hi: the caller's arrays of n * width
 * slots for the heaps, or NULL (the screen allocates them). */
int knn_screen_init(struct knn_screen *sc, size_t n, size_t k, float *hd, int32_t *hi,
                    struct pw_error *err);
void knn_screen_free(struct knn_screen *sc);

/* One call of knn_screen_finish: rows[0..count) of x (d values a row; cosine: inv_norm[i]
 * = 1/|x_i| or 0) into k-slot heaps at hd + i stride, hi + i stride (max-heaps by
 * (distance, index) as knn_heap.h; they may be the first k slots of the row's wide heap)
 * from the wide ones, once every cell of theirs was joined; distances internal (squared
 * euclidean or cosine).  scratch: knn_screen_scratch(k) values a thread.  counts[2t], counts[2t +
 * 1]: rows thread t joined again, and rows it took with an int8 cell among theirs. */
struct knn_screen_job {
    struct knn_screen *sc;
    const float *x;
    size_t d;
    int cosine;
    const float *inv_norm;
    const struct knn_screen_cells *cells;
    float *hd;
    int32_t *hi;
    size_t stride;
    const int32_t *rows;
    size_t count;
    uint32_t *scratch;
    size_t *counts;
};

/* Thread t of T (team.h) finishes its share of the job's rows; a row's result depends
 * only on its own candidates and cells. */
void knn_screen_finish(void *job, int t, int T);

/* The last cell row i is in (the one cell when cells->first is NULL: 0). */
static inline size_t knn_screen_last_cell(const struct knn_screen_cells *c, size_t i)
{
    if (!c->first)
        return 0;
    int32_t a = c->first[i], b = c->border[i] < c->thr ? c->second[i] : a;
    return (size_t)(a > b ? a : b);
}

#endif
