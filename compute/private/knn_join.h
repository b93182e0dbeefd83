/* knn_join.h - one cell's exact k-NN join into the graph's heaps (knn_join.c), for
 * knn_cells.c.  A cell is a list of rows (mem[0..cnt)); its join offers every pair of
 * members to both members' heaps, so the heaps end with the exact k-NN inside the union
 * of each row's cells.  The scratch is made once for the biggest cell and freed by
 * knn_cell_scratch_free (safe on a zeroed or half-made one). */
#ifndef PW_KNN_JOIN_H
#define PW_KNN_JOIN_H

#include "gram.h"
#include "knn_internal.h"
#include "knn_screen.h"
#include "progress.h"
#include "team.h"

/* Scratch of one cell join: members' norms, their heaps' current roots (thresholds),
 * one row of distances per thread. */
struct cell_scratch {
    float *buf;                /* sgemm: a chunk of cols members' rows, gathered and (euclidean)
                                  centred: never the whole cell's, a copy of up to a quarter of
                                  the input */
    size_t biggest;            /* the most members a cell has */
    struct gram gram;          /* or: members' rows for AMX or int8 (gram.h) */
    int amx;                   /* gram holds the rows, on AMX */
    int unit;                  /* this cell's cosine rows are unit rows less their mean */
    struct knn_screen *screen; /* or: the int8 pre-screen's pool of wide heaps (gram packs
                                  int8 rows for the cells knn_screen_cell picks) */
    float *bound;              /* int8: members' error bounds (knn_screen_bounds) */
    uint16_t *hits;            /* int8: the filter's masks of a block (gram_rows_filtered), */
    size_t mld;                /* mld a row, */
    float *rlim;               /* and its rows' heap roots */
    uint32_t *fin;             /* int8: knn_screen_finish's scratch, its counts */
    size_t *counts;
    int in_place;    /* the cell is the whole set in index order (knn_whole_join): sgemm reads
                        cosine rows where they are */
    float *rowbuf;   /* sgemm: PART_ROWS members' rows, a block before the chunk */
    double p0;       /* in_place: the progress fraction the join starts from */
    float *centre;   /* euclidean: the members' mean, taken off before the dots */
    double *sum;     /* d: its accumulator */
    float *dots;     /* PART_ROWS x cols */
    size_t cols;     /* members packed as columns at a time */
    float *g;        /* members' inverse or squared norms */
    float *thr;      /* members' heap roots */
    union {          /* threads x members, a share each thread owns: */
        float *vals; /* float joins: a row's distances */
        uint32_t *hit_cols; /* int8 joins: the columns a row's filter passed */
    };
    uint8_t *seen; /* n: 1 once a point's heap has had a cell (only then can a
                      candidate come twice) */
};

/* Scratch for cells of up to `biggest` rows (screen: the int8 pre-screen's pool, or
 * NULL; in_place: the one cell is the whole set in index order).  0 or PW_ENOMEM. */
int knn_cell_scratch_init(struct cell_scratch *cs, const struct nnd *s, size_t biggest, int use_amx,
                          struct knn_screen *screen, int in_place, struct pw_error *err);
void knn_cell_scratch_free(struct cell_scratch *cs);

/* The cell's centre and its members' squared lengths (or inverse norms) into cs (unit:
 * cosine rows as unit rows less their mean), on the team; the same values for any
 * number of threads. */
void knn_cell_centre(const struct nnd *s, const int32_t *mem, size_t cnt, struct cell_scratch *cs,
                     int unit, struct team *tm);

/* The cell joined into the graph's heaps, on int8 products through the pool when i8.
 * 0, PW_ENOMEM or the cancellation. */
int knn_cell_join(struct nnd *s, const int32_t *mem, size_t cnt, int i8, struct cell_scratch *cs,
                  struct team *tm, const struct pw_progress *progress, struct pw_error *err);

#endif
