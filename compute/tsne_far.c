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
 * The plan (order, groups, interactions) is tsne_far_plan.c's; this file computes the sums.
 * The interactions are sorted by their first group's first point and cut into FAR_TASKS
 * tasks of about equal cost; each task owns a force buffer for the points and one for the
 * nodes, summed in task order: the result does not depend on the team that runs it. */
#include "tsne_far.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

#define FAR_CLONES PW_CLONES_V4

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
PW_ALWAYS_INLINE float half_width(float h)
{
    return h > 1e-3f ? h : 1e-3f;
}

PW_ALWAYS_INLINE void lagrange(const struct cheb *c, float u, float *w)
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
PW_ALWAYS_INLINE float lanes_sum(vf16 v)
{
    float t[16];
    memcpy(t, &v, sizeof t);
    for (int w = 8; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            t[l] += t[l + w];
    return t[0];
}

/* The Student-t kernel of row (xi, yi) against the 16 points from j: q = 1 / (1 + d^2)
 * and the force terms (gx, gy) = q^2 (xi - x, yi - y). */
PW_ALWAYS_INLINE void kernel16(const struct tsne_far *f, vf16 xi, vf16 yi, size_t j, vf16 *q,
                               vf16 *gx, vf16 *gy)
{
    vf16 dx = xi - *(const vf16 *)(f->X + j), dy = yi - *(const vf16 *)(f->Yc + j);
    *q = 1.0f / (1.0f + dx * dx + dy * dy);
    vf16 q2 = *q * *q;
    *gx = q2 * dx;
    *gy = q2 * dy;
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
            vf16 q, gx, gy;
            kernel16(f, xi, yi, j, &q, &gx, &gy);
            s += q;
            fx += gx;
            fy += gy;
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
                vf16 q, gx, gy;
                kernel16(f, xi, yi, j, &q, &gx, &gy);
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
