/* knn_screen_gate.h - the int8 pre-screen's gate (knn_screen_gate.c): whether a k-means
 * cell joins on int8 products through the pre-screen (knn_screen.h) or on float ones,
 * for knn_cells.c, and the members' error bounds the int8 join passes to the
 * pre-screen's re-ranking, for knn_join.c.  Each takes a cell join's scratch
 * (knn_join.h) holding the cell's centre (knn_cell_centre, unit rows for cosine) and
 * made for the pre-screen (cs->bound). */
#ifndef PW_KNN_SCREEN_GATE_H
#define PW_KNN_SCREEN_GATE_H

#include "knn_join.h"

/* 1 when a cell of cnt rows joined on int8 products through a pool of pool_rows wide
 * heaps would cost less than on float ones: rows wide enough for the products to
 * outweigh the wider heaps (knn_screen_gate.c). */
int knn_screen_pays(const struct nnd *s, size_t cnt, size_t pool_rows);

/* 1 when the cell should be joined on int8 products (see knn_screen_gate.c); cs holds its
 * centre (knn_cell_centre, unit rows for cosine).  Fills cs->bound. */
int knn_screen_cell(const struct nnd *s, const int32_t *mem, size_t cnt, struct cell_scratch *cs);

/* The int8 dots' error bound of each member's internal distances in the cell into
 * cs->bound[0..cnt) (see knn_screen_gate.c), from what knn_cell_centre left in cs (unit
 * rows for cosine): the members' squared lengths from the centre in cs->g and their int8
 * scales in cs->bound, which the bounds replace. */
void knn_screen_bounds(const struct nnd *s, size_t cnt, struct cell_scratch *cs);

#endif
