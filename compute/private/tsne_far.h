/* tsne_far.h - the block sums' workspace and constants, shared by tsne_far_plan.c (the
 * points' order, the groups and their interactions) and tsne_far.c (the sums); internal
 * to those two files, the interface is tsne_forces.h. */
#ifndef PW_TSNE_FAR_H
#define PW_TSNE_FAR_H

#include <stddef.h>
#include <stdint.h>

#include "tsne_forces.h"

#define FAR_ROWS   64 /* points in a level-0 group */
#define FAR_LEVELS 12 /* at most: groups of up to 64 * 4^11 = 268M points */
#define FAR_P      3
#define FAR_NODES  (FAR_P * FAR_P)
#define FAR_THETA  0.7
#define FAR_TASKS  8
/* Cost model, ns on one AVX-512 core: an exact pair, a well-separated group pair, a point
 * (ordering, boxes, weights and interpolation); fitted on 6,000-point t-SNE layouts. */
#define COST_PAIR  0.19
#define COST_FAR   75.0
#define COST_POINT 44.0

/* A group pair: level, 1 when interpolated, groups a <= b of that level. */
struct inter {
    uint32_t level : 31, far : 1;
    uint32_t a, b;
};

struct tsne_far {
    size_t n, np, nl; /* points, n rounded up to a group (the arrays' stride), levels */
    size_t ng[FAR_LEVELS], off[FAR_LEVELS]; /* groups per level, first in the flat arrays */
    size_t ngroups;                         /* all levels' groups */
    float *X, *Yc;                          /* np each: the layout in curve order, x then y */
    float *F;                               /* FAR_TASKS x 2np: the tasks' point forces */
    float *G;                               /* FAR_TASKS x ngroups x 2 FAR_NODES: node forces */
    float *box;                             /* ngroups x 4: centre x, y, half-width x, y */
    float *w;                               /* nl x n x 2 FAR_P: a point's weights, x then y */
    float *charge;                          /* ngroups x FAR_NODES */
    uint8_t *has_far;                       /* ngroups: the group takes part in a far pair */
    int32_t *perm, *tmp;                    /* n each: perm[s] = the point at curve position s */
    uint16_t *key;                          /* 2n: curve positions, sort scratch */
    struct inter *in, *in2;                 /* cap each: the interactions, sort scratch */
    size_t nin, cap;
    size_t *cnt;                /* ng[0] + 1: counting sort by first block */
    size_t *runs;               /* FAR_TASKS x 2 (ng[0] + 1): near_runs' runs */
    size_t task[FAR_TASKS + 1]; /* first interaction of each task */
    size_t row0[FAR_TASKS];     /* first point a task touches */
    double zt[FAR_TASKS];
    const struct tsne_side_work *side;
};

/* First point of group g of level L, and the end of its points. */
static inline size_t group_lo(size_t level, size_t g)
{
    return g * (FAR_ROWS << (2 * level));
}

static inline size_t group_hi(const struct tsne_far *f, size_t level, size_t g)
{
    size_t hi = (g + 1) * (FAR_ROWS << (2 * level));
    return hi < f->n ? hi : f->n;
}

#endif
