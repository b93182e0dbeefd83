/* tsne_fft_far.c - the FFT repulsion's far list: the points left off the grid, and their
 * exact sums. */
#include "tsne_fft_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "dense.h"

#define FAR_BINS 256 /* histogram bins per axis for the quantile box (find_far) */
/* Points per side and axis that may be left out of the grid: ceil(sqrt(n) / 4), so at
 * most sqrt(n) + 4 in all and their exact sums cost at most ~2 n^1.5 pair terms. */
#define FAR_PER_SIDE(n) ((size_t)ceil(sqrt((double)(n)) / 4.0) + 1)

size_t tsne_fft_far_capacity(size_t n)
{
    return 4 * FAR_PER_SIDE(n);
}

/* The grid's square [*lo, *hi] and the points left out of it (the far list).  A handful of
 * points far from all others - on high-dimensional isotropic data, t-SNE's hubs (points in
 * thousands of k-NN lists, so 30-80 times the average P) oscillate under early exaggeration
 * and are flung hundreds of units out - would otherwise size the grid for themselves: its
 * cost grows as the span squared, and past MAX_NODES (tsne_fft.c) its accuracy drops until
 * Z is wrong by several times.  So: per axis, a 256-bin histogram gives a box holding all
 * but FAR_PER_SIDE points on each side; the square extends it by half its width on each
 * side; points outside the square are summed exactly (tsne_fft_far_sums) and the grid
 * covers the others.  A layout without such points (any layout of clusters that each hold
 * more than FAR_PER_SIDE points) keeps its whole bounding square. */
void tsne_fft_find_far(struct tsne_fft *f, const float *Y, float *lo, float *hi)
{
    size_t n = f->n, m = FAR_PER_SIDE(n);
    for (size_t o = 0; o < f->nfar; o++)
        f->is_far[f->far[o]] = 0;
    f->nfar = 0;
    if ((double)*hi - (double)*lo <= f->interval_width * (double)f->min_intervals || n <= 4 * m)
        return; /* the smallest grid holds the whole layout: nothing to gain */
    double ql[2], qh[2];
    for (size_t a = 0; a < 2; a++) {
        float alo = INFINITY, ahi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            alo = Y[2 * i + a] < alo ? Y[2 * i + a] : alo;
            ahi = Y[2 * i + a] > ahi ? Y[2 * i + a] : ahi;
        }
        size_t cnt[FAR_BINS] = {0};
        double w = ((double)ahi - (double)alo) / FAR_BINS;
        if (!(w > 0)) {
            ql[a] = qh[a] = alo;
            continue;
        }
        double inv = 1.0 / w;
        for (size_t i = 0; i < n; i++) {
            size_t b = (size_t)(((double)Y[2 * i + a] - (double)alo) * inv);
            cnt[b < FAR_BINS ? b : FAR_BINS - 1]++;
        }
        size_t bl = 0, bh = FAR_BINS - 1, below = 0, above = 0;
        while (below + cnt[bl] <= m) /* n > 2m: both stop inside the histogram */
            below += cnt[bl++];
        while (above + cnt[bh] <= m)
            above += cnt[bh--];
        ql[a] = (double)alo + (double)bl * w;
        qh[a] = (double)alo + (double)(bh + 1) * w;
    }
    double width = fmax(qh[0] - ql[0], qh[1] - ql[1]);
    double elo = fmin(ql[0], ql[1]) - 0.5 * width, ehi = fmax(qh[0], qh[1]) + 0.5 * width;
    if (*lo >= elo && *hi <= ehi)
        return;
    float nlo = INFINITY, nhi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        float a = Y[2 * i], b = Y[2 * i + 1];
        if (a < elo || a > ehi || b < elo || b > ehi) {
            if (f->nfar == f->far_max)
                break; /* not reached: at most m points lie beyond each side's quantile */
            f->is_far[i] = 1;
            f->far_y[2 * f->nfar] = a;
            f->far_y[2 * f->nfar + 1] = b;
            f->far[f->nfar++] = (int32_t)i;
            continue;
        }
        float mn = a < b ? a : b, mx = a > b ? a : b;
        nlo = mn < nlo ? mn : nlo;
        nhi = mx > nhi ? mx : nhi;
    }
    if (f->nfar == f->far_max) { /* unreachable, see above: keep the whole square */
        for (size_t o = 0; o < f->nfar; o++)
            f->is_far[f->far[o]] = 0;
        f->nfar = 0;
        return;
    }
    *lo = nlo;
    *hi = nhi;
}

/* The Student-t sums of point (xi, yi) against the m points pts (x, y interleaved): s = sum q,
 * (fx, fy) = sum q^2 (xi - x, yi - y), q = 1 / (1 + d^2).  The hot loop of the far list's
 * exact sums, inlined into each of its callers' AVX-512 / AVX2 / baseline clones. */
PW_ALWAYS_INLINE void student_sums(float xi, float yi, const float *pts, size_t m, float *s_out,
                                   float *fx_out, float *fy_out)
{
    float s = 0, fx = 0, fy = 0;
#pragma omp simd reduction(+ : s, fx, fy)
    for (size_t j = 0; j < m; j++) {
        float dx = xi - pts[2 * j], dy = yi - pts[2 * j + 1];
        float q = 1.0f / (1.0f + dx * dx + dy * dy);
        s += q;
        fx += q * q * dx;
        fy += q * q * dy;
    }
    *s_out = s;
    *fx_out = fx;
    *fy_out = fy;
}

/* Exact sums for point i against all n points. */
PW_CLONES_V4
static void exact_point(const float *Y, size_t n, size_t i, float *rep, float *zi)
{
    float s, fx, fy;
    student_sums(Y[2 * i], Y[2 * i + 1], Y, n, &s, &fx, &fy);
    rep[2 * i] = fx;
    rep[2 * i + 1] = fy;
    zi[i] = s - 1.0f; /* the j == i term */
}

/* The far points' share of point i's sums, added to rep and zi. */
PW_CLONES_V4
static void far_share(const float *far_y, size_t nfar, const float *Y, size_t i, float *rep,
                      float *zi)
{
    float s, fx, fy;
    student_sums(Y[2 * i], Y[2 * i + 1], far_y, nfar, &s, &fx, &fy);
    rep[2 * i] += fx;
    rep[2 * i + 1] += fy;
    zi[i] += s;
}

struct far_job {
    struct tsne_fft *f;
    const float *Y;
    float *rep;
};

/* Points [256 c, 256 (c + 1)): exact sums for the far ones (over all points; zi keeps the
 * j == i term, as the grid's points do), the far points' share for the others. */
static void far_task(void *ctx, size_t c)
{
    struct far_job *j = ctx;
    struct tsne_fft *f = j->f;
    const float *Y = j->Y;
    float *rep = j->rep;
    size_t i1 = 256 * (c + 1) < f->n ? 256 * (c + 1) : f->n;
    for (size_t i = 256 * c; i < i1; i++) {
        if (f->is_far[i]) {
            exact_point(Y, f->n, i, rep, f->zi);
            f->zi[i] += 1.0f;
        } else {
            far_share(f->far_y, f->nfar, Y, i, rep, f->zi);
        }
    }
}

void tsne_fft_far_sums(struct tsne_fft *f, struct team *tm, const float *Y, float *rep)
{
    struct far_job j = {f, Y, rep};
    team_for(tm, (f->n + 255) / 256, far_task, &j);
}
