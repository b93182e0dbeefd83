/* knn_cells.h - k-means cells and their exact joins (knn_cells.c), for knn.c.  cells
 * are kmeans.h's (the caller frees them with kmeans_cells_free).  0, PW_ENOMEM or the
 * cancellation; progress is reported under "knn". */
#ifndef PW_KNN_CELLS_H
#define PW_KNN_CELLS_H

#include "kmeans.h"
#include "knn_internal.h"
#include "progress.h"

/* Cells of about part_size rows (see knn_cells.c). */
int knn_make_cells(const struct metric_ctx *m, size_t n, size_t part_size, uint64_t seed,
                   int threads, struct kmeans_cells *cells, const struct pw_progress *progress,
                   struct pw_error *err);

/* *thr: rows whose border distance is below it also join their second cell (-inf: none). */
int knn_spill_threshold(const struct kmeans_cells *cells, double spill, float *thr,
                        struct pw_error *err);

/* Every heap from the exact neighbours inside its cells; order gets the rows grouped by
 * cell (NN-descent's visiting order); s's flags set for the rounds. */
int knn_partition_seed(struct nnd *s, const struct kmeans_cells *cells_in, double spill,
                       int use_amx, int screen, int32_t *order, double share,
                       const struct pw_progress *progress, struct pw_error *err);

/* The exact k-NN of every row into s's heaps: the whole set as one cell. */
int knn_whole_join(struct nnd *s, int use_amx, int screen, double p0,
                   const struct pw_progress *progress, struct pw_error *err);

#endif
