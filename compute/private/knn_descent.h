/* knn_descent.h - NN-descent and random projection trees (knn_descent.c), for knn.c's
 * approximate path.  Jobs only propose updates (target, candidate, distance) into their
 * own buffers, reading heaps nobody writes meanwhile; knn_apply_proposals then pushes
 * them with each thread on its own range of targets, buffers read in job order, so the
 * graph does not depend on the thread count.  A buffer that could not grow sets its oom
 * (the caller frees each buffer's p). */
#ifndef PW_KNN_DESCENT_H
#define PW_KNN_DESCENT_H

#include "knn_internal.h"

struct proposal {
    int32_t target, cand;
    float dist;
};

struct propbuf {
    struct proposal *p;
    size_t len, cap;
    int oom;
};

/* Applies every buffer's proposals to s's heaps and empties the buffers; returns how many
 * pushes changed a heap; *oom = 1 when a buffer had run out of memory. */
size_t knn_apply_proposals(struct nnd *s, struct propbuf *bufs, size_t nbufs, int *oom);

/* Random projection tree: split idx[0..count) recursively, leaves emit all pairs. */
struct rptree_job {
    const struct metric_ctx *m;  /* distances in leaves */
    const struct metric_ctx *sm; /* hyperplanes: m, or its random sketch (knn_sketch) */
    int32_t *idx;
    size_t count, leaf_size;
    uint64_t seed, tree;
    float *normal; /* sm->d scratch */
    struct propbuf *out;
    const float *hd; /* heap roots (thresholds), read-only during jobs */
    size_t k;
};

/* One tree over idx[0..count) (node 0, depth 0 at the root): leaves propose all their
 * pairs into j->out. */
void knn_rptree_split(struct rptree_job *j, int32_t *idx, size_t count, uint64_t node, int depth);

/* Random projection trees only need the side of a hyperplane, so on wide rows they
 * split in a KNN_SKETCH_D-dimensional Gaussian sketch of the data (s_i = R^T x_i):
 * projections stay within a few percent of the full ones, and the forest reads
 * n * KNN_SKETCH_D floats per tree level instead of n * d.  Leaves use full rows. */
#define KNN_SKETCH_D 64
/* Points per NN-descent job between two applications of the proposals: their buffers
 * (12 bytes a proposal) hold one such block.  64 held 4.8 MB of proposals at 20k with
 * k = 91; 16 holds a quarter of that. */
#define JOIN_BLOCK_ROWS 16

/* sk = x R (n x KNN_SKETCH_D), R filled with Gaussian values from the seed. */
void knn_sketch(const float *x, size_t n, size_t d, uint64_t seed, float *R, float *sk,
                int threads);

/* One point's local join (its new and old candidate lists, maxc each, -1 for none) into
 * out; scratch: 3 maxc ints. */
void knn_local_join(const struct metric_ctx *m, const struct knn_graph *g, const int32_t *nw,
                    const int32_t *od, size_t maxc, int32_t *scratch, struct propbuf *out);

/* Points whose candidate lists are sampled at once (see knn_descent.c). */
size_t knn_list_block(size_t n, size_t d, size_t maxc);

/* Candidate lists of the points at visiting positions [l0, l1) (slot[i]: point i's),
 * maxc each, into newc/newp and oldc/oldp; updates the flags (see knn_descent.c). */
void knn_sample_lists(const struct nnd *s, uint8_t *flags, const int32_t *slot, size_t l0,
                      size_t l1, size_t maxc, uint64_t seed, uint64_t stream, int32_t *newc,
                      float *newp, int32_t *oldc, float *oldp);

#endif
