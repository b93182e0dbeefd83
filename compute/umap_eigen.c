/* umap_eigen.c - the spectral init's eigensolver (see umap_eigen.h): Chebyshev-filtered
 * block subspace iteration with Rayleigh-Ritz on S = (I + D^-1/2 W D^-1/2) / 2.
 *
 * The operator application (a gather of the neighbours' rows over the graph's edges)
 * is the cost; the block's dense algebra is small b x b work per row.  Everything
 * stays in double except the gathered copy of the block (float, see op_step). */
#include "umap_eigen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "rng.h"

/* Small dense kernels on m x b row-major blocks (b <= SPEC_B).  No BLAS: the blocks are
 * thin (b = 16) and components are solved concurrently, where OpenBLAS's own threads
 * would only contend.  Sums over rows are taken per fixed block of SPEC_ROWS rows and
 * added in block order, so results do not depend on the thread count. */
#define SPEC_B    16
#define SPEC_ROWS 2048
_Static_assert(SPEC_B % 4 == 0, "atb_rows_full takes four rows at a time");

/* P (ca x cb) += A^T B over rows [lo, hi).  Called with ca, cb constant where they are
 * SPEC_B, so the inner loops unroll. */
PW_ALWAYS_INLINE void atb_rows(const double *A, size_t ca, const double *B, size_t cb, size_t lo,
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
PW_ALWAYS_INLINE void times_rinv_rows(double *X, size_t b, const double *Ri, size_t lo, size_t hi,
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

/* The operator S = (I + D^-1/2 W D^-1/2) / 2 as the solver applies it: the graph's
 * weights as they are, and the float copy of a block scaled by D^-1/2 (row i by
 * isq[i] = 1 / sqrt(d_i)), so that (S y)_i = y_i / 2 + isq[i] / 2 sum_j w(i, j) yf_j
 * needs no per-edge weight array. */
struct spec_op {
    const struct umap_graph *g;
    const double *isq; /* m */
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
    const float *w = g->val;
    const v16f *yv = (const v16f *)yf;
    for (size_t i = lo; i < hi; i++) {
        v16f acc = {0};
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++)
            acc += w[e] * yv[g->col[e]];
        double hs = 0.5 * op->isq[i];
        for (size_t c = 0; c < b; c++) {
            double v = ca * (0.5 * y[i * b + c] + hs * (double)acc[c]) + cy * y[i * b + c];
            if (cx != 0.0)
                v += cx * x[i * b + c];
            out[i * b + c] = v;
            outf[i * SPEC_FW + c] = (float)(op->isq[i] * v);
        }
    }
}

/* One operator application fused with a three-term recurrence step, row by row:
 * out = ca S y + cy y + cx x (x unread when cx = 0), and outf its scaled float copy
 * (struct spec_op).  The neighbours' values are read from yf, the float copy of y: the gather is
 * the cost of the solve, and float halves its bytes, while the recurrence and every sum over rows
 * stay in double.  One parallel loop, no reduction.  S keeps D^1/2 1 as its exact top
 * eigenvector, so a block orthogonal to it stays so up to rounding (deflated once per
 * filter, see umap_eigen_solve). */
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

/* Xf <- the scaled float copy of X (struct spec_op). */
static void to_float(const struct spec_op *op, const double *X, float *Xf, size_t b, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < op->g->n; i++)
        for (size_t c = 0; c < b; c++)
            Xf[i * SPEC_FW + c] = (float)(op->isq[i] * X[i * b + c]);
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
            yf[i * SPEC_FW + t] = (float)(op->isq[i] * y[i * b + t]);
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
PW_ALWAYS_INLINE void ritz_rows(double *X, double *Y, size_t b, const double *V,
                                const double *theta, size_t lo, size_t hi, double r2[2])
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

/* See umap_eigen.h. */
int umap_eigen_solve(const struct umap_graph *g, uint64_t seed, uint64_t stream, int threads,
                     size_t max_it, double *emb, size_t *applications,
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
    double *part = malloc((nblk * b * b > 2 * nblk ? nblk * b * b : 2 * nblk) * sizeof *part);
    double G[SPEC_B * SPEC_B], theta[SPEC_B], res[2];
    struct spec_op op = {g, isq};
    *applications = 0;
    if (!isq || !v1 || !X || !Y || !Z || !Xf || !Yf || !part || b < 2)
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
    for (size_t i = 0; i < m; i++)
        v1[i] /= vn;
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
        to_float(&op, X, Xf, b, threads);
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
    free(part);
    return rc;
}
