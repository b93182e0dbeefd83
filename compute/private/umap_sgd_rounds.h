/* umap_sgd_rounds.h - the inner loops of UMAP's SGD (umap_sgd.c): one epoch of one
 * chunk of vertices, laid out so that every vector lane does useful work.
 *
 * An epoch of a chunk is planned in two steps.  umap_sgd_plan_* walks the chunk's edges
 * in CSR order, keeps those due this epoch (the schedule below) and appends them vertex
 * by vertex to the due lists with their number of negative samples.  umap_sgd_slots then
 * orders the vertices that have a due edge by their count, most first, into "slots":
 * round r of the epoch is the r-th due edge of every vertex that has one, and those
 * vertices are the slots [0, active[r]).  umap_sgd_rounds_*
 * runs the rounds in order, sixteen slots side by side, with no per-lane bookkeeping:
 * a vertex still meets its due edges in CSR order, each positive sample followed by its
 * negative samples, as umap-learn does.
 *
 * A vertex reads only the epoch's snapshot and its own slot, so the result of a vertex
 * depends neither on its slot nor on which thread ran the chunk.  The AVX-512 and the
 * portable functions compute the same formulas; their results may differ in the last
 * bits (fused multiply-adds), so one process uses one of them throughout. */
#ifndef PW_UMAP_SGD_ROUNDS_H
#define PW_UMAP_SGD_ROUNDS_H

#include <stddef.h>
#include <stdint.h>

#define UMAP_SGD_LANES 16 /* slots advanced side by side; slot arrays are padded by this */

/* The edges' schedule (umap-learn's make_epochs_per_sample): an edge of weight w is
 * sampled w / w_max times an epoch, at the epochs t where floor(t w / w_max) steps up
 * (umap-learn's epoch_of_next_sample, k epochs_per_sample <= t, in closed form: no
 * per-edge state), and its k-th sample draws floor(k r) - floor((k - 1) r) negative
 * samples for the negative sample rate r.  umap-learn counts them by the epochs elapsed
 * instead; both give r per positive sample, and counting per sample makes the count the
 * same on every edge when r is a whole number (5 by default), so sixteen lanes run the
 * same number of negative samples. */
struct umap_sgd_schedule {
    const float *rate; /* per edge: w / w_max, in (0, 1] */
    float neg_rate;    /* negative_sample_rate */
};

/* One epoch of one chunk: its due edges and its slots.  Buffers are the caller's, sized
 * for the chunk's edges (col, nneg, edge), its vertices (+ UMAP_SGD_LANES for the slot
 * arrays) and its largest degree + 1 (active); the due lists have room for UMAP_SGD_LANES
 * entries past the chunk's edges. */
struct umap_sgd_due {
    size_t lo, e0;          /* the chunk's first vertex and its first edge (rowptr[lo]) */
    uint32_t n_due;         /* due edges */
    uint32_t n_slots;       /* vertices with at least one due edge */
    uint32_t n_rounds;      /* the most due edges of one vertex */
    int32_t *col;           /* per due edge, vertex by vertex: the other endpoint */
    int32_t *nneg;          /* its negative samples this epoch */
    uint32_t *edge;         /* its edge number - e0 (the negative samples' random stream) */
    uint32_t *count;        /* per vertex - lo: its due edges (filled by the plan) */
    uint32_t *first;        /* per vertex - lo: its first due edge (filled by the plan) */
    uint32_t *vertex;       /* per slot: vertex - lo */
    uint32_t *start;        /* per slot: its first due edge */
    uint32_t *active;       /* per round r: slots [0, active[r]) take part */
    float *px, *py;         /* per slot: the vertex's current position */
    uint32_t *next;         /* per due count: scratch of umap_sgd_slots */
    uint16_t *block_due;    /* per 16 edges of the chunk: which are due (AVX-512 plan) */
    uint32_t *block_before; /* per 16 edges of the chunk: due edges before them */
};

/* Buffers for chunks of up to max_vertices vertices, max_edges edges and vertices of up
 * to max_degree edges: 0 or -1 (out of memory; then nothing is held).  _free releases
 * them. */
int umap_sgd_due_alloc(struct umap_sgd_due *d, size_t max_vertices, size_t max_edges,
                       size_t max_degree);
void umap_sgd_due_free(struct umap_sgd_due *d);

/* What a round needs besides its plan. */
struct umap_sgd_step {
    const float *snap; /* n * 2: positions at the start of the epoch */
    size_t n;
    float a, b, gamma, alpha;
    uint64_t seed;
    uint64_t epoch;
};

/* The due edges of vertices [d->lo, hi) at epoch fe (with rowptr, col): fills col,
 * nneg, edge, count, first and n_due. */
void umap_sgd_plan(const size_t *rowptr, const int32_t *col, const struct umap_sgd_schedule *sch,
                   size_t hi, float fe, struct umap_sgd_due *d);
void umap_sgd_rounds(const struct umap_sgd_step *s, struct umap_sgd_due *d);

/* The slots of a planned chunk of nv vertices: the vertices with a due edge, most due
 * edges first, by vertex number among equals, and per round the number of slots that
 * take part (n_slots, n_rounds, vertex, start, active). */
void umap_sgd_slots(struct umap_sgd_due *d, size_t nv);

/* One epoch of vertices [lo, hi) of the graph (rowptr, col) on the layout Y (n * 2): the
 * plan, the slots, the rounds (on AVX-512 when avx512 is non-zero), the positions back
 * in Y.  Reads step->snap, writes only the chunk's rows of Y. */
void umap_sgd_chunk(const size_t *rowptr, const int32_t *col, const struct umap_sgd_schedule *sch,
                    size_t lo, size_t hi, const struct umap_sgd_step *step, float *Y, int avx512,
                    struct umap_sgd_due *d);

/* The slots of a planned chunk of nv vertices: the vertices with a due edge, most due
 * edges first, by vertex number among equals, and per round the number of slots that
 * take part (n_slots, n_rounds, vertex, start, active). */
void umap_sgd_slots(struct umap_sgd_due *d, size_t nv);

/* One epoch of vertices [lo, hi) of the graph (rowptr, col) on the layout Y (n * 2): the
 * plan, the slots, the rounds (on AVX-512 when avx512 is non-zero), the positions back
 * in Y.  Reads step->snap, writes only the chunk's rows of Y. */
void umap_sgd_chunk(const size_t *rowptr, const int32_t *col, const struct umap_sgd_schedule *sch,
                    size_t lo, size_t hi, const struct umap_sgd_step *step, float *Y, int avx512,
                    struct umap_sgd_due *d);

/* The same on AVX-512 (F, VL, DQ, BW), when umap_sgd_have_avx512() says the CPU has it. */
int umap_sgd_have_avx512(void);
void umap_sgd_plan_avx512(const size_t *rowptr, const int32_t *col,
                          const struct umap_sgd_schedule *sch, size_t hi, float fe,
                          struct umap_sgd_due *d);
void umap_sgd_rounds_avx512(const struct umap_sgd_step *s, struct umap_sgd_due *d);

#endif
