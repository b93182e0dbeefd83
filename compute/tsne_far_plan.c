/* tsne_far_plan.c - the block sums' plan (see tsne_far.c for the method): the points in
 * Hilbert-curve order, the groups' boxes, the interactions (group pairs split until well
 * separated or of level 0) sorted and cut into tasks of equal modelled cost; and the
 * workspace's life cycle. */
#include "tsne_far.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
