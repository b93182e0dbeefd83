/* tsne_fft.c - t-SNE repulsion by FFT-accelerated interpolation (see tsne_forces.h), with
 * the switch to block sums (tsne_far.c) for layouts where those cost less; the few points
 * left off the grid and their exact sums are tsne_fft_far.c's.
 *
 * Shaped after FIt-SNE's 2-D "compute_repulsive_forces" (one kernel K = q^2), with three
 * charges instead of four: for phi_t(i) = sum_j K_ij c_t(j), c = (1, y1, y2),
 *   rep_i = y_i phi_1(i) - (phi_2(i), phi_3(i)),
 * and since K is symmetric, sum_i sum_j K_ij |y_j|^2 = sum_i |y_i|^2 phi_1(i), so
 *   Z + n = sum_i sum_j q_ij = sum_i (1 + 2 |y_i|^2) phi_1(i) - 2 y_i . (phi_2, phi_3)(i)
 * (FIt-SNE's fourth charge |y|^2 is only needed for per-point sums, which t-SNE does not
 * use).  Coordinates are relative to the grid's centre to keep the float cancellation
 * small.  The 2-D transforms are done as rows then columns with FFTW's batched 1-D plans
 * (FFTW_ESTIMATE: the plan, hence the rounding, does not depend on timing), skipping the
 * zero-padded rows; the kernel is even, so its spectrum is real, and it is kept while the
 * grid's size and spacing stay the same.  The kernel's and the three charges' forward
 * transforms are four independent tasks, the three inverse ones three more; FFTW's
 * new-array execute is thread-safe, and plans are made here, in the calling thread.  The
 * 1/M^2 of the inverse transform is folded into the kernel. */
#include "tsne_fft_internal.h"

#include <fftw3.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"

#define MAX_NODES 2560 /* per axis: M = 5120, 3 x 105 MB of spectra */
/* Node spacings below the widest (interval_width / p) are taken from the ladder
 * widest * 2^(-k / H_LADDER), so that consecutive layouts mostly share a spacing, and with
 * it the kernel's spectrum. */
#define H_LADDER      8
#define BLOCKS_REPLAN 20 /* calls on the grid after the block sums' plan lost to it */

void tsne_fft_options_default(struct tsne_fft_options *opt)
{
    memset(opt, 0, sizeof *opt); /* fields added later start at 0, not garbage */
    opt->interp_points = 5;
    opt->min_intervals = 16;
    opt->interval_width = 2.5;
}

static void free_grids(struct tsne_fft *f)
{
    fftwf_plan *pl[6] = {&f->kern_rows, &f->kern_cols, &f->rows_fwd,
                         &f->cols_fwd,  &f->cols_inv,  &f->rows_inv};
    for (int i = 0; i < 6; i++) {
        if (*pl[i])
            fftwf_destroy_plan(*pl[i]);
        *pl[i] = NULL;
    }
    fftwf_free(f->kr);
    f->kr = NULL;
    fftwf_free(f->ks);
    f->ks = NULL;
    for (int t = 0; t < NTERMS; t++) {
        fftwf_free(f->c[t]);
        f->c[t] = NULL;
    }
    f->M = 0;
    f->ks_h = 0;
}

void tsne_fft_free(struct tsne_fft *f)
{
    if (!f)
        return;
    free_grids(f);
    free(f->base);
    free(f->w);
    free(f->zi);
    free(f->is_far);
    free(f->far);
    free(f->far_y);
    tsne_far_free(f->blocks);
    free(f);
}

int tsne_fft_new(size_t n, const struct tsne_fft_options *opt, struct tsne_fft **out,
                 struct pw_error *err)
{
    struct tsne_fft_options o;
    if (opt)
        o = *opt;
    else
        tsne_fft_options_default(&o);
    *out = NULL;
    if (o.interp_points < 1 || o.interp_points > 8 || o.min_intervals < 1 ||
        !(o.interval_width > 0))
        return pw_error_set(err, PW_EINVAL,
                            "tsne: interp_points in [1, 8], min_intervals >= 1, "
                            "interval_width > 0");
    struct tsne_fft *f = calloc(1, sizeof *f);
    if (!f)
        return pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
    f->n = n;
    f->p = o.interp_points;
    f->min_intervals = o.min_intervals;
    f->interval_width = o.interval_width;
    f->always_grid = o.always_grid;
    f->base = malloc(2 * n * sizeof *f->base);
    f->w = malloc(2 * f->p * n * sizeof *f->w);
    f->zi = malloc(n * sizeof *f->zi);
    f->far_max = tsne_fft_far_capacity(n);
    f->is_far = calloc(n ? n : 1, 1);
    f->far = malloc(f->far_max * sizeof *f->far);
    f->far_y = malloc(2 * f->far_max * sizeof *f->far_y);
    if (!f->base || !f->w || !f->zi || !f->is_far || !f->far || !f->far_y) {
        tsne_fft_free(f);
        return pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
    }
    *out = f;
    return 0;
}

/* Smallest m >= x of the form 2^a * {1, 3, 5}.  FFTW_ESTIMATE's plans for these sizes
 * are markedly faster than for neighbouring 7-smooth ones, and the steps between them
 * stay within 1.33x. */
static size_t fast_size(size_t x)
{
    size_t best = SIZE_MAX;
    for (size_t c = 1; c <= 5; c += 2)
        for (size_t m = c; m < best; m *= 2)
            if (m >= x)
                best = m;
    return best;
}

/* Arrays and plans for N nodes per axis (M = 2N, H = N + 1), sized exactly: the grid
 * changes size a few times per run.  The 2-D transforms are done by hand, in place,
 * rows then columns, to skip the zero padding: only the N charge rows are transformed
 * forward and only the N wanted rows backward (FFTW's 2-D plans would do all M).  The
 * kernel is even in both axes and symmetric in them, so its M x M spectrum is real, even
 * and symmetric: rows u <= N, columns v <= N hold all of it.  It is computed by two
 * passes of H real-to-complex row transforms with a transposition between them (see
 * kernel_spectrum), not by FFTW's 2-D DCT-I (REDFT00), whose codelets are scalar and
 * several times slower, once per iteration. */
static int ensure_grids(struct tsne_fft *f, size_t N)
{
    size_t M = 2 * N, H = N + 1;
    if (M == f->M)
        return 0;
    free_grids(f);
    f->kr = fftwf_malloc(H * 2 * H * sizeof *f->kr);
    f->ks = fftwf_malloc(H * H * sizeof *f->ks);
    for (int t = 0; t < NTERMS; t++)
        f->c[t] = fftwf_malloc(M * H * sizeof *f->c[t]);
    if (!f->kr || !f->ks || !f->c[0] || !f->c[1] || !f->c[2]) {
        free_grids(f);
        return -1;
    }
    int m = (int)M, h = (int)H, nn = (int)N, h2 = (int)(2 * H);
    float *r = (float *)f->c[0];
    fftwf_complex *c = f->c[0];
    f->kern_rows = fftwf_plan_many_dft_r2c(1, &m, h, f->kr, NULL, 1, h2, (fftwf_complex *)f->kr,
                                           NULL, 1, h, FFTW_ESTIMATE);
    f->kern_cols = fftwf_plan_many_dft_r2c(1, &m, h, (float *)f->ks, NULL, 1, h2, f->ks, NULL, 1, h,
                                           FFTW_ESTIMATE);
    f->rows_fwd = fftwf_plan_many_dft_r2c(1, &m, nn, r, NULL, 1, h2, c, NULL, 1, h, FFTW_ESTIMATE);
    f->cols_fwd =
        fftwf_plan_many_dft(1, &m, h, c, NULL, h, 1, c, NULL, h, 1, FFTW_FORWARD, FFTW_ESTIMATE);
    f->cols_inv =
        fftwf_plan_many_dft(1, &m, h, c, NULL, h, 1, c, NULL, h, 1, FFTW_BACKWARD, FFTW_ESTIMATE);
    f->rows_inv = fftwf_plan_many_dft_c2r(1, &m, nn, c, NULL, 1, h, r, NULL, 1, h2, FFTW_ESTIMATE);
    if (!f->kern_rows || !f->kern_cols || !f->rows_fwd || !f->cols_fwd || !f->cols_inv ||
        !f->rows_inv) {
        free_grids(f);
        return -1;
    }
    f->M = M;
    f->N = N;
    f->H = H;
    return 0;
}

/* The kernel's spectrum into ks for node spacing h: K(a, b) = 1 / (1 + h^2 (a^2 + b^2))^2
 * on the M x M torus (offsets a and M - a are the same; offset N never occurs between two
 * nodes, so it is 0), times the inverse transform's 1 / M^2.  Rows 0..N of the torus are
 * all its distinct rows; each is even, so its DFT is real.  The columns of those DFTs
 * are even too: the same transform on them gives the 2-D spectrum S(v, u) = S(u, v). */
static void kernel_spectrum(struct tsne_fft *f, double h)
{
    size_t N = f->N, M = f->M, H = f->H, stride = 2 * H;
    float scale = (float)(1.0 / ((double)M * (double)M)), h2 = (float)(h * h);
    for (size_t a = 0; a < H; a++) {
        float *row = f->kr + a * stride, da2 = (float)(a * a);
        for (size_t b = 0; b < H; b++) {
            float q = 1.0f / (1.0f + h2 * (da2 + (float)(b * b)));
            row[b] = a == N || b == N ? 0.0f : q * q * scale;
        }
        for (size_t b = H; b < M; b++)
            row[b] = row[M - b];
    }
    fftwf_execute_dft_r2c(f->kern_rows, f->kr, (fftwf_complex *)f->kr);
    const fftwf_complex *R = (const fftwf_complex *)f->kr;
    float *t = (float *)f->ks;
    for (size_t v = 0; v < H; v++) {
        float *col = t + v * stride;
        for (size_t u = 0; u < H; u++)
            col[u] = R[u * H + v][0];
        for (size_t u = H; u < M; u++)
            col[u] = col[M - u];
    }
    fftwf_execute_dft_r2c(f->kern_cols, t, f->ks);
}

/* The per-point loops below are written for any p and called with a literal 5 (the
 * default) or 4 (PER_P): the compiler then unrolls them into straight-line vector code,
 * where the generic loops spend a large share of the repulsion's time on the weights. */
#define PER_P(p, call)                                                                             \
    do {                                                                                           \
        if ((p) == 5) {                                                                            \
            const size_t p_ = 5;                                                                   \
            call;                                                                                  \
        } else if ((p) == 4) {                                                                     \
            const size_t p_ = 4;                                                                   \
            call;                                                                                  \
        } else {                                                                                   \
            const size_t p_ = (p);                                                                 \
            call;                                                                                  \
        }                                                                                          \
    } while (0)

/* Lagrange weights of the p nodes at (k + 1/2) / p for local coordinate u in [0, 1];
 * inv_den[k] = 1 / prod_{m != k} (u_k - u_m). */
PW_ALWAYS_INLINE void lagrange(size_t p, const float *inv_den, float u, float *w)
{
    float d[8] = {0};
    for (size_t k = 0; k < p; k++)
        d[k] = u - ((float)k + 0.5f) / (float)p;
    for (size_t k = 0; k < p; k++) {
        float num = inv_den[k];
        for (size_t m = 0; m < p; m++)
            num *= m == k ? 1.0f : d[m];
        w[k] = num;
    }
}

/* First node and weights of coordinates [q0, q1).  Node k lies at
 * glo + (k + 1/2) h; a coordinate takes the p nodes around it (for p = 4: two on each side),
 * so it always lies in the middle of its stencil, where equispaced Lagrange interpolation
 * is most accurate: the worst-case node polynomial |prod (u - u_k)| is 0.56 h^4 there
 * against 6.6 h^4 at the end of a fixed interval of p nodes (FIt-SNE's layout, where a
 * point may lie half a node outside its interval's outer nodes).  The grid's margin of p
 * nodes (see tsne_fft_repulsion) keeps every stencil inside it. */
PW_ALWAYS_INLINE void weights(struct tsne_fft *f, size_t p, const float *Y, float glo, float inv_h,
                              size_t N, const float *inv_den, size_t q0, size_t q1)
{
    const float shift = 0.5f * (float)p - 0.5f, inv_p = 1.0f / (float)p;
    for (size_t q = q0; q < q1; q++) {
        if (f->nfar && f->is_far[q / 2]) { /* off the grid: no weights */
            f->base[q] = 0;
            continue;
        }
        float s = (Y[q] - glo) * inv_h; /* in node units, node k at k + 1/2 */
        float t = s - shift;            /* >= 1/2 but for rounding: truncation is the floor */
        size_t b = t > 0 ? (size_t)t : 0;
        b = b < N - p ? b : N - p;
        f->base[q] = (int32_t)b;
        lagrange(p, inv_den, (s - (float)b) * inv_p, f->w + q * p);
    }
}

/* Charge t (1, y1 or y2) of every point onto grid g, in point order. */
PW_ALWAYS_INLINE void spread(const struct tsne_fft *f, size_t p, const float *Y, float centre,
                             int t, float *g, size_t stride)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->nfar && f->is_far[i])
            continue;
        float ch = t == 0 ? 1.0f : Y[2 * i + (size_t)(t - 1)] - centre;
        const float *wx = f->w + 2 * i * p, *wy = wx + p;
        float *row = g + (size_t)f->base[2 * i] * stride + (size_t)f->base[2 * i + 1];
        for (size_t a = 0; a < p; a++, row += stride) {
            float ca = ch * wx[a];
            for (size_t b = 0; b < p; b++)
                row[b] += ca * wy[b];
        }
    }
}

/* The three potentials at points [i0, i1), then their forces and shares of Z. */
PW_ALWAYS_INLINE void interpolate(struct tsne_fft *f, size_t p, const float *Y, float centre,
                                  size_t stride, float *rep, size_t i0, size_t i1)
{
    for (size_t i = i0; i < i1; i++) {
        if (f->nfar && f->is_far[i])
            continue; /* tsne_fft_far_sums fills rep and zi */
        const float *wx = f->w + 2 * i * p, *wy = wx + p;
        size_t off = (size_t)f->base[2 * i] * stride + (size_t)f->base[2 * i + 1];
        float phi[NTERMS];
        for (int t = 0; t < NTERMS; t++) {
            const float *row = (const float *)f->c[t] + off;
            float s = 0;
            for (size_t a = 0; a < p; a++, row += stride) {
                float ra = 0;
                for (size_t b = 0; b < p; b++)
                    ra += wy[b] * row[b];
                s += wx[a] * ra;
            }
            phi[t] = s;
        }
        float y1 = Y[2 * i] - centre, y2 = Y[2 * i + 1] - centre;
        rep[2 * i] = y1 * phi[0] - phi[1];
        rep[2 * i + 1] = y2 * phi[0] - phi[2];
        f->zi[i] =
            (1.0f + 2.0f * (y1 * y1 + y2 * y2)) * phi[0] - 2.0f * (y1 * phi[1] + y2 * phi[2]);
    }
}

/* The grid's cost in ns on one core (AVX-512): about 0.8 ns per M^2 log2 M (three
 * charges' forward and inverse transforms) plus about 2 ns per point and stencil node. */
static double grid_cost(size_t n, size_t M, size_t p)
{
    return 0.8 * (double)M * (double)M * log2((double)M) + 2.0 * (double)n * (double)(p * p);
}

/* The block sums (tsne_far.c) in place of the grid when their cost model says they
 * cost less: layouts wide for their point count - many well-separated tight clusters,
 * duplicated rows collapsed into far-apart points.  The models read n, the grid's size and
 * the layout, and a plan that lost is not tried again for BLOCKS_REPLAN calls: the choice
 * depends on the layouts of the calls so far, not on the thread count.  Returns 1 when it
 * took them, 0 when the grid is cheaper, a negative code on error. */
static int blocks_instead(struct tsne_fft *f, struct team *tm, const float *Y, float *rep,
                          double *z, const struct tsne_side_work *side, double grid,
                          struct pw_error *err)
{
    if (f->always_grid || tsne_far_min_cost(f->n) >= grid)
        return 0;
    if (f->blocks_skip > 0) {
        f->blocks_skip--;
        return 0;
    }
    if (!f->blocks) {
        int rc = tsne_far_new(f->n, &f->blocks, err);
        if (rc)
            return rc;
    }
    if (tsne_far_plan(f->blocks, Y) >= grid) {
        f->blocks_skip = BLOCKS_REPLAN; /* layouts change slowly: plan again in a while */
        return 0;
    }
    tsne_far_repulsion(f->blocks, tm, rep, z, side);
    return 1;
}

/* One repulsion's parameters, for its tasks (team.h). */
struct fft_job {
    struct tsne_fft *f;
    const float *Y;
    float *rep;
    const struct tsne_side_work *side;
    size_t p, N, M, half, nside;
    float glo, inv_h, centre, inv_den[8];
    double h;
    int new_kernel;
};

/* Coordinates and points are handed out in POINT_CHUNK-point tasks. */
#define POINT_CHUNK 512

static void weights_task(void *ctx, size_t c)
{
    struct fft_job *j = ctx;
    size_t q0 = 2 * POINT_CHUNK * c, q1 = q0 + 2 * POINT_CHUNK;
    q1 = q1 < 2 * j->f->n ? q1 : 2 * j->f->n;
    PER_P(j->p, weights(j->f, p_, j->Y, j->glo, j->inv_h, j->N, j->inv_den, q0, q1));
}

/* Task 0: the kernel's spectrum (when the spacing changed); tasks 1..3: spread one
 * charge each and transform; then the first half of the side tasks. */
static void forward_task(void *ctx, size_t t)
{
    struct fft_job *j = ctx;
    struct tsne_fft *f = j->f;
    if (t > NTERMS) {
        j->side->task(j->side->ctx, t - NTERMS - 1);
        return;
    }
    if (t == 0) {
        if (j->new_kernel)
            kernel_spectrum(f, j->h);
        return;
    }
    size_t N = j->N, H = f->H, stride = 2 * H;
    fftwf_complex *c = f->c[t - 1];
    float *g = (float *)c;
    memset(g, 0, N * stride * sizeof *g);
    PER_P(j->p, spread(f, p_, j->Y, j->centre, (int)t - 1, g, stride));
    fftwf_execute_dft_r2c(f->rows_fwd, g, c);
    memset(c + N * H, 0, N * H * sizeof *c);
    fftwf_execute_dft(f->cols_fwd, c, c);
}

/* Tasks 0..2: one charge's spectrum times the kernel's, transformed back (spectrum row u
 * of the kernel is row min(u, M - u) of ks); then the other side tasks. */
static void inverse_task(void *ctx, size_t t)
{
    struct fft_job *j = ctx;
    struct tsne_fft *f = j->f;
    if (t >= NTERMS) {
        j->side->task(j->side->ctx, j->half + t - NTERMS);
        return;
    }
    size_t N = j->N, M = j->M, H = f->H;
    fftwf_complex *c = f->c[t];
    for (size_t u = 0; u < M; u++) {
        const fftwf_complex *k = f->ks + (u <= N ? u : M - u) * H;
        fftwf_complex *row = c + u * H;
        for (size_t v = 0; v < H; v++) {
            row[v][0] *= k[v][0];
            row[v][1] *= k[v][0];
        }
    }
    fftwf_execute_dft(f->cols_inv, c, c);
    fftwf_execute_dft_c2r(f->rows_inv, c, (float *)c);
}

static void interpolate_task(void *ctx, size_t c)
{
    struct fft_job *j = ctx;
    size_t i0 = POINT_CHUNK * c, i1 = i0 + POINT_CHUNK;
    i1 = i1 < j->f->n ? i1 : j->f->n;
    PER_P(j->p, interpolate(j->f, p_, j->Y, j->centre, 2 * j->f->H, j->rep, i0, i1));
}

int tsne_fft_repulsion(struct tsne_fft *f, struct team *tm, const float *Y, float *rep, double *z,
                       const struct tsne_side_work *side, struct pw_error *err)
{
    size_t n = f->n, p = f->p;
    float lo = INFINITY, hi = -INFINITY;
    for (size_t q = 0; q < 2 * n; q++) {
        lo = Y[q] < lo ? Y[q] : lo;
        hi = Y[q] > hi ? Y[q] : hi;
    }
    double span = (double)hi - (double)lo;
    if (!isfinite(span))
        return pw_error_set(err, PW_EINVAL, "tsne: the layout diverged (non-finite coordinates)");
    tsne_fft_find_far(f, Y, &lo, &hi);
    span = (double)hi - (double)lo;
    span = span > 1e-6 ? span : 1e-6;
    /* Nodes per axis: the span at the widest spacing plus a margin of p nodes (the
     * outermost points' stencils), at least min_intervals * p, rounded up to a
     * 2^a * {1, 3, 5} count; then the spacing: the smallest ladder value that still spans
     * the layout.  The spacing therefore changes only when the node count does or the
     * layout crosses a ladder step, and the kernel's spectrum is kept in between.  Past
     * MAX_NODES nodes the spacing grows instead (less accuracy rather than grids of
     * gigabytes for layouts thousands of units wide). */
    double hmax = f->interval_width / (double)p, h;
    size_t min_nodes = f->min_intervals * p, max_nodes = MAX_NODES;
    double want = ceil(span / hmax) + (double)p;
    size_t N;
    if (want > (double)max_nodes) {
        N = max_nodes;
        h = span / (double)(N - p);
    } else {
        N = fast_size((size_t)want > min_nodes ? (size_t)want : min_nodes);
        double steps = fmax(0.0, floor(H_LADDER * log2(hmax * (double)(N - p) / span)));
        h = hmax * exp2(-fmin(steps, 60.0 * H_LADDER) / H_LADDER);
    }
    size_t M = 2 * N;
    int rc = blocks_instead(f, tm, Y, rep, z, side, grid_cost(n, M, p), err);
    if (rc)
        return rc < 0 ? rc : 0;
    if (ensure_grids(f, N))
        return pw_error_set(err, PW_ENOMEM, "tsne: out of memory for the FFT grids");
    double mid = 0.5 * ((double)lo + (double)hi);
    size_t nside = side ? side->ntasks : 0, chunks = (n + POINT_CHUNK - 1) / POINT_CHUNK;
    struct fft_job j = {.f = f,
                        .Y = Y,
                        .rep = rep,
                        .side = side,
                        .p = p,
                        .N = N,
                        .M = M,
                        .half = nside / 2,
                        .nside = nside,
                        .glo = (float)(mid - 0.5 * (double)N * h),
                        .inv_h = (float)(1.0 / h),
                        .centre = (float)mid,
                        .h = h,
                        .new_kernel = h != f->ks_h};
    for (size_t k = 0; k < p; k++) {
        double den = 1.0;
        for (size_t m = 0; m < p; m++)
            den *= m == k ? 1.0 : ((double)k - (double)m) / (double)p;
        j.inv_den[k] = (float)(1.0 / den);
    }
    team_for(tm, chunks, weights_task, &j);
    team_for(tm, NTERMS + 1 + j.half, forward_task, &j);
    team_for(tm, NTERMS + nside - j.half, inverse_task, &j);
    f->ks_h = h;
    team_for(tm, chunks, interpolate_task, &j);
    if (f->nfar)
        tsne_fft_far_sums(f, tm, Y, rep);
    double zsum = 0;
    for (size_t i = 0; i < n; i++) /* in point order: independent of the thread count */
        zsum += f->zi[i];
    *z = zsum - (double)n; /* the j == i terms */
    return 0;
}
