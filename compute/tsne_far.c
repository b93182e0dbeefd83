/* tsne_far.c - the t-SNE repulsion (see tsne_forces.h) as exact sums between near groups
 * of points and a low-rank interpolation between well-separated ones.
 *
 * The points are put in the order of their cells along a Hilbert curve over the layout,
 * so that a run of consecutive points is a compact patch.  Groups are runs of
 * FAR_ROWS * 4^L points (level L), each the union of four groups of the level below.  Two
 * groups are well separated when the sum of their boxes' half-diagonals is at most
 * FAR_THETA times the distance of the boxes' centres; then the kernels q = 1 / (1 + |d|^2)
 * and q^2 d are smooth over both boxes and are interpolated on FAR_P x FAR_P Chebyshev
 * nodes per box (the black-box FMM of Fong and Darve, without its translations):
 *   K(y_i, y_j) ~ sum_a sum_b L_a(y_i) K(u_a, v_b) L_b(y_j),
 * FAR_P^4 node-pair kernels for the whole group pair.  Starting from the top group paired
 * with itself, a pair that is not well separated is split into its children's pairs;
 * level-0 pairs that are still near are summed exactly: a group with itself in whole
 * vectors (both orders of each pair), two groups each unordered pair once, the second
 * group's forces scattered (as tsne_exact.c does).  With FAR_P = 3 and FAR_THETA = 0.7 the
 * relative L2 force error on the final 6,000-point t-SNE layouts is 0.01 % (12 tight
 * clusters), 0.12 % (broad clusters) and 0.32 % (isotropic), against the FFT grid's 0.45,
 * 0.56 and 3.3 % (tests/unit/compute/test_tsne.c bounds it at 0.5 %).
 *
 * The interactions are sorted by their first group's first point and cut into FAR_TASKS
 * tasks of about equal cost; each task owns a force buffer for the points and one for the
 * nodes, summed in task order: the result does not depend on the team that runs it. */
#include "tsne_forces.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

void tsne_far_free(struct tsne_far *f)
{
    if (!f)
        return;
    free(f->X);
    free(f->F);
    free(f->runs);
    free(f->G);
    free(f->box);
    free(f->w);
    free(f->charge);
    free(f->has_far);
    free(f->perm);
    free(f->tmp);
    free(f->key);
    free(f->in);
    free(f->in2);
    free(f->cnt);
    free(f);
}

int tsne_far_new(size_t n, struct tsne_far **out, struct pw_error *err)
{
    struct tsne_far *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f)
        return pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
    f->n = n;
    size_t rows = FAR_ROWS;
    for (f->nl = 0; f->nl < FAR_LEVELS; f->nl++, rows *= 4) {
        f->ng[f->nl] = n ? (n + rows - 1) / rows : 1;
        f->off[f->nl] = f->ngroups;
        f->ngroups += f->ng[f->nl];
        if (f->ng[f->nl] == 1) {
            f->nl++;
            break;
        }
    }
    if (f->ng[f->nl - 1] != 1) {
        free(f);
        return pw_error_set(err, PW_EINVAL, "tsne: too many points for the block sums");
    }
    f->cap = 64 * f->ng[0] + 64;
    f->np = f->ng[0] * FAR_ROWS;
    f->X = aligned_alloc(64, 2 * f->np * sizeof *f->X);
    f->F = aligned_alloc(64, FAR_TASKS * 2 * f->np * sizeof *f->F);
    f->runs = malloc(FAR_TASKS * 2 * (f->ng[0] + 1) * sizeof *f->runs);
    f->G = malloc(FAR_TASKS * f->ngroups * 2 * FAR_NODES * sizeof *f->G);
    f->box = malloc(f->ngroups * 4 * sizeof *f->box);
    f->w = malloc((f->nl * n * 2 * FAR_P + 1) * sizeof *f->w);
    f->charge = malloc(f->ngroups * FAR_NODES * sizeof *f->charge);
    f->has_far = malloc(f->ngroups);
    f->perm = malloc((n + 1) * sizeof *f->perm);
    f->tmp = malloc((n + 1) * sizeof *f->tmp);
    f->key = malloc((2 * n + 1) * sizeof *f->key);
    f->in = malloc(f->cap * sizeof *f->in);
    f->in2 = malloc(f->cap * sizeof *f->in2);
    f->cnt = malloc((f->ng[0] + 1) * sizeof *f->cnt);
    if (!f->X || !f->F || !f->runs || !f->G || !f->box || !f->w || !f->charge || !f->has_far ||
        !f->perm || !f->tmp || !f->key || !f->in || !f->in2 || !f->cnt) {
        tsne_far_free(f);
        return pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
    }
    f->Yc = f->X + f->np;
    /* The padding lies far off: its q is ~1e-37 and its q^2 0 in float, so near_runs can
     * take whole vectors of 16 points to the end of the last group. */
    for (size_t s = n; s < f->np; s++)
        f->X[s] = f->Yc[s] = 1e18f;
    *out = f;
    return 0;
}

/* The least this method can cost for n points: the ordering, and a well-separated pair
 * per level-0 group.  Lets the caller skip planning where the grid wins anyway. */
double tsne_far_min_cost(size_t n)
{
    return COST_POINT * (double)n + COST_FAR * ceil((double)n / FAR_ROWS) +
           COST_PAIR * 0.5 * (double)n * (FAR_ROWS - 1);
}

static size_t group_lo(size_t level, size_t g)
{
    return g * (FAR_ROWS << (2 * level));
}

static size_t group_hi(const struct tsne_far *f, size_t level, size_t g)
{
    size_t hi = (g + 1) * (FAR_ROWS << (2 * level));
    return hi < f->n ? hi : f->n;
}

/* Position of cell (x, y) of a 256 x 256 grid along the Hilbert curve (the classic
 * xy2d): consecutive positions are adjacent cells, so a run of positions is a compact
 * patch, which Morton's order does not guarantee. */
static uint16_t hilbert(unsigned x, unsigned y)
{
    unsigned d = 0;
    for (unsigned s = 128; s > 0; s /= 2) {
        unsigned rx = (x & s) > 0, ry = (y & s) > 0;
        d += s * s * ((3 * rx) ^ ry);
        /* without branches (their outcome is random here): when ry == 0, reflect
         * (255 - v is v ^ 255 for 8 bits) if rx == 1, then swap x and y */
        unsigned flip = (0u - (rx & (ry ^ 1u))) & 255u, swap = 0u - (ry ^ 1u);
        x ^= flip;
        y ^= flip;
        unsigned t = (x ^ y) & swap;
        x ^= t;
        y ^= t;
    }
    return (uint16_t)d;
}

/* perm: the points by their cell's position on the Hilbert curve over the layout's
 * bounding square, points of one cell in index order (a stable two-pass radix sort), so
 * blocks of consecutive positions are compact patches of the layout.  The order is a
 * function of the layout alone. */
static void curve_order(struct tsne_far *f, const float *Y)
{
    size_t n = f->n;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t q = 0; q < 2 * n; q++) {
        lo = Y[q] < lo ? Y[q] : lo;
        hi = Y[q] > hi ? Y[q] : hi;
    }
    double scale = hi > lo ? 255.999 / ((double)hi - (double)lo) : 0.0;
    uint16_t *key = f->key, *k2 = f->key + n;
    for (size_t i = 0; i < n; i++) {
        unsigned cx = (unsigned)(((double)Y[2 * i] - lo) * scale);
        unsigned cy = (unsigned)(((double)Y[2 * i + 1] - lo) * scale);
        key[i] = hilbert(cx < 256 ? cx : 255, cy < 256 ? cy : 255);
    }
    size_t cnt[256];
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++)
        cnt[key[i] & 255]++;
    for (size_t b = 0, sum = 0; b < 256; b++) {
        size_t c = cnt[b];
        cnt[b] = sum;
        sum += c;
    }
    for (size_t i = 0; i < n; i++) {
        size_t at = cnt[key[i] & 255]++;
        f->tmp[at] = (int32_t)i;
        k2[at] = key[i];
    }
    memset(cnt, 0, sizeof cnt);
    for (size_t s = 0; s < n; s++)
        cnt[k2[s] >> 8]++;
    for (size_t b = 0, sum = 0; b < 256; b++) {
        size_t c = cnt[b];
        cnt[b] = sum;
        sum += c;
    }
    for (size_t s = 0; s < n; s++)
        f->perm[cnt[k2[s] >> 8]++] = f->tmp[s];
}

/* Groups' boxes, bottom-up. */
static void group_boxes(struct tsne_far *f)
{
    for (size_t a = 0; a < f->ng[0]; a++) {
        float x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        for (size_t i = group_lo(0, a); i < group_hi(f, 0, a); i++) {
            x0 = f->X[i] < x0 ? f->X[i] : x0;
            x1 = f->X[i] > x1 ? f->X[i] : x1;
            y0 = f->Yc[i] < y0 ? f->Yc[i] : y0;
            y1 = f->Yc[i] > y1 ? f->Yc[i] : y1;
        }
        float *bx = f->box + 4 * a;
        bx[0] = x0, bx[1] = x1, bx[2] = y0, bx[3] = y1; /* as bounds until the end */
    }
    for (size_t L = 1; L < f->nl; L++)
        for (size_t g = 0; g < f->ng[L]; g++) {
            float *bx = f->box + 4 * (f->off[L] + g);
            bx[0] = bx[2] = INFINITY;
            bx[1] = bx[3] = -INFINITY;
            for (size_t c = 4 * g; c < 4 * g + 4 && c < f->ng[L - 1]; c++) {
                const float *cb = f->box + 4 * (f->off[L - 1] + c);
                bx[0] = cb[0] < bx[0] ? cb[0] : bx[0];
                bx[1] = cb[1] > bx[1] ? cb[1] : bx[1];
                bx[2] = cb[2] < bx[2] ? cb[2] : bx[2];
                bx[3] = cb[3] > bx[3] ? cb[3] : bx[3];
            }
        }
    for (size_t g = 0; g < f->ngroups; g++) {
        float *bx = f->box + 4 * g, x0 = bx[0], x1 = bx[1], y0 = bx[2], y1 = bx[3];
        bx[0] = 0.5f * (x0 + x1);
        bx[1] = 0.5f * (y0 + y1);
        bx[2] = 0.5f * (x1 - x0);
        bx[3] = 0.5f * (y1 - y0);
        f->has_far[g] = 0;
    }
}

static int well_separated(const struct tsne_far *f, size_t L, size_t a, size_t b)
{
    const float *ba = f->box + 4 * (f->off[L] + a), *bb = f->box + 4 * (f->off[L] + b);
    double ra = sqrt((double)ba[2] * ba[2] + (double)ba[3] * ba[3]);
    double rb = sqrt((double)bb[2] * bb[2] + (double)bb[3] * bb[3]);
    double dx = (double)ba[0] - bb[0], dy = (double)ba[1] - bb[1];
    return ra + rb <= FAR_THETA * sqrt(dx * dx + dy * dy);
}

/* Appends the interactions of groups a <= b of level L; -1 when the list is full. */
static int split_pair(struct tsne_far *f, size_t L, size_t a, size_t b)
{
    int far = a != b && well_separated(f, L, a, b);
    if (far || L == 0) {
        if (f->nin == f->cap)
            return -1;
        f->in[f->nin++] = (struct inter){(uint32_t)L, (uint32_t)far, (uint32_t)a, (uint32_t)b};
        if (far)
            f->has_far[f->off[L] + a] = f->has_far[f->off[L] + b] = 1;
        return 0;
    }
    size_t na = f->ng[L - 1];
    for (size_t ca = 4 * a; ca < 4 * a + 4 && ca < na; ca++)
        for (size_t cb = a == b ? ca : 4 * b; cb < 4 * b + 4 && cb < na; cb++)
            if (split_pair(f, L - 1, ca, cb))
                return -1;
    return 0;
}

static double inter_cost(const struct tsne_far *f, const struct inter *e)
{
    if (e->far)
        return COST_FAR;
    double la = (double)(group_hi(f, 0, e->a) - group_lo(0, e->a));
    double lb = (double)(group_hi(f, 0, e->b) - group_lo(0, e->b));
    return COST_PAIR * (e->a == e->b ? 0.5 * la * (la - 1) : la * lb);
}

double tsne_far_plan(struct tsne_far *f, const float *Y)
{
    size_t n = f->n;
    curve_order(f, Y);
    for (size_t s = 0; s < n; s++) {
        f->X[s] = Y[2 * (size_t)f->perm[s]];
        f->Yc[s] = Y[2 * (size_t)f->perm[s] + 1];
    }
    group_boxes(f);
    f->nin = 0;
    if (split_pair(f, f->nl - 1, 0, 0))
        return INFINITY; /* more interactions than planned for: the grid */
    /* Sorted by the first point of group a (stable): a task's interactions touch points
     * from there on. */
    size_t nb = f->ng[0];
    memset(f->cnt, 0, (nb + 1) * sizeof *f->cnt);
    for (size_t e = 0; e < f->nin; e++)
        f->cnt[group_lo(f->in[e].level, f->in[e].a) / FAR_ROWS + 1]++;
    for (size_t b = 1; b <= nb; b++)
        f->cnt[b] += f->cnt[b - 1];
    for (size_t e = 0; e < f->nin; e++)
        f->in2[f->cnt[group_lo(f->in[e].level, f->in[e].a) / FAR_ROWS]++] = f->in[e];
    struct inter *t = f->in;
    f->in = f->in2;
    f->in2 = t;
    double total = 0;
    for (size_t e = 0; e < f->nin; e++)
        total += inter_cost(f, &f->in[e]);
    size_t k = 1;
    double acc = 0;
    f->task[0] = 0;
    for (size_t e = 0; e < f->nin; e++) {
        acc += inter_cost(f, &f->in[e]);
        while (k < FAR_TASKS && acc >= total * (double)k / FAR_TASKS)
            f->task[k++] = e + 1;
    }
    while (k <= FAR_TASKS)
        f->task[k++] = f->nin;
    for (size_t k2 = 0; k2 < FAR_TASKS; k2++)
        f->row0[k2] =
            f->task[k2] < f->nin ? group_lo(f->in[f->task[k2]].level, f->in[f->task[k2]].a) : n;
    return total + COST_POINT * (double)n;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define FAR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FAR_CLONES
#endif
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Chebyshev nodes of the first kind on [-1, 1] and the Lagrange denominators. */
struct cheb {
    float u[FAR_P], inv_den[FAR_P];
};

static void cheb_init(struct cheb *c)
{
    const double pi = 3.14159265358979323846;
    double u[FAR_P];
    for (size_t k = 0; k < FAR_P; k++)
        u[k] = cos((2.0 * (double)k + 1.0) * pi / (2.0 * FAR_P));
    for (size_t k = 0; k < FAR_P; k++) {
        double den = 1;
        for (size_t m = 0; m < FAR_P; m++)
            den *= m == k ? 1.0 : u[k] - u[m];
        c->u[k] = (float)u[k];
        c->inv_den[k] = (float)(1.0 / den);
    }
}

/* A block's half-width, kept away from 0 so that a block of coincident coordinates
 * still has distinct nodes. */
ALWAYS_INLINE float half_width(float h)
{
    return h > 1e-3f ? h : 1e-3f;
}

ALWAYS_INLINE void lagrange(const struct cheb *c, float u, float *w)
{
    for (size_t k = 0; k < FAR_P; k++) {
        float num = c->inv_den[k];
        for (size_t m = 0; m < FAR_P; m++)
            num *= m == k ? 1.0f : u - c->u[m];
        w[k] = num;
    }
}

struct far_job {
    struct tsne_far *f;
    struct cheb cheb;
    float *rep;
};

/* Task c: for the groups of every level in [c / FAR_TASKS, (c + 1) / FAR_TASKS) of the
 * level's groups that take part in a far pair, their points' weights and nodes' charges. */
static void weights_task(void *ctx, size_t c)
{
    struct far_job *j = ctx;
    struct tsne_far *f = j->f;
    size_t n = f->n;
    for (size_t L = 0; L < f->nl; L++)
        for (size_t g = c * f->ng[L] / FAR_TASKS; g < (c + 1) * f->ng[L] / FAR_TASKS; g++) {
            if (!f->has_far[f->off[L] + g])
                continue;
            const float *bx = f->box + 4 * (f->off[L] + g);
            float ihx = 1.0f / half_width(bx[2]), ihy = 1.0f / half_width(bx[3]);
            float *ch = f->charge + (f->off[L] + g) * FAR_NODES;
            memset(ch, 0, FAR_NODES * sizeof *ch);
            for (size_t i = group_lo(L, g); i < group_hi(f, L, g); i++) {
                float *wx = f->w + (L * n + i) * 2 * FAR_P, *wy = wx + FAR_P;
                lagrange(&j->cheb, (f->X[i] - bx[0]) * ihx, wx);
                lagrange(&j->cheb, (f->Yc[i] - bx[1]) * ihy, wy);
                for (size_t kx = 0; kx < FAR_P; kx++)
                    for (size_t ky = 0; ky < FAR_P; ky++)
                        ch[kx * FAR_P + ky] += wx[kx] * wy[ky];
            }
        }
}

/* 16 floats: GCC's vector extension, AVX-512 in the x86-64-v4 clone, two or four
 * registers in the others. */
typedef float vf16 __attribute__((vector_size(64)));

/* Sum of a vector's lanes, as a tree (the lanes' order is fixed: same bytes on any clone). */
ALWAYS_INLINE float lanes_sum(vf16 v)
{
    float t[16];
    memcpy(t, &v, sizeof t);
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            t[l] += t[l + w];
    return t[0];
}

/* Level-0 group a's pairs with itself: each row against the whole group (both orders of
 * a pair, no scattered updates, whole vectors; the padding past n adds nothing), the
 * i == j term (q = 1, no force) taken off.  Returns the sum of q over unordered pairs. */
FAR_CLONES static double self_pairs(struct tsne_far *f, size_t a, float *fx_b, float *fy_b)
{
    size_t lo = group_lo(0, a), hi = group_hi(f, 0, a);
    double z = 0;
    for (size_t i = lo; i < hi; i++) {
        vf16 xi = {0}, yi = {0}, s = {0}, fx = {0}, fy = {0};
        xi += f->X[i];
        yi += f->Yc[i];
        for (size_t j = lo; j < lo + FAR_ROWS; j += 16) {
            vf16 dx = xi - *(const vf16 *)(f->X + j), dy = yi - *(const vf16 *)(f->Yc + j);
            vf16 q = 1.0f / (1.0f + dx * dx + dy * dy), q2 = q * q;
            s += q;
            fx += q2 * dx;
            fy += q2 * dy;
        }
        fx_b[i] += lanes_sum(fx);
        fy_b[i] += lanes_sum(fy);
        z += 0.5 * ((double)lanes_sum(s) - 1.0);
    }
    return z;
}

/* Rows of level-0 group a against the runs of points [run[2r], run[2r + 1]) (multiples of
 * 16 in the padded arrays, after the group): each pair once, the pairs' forces on row i
 * kept in vector accumulators over all runs and reduced once per row.  Returns the sum
 * of their q. */
FAR_CLONES static double near_runs(struct tsne_far *f, size_t a, const size_t *run, size_t nrun,
                                   float *fx_b, float *fy_b)
{
    size_t lo = group_lo(0, a), hi = group_hi(f, 0, a);
    double z = 0;
    for (size_t i = lo; i < hi; i++) {
        vf16 xi = {0}, yi = {0}, s = {0}, fx = {0}, fy = {0};
        xi += f->X[i];
        yi += f->Yc[i];
        for (size_t r = 0; r < nrun; r++)
            for (size_t j = run[2 * r]; j < run[2 * r + 1]; j += 16) {
                vf16 dx = xi - *(const vf16 *)(f->X + j), dy = yi - *(const vf16 *)(f->Yc + j);
                vf16 q = 1.0f / (1.0f + dx * dx + dy * dy), q2 = q * q;
                vf16 gx = q2 * dx, gy = q2 * dy;
                s += q;
                fx += gx;
                fy += gy;
                *(vf16 *)(fx_b + j) -= gx;
                *(vf16 *)(fy_b + j) -= gy;
            }
        fx_b[i] += lanes_sum(fx);
        fy_b[i] += lanes_sum(fy);
        z += (double)lanes_sum(s);
    }
    return z;
}

/* Groups a < b of level L by their nodes: node forces into G (x then y per group,
 * FAR_NODES each); returns the pairs' sum of q.  The node pairs' kernels are computed in
 * one flat loop, then applied to both groups' charges. */
FAR_CLONES static double far_pair(const struct tsne_far *f, const struct cheb *c, size_t ga,
                                  size_t gb, float *G)
{
    const float *ba = f->box + 4 * ga, *bb = f->box + 4 * gb;
    const float *wa = f->charge + ga * FAR_NODES, *wb = f->charge + gb * FAR_NODES;
    float ux[FAR_NODES], uy[FAR_NODES], vx[FAR_NODES], vy[FAR_NODES];
    for (size_t k = 0; k < FAR_NODES; k++) {
        ux[k] = ba[0] + half_width(ba[2]) * c->u[k / FAR_P];
        uy[k] = ba[1] + half_width(ba[3]) * c->u[k % FAR_P];
        vx[k] = bb[0] + half_width(bb[2]) * c->u[k / FAR_P];
        vy[k] = bb[1] + half_width(bb[3]) * c->u[k % FAR_P];
    }
    float kq[FAR_NODES * FAR_NODES], kx[FAR_NODES * FAR_NODES], ky[FAR_NODES * FAR_NODES];
    for (size_t ka = 0; ka < FAR_NODES; ka++)
        for (size_t kb = 0; kb < FAR_NODES; kb++) {
            kx[ka * FAR_NODES + kb] = ux[ka] - vx[kb];
            ky[ka * FAR_NODES + kb] = uy[ka] - vy[kb];
        }
#pragma omp simd
    for (size_t m = 0; m < FAR_NODES * FAR_NODES; m++) {
        float dx = kx[m], dy = ky[m], q = 1.0f / (1.0f + dx * dx + dy * dy), q2 = q * q;
        kq[m] = q;
        kx[m] = q2 * dx;
        ky[m] = q2 * dy;
    }
    float *gax = G + ga * 2 * FAR_NODES, *gay = gax + FAR_NODES;
    float *gbx = G + gb * 2 * FAR_NODES, *gby = gbx + FAR_NODES;
    float z = 0;
    for (size_t ka = 0; ka < FAR_NODES; ka++) {
        const float *rq = kq + ka * FAR_NODES, *rx = kx + ka * FAR_NODES, *ry = ky + ka * FAR_NODES;
        float s = 0, fx = 0, fy = 0, w = wa[ka];
        for (size_t kb = 0; kb < FAR_NODES; kb++) {
            s += rq[kb] * wb[kb];
            fx += rx[kb] * wb[kb];
            fy += ry[kb] * wb[kb];
            gbx[kb] -= rx[kb] * w;
            gby[kb] -= ry[kb] * w;
        }
        gax[ka] += fx;
        gay[ka] += fy;
        z += s * w;
    }
    return (double)z;
}

/* Task t < FAR_TASKS: its interactions into its buffers and zt[t]; then the side tasks. */
static void pairs_task(void *ctx, size_t t)
{
    struct far_job *j = ctx;
    struct tsne_far *f = j->f;
    if (t >= FAR_TASKS) {
        f->side->task(f->side->ctx, t - FAR_TASKS);
        return;
    }
    size_t n = f->np, e0 = f->task[t], e1 = f->task[t + 1], r0 = f->row0[t];
    float *fx_b = f->F + 2 * n * t, *fy_b = fx_b + n;
    float *G = f->G + t * f->ngroups * 2 * FAR_NODES;
    if (e0 == e1)
        return;
    memset(fx_b + r0, 0, (n - r0) * sizeof *fx_b);
    memset(fy_b + r0, 0, (n - r0) * sizeof *fy_b);
    memset(G, 0, f->ngroups * 2 * FAR_NODES * sizeof *G);
    double z = 0;
    const struct inter *in = f->in;
    size_t *run = f->runs + t * 2 * (f->ng[0] + 1), nrun = 0, a = SIZE_MAX;
    for (size_t e = e0; e <= e1; e++) {
        if (nrun && (e == e1 || in[e].far || in[e].a != a)) { /* a's runs are complete */
            z += near_runs(f, a, run, nrun, fx_b, fy_b);
            nrun = 0;
        }
        if (e == e1)
            break;
        if (in[e].far) {
            size_t off = f->off[in[e].level];
            z += far_pair(f, &j->cheb, off + in[e].a, off + in[e].b, G);
        } else if (in[e].b == in[e].a) {
            z += self_pairs(f, in[e].a, fx_b, fy_b);
        } else if (nrun && run[2 * nrun - 1] == group_lo(0, in[e].b)) {
            run[2 * nrun - 1] = group_lo(0, in[e].b + 1); /* padded: a multiple of 16 */
        } else {
            a = in[e].a;
            run[2 * nrun] = group_lo(0, in[e].b);
            run[2 * nrun + 1] = group_lo(0, in[e].b + 1);
            nrun++;
        }
    }
    f->zt[t] = z;
}

/* Node forces of all tasks summed in task order into task 0's buffer. */
static void sum_nodes(struct tsne_far *f)
{
    size_t m = f->ngroups * 2 * FAR_NODES;
    int first = 1;
    for (size_t t = 0; t < FAR_TASKS; t++) {
        if (f->task[t] == f->task[t + 1])
            continue; /* an empty task did not clear its buffers */
        const float *gt = f->G + t * m;
        if (first) {
            if (t > 0)
                memcpy(f->G, gt, m * sizeof *gt);
            first = 0;
        } else {
            for (size_t k = 0; k < m; k++)
                f->G[k] += gt[k];
        }
    }
    if (first)
        memset(f->G, 0, m * sizeof *f->G);
}

/* Task c: points [c n / FAR_TASKS, (c + 1) n / FAR_TASKS): the tasks' buffers summed in
 * task order (task t touches points >= row0[t] only), then every level's node forces
 * interpolated. */
static void sum_task(void *ctx, size_t c)
{
    struct far_job *j = ctx;
    struct tsne_far *f = j->f;
    size_t n = f->n, np = f->np;
    float ax[256], ay[256];
    for (size_t b0 = c * n / FAR_TASKS, hi = (c + 1) * n / FAR_TASKS; b0 < hi; b0 += 256) {
        size_t b1 = b0 + 256 < hi ? b0 + 256 : hi;
        memset(ax, 0, sizeof ax);
        memset(ay, 0, sizeof ay);
        for (size_t t = 0; t < FAR_TASKS; t++) {
            size_t s0 = f->row0[t] > b0 ? f->row0[t] : b0;
            if (f->task[t] == f->task[t + 1] || s0 >= b1)
                continue;
            const float *fx = f->F + 2 * np * t, *fy = fx + np;
            for (size_t i = s0; i < b1; i++) {
                ax[i - b0] += fx[i];
                ay[i - b0] += fy[i];
            }
        }
        for (size_t i = b0; i < b1; i++) {
            float fx = ax[i - b0], fy = ay[i - b0];
            for (size_t L = 0; L < f->nl; L++) {
                size_t g = f->off[L] + i / (FAR_ROWS << (2 * L));
                if (!f->has_far[g])
                    continue;
                const float *wx = f->w + (L * n + i) * 2 * FAR_P, *wy = wx + FAR_P;
                const float *gx = f->G + g * 2 * FAR_NODES, *gy = gx + FAR_NODES;
                for (size_t kx = 0; kx < FAR_P; kx++)
                    for (size_t ky = 0; ky < FAR_P; ky++) {
                        float w = wx[kx] * wy[ky];
                        fx += w * gx[kx * FAR_P + ky];
                        fy += w * gy[kx * FAR_P + ky];
                    }
            }
            j->rep[2 * (size_t)f->perm[i]] = fx;
            j->rep[2 * (size_t)f->perm[i] + 1] = fy;
        }
    }
}

void tsne_far_repulsion(struct tsne_far *f, struct team *tm, float *rep, double *z,
                        const struct tsne_side_work *side)
{
    struct far_job j = {.f = f, .rep = rep};
    cheb_init(&j.cheb);
    f->side = side;
    team_for(tm, FAR_TASKS, weights_task, &j);
    team_for(tm, FAR_TASKS + (side ? side->ntasks : 0), pairs_task, &j);
    double zsum = 0;
    for (size_t t = 0; t < FAR_TASKS; t++)
        zsum += f->task[t] < f->task[t + 1] ? f->zt[t] : 0.0;
    *z = 2.0 * zsum;
    sum_nodes(f);
    team_for(tm, FAR_TASKS, sum_task, &j);
}
