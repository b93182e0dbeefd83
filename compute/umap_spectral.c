/* umap_spectral.c - spectral initialisation of UMAP (see umap_spectral.h).
 *
 * Per connected component, the 2nd and 3rd eigenvectors of the normalised Laplacian by
 * Chebyshev-filtered block subspace iteration; several components are placed around
 * meta points (multi_component_layout, with the differences said at spectral_layout). */
#include "umap_spectral.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "pca.h"
#include "rng.h"

/* Small dense kernels on m x b row-major blocks (b <= SPEC_B).  No BLAS: the blocks are
 * thin (b = 10) and components are solved concurrently, where OpenBLAS's own threads
 * would only contend.  Sums over rows are taken per fixed block of SPEC_ROWS rows and
 * added in block order, so results do not depend on the thread count. */
#define SPEC_B    16
#define SPEC_ROWS 2048
_Static_assert(SPEC_B % 4 == 0, "atb_rows_full takes four rows at a time");

#define SPEC_INLINE static inline __attribute__((always_inline))

/* P (ca x cb) += A^T B over rows [lo, hi).  Called with ca, cb constant where they are
 * SPEC_B, so the inner loops unroll. */
SPEC_INLINE void atb_rows(const double *A, size_t ca, const double *B, size_t cb, size_t lo,
                          size_t hi, double *P)
{
    for (size_t i = lo; i < hi; i++)
        for (size_t r = 0; r < ca; r++) {
            double a = A[i * ca + r];
            for (size_t c = 0; c < cb; c++)
                P[r * cb + c] += a * B[i * cb + c];
        }
}

/* atb_rows for ca = cb = SPEC_B, four rows of P at a time held in registers. */
PW_CLONES_V4 static void atb_rows_full(const double *A, const double *B, size_t lo, size_t hi,
                                       double *P)
{
    for (size_t r0 = 0; r0 < SPEC_B; r0 += 4) {
        double acc[4][SPEC_B] = {{0}};
        for (size_t i = lo; i < hi; i++)
            for (size_t r = 0; r < 4; r++) {
                double a = A[i * SPEC_B + r0 + r];
                for (size_t c = 0; c < SPEC_B; c++)
                    acc[r][c] += a * B[i * SPEC_B + c];
            }
        for (size_t r = 0; r < 4; r++)
            for (size_t c = 0; c < SPEC_B; c++)
                P[(r0 + r) * SPEC_B + c] += acc[r][c];
    }
}

/* out = the sum of part's nblk blocks of sz, in block order. */
static void sum_parts(const double *part, size_t nblk, size_t sz, double *out)
{
    memcpy(out, part, sz * sizeof *out);
    for (size_t k = 1; k < nblk; k++)
        for (size_t t = 0; t < sz; t++)
            out[t] += part[k * sz + t];
}

/* out (ca x cb) = A^T B, A m x ca, B m x cb; part holds ceil(m / SPEC_ROWS) * ca * cb. */
static void spec_atb(const double *A, size_t ca, const double *B, size_t cb, size_t m, double *out,
                     double *part, int threads)
{
    size_t nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS, sz = ca * cb;
#pragma omp parallel for schedule(static) num_threads(threads) if (nblk > 1)
    for (size_t k = 0; k < nblk; k++) {
        double *P = part + k * sz;
        memset(P, 0, sz * sizeof *P);
        size_t lo = k * SPEC_ROWS, hi = (k + 1) * SPEC_ROWS < m ? (k + 1) * SPEC_ROWS : m;
        if (ca == SPEC_B && cb == SPEC_B)
            atb_rows_full(A, B, lo, hi, P);
        else
            atb_rows(A, ca, B, cb, lo, hi, P);
    }
    sum_parts(part, nblk, sz, out);
}

/* Ri <- R^-1 for the Cholesky factor R of the b x b Gram matrix G (G = R^T R, R upper
 * triangular); *ratio gets max R_cc / min R_cc, a lower bound of X's condition number.
 * -1 when G is not positive definite. */
static int chol_inverse(const double *G, size_t b, double *Ri, double *ratio)
{
    double R[SPEC_B * SPEC_B] = {0};
    double dmax = 0, dmin = INFINITY;
    for (size_t c = 0; c < b; c++) {
        for (size_t r = 0; r < c; r++) {
            double s = G[r * b + c];
            for (size_t t = 0; t < r; t++)
                s -= R[t * b + r] * R[t * b + c];
            R[r * b + c] = s / R[r * b + r];
        }
        double s = G[c * b + c];
        for (size_t t = 0; t < c; t++)
            s -= R[t * b + c] * R[t * b + c];
        if (!(s > 0))
            return -1;
        R[c * b + c] = sqrt(s);
        dmax = R[c * b + c] > dmax ? R[c * b + c] : dmax;
        dmin = R[c * b + c] < dmin ? R[c * b + c] : dmin;
    }
    for (size_t c = 0; c < b; c++) /* column c of R^-1 by back substitution */
        for (size_t r = b; r-- > 0;) {
            double s = r == c ? 1.0 : 0.0;
            for (size_t t = r + 1; t < b; t++)
                s -= R[r * b + t] * Ri[t * b + c];
            Ri[r * b + c] = s / R[r * b + r];
        }
    *ratio = dmax / dmin;
    return 0;
}

/* X <- X Ri over rows [lo, hi) (Ri upper triangular); when P is not NULL it also
 * accumulates the new rows' Gram matrix into it. */
SPEC_INLINE void times_rinv_rows(double *X, size_t b, const double *Ri, size_t lo, size_t hi,
                                 double *P)
{
    for (size_t i = lo; i < hi; i++) {
        double *x = X + i * b, y[SPEC_B] = {0};
        for (size_t r = 0; r < b; r++)
            for (size_t c = 0; c < b; c++)
                y[c] += x[r] * Ri[r * b + c];
        memcpy(x, y, b * sizeof *x);
        if (P)
            for (size_t r = 0; r < b; r++)
                for (size_t c = 0; c < b; c++)
                    P[r * b + c] += y[r] * y[c];
    }
}

PW_CLONES_V4 static void times_rinv_rows_full(double *X, const double *Ri, size_t lo, size_t hi,
                                              double *P)
{
    times_rinv_rows(X, SPEC_B, Ri, lo, hi, P);
}

/* Cholesky QR of X (m x b): X <- X R^-1 with X^T X = R^T R, repeated once (fused with the
 * Gram matrix of the first pass's output) unless the first factor was well conditioned
 * (diagonal ratio below 100: the loss of orthogonality, about 1e-16 cond^2, is then
 * negligible).  -1 when X is numerically rank deficient. */
static int orthonormalize(double *X, size_t m, size_t b, double *G, double *part, int threads)
{
    size_t nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS, sz = b * b;
    double Ri[SPEC_B * SPEC_B], ratio;
    spec_atb(X, b, X, b, m, G, part, threads);
    for (int pass = 0; pass < 2; pass++) {
        if (chol_inverse(G, b, Ri, &ratio))
            return -1;
        int again = pass == 0 && ratio >= 100.0;
#pragma omp parallel for schedule(static) num_threads(threads) if (nblk > 1)
        for (size_t k = 0; k < nblk; k++) {
            double *P = again ? part + k * sz : NULL;
            if (P)
                memset(P, 0, sz * sizeof *P);
            size_t lo = k * SPEC_ROWS, hi = (k + 1) * SPEC_ROWS < m ? (k + 1) * SPEC_ROWS : m;
            if (b == SPEC_B)
                times_rinv_rows_full(X, Ri, lo, hi, P);
            else
                times_rinv_rows(X, b, Ri, lo, hi, P);
        }
        if (!again)
            break;
        sum_parts(part, nblk, sz, G);
    }
    return 0;
}

/* X -= v1 (v1^T X): remove the known top eigenvector. */
static void deflate(double *X, const double *v1, size_t m, size_t b, double *part, int threads)
{
    double coef[SPEC_B];
    spec_atb(v1, 1, X, b, m, coef, part, threads);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < m; i++)
        for (size_t c = 0; c < b; c++)
            X[i * b + c] -= v1[i] * coef[c];
}

/* The operator S = (I + D^-1/2 W D^-1/2) / 2 as the solver applies it: the scaled edge
 * weights wn(i, j) = w(i, j) / (2 sqrt(d_i d_j)) in float, next to the graph's columns. */
struct spec_op {
    const struct umap_graph *g;
    float *wn; /* nnz */
};

/* Float copies of a block are stored SPEC_FW floats a row (one 64-byte line, the columns
 * past b zero), so that the gather of a neighbour's row is one aligned load. */
#define SPEC_FW 16
typedef float v16f __attribute__((vector_size(64)));
_Static_assert(SPEC_B <= SPEC_FW, "a block row must fit its float copy");

/* Rows [lo, hi) of op_step. */
PW_CLONES_V4 static void op_rows(const struct spec_op *op, size_t lo, size_t hi, const double *y,
                                 const float *yf, const double *x, double ca, double cy, double cx,
                                 double *out, float *outf, size_t b)
{
    const struct umap_graph *g = op->g;
    const float *wn = op->wn;
    const v16f *yv = (const v16f *)yf;
    for (size_t i = lo; i < hi; i++) {
        v16f acc = {0};
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++)
            acc += wn[e] * yv[g->col[e]];
        for (size_t c = 0; c < b; c++) {
            double v = ca * (0.5 * y[i * b + c] + (double)acc[c]) + cy * y[i * b + c];
            if (cx != 0.0)
                v += cx * x[i * b + c];
            out[i * b + c] = v;
            outf[i * SPEC_FW + c] = (float)v;
        }
    }
}

/* One operator application fused with a three-term recurrence step, row by row:
 * out = ca S y + cy y + cx x (x unread when cx = 0), and outf = (float)out.  The
 * neighbours' values are read from yf, the float copy of y: the gather is the cost of
 * the solve, and float halves its bytes, while the recurrence and every sum over rows
 * stay in double.  One parallel loop, no reduction.  S keeps D^1/2 1 as its exact top
 * eigenvector, so a block orthogonal to it stays so up to rounding (deflated once per
 * filter, see spectral_connected). */
static void op_step(const struct spec_op *op, const double *y, const float *yf, const double *x,
                    double ca, double cy, double cx, double *out, float *outf, size_t b,
                    int threads)
{
    size_t m = op->g->n, nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS;
#pragma omp parallel for schedule(static) num_threads(threads) if (nblk > 1)
    for (size_t k = 0; k < nblk; k++)
        op_rows(op, k * SPEC_ROWS, (k + 1) * SPEC_ROWS < m ? (k + 1) * SPEC_ROWS : m, y, yf, x, ca,
                cy, cx, out, outf, b);
}

static void to_float(const double *X, float *Xf, size_t m, size_t b, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < m; i++)
        for (size_t c = 0; c < b; c++)
            Xf[i * SPEC_FW + c] = (float)X[i * b + c];
}

/* Eigen-decomposition of the symmetric b x b matrix H by cyclic Jacobi rotations:
 * theta descending, the eigenvectors in the columns of V. */
static void sym_eig(double *H, size_t b, double *theta, double *V)
{
    for (size_t r = 0; r < b; r++)
        for (size_t c = 0; c < b; c++)
            V[r * b + c] = r == c;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, tot = 0;
        for (size_t r = 0; r < b; r++)
            for (size_t c = 0; c < b; c++) {
                tot += H[r * b + c] * H[r * b + c];
                if (r != c)
                    off += H[r * b + c] * H[r * b + c];
            }
        if (off <= 1e-30 * tot)
            break;
        for (size_t p = 0; p < b; p++)
            for (size_t q = p + 1; q < b; q++) {
                double hpq = H[p * b + q];
                if (hpq == 0.0)
                    continue;
                double tau = (H[q * b + q] - H[p * b + p]) / (2.0 * hpq);
                double t = (tau >= 0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
                double cs = 1.0 / sqrt(1.0 + t * t), sn = t * cs;
                for (size_t k = 0; k < b; k++) { /* H <- H J */
                    double hp = H[k * b + p], hq = H[k * b + q];
                    H[k * b + p] = cs * hp - sn * hq;
                    H[k * b + q] = sn * hp + cs * hq;
                }
                for (size_t k = 0; k < b; k++) { /* H <- J^T H */
                    double hp = H[p * b + k], hq = H[q * b + k];
                    H[p * b + k] = cs * hp - sn * hq;
                    H[q * b + k] = sn * hp + cs * hq;
                }
                for (size_t k = 0; k < b; k++) {
                    double vp = V[k * b + p], vq = V[k * b + q];
                    V[k * b + p] = cs * vp - sn * vq;
                    V[k * b + q] = sn * vp + cs * vq;
                }
            }
    }
    for (size_t c = 0; c < b; c++)
        theta[c] = H[c * b + c];
    for (size_t c = 0; c < b; c++) { /* selection sort, descending */
        size_t best = c;
        for (size_t t = c + 1; t < b; t++)
            if (theta[t] > theta[best])
                best = t;
        if (best != c) {
            double tt = theta[c];
            theta[c] = theta[best];
            theta[best] = tt;
            for (size_t r = 0; r < b; r++) {
                double tv = V[r * b + c];
                V[r * b + c] = V[r * b + best];
                V[r * b + best] = tv;
            }
        }
    }
}

/* Chebyshev filter of degree `deg` (Zhou & Saad 2007, scaled): *X <- p(S) *X where p
 * is the Chebyshev polynomial that is small on S's unwanted interval [0, hi] and 1 at
 * top (the largest wanted eigenvalue's estimate).  On entry *Y = S *X; the three
 * buffers (and their float copies) are rotated and the result ends in *X.  Each degree
 * past the first costs one operator application.  A wanted eigenvalue just above hi
 * grows like exp(deg acosh(1 + 2 gap / hi)) against the unwanted ones: for
 * Fashion-MNIST's graph (eigenvalues 0.9986 wanted, 0.988 unwanted) that is 0.81 per
 * application, where a shifted power step S - hi / 2 gives 0.977. */
static void cheb_filter(const struct spec_op *op, double **X, double **Y, double **Z, float **Yf,
                        float **Zf, size_t b, double hi, double top, size_t deg, int threads)
{
    size_t m = op->g->n;
    double e = 0.5 * hi, c = 0.5 * hi;
    if (!(top > hi) || !(e > 0)) { /* no interval to damp: one power step */
        double *t = *X;
        *X = *Y;
        *Y = t;
        return;
    }
    double sigma1 = e / (top - c), sigma = sigma1, tau = 2.0 / sigma1;
    double *x = *X, *y = *Y, *z = *Z;
    float *yf = *Yf, *zf = *Zf;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < m; i++)
        for (size_t t = 0; t < b; t++) {
            y[i * b + t] = (y[i * b + t] - c * x[i * b + t]) * (sigma1 / e);
            yf[i * SPEC_FW + t] = (float)y[i * b + t];
        }
    for (size_t k = 2; k <= deg; k++) {
        double sn = 1.0 / (tau - sigma), ca = 2.0 * sn / e;
        op_step(op, y, yf, x, ca, -c * ca, -sigma * sn, z, zf, b, threads);
        double *t = x;
        x = y;
        y = z;
        z = t;
        float *tf = yf;
        yf = zf;
        zf = tf;
        sigma = sn;
    }
    *X = y;
    *Y = x;
    *Z = z;
    *Yf = yf;
    *Zf = zf;
}

/* X <- X V, Y <- Y V over rows [lo, hi); r2 gets the top two pairs' squared residuals. */
SPEC_INLINE void ritz_rows(double *X, double *Y, size_t b, const double *V, const double *theta,
                           size_t lo, size_t hi, double r2[2])
{
    double r0 = 0, r1 = 0;
    for (size_t i = lo; i < hi; i++) {
        double xr[SPEC_B] = {0}, yr[SPEC_B] = {0};
        for (size_t r = 0; r < b; r++)
            for (size_t c = 0; c < b; c++) {
                xr[c] += X[i * b + r] * V[r * b + c];
                yr[c] += Y[i * b + r] * V[r * b + c];
            }
        memcpy(X + i * b, xr, b * sizeof *xr);
        memcpy(Y + i * b, yr, b * sizeof *yr);
        r0 += (yr[0] - theta[0] * xr[0]) * (yr[0] - theta[0] * xr[0]);
        r1 += (yr[1] - theta[1] * xr[1]) * (yr[1] - theta[1] * xr[1]);
    }
    r2[0] = r0;
    r2[1] = r1;
}

PW_CLONES_V4 static void ritz_rows_full(double *X, double *Y, const double *V, const double *theta,
                                        size_t lo, size_t hi, double r2[2])
{
    ritz_rows(X, Y, SPEC_B, V, theta, lo, hi, r2);
}

/* Rayleigh-Ritz on span(X) with Y = S X: X <- X V, Y <- Y V for the eigenvectors V of
 * X^T Y (theta descending); res gets the top two Ritz pairs' residual norms. */
static void rayleigh_ritz(double *X, double *Y, size_t m, size_t b, double *theta, double res[2],
                          double *part, int threads)
{
    double H[SPEC_B * SPEC_B], V[SPEC_B * SPEC_B];
    size_t nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS;
    spec_atb(X, b, Y, b, m, H, part, threads);
    for (size_t r = 0; r < b; r++)
        for (size_t c = r + 1; c < b; c++)
            H[r * b + c] = H[c * b + r] = 0.5 * (H[r * b + c] + H[c * b + r]);
    sym_eig(H, b, theta, V);
#pragma omp parallel for schedule(static) num_threads(threads) if (nblk > 1)
    for (size_t k = 0; k < nblk; k++) {
        size_t lo = k * SPEC_ROWS, hi = (k + 1) * SPEC_ROWS < m ? (k + 1) * SPEC_ROWS : m;
        if (b == SPEC_B)
            ritz_rows_full(X, Y, V, theta, lo, hi, part + 2 * k);
        else
            ritz_rows(X, Y, b, V, theta, lo, hi, part + 2 * k);
    }
    res[0] = res[1] = 0;
    for (size_t k = 0; k < nblk; k++) {
        res[0] += part[2 * k];
        res[1] += part[2 * k + 1];
    }
    res[0] = sqrt(res[0]);
    res[1] = sqrt(res[1]);
}

/* Operator applications per Rayleigh-Ritz step: one for the step, CHEB_DEGREE - 1 more
 * in the filter. */
#define CHEB_DEGREE 8

/* The eigenvectors of the 2nd and 3rd smallest eigenvalues of the normalised Laplacian
 * I - D^-1/2 W D^-1/2 of a connected graph, i.e. the top ones of S = (I + that) / 2 once
 * its known top eigenvector D^1/2 1 is deflated: Chebyshev-filtered block subspace
 * iteration (cheb_filter) with Rayleigh-Ritz.  umap-learn asks ARPACK for tol 1e-4 with
 * a bounded number of iterations; we stop at ARPACK's criterion with that tol, or
 * before the next filter would take the operator applications past max_it, and then
 * keep the current Ritz vectors: the best subspace found, already smooth on the graph
 * (a graph without a spectral gap, such as an isotropic cloud's, converges slowly and
 * ends there).  *applications gets the count.  The result does not depend on
 * `threads`.  Returns -1 on numerical failure or out of memory. */
static int spectral_connected(const struct umap_graph *g, uint64_t seed, uint64_t stream,
                              int threads, size_t max_it, double *emb, size_t *applications,
                              const struct pw_progress *progress)
{
    size_t m = g->n, b = m - 1 < SPEC_B ? m - 1 : SPEC_B;
    size_t nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS;
    int rc = -1;
    double *isq = malloc(m * sizeof *isq), *v1 = calloc(m, sizeof *v1);
    double *X = calloc(m * b, sizeof *X), *Y = malloc(m * b * sizeof *Y);
    double *Z = malloc(m * b * sizeof *Z);
    float *Xf = aligned_alloc(64, m * SPEC_FW * sizeof *Xf);
    float *Yf = aligned_alloc(64, m * SPEC_FW * sizeof *Yf);
    float *wn = malloc((g->nnz ? g->nnz : 1) * sizeof *wn);
    double *part = malloc((nblk * b * b > 2 * nblk ? nblk * b * b : 2 * nblk) * sizeof *part);
    double G[SPEC_B * SPEC_B], theta[SPEC_B], res[2];
    struct spec_op op = {g, wn};
    *applications = 0;
    if (!isq || !v1 || !X || !Y || !Z || !Xf || !Yf || !wn || !part || b < 2)
        goto cleanup;
    memset(Xf, 0, m * SPEC_FW * sizeof *Xf);
    memset(Yf, 0, m * SPEC_FW * sizeof *Yf);
    double vn = 0;
    for (size_t i = 0; i < m; i++) {
        double deg = 0;
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++)
            deg += g->val[e];
        if (!(deg > 0))
            goto cleanup;
        isq[i] = 1.0 / sqrt(deg);
        v1[i] = sqrt(deg);
        vn += deg;
    }
    vn = sqrt(vn);
    for (size_t i = 0; i < m; i++) {
        v1[i] /= vn;
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++)
            wn[e] = (float)(0.5 * isq[i] * g->val[e] * isq[g->col[e]]);
    }
    for (size_t i = 0; i < m * b; i++)
        X[i] = rng_normal(seed, stream, i);
    /* Threads only where one operator application (a parallel loop) is milliseconds of
     * work: below that the fork and join cost as much as they save, and far more when
     * another process holds a core and the team waits for a descheduled thread. */
    if (g->nnz < ((size_t)1 << 20))
        threads = 1;
    for (size_t used = 1;; used += CHEB_DEGREE) {
        deflate(X, v1, m, b, part, threads);
        if (orthonormalize(X, m, b, G, part, threads))
            goto cleanup;
        to_float(X, Xf, m, b, threads);
        op_step(&op, X, Xf, NULL, 1.0, 0.0, 0.0, Y, Yf, b, threads);
        rayleigh_ritz(X, Y, m, b, theta, res, part, threads);
        *applications = used;
        if ((res[0] <= 1e-4 * theta[0] && res[1] <= 1e-4 * theta[1]) ||
            used + CHEB_DEGREE > max_it) {
            for (size_t i = 0; i < m; i++) {
                emb[i * 2] = X[i * b];
                emb[i * 2 + 1] = X[i * b + 1];
            }
            rc = 0;
            for (size_t i = 0; i < 2 * m; i++)
                if (!isfinite(emb[i]))
                    rc = -1;
            goto cleanup;
        }
        if (pw_progress_cancelled(progress))
            goto cleanup;
        /* S's spectrum lies in [0, 1]; below the block's smallest Ritz value is unwanted.
         * The Ritz rotation left Y = S X but not Yf: refresh it inside the filter. */
        cheb_filter(&op, &X, &Y, &Z, &Yf, &Xf, b, theta[b - 1], theta[0], CHEB_DEGREE, threads);
    }
cleanup:
    free(isq);
    free(v1);
    free(X);
    free(Y);
    free(Z);
    free(Xf);
    free(Yf);
    free(wn);
    free(part);
    return rc;
}

/* Connected components by union-find; labels are 0..count-1 in order of first vertex. */
static size_t graph_components(const struct umap_graph *g, int32_t *label)
{
    size_t n = g->n;
    for (size_t i = 0; i < n; i++)
        label[i] = (int32_t)i;
    for (size_t i = 0; i < n; i++)
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            int32_t a = (int32_t)i, b = g->col[e];
            while (label[a] != a)
                a = label[a] = label[label[a]];
            while (label[b] != b)
                b = label[b] = label[label[b]];
            if (a != b) {
                if (a < b)
                    label[b] = a;
                else
                    label[a] = b;
            }
        }
    size_t count = 0;
    int32_t *map = malloc(n * sizeof *map);
    if (!map)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int32_t r = (int32_t)i;
        while (label[r] != r)
            r = label[r];
        map[i] = r;
    }
    int32_t *id = malloc(n * sizeof *id);
    if (!id) {
        free(map);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        id[i] = -1;
    for (size_t i = 0; i < n; i++) {
        if (id[map[i]] < 0)
            id[map[i]] = (int32_t)count++;
        label[i] = id[map[i]];
    }
    free(map);
    free(id);
    return count;
}

/* Subgraph of the vertices with label c, in local numbering (local[v] for v in it). */
static int subgraph(const struct umap_graph *g, const int32_t *label, int32_t c,
                    const int32_t *verts, size_t m, const int32_t *local, struct umap_graph *sub)
{
    size_t nnz = 0;
    for (size_t s = 0; s < m; s++) {
        size_t v = (size_t)verts[s];
        nnz += g->rowptr[v + 1] - g->rowptr[v];
    }
    sub->n = m;
    sub->nnz = nnz;
    sub->rowptr = malloc((m + 1) * sizeof *sub->rowptr);
    sub->col = malloc((nnz ? nnz : 1) * sizeof *sub->col);
    sub->val = malloc((nnz ? nnz : 1) * sizeof *sub->val);
    if (!sub->rowptr || !sub->col || !sub->val)
        return -1;
    size_t e2 = 0;
    for (size_t s = 0; s < m; s++) {
        size_t v = (size_t)verts[s];
        sub->rowptr[s] = e2;
        for (size_t e = g->rowptr[v]; e < g->rowptr[v + 1]; e++)
            if (label[g->col[e]] == c) { /* always true in a component; kept for clarity */
                sub->col[e2] = local[g->col[e]];
                sub->val[e2++] = g->val[e];
            }
    }
    sub->rowptr[m] = e2;
    sub->nnz = e2;
    return 0;
}

#define SPEC_BIG 8192 /* components at least this big use all threads */

struct comp_ctx {
    const struct umap_graph *g;
    const int32_t *label, *verts, *local;
    const size_t *start;
    const double *meta;
    size_t nc;
    uint64_t seed;
    size_t max_it;
    size_t *apps; /* per component: operator applications spent */
    double *cemb, *emb;
    const struct pw_progress *progress;
};

/* Component c around its meta point; 1 when its spectral solve failed (random box). */
static int layout_component(const struct comp_ctx *cc, size_t c, int threads)
{
    size_t m = cc->start[c + 1] - cc->start[c], nc = cc->nc;
    const int32_t *vs = cc->verts + cc->start[c];
    const double *meta = cc->meta;
    double *cemb = cc->cemb + 2 * cc->start[c], *emb = cc->emb;
    uint64_t seed = cc->seed;
    if (pw_progress_cancelled(cc->progress))
        return 0; /* the caller returns PW_ECANCELED */
    double range = INFINITY;
    for (size_t o = 0; o < nc; o++) {
        double dx = meta[o * 2] - meta[c * 2], dy = meta[o * 2 + 1] - meta[c * 2 + 1];
        double dd = sqrt(dx * dx + dy * dy);
        if (dd > 0 && dd < range)
            range = dd;
    }
    range = isfinite(range) ? range / 2.0 : 1.0;
    int ok = 0, failed = 0;
    if (m >= 4) { /* umap-learn: not (m < 2 * dim or m <= dim + 1) */
        struct umap_graph sub = {0};
        if (subgraph(cc->g, cc->label, (int32_t)c, vs, m, cc->local, &sub) == 0 &&
            spectral_connected(&sub, seed, 0x5bec + c, threads, cc->max_it, cemb, &cc->apps[c],
                               cc->progress) == 0) {
            double mx = 0;
            for (size_t i = 0; i < 2 * m; i++)
                mx = fabs(cemb[i]) > mx ? fabs(cemb[i]) : mx;
            if (mx > 0) {
                for (size_t s = 0; s < m; s++)
                    for (int t = 0; t < 2; t++)
                        emb[(size_t)vs[s] * 2 + t] = cemb[s * 2 + t] * range / mx + meta[c * 2 + t];
                ok = 1;
            }
        }
        umap_graph_free(&sub);
        failed = !ok;
    }
    if (!ok)
        for (size_t s = 0; s < m; s++)
            for (int t = 0; t < 2; t++)
                emb[(size_t)vs[s] * 2 + t] =
                    (rng_unit(seed, 0x7a11 + c, s * 2 + (size_t)t) * 2.0 - 1.0) * range +
                    meta[c * 2 + t];
    return failed;
}

/* spectral_layout / multi_component_layout.  One component: its spectral layout.
 * Several: umap-learn places component c around a meta point (the +-unit-vector trick
 * for <= 4 components; for more, umap-learn spectrally embeds the centroids' affinity -
 * we take the 2-D PCA of the centroids instead, scaled to max |.| = 1), scaled to half the
 * distance to the nearest other meta point; components too small for an eigenproblem,
 * or whose eigensolve fails, get uniform random positions in that box.  Returns the
 * number of components whose spectral solve failed (0 = umap-learn's success path). */
int umap_spectral_layout(const float *x, size_t d, const int32_t *order, const struct umap_graph *g,
                         uint64_t seed, int threads, double *emb, struct umap_spectral_stats *st,
                         const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = g->n;
    int32_t *label = malloc(n * sizeof *label), *verts = malloc(n * sizeof *verts);
    int32_t *local = malloc(n * sizeof *local);
    size_t *start = NULL, *apps = NULL;
    double *meta = NULL, *cemb = NULL;
    float *centroids = NULL, *meta2 = NULL;
    int failures = 0, rc = 0;
    if (!label || !verts || !local) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
        goto cleanup;
    }
    size_t nc = graph_components(g, label);
    /* Budget: UMAP_SPECTRAL_MAX_APPLICATIONS operator applications per component, so
     * the whole solve reads the graph's edges at most that many times, whatever its
     * spectrum. */
    size_t max_it = UMAP_SPECTRAL_MAX_APPLICATIONS;
    st->n_components = nc;
    st->applications = 0;
    if (nc == 0) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
        goto cleanup;
    }
    if (nc == 1) {
        failures =
            spectral_connected(g, seed, 0x5bec, threads, max_it, emb, &st->applications, progress)
                ? 1
                : 0;
        if (failures)
            for (size_t i = 0; i < 2 * n; i++)
                emb[i] = rng_unit(seed, 0x7a11, i) * 20.0 - 10.0;
        goto cleanup;
    }
    /* group vertices by component */
    start = calloc(nc + 1, sizeof *start);
    meta = malloc(nc * 2 * sizeof *meta);
    cemb = malloc(n * 2 * sizeof *cemb);
    apps = calloc(nc, sizeof *apps);
    if (!start || !meta || !cemb || !apps) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++)
        start[label[i] + 1]++;
    for (size_t c = 0; c < nc; c++)
        start[c + 1] += start[c];
    {
        size_t *pos = malloc(nc * sizeof *pos);
        if (!pos) {
            rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
            goto cleanup;
        }
        memcpy(pos, start, nc * sizeof *pos);
        for (size_t i = 0; i < n; i++) {
            local[i] = (int32_t)(pos[label[i]] - start[label[i]]);
            verts[pos[label[i]]++] = (int32_t)i;
        }
        free(pos);
    }
    if (nc <= 4) {
        size_t k = (nc + 1) / 2;
        for (size_t c = 0; c < nc; c++) {
            size_t r = c % k;
            double sign = c < k ? 1.0 : -1.0;
            meta[c * 2] = r == 0 ? sign : 0.0;
            meta[c * 2 + 1] = r == 1 ? sign : 0.0;
        }
    } else {
        centroids = calloc(nc * d, sizeof *centroids);
        meta2 = malloc(nc * 2 * sizeof *meta2);
        double *acc = calloc(d, sizeof *acc);
        if (!centroids || !meta2 || !acc) {
            free(acc);
            rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
            goto cleanup;
        }
        for (size_t c = 0; c < nc; c++) {
            memset(acc, 0, d * sizeof *acc);
            for (size_t s = start[c]; s < start[c + 1]; s++)
                for (size_t t = 0; t < d; t++)
                    acc[t] += x[(size_t)order[verts[s]] * d + t];
            for (size_t t = 0; t < d; t++)
                centroids[c * d + t] = (float)(acc[t] / (double)(start[c + 1] - start[c]));
        }
        free(acc);
        struct pca_options po;
        pca_options_default(&po);
        po.threads = threads;
        struct pw_error perr;
        double mx = 0;
        if (pca_fit(centroids, nc, d, &po, meta2, NULL, NULL, &perr) == 0) {
            for (size_t i = 0; i < 2 * nc; i++)
                mx = fabs(meta2[i]) > mx ? fabs(meta2[i]) : mx;
        }
        for (size_t i = 0; i < 2 * nc; i++)
            meta[i] = mx > 0 ? meta2[i] / mx : rng_unit(seed, 0x3e7a, i) * 2.0 - 1.0;
    }
    /* Components are independent: big ones one after the other with all threads, the
     * rest concurrently with one thread each.  Either way a component's layout does not
     * depend on the thread count. */
    struct comp_ctx cc = {g,    label,  verts, local, start, meta,    nc,
                          seed, max_it, apps,  cemb,  emb,   progress};
    for (size_t c = 0; c < nc; c++)
        if (start[c + 1] - start[c] >= SPEC_BIG)
            failures += layout_component(&cc, c, threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : failures)
    for (size_t c = 0; c < nc; c++)
        if (start[c + 1] - start[c] < SPEC_BIG)
            failures += layout_component(&cc, c, 1);
    for (size_t c = 0; c < nc; c++)
        st->applications += apps[c];
cleanup:
    free(apps);
    free(label);
    free(verts);
    free(local);
    free(start);
    free(meta);
    free(cemb);
    free(centroids);
    free(meta2);
    return rc ? rc : failures;
}
