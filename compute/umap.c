/* umap.c - UMAP: fuzzy simplicial set of the k-NN graph, spectral init, edge-sampled SGD.
 *
 * Follows umap-learn 0.5 (umap_.py, spectral.py, layouts.py) step by step; the
 * comments name the function each block reproduces and say where we deliberately
 * differ (deterministic SGD, see umap.h; the meta-layout of disconnected components,
 * see multi_component_layout below).
 *
 * The fuzzy graph is kept as a symmetric CSR matrix with sorted columns, so the
 * reverse of edge (i, j) is found by binary search in row j. */
#include "umap.h"

#include <cblas.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "pca.h"
#include "rng.h"
#include "stopwatch.h"

/* The values umap.h documents; a field not named is 0, which is how a field added later
 * keeps its old behaviour.  Seed, threads and the k-NN switch are knn.h's defaults. */
void umap_options_default(struct umap_options *opt)
{
    struct knn_options knn;
    knn_options_default(&knn);
    *opt = (struct umap_options){
        .n_neighbors = 15,
        .min_dist = 0.1f,
        .spread = 1.0f,
        .metric = KNN_COSINE,
        .learning_rate = 1.0f,
        .negative_sample_rate = 5.0f,
        .repulsion_strength = 1.0f,
        .local_connectivity = 1.0f,
        .set_op_mix_ratio = 1.0f,
        .init = UMAP_INIT_SPECTRAL,
        .seed = knn.seed,
        .threads = knn.threads,
        .knn_method = knn.method,
        .knn_exact_max_n = knn.exact_max_n,
    };
}

/* ---- find_ab_params: Levenberg-Marquardt on 300 points, start (1, 1) like curve_fit ---- */

static double ab_residuals(double a, double b, const double *xv, const double *yv, size_t m,
                           double *r, double *ja, double *jb)
{
    double ss = 0.0;
    for (size_t i = 0; i < m; i++) {
        double x = xv[i], p = x > 0 ? pow(x, 2.0 * b) : 0.0, den = 1.0 + a * p;
        double f = 1.0 / den;
        r[i] = f - yv[i];
        ss += r[i] * r[i];
        if (ja) {
            ja[i] = -p / (den * den);
            jb[i] = x > 0 ? -a * p * 2.0 * log(x) / (den * den) : 0.0;
        }
    }
    return ss;
}

/* umap-learn's find_ab_params: least-squares fit (Levenberg-Marquardt) of
 * 1 / (1 + a x^(2b)) to the min_dist/spread target curve on 300 points of [0, 3 spread]. */
static int find_ab(float spread, float min_dist, float *a_out, float *b_out, struct pw_error *err)
{
    enum { M = 300 };
    double xv[M], yv[M], r[M], ja[M], jb[M];
    if (!(spread > 0) || !(min_dist >= 0) || min_dist > spread)
        return pw_error_set(err, PW_EINVAL,
                            "umap: need 0 <= min_dist <= spread and spread > 0 (min_dist %g, "
                            "spread %g)",
                            (double)min_dist, (double)spread);
    for (int i = 0; i < M; i++) {
        xv[i] = (double)spread * 3.0 * i / (M - 1);
        yv[i] = xv[i] < min_dist ? 1.0 : exp(-(xv[i] - min_dist) / spread);
    }
    double a = 1.0, b = 1.0, lambda = 1e-3;
    double ss = ab_residuals(a, b, xv, yv, M, r, ja, jb);
    for (int it = 0; it < 500; it++) {
        double haa = 0, hab = 0, hbb = 0, ga = 0, gb = 0;
        for (int i = 0; i < M; i++) {
            haa += ja[i] * ja[i];
            hab += ja[i] * jb[i];
            hbb += jb[i] * jb[i];
            ga += ja[i] * r[i];
            gb += jb[i] * r[i];
        }
        int improved = 0;
        for (int tries = 0; tries < 30 && !improved; tries++) {
            double A = haa * (1 + lambda), B = hab, C = hbb * (1 + lambda);
            double det = A * C - B * B;
            if (det == 0) {
                lambda *= 10;
                continue;
            }
            double da = -(C * ga - B * gb) / det, db = -(A * gb - B * ga) / det;
            double na = a + da, nb = b + db;
            double nss = ab_residuals(na, nb, xv, yv, M, r, NULL, NULL);
            if (isfinite(nss) && nss < ss) {
                double rel = (ss - nss) / (ss > 0 ? ss : 1);
                a = na;
                b = nb;
                ss = nss;
                lambda = lambda > 1e-12 ? lambda / 10 : lambda;
                improved = 1;
                if (rel < 1e-12)
                    it = 1 << 20; /* converged */
            } else {
                lambda *= 10;
            }
        }
        ab_residuals(a, b, xv, yv, M, r, ja, jb);
        if (!improved)
            break;
    }
    if (!isfinite(a) || !isfinite(b) || a <= 0 || b <= 0)
        return pw_error_set(err, PW_EINTERNAL, "umap: a/b curve fit failed");
    *a_out = (float)a;
    *b_out = (float)b;
    return 0;
}

/* ---- the fuzzy graph ---- */

struct fgraph {
    size_t n, nnz;
    size_t *rowptr; /* n + 1 */
    int32_t *col;   /* nnz, sorted within a row */
    float *val;     /* nnz */
};

static void fgraph_free(struct fgraph *g)
{
    free(g->rowptr);
    free(g->col);
    free(g->val);
    memset(g, 0, sizeof *g);
}

/* smooth_knn_dist + compute_membership_strengths for row i (kr real neighbours, the
 * implicit self at distance 0 is umap-learn's column 0). */
static void smooth_row(const float *dist, size_t kr, size_t n_neighbors, double mean_all,
                       float local_connectivity, float *vals)
{
    const double tol = 1e-5, min_scale = 1e-3; /* SMOOTH_K_TOLERANCE, MIN_K_DIST_SCALE */
    double target = log2((double)n_neighbors);
    double rho = 0.0;
    /* non-zero distances in order (self's 0 is excluded automatically) */
    size_t nz = 0, first_nz = kr;
    for (size_t j = 0; j < kr; j++)
        if (dist[j] > 0) {
            if (first_nz == kr)
                first_nz = j;
            nz++;
        }
    if (nz >= local_connectivity) {
        size_t index = (size_t)floor(local_connectivity);
        double interp = local_connectivity - (double)index;
        /* the index-th non-zero distance (1-based) */
        size_t seen = 0, at = first_nz, next = first_nz;
        for (size_t j = first_nz; j < kr; j++)
            if (dist[j] > 0) {
                seen++;
                if (seen == index)
                    at = j;
                if (seen == index + 1) {
                    next = j;
                    break;
                }
            }
        if (index > 0) {
            rho = dist[at];
            if (interp > tol && next != at)
                rho += interp * (dist[next] - dist[at]);
        } else {
            rho = interp * dist[first_nz];
        }
    } else if (nz > 0) {
        for (size_t j = 0; j < kr; j++)
            if (dist[j] > rho)
                rho = dist[j];
    }
    double lo = 0.0, hi = INFINITY, mid = 1.0;
    for (int it = 0; it < 64; it++) {
        double psum = 0.0;
        for (size_t j = 0; j < kr; j++) { /* umap-learn sums columns 1..k-1: not self */
            double dd = dist[j] - rho;
            psum += dd > 0 ? exp(-(dd / mid)) : 1.0;
        }
        if (fabs(psum - target) < tol)
            break;
        if (psum > target) {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = isinf(hi) ? mid * 2 : (lo + hi) / 2.0;
        }
    }
    double sigma = mid;
    if (rho > 0.0) {
        double mean_i = 0.0; /* mean over all k columns, self's 0 included */
        for (size_t j = 0; j < kr; j++)
            mean_i += dist[j];
        mean_i /= (double)(kr + 1);
        if (sigma < min_scale * mean_i)
            sigma = min_scale * mean_i;
    } else if (sigma < min_scale * mean_all) {
        sigma = min_scale * mean_all;
    }
    for (size_t j = 0; j < kr; j++) {
        double dd = dist[j] - rho;
        vals[j] = (dd <= 0 || sigma == 0.0) ? 1.0f : (float)exp(-(dd / sigma));
    }
}

struct tri {
    int32_t col;
    int32_t from; /* 0: A(i, col), 1: A(col, i) i.e. A^T */
    float val;
};

static int tri_cmp(const void *pa, const void *pb)
{
    const struct tri *a = pa, *b = pb;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->from - b->from;
}

/* fuzzy_simplicial_set: memberships, then mix * (A + A^T - A.A^T) + (1 - mix) A.A^T. */
static int build_fuzzy_graph(const struct knn_graph *knn, size_t n_neighbors,
                             const struct umap_options *o, int threads, struct fgraph *g,
                             struct pw_error *err)
{
    size_t n = knn->n, kr = knn->k;
    int rc = 0;
    float *memb = malloc(n * kr * sizeof *memb);
    size_t *cnt = calloc(n + 1, sizeof *cnt), *fill = malloc(n * sizeof *fill);
    struct tri *tris = malloc(2 * n * kr * sizeof *tris);
    size_t *outcnt = calloc(n, sizeof *outcnt);
    memset(g, 0, sizeof *g);
    if (!memb || !cnt || !fill || !tris || !outcnt) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the fuzzy graph");
        goto cleanup;
    }
    double mean_all = 0.0;
    for (size_t i = 0; i < n * kr; i++)
        mean_all += knn->dist[i];
    mean_all /= (double)(n * (kr + 1));
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++)
        smooth_row(knn->dist + i * kr, kr, n_neighbors, mean_all, o->local_connectivity,
                   memb + i * kr);

    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < kr; s++) {
            cnt[i + 1]++;
            cnt[(size_t)knn->idx[i * kr + s] + 1]++;
        }
    for (size_t i = 0; i < n; i++)
        cnt[i + 1] += cnt[i];
    memcpy(fill, cnt, n * sizeof *fill);
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < kr; s++) {
            int32_t j = knn->idx[i * kr + s];
            float v = memb[i * kr + s];
            tris[fill[i]++] = (struct tri){j, 0, v};
            tris[fill[j]++] = (struct tri){(int32_t)i, 1, v};
        }
    /* sort each row, merge (i, j) from A with (i, j) from A^T in place */
    double mix = o->set_op_mix_ratio;
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        struct tri *row = tris + cnt[i];
        size_t len = cnt[i + 1] - cnt[i], w = 0;
        qsort(row, len, sizeof *row, tri_cmp);
        for (size_t r = 0; r < len;) {
            double v1 = 0, v2 = 0;
            int32_t c = row[r].col;
            for (; r < len && row[r].col == c; r++) {
                if (row[r].from == 0)
                    v1 = row[r].val;
                else
                    v2 = row[r].val;
            }
            double prod = v1 * v2, v = mix * (v1 + v2 - prod) + (1.0 - mix) * prod;
            if (v > 0 && c != (int32_t)i)
                row[w++] = (struct tri){c, 0, (float)v};
        }
        outcnt[i] = w;
    }
    float vmax = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < outcnt[i]; s++)
            if (tris[cnt[i] + s].val > vmax)
                vmax = tris[cnt[i] + s].val;
    /* simplicial_set_embedding: drop weights below max / n_epochs (n_epochs set by caller) */
    float cut = vmax / (float)o->n_epochs;
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < outcnt[i]; s++)
            nnz += tris[cnt[i] + s].val >= cut;
    g->n = n;
    g->nnz = nnz;
    g->rowptr = malloc((n + 1) * sizeof *g->rowptr);
    g->col = malloc((nnz ? nnz : 1) * sizeof *g->col);
    g->val = malloc((nnz ? nnz : 1) * sizeof *g->val);
    if (!g->rowptr || !g->col || !g->val) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the fuzzy graph");
        goto cleanup;
    }
    size_t e = 0;
    for (size_t i = 0; i < n; i++) {
        g->rowptr[i] = e;
        for (size_t s = 0; s < outcnt[i]; s++) {
            const struct tri *t = &tris[cnt[i] + s];
            if (t->val >= cut) {
                g->col[e] = t->col;
                g->val[e++] = t->val;
            }
        }
    }
    g->rowptr[n] = e;
cleanup:
    free(memb);
    free(cnt);
    free(fill);
    free(tris);
    free(outcnt);
    if (rc)
        fgraph_free(g);
    return rc;
}

/* ---- spectral_layout ---- */

/* Small dense kernels on m x b row-major blocks (b <= SPEC_B).  No BLAS: the blocks are
 * thin (b = 10) and components are solved concurrently, where OpenBLAS's own threads
 * would only contend.  Sums over rows are taken per fixed block of SPEC_ROWS rows and
 * added in block order, so results do not depend on the thread count. */
#define SPEC_B    10
#define SPEC_ROWS 2048

/* out (ca x cb) = A^T B, A m x ca, B m x cb; part holds ceil(m / SPEC_ROWS) * ca * cb. */
static void spec_atb(const double *A, size_t ca, const double *B, size_t cb, size_t m, double *out,
                     double *part, int threads)
{
    size_t nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS, sz = ca * cb;
#pragma omp parallel for schedule(static) num_threads(threads) if (nblk > 1)
    for (size_t k = 0; k < nblk; k++) {
        double *P = part + k * sz;
        memset(P, 0, sz * sizeof *P);
        size_t hi = (k + 1) * SPEC_ROWS < m ? (k + 1) * SPEC_ROWS : m;
        for (size_t i = k * SPEC_ROWS; i < hi; i++)
            for (size_t r = 0; r < ca; r++) {
                double a = A[i * ca + r];
                for (size_t c = 0; c < cb; c++)
                    P[r * cb + c] += a * B[i * cb + c];
            }
    }
    memcpy(out, part, sz * sizeof *out);
    for (size_t k = 1; k < nblk; k++)
        for (size_t t = 0; t < sz; t++)
            out[t] += part[k * sz + t];
}

/* Cholesky QR of X (m x b): X <- X R^-1 with X^T X = R^T R, `passes` times (two for a
 * random start, one when X is well conditioned). */
static int orthonormalize(double *X, size_t m, size_t b, double *G, double *part, int passes,
                          int threads)
{
    for (int pass = 0; pass < passes; pass++) {
        spec_atb(X, b, X, b, m, G, part, threads);
        for (size_t c = 0; c < b; c++) { /* G <- R, upper triangular */
            for (size_t r = 0; r < c; r++) {
                double s = G[r * b + c];
                for (size_t t = 0; t < r; t++)
                    s -= G[t * b + r] * G[t * b + c];
                G[r * b + c] = s / G[r * b + r];
            }
            double s = G[c * b + c];
            for (size_t t = 0; t < c; t++)
                s -= G[t * b + c] * G[t * b + c];
            if (!(s > 0))
                return -1;
            G[c * b + c] = sqrt(s);
        }
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < m; i++) {
            double *x = X + i * b;
            for (size_t c = 0; c < b; c++) {
                double s = x[c];
                for (size_t r = 0; r < c; r++)
                    s -= x[r] * G[r * b + c];
                x[c] = s / G[c * b + c];
            }
        }
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

/* Y = (S - shift I) X with S = (I + D^-1/2 W D^-1/2) / 2, then deflated. */
static void apply_op(const struct fgraph *g, const double *isq, const double *v1, const double *X,
                     double *Y, size_t b, double shift, double *part, int threads)
{
    size_t m = g->n;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < m; i++) {
        double y[SPEC_B] = {0};
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            size_t j = (size_t)g->col[e];
            double w = g->val[e] * isq[j];
            for (size_t c = 0; c < b; c++)
                y[c] += w * X[j * b + c];
        }
        for (size_t c = 0; c < b; c++)
            Y[i * b + c] = (0.5 - shift) * X[i * b + c] + 0.5 * isq[i] * y[c];
    }
    deflate(Y, v1, m, b, part, threads);
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
 * top (the largest wanted eigenvalue's estimate).  On entry *Y = S *X (deflated); the
 * three buffers are rotated and the result ends in *X.  Each degree past the first costs
 * one operator application.  A wanted eigenvalue just above hi grows like
 * exp(deg acosh(1 + 2 gap / hi)) against the unwanted ones: for Fashion-MNIST's graph
 * (eigenvalues 0.9986 wanted, 0.988 unwanted) that is 0.81 per application, where a
 * shifted power step S - hi / 2 gives 0.977. */
static void cheb_filter(const struct fgraph *g, const double *isq, const double *v1, double **X,
                        double **Y, double **Z, size_t b, double hi, double top, size_t deg,
                        double *part, int threads)
{
    size_t m = g->n;
    double e = 0.5 * hi, c = 0.5 * hi;
    if (!(top > hi) || !(e > 0)) { /* no interval to damp: one power step */
        double *t = *X;
        *X = *Y;
        *Y = t;
        return;
    }
    double sigma1 = e / (top - c), sigma = sigma1, tau = 2.0 / sigma1;
    double *x = *X, *y = *Y, *z = *Z;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < m * b; i++)
        y[i] = (y[i] - c * x[i]) * (sigma1 / e);
    for (size_t k = 2; k <= deg; k++) {
        double sn = 1.0 / (tau - sigma);
        apply_op(g, isq, v1, y, z, b, c, part, threads);
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < m * b; i++)
            z[i] = 2.0 * sn / e * z[i] - sigma * sn * x[i];
        double *t = x;
        x = y;
        y = z;
        z = t;
        sigma = sn;
    }
    *X = y;
    *Y = x;
    *Z = z;
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
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t k = 0; k < nblk; k++) {
        double r0 = 0, r1 = 0;
        size_t hi = (k + 1) * SPEC_ROWS < m ? (k + 1) * SPEC_ROWS : m;
        for (size_t i = k * SPEC_ROWS; i < hi; i++) {
            double xr[SPEC_B], yr[SPEC_B];
            for (size_t c = 0; c < b; c++) {
                double sx = 0, sy = 0;
                for (size_t r = 0; r < b; r++) {
                    sx += X[i * b + r] * V[r * b + c];
                    sy += Y[i * b + r] * V[r * b + c];
                }
                xr[c] = sx;
                yr[c] = sy;
            }
            memcpy(X + i * b, xr, b * sizeof *xr);
            memcpy(Y + i * b, yr, b * sizeof *yr);
            r0 += (yr[0] - theta[0] * xr[0]) * (yr[0] - theta[0] * xr[0]);
            r1 += (yr[1] - theta[1] * xr[1]) * (yr[1] - theta[1] * xr[1]);
        }
        part[2 * k] = r0;
        part[2 * k + 1] = r1;
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
 * iteration (cheb_filter) with Rayleigh-Ritz.  umap-learn asks ARPACK for tol 1e-4; we
 * stop at ARPACK's criterion with that tol or when max_it operator applications are
 * spent (then keep the current Ritz vectors, which are already smooth on the graph).
 * The result does not depend on `threads`.  Returns -1 on numerical failure or out of
 * memory. */
static int spectral_connected(const struct fgraph *g, uint64_t seed, uint64_t stream, int threads,
                              size_t max_it, double *emb, const struct pw_progress *progress)
{
    size_t m = g->n, b = m - 1 < SPEC_B ? m - 1 : SPEC_B;
    size_t nblk = (m + SPEC_ROWS - 1) / SPEC_ROWS;
    int rc = -1;
    double *isq = malloc(m * sizeof *isq), *v1 = calloc(m, sizeof *v1);
    double *X = calloc(m * b, sizeof *X), *Y = malloc(m * b * sizeof *Y);
    double *Z = malloc(m * b * sizeof *Z);
    double *part = malloc((nblk * b * b > 2 * nblk ? nblk * b * b : 2 * nblk) * sizeof *part);
    double G[SPEC_B * SPEC_B], theta[SPEC_B], res[2];
    if (!isq || !v1 || !X || !Y || !Z || !part || b < 2)
        goto cleanup;
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
    deflate(X, v1, m, b, part, threads);
    if (orthonormalize(X, m, b, G, part, 2, threads))
        goto cleanup;
    if (m < 4096)
        threads = 1; /* fork/join costs more than the work */
    for (size_t used = 1;; used += CHEB_DEGREE) {
        apply_op(g, isq, v1, X, Y, b, 0.0, part, threads);
        rayleigh_ritz(X, Y, m, b, theta, res, part, threads);
        if ((res[0] <= 1e-4 * theta[0] && res[1] <= 1e-4 * theta[1]) || used >= max_it) {
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
        /* S's spectrum lies in [0, 1]; below the block's smallest Ritz value is unwanted */
        cheb_filter(g, isq, v1, &X, &Y, &Z, b, theta[b - 1], theta[0], CHEB_DEGREE, part, threads);
        if (orthonormalize(X, m, b, G, part, 2, threads))
            goto cleanup;
    }
cleanup:
    free(isq);
    free(v1);
    free(X);
    free(Y);
    free(Z);
    free(part);
    return rc;
}

/* Connected components by union-find; labels are 0..count-1 in order of first vertex. */
static size_t graph_components(const struct fgraph *g, int32_t *label)
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
static int subgraph(const struct fgraph *g, const int32_t *label, int32_t c, const int32_t *verts,
                    size_t m, const int32_t *local, struct fgraph *sub)
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
    const struct fgraph *g;
    const int32_t *label, *verts, *local;
    const size_t *start;
    const double *meta;
    size_t nc;
    uint64_t seed;
    size_t max_it;
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
        struct fgraph sub = {0};
        if (subgraph(cc->g, cc->label, (int32_t)c, vs, m, cc->local, &sub) == 0 &&
            spectral_connected(&sub, seed, 0x5bec + c, threads, cc->max_it, cemb, cc->progress) ==
                0) {
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
        fgraph_free(&sub);
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
static int spectral_layout(const float *x, size_t d, const struct fgraph *g, uint64_t seed,
                           int threads, double *emb, size_t *n_comp_out,
                           const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = g->n;
    int32_t *label = malloc(n * sizeof *label), *verts = malloc(n * sizeof *verts);
    int32_t *local = malloc(n * sizeof *local);
    size_t *start = NULL;
    double *meta = NULL, *cemb = NULL;
    float *centroids = NULL, *meta2 = NULL;
    int failures = 0, rc = 0;
    if (!label || !verts || !local) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
        goto cleanup;
    }
    size_t nc = graph_components(g, label);
    /* Budget: about 2e9 flops of operator applications over the whole graph (about a
     * second on one core), the same count for every component; the Chebyshev filter in
     * spectral_connected converges well within it (Fashion-MNIST's 20k graph: 57
     * applications of a budget of 204). */
    double budget = 2e9 / ((double)(g->nnz + n) * 10.0 * 2.0);
    size_t max_it = budget > 3000 ? 3000 : budget < 60 ? 60 : (size_t)budget;
    *n_comp_out = nc;
    if (nc == 0) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the spectral layout");
        goto cleanup;
    }
    if (nc == 1) {
        failures = spectral_connected(g, seed, 0x5bec, threads, max_it, emb, progress) ? 1 : 0;
        if (failures)
            for (size_t i = 0; i < 2 * n; i++)
                emb[i] = rng_unit(seed, 0x7a11, i) * 20.0 - 10.0;
        goto cleanup;
    }
    /* group vertices by component */
    start = calloc(nc + 1, sizeof *start);
    meta = malloc(nc * 2 * sizeof *meta);
    cemb = malloc(n * 2 * sizeof *cemb);
    if (!start || !meta || !cemb) {
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
                    acc[t] += x[(size_t)verts[s] * d + t];
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
    struct comp_ctx cc = {g,  label, verts,  local, start, meta,
                          nc, seed,  max_it, cemb,  emb,   progress};
    for (size_t c = 0; c < nc; c++)
        if (start[c + 1] - start[c] >= SPEC_BIG)
            failures += layout_component(&cc, c, threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : failures)
    for (size_t c = 0; c < nc; c++)
        if (start[c + 1] - start[c] < SPEC_BIG)
            failures += layout_component(&cc, c, 1);
cleanup:
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

/* ---- optimize_layout_euclidean ---- */

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define V8F(x)    ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
#define V8I(x)    ((v8i){(x), (x), (x), (x), (x), (x), (x), (x)})
#define LANES     8 /* vertices advanced side by side, one per vector lane */
#define NEG_CHUNK 8 /* negative samples pushed from one position before it moves */

static inline v8f v8_sel(v8i mask, v8f a, v8f b)
{
    return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

static inline v8f v8_clip4(v8f v)
{
    v8f lo = V8F(-4.0f), hi = V8F(4.0f);
    return v8_sel(v > hi, hi, v8_sel(v < lo, lo, v));
}

/* x^b for x > 0 on 8 lanes within ~1e-5 relative: log2 by the atanh series on the
 * mantissa, exp2 by a degree-6 polynomial.  libm's powf is several times slower and
 * its last bits do not matter to SGD. */
__attribute__((always_inline)) static inline v8f v8_powf(v8f x, float b)
{
    v8i xi = (v8i)x;
    v8i e = ((xi >> 23) & V8I(0xff)) - V8I(127);
    v8f m = (v8f)((xi & V8I(0x007fffff)) | V8I(0x3f800000));
    v8i big = m > V8F(1.41421356f); /* -1 where true */
    m = v8_sel(big, m * V8F(0.5f), m);
    e = e - big;
    v8f t = (m - V8F(1.0f)) / (m + V8F(1.0f)), t2 = t * t;
    v8f ln_m = V8F(2.0f) * t *
               (V8F(1.0f) + t2 * (V8F(1.0f / 3) + t2 * (V8F(1.0f / 5) + t2 * V8F(1.0f / 7))));
    v8f y = V8F(b) * (__builtin_convertvector(e, v8f) + ln_m * V8F(1.44269504f));
    y = v8_sel(y < V8F(-126.0f), V8F(-126.0f), y);
    y = v8_sel(y > V8F(126.0f), V8F(126.0f), y);
    v8i fi = __builtin_convertvector(y, v8i);
    fi = fi + (__builtin_convertvector(fi, v8f) > y); /* floor */
    v8f f = (y - __builtin_convertvector(fi, v8f)) * V8F(0.69314718f);
    v8f p = V8F(1.0f) +
            f * (V8F(1.0f) +
                 f * (V8F(0.5f) +
                      f * (V8F(1.0f / 6) +
                           f * (V8F(1.0f / 24) + f * (V8F(1.0f / 120) + f * V8F(1.0f / 720))))));
    return p * (v8f)((fi + V8I(127)) << 23);
}

/* Negative samples p0 .. p0 + pc - 1 (pc <= NEG_CHUNK) of every lane: the snapshot
 * position of each draw, and -1 where the draw counts (below the lane's count nneg and
 * not the lane's own vertex).  Draw p of a lane is half (low, then high 32 bits) of
 * rng_mix(base + p / 2), scaled to [0, n) by Lemire's multiply-shift. */
typedef void (*neg_draws_fn)(const uint64_t *base, const int *nneg, const size_t *vert,
                             const float *snap, size_t n, int p0, int pc, float (*nx)[LANES],
                             float (*ny)[LANES], int32_t (*w)[LANES]);

static void neg_draws(const uint64_t *base, const int *nneg, const size_t *vert, const float *snap,
                      size_t n, int p0, int pc, float (*nx)[LANES], float (*ny)[LANES],
                      int32_t (*w)[LANES])
{
    for (int l = 0; l < LANES; l++) {
        int cnt = nneg[l] - p0 < pc ? nneg[l] - p0 : pc;
        for (int p = 0; p < pc; p += 2) { /* two draws per 64-bit hash */
            uint64_t h = rng_mix(base[l] + (uint64_t)((p0 + p) >> 1));
            for (int t = 0; t < 2 && p + t < pc; t++) {
                uint32_t h32 = t ? (uint32_t)(h >> 32) : (uint32_t)h;
                size_t kk = (size_t)(((uint64_t)h32 * n) >> 32); /* Lemire: h n / 2^32 */
                /* draws past this lane's count, and the point itself, are skipped */
                int use = p + t < cnt && kk != vert[l];
                nx[p + t][l] = snap[2 * kk];
                ny[p + t][l] = snap[2 * kk + 1];
                w[p + t][l] = -use;
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define UMAP_DRAWS_AVX512 1
/* The same draws for the 8 lanes at once: rng_mix on 64-bit lanes (AVX-512DQ's
 * multiply), one 64-bit gather of each (x, y) pair.  Same integers, same bytes. */
__attribute__((target("avx512f,avx512vl,avx512dq"))) static void
neg_draws_avx512(const uint64_t *base, const int *nneg, const size_t *vert, const float *snap,
                 size_t n, int p0, int pc, float (*nx)[LANES], float (*ny)[LANES],
                 int32_t (*w)[LANES])
{
    __m512i vb = _mm512_loadu_si512((const void *)base);
    __m512i vv = _mm512_loadu_si512((const void *)vert);
    __m256i vneg = _mm256_loadu_si256((const void *)nneg);
    __m512i vn = _mm512_set1_epi64((long long)n), lo32 = _mm512_set1_epi64(0xffffffffLL);
    for (int p = 0; p < pc; p += 2) {
        __m512i z = _mm512_add_epi64(vb, _mm512_set1_epi64((long long)((p0 + p) >> 1)));
        z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ULL));
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                               _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL));
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                               _mm512_set1_epi64((long long)0x94d049bb133111ebULL));
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        for (int t = 0; t < 2 && p + t < pc; t++) {
            __m512i h32 = t ? _mm512_srli_epi64(z, 32) : _mm512_and_si512(z, lo32);
            __m512i kk = _mm512_srli_epi64(_mm512_mul_epu32(h32, vn), 32);
            __mmask8 use = _mm256_cmpgt_epi32_mask(vneg, _mm256_set1_epi32(p0 + p + t)) &
                           _mm512_cmpneq_epi64_mask(kk, vv);
            __m512i xy = _mm512_i64gather_epi64(kk, (const void *)snap, 8);
            _mm256_storeu_si256((void *)nx[p + t], _mm512_cvtepi64_epi32(xy));
            _mm256_storeu_si256((void *)ny[p + t],
                                _mm512_cvtepi64_epi32(_mm512_srli_epi64(xy, 32)));
            _mm256_storeu_si256((void *)w[p + t], _mm256_movm_epi32(use));
        }
    }
}
#endif

struct sgd {
    const struct fgraph *g;
    float *Y, *snap;
    float *eps, *eons, *epns, *epneg; /* per edge, as umap-learn's arrays */
    float a, b, gamma;
    uint64_t seed;
    neg_draws_fn draws; /* neg_draws or its AVX-512 twin */
};

/* The SGD of one epoch for vertices [lo, hi).  umap-learn moves both ends of a sampled
 * edge (move_other).  The fuzzy graph is symmetric with equal weights both ways, so
 * edge (i, k) and its reverse (k, i) are sampled in the same epochs, and the tail move
 * that (k, i) gives i is taken here from i's side: it equals i's head move along
 * (i, k), so i moves by twice that.  A vertex then only reads the snapshot and writes
 * its own position: vertices are independent within an epoch, and LANES of them
 * advance side by side, each lane walking its vertex's active edges in order, the
 * arithmetic of one positive sample plus its negative samples running on all lanes at
 * once.  The result of a vertex does not depend on its lane, its batch or the thread. */
__attribute__((optimize("fp-contract=fast"))) PW_CLONES_V4 static void
sgd_range(struct sgd *s, size_t lo, size_t hi, size_t epoch, float alpha, uint32_t *act,
          uint32_t *aptr)
{
    const struct fgraph *g = s->g;
    const size_t n = g->n;
    const float fe = (float)epoch;
    const float *snap = s->snap;
    float *Y = s->Y;
    const v8f va = V8F(s->a), vpos = V8F(-2.0f * s->a * s->b), vneg = V8F(2.0f * s->gamma * s->b);
    const v8f valpha = V8F(alpha);
    size_t vert[LANES], e[LANES], end[LANES];
    float cx[LANES], cy[LANES], ox[LANES], oy[LANES];
    int nneg[LANES];
    uint64_t base[LANES];
    /* The chunk's edges sampled this epoch, found without branches: act holds their
     * offsets from rowptr[lo], aptr[v - lo] where vertex v's start. */
    const size_t e0 = g->rowptr[lo];
    uint32_t na = 0;
    for (size_t v = lo; v < hi; v++) {
        aptr[v - lo] = na;
        for (size_t ee = g->rowptr[v]; ee < g->rowptr[v + 1]; ee++) {
            act[na] = (uint32_t)(ee - e0);
            na += s->eons[ee] <= fe;
        }
    }
    aptr[hi - lo] = na;
    size_t next = lo;
    for (int l = 0; l < LANES; l++) {
        vert[l] = SIZE_MAX;
        e[l] = end[l] = 0;
        cx[l] = cy[l] = 0.0f;
    }
    for (;;) {
        /* every lane to its vertex's next active edge, or to the next vertex */
        int live = 0, maxneg = 0;
        for (int l = 0; l < LANES; l++) {
            size_t ee = e[l];
            for (;;) {
                if (ee < end[l])
                    break;
                if (vert[l] != SIZE_MAX) {
                    Y[2 * vert[l]] = cx[l];
                    Y[2 * vert[l] + 1] = cy[l];
                    vert[l] = SIZE_MAX;
                }
                if (next >= hi)
                    break;
                vert[l] = next++;
                ee = aptr[vert[l] - lo];
                end[l] = aptr[vert[l] + 1 - lo];
                cx[l] = Y[2 * vert[l]];
                cy[l] = Y[2 * vert[l] + 1];
            }
            e[l] = ee;
            if (vert[l] == SIZE_MAX) { /* idle lane: zero force, no negative samples */
                ox[l] = cx[l];
                oy[l] = cy[l];
                nneg[l] = 0;
                continue;
            }
            live = 1;
            e[l] = ee + 1;
            if (ee + 2 < end[l]) { /* this lane's edge after next: its fields */
                size_t f2 = e0 + act[ee + 2];
                __builtin_prefetch(&g->col[f2]);
                __builtin_prefetch(&s->eps[f2]);
                __builtin_prefetch(&s->epns[f2]);
                __builtin_prefetch(&s->epneg[f2]);
            }
            if (ee + 1 < end[l]) /* the next edge: its other endpoint's position */
                __builtin_prefetch(&snap[2 * (size_t)g->col[e0 + act[ee + 1]]]);
            ee = e0 + act[ee];
            size_t k = (size_t)g->col[ee];
            ox[l] = snap[2 * k];
            oy[l] = snap[2 * k + 1];
            s->eons[ee] += s->eps[ee];
            int nn = (int)((fe - s->epns[ee]) / s->epneg[ee]);
            s->epns[ee] += (float)nn * s->epneg[ee];
            nneg[l] = nn;
            maxneg = nn > maxneg ? nn : maxneg;
            base[l] = rng_mix(rng_mix(s->seed + ee) ^ epoch);
        }
        if (!live)
            break;
        /* the positive sample: attraction to the other endpoint's snapshot position */
        v8f vcx, vcy, vox, voy;
        memcpy(&vcx, cx, sizeof vcx);
        memcpy(&vcy, cy, sizeof vcy);
        memcpy(&vox, ox, sizeof vox);
        memcpy(&voy, oy, sizeof voy);
        v8f dx = vcx - vox, dy = vcy - voy, d2 = dx * dx + dy * dy;
        v8i pos = d2 > V8F(0.0f);
        v8f q = v8_sel(pos, d2, V8F(1.0f));
        v8f pb = v8_powf(q, s->b); /* pow(d2, b - 1) = pow(d2, b) / d2 */
        v8f gc = v8_sel(pos, (vpos * (pb / q)) / (va * pb + V8F(1.0f)), V8F(0.0f));
        v8f vgx = v8_clip4(gc * dx) * valpha, vgy = v8_clip4(gc * dy) * valpha;
        vcx += V8F(2.0f) * vgx; /* the head's move and the tail move of the reverse edge */
        vcy += V8F(2.0f) * vgy;
        /* Negative samples: a chunk of them all push from the same current position
         * (umap-learn moves `current` after each one); draws are a function of (seed,
         * edge, epoch, draw number). */
        for (int p0 = 0; p0 < maxneg; p0 += NEG_CHUNK) {
            float nx[NEG_CHUNK][LANES], ny[NEG_CHUNK][LANES];
            int32_t w[NEG_CHUNK][LANES];
            int pc = maxneg - p0 < NEG_CHUNK ? maxneg - p0 : NEG_CHUNK;
            s->draws(base, nneg, vert, snap, n, p0, pc, nx, ny, w);
            v8f mx = V8F(0.0f), my = V8F(0.0f);
            for (int p = 0; p < pc; p++) {
                v8f vnx, vny;
                v8i vw;
                memcpy(&vnx, nx[p], sizeof vnx);
                memcpy(&vny, ny[p], sizeof vny);
                memcpy(&vw, w[p], sizeof vw);
                v8f ex = vcx - vnx, ey = vcy - vny, e2 = ex * ex + ey * ey;
                v8i pn = e2 > V8F(0.0f);
                v8f qn = v8_sel(pn, e2, V8F(1.0f));
                v8f c = vneg / ((V8F(0.001f) + qn) * (va * v8_powf(qn, s->b) + V8F(1.0f)));
                /* umap-learn: grad_d = 4 when the points coincide */
                v8f fx = v8_sel(pn, v8_clip4(c * ex), V8F(4.0f));
                v8f fy = v8_sel(pn, v8_clip4(c * ey), V8F(4.0f));
                mx += v8_sel(vw, fx, V8F(0.0f));
                my += v8_sel(vw, fy, V8F(0.0f));
            }
            vcx += mx * valpha;
            vcy += my * valpha;
        }
        memcpy(cx, &vcx, sizeof cx);
        memcpy(cy, &vcy, sizeof cy);
    }
}

static int optimize_layout(struct sgd *s, size_t n_epochs, float alpha0, int threads,
                           const struct pw_progress *progress, struct pw_error *err)
{
    if (s->g->n < 8192)
        threads = 1; /* a barrier per epoch costs more than it saves on small graphs */
    const struct fgraph *g = s->g;
    size_t n = g->n, chunk = 1024;
    /* per chunk: its active edges (act + rowptr[c0]) and vertex starts (aptr + c0 + c0/chunk) */
    uint32_t *act = malloc((g->nnz + 1) * sizeof *act);
    uint32_t *aptr = malloc((n + n / chunk + 2) * sizeof *aptr);
    int rc = 0;
    if (!act || !aptr) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    double last = stopwatch_now();
    float alpha = alpha0;
    for (size_t epoch = 0; epoch < n_epochs; epoch++) {
        memcpy(s->snap, s->Y, 2 * n * sizeof *s->Y);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t c0 = 0; c0 < n; c0 += chunk)
            sgd_range(s, c0, c0 + chunk < n ? c0 + chunk : n, epoch, alpha, act + g->rowptr[c0],
                      aptr + c0 + c0 / chunk);
        alpha = alpha0 * (1.0f - (float)epoch / (float)n_epochs);
        double t = stopwatch_now();
        if (t - last > 0.2) {
            last = t;
            if ((rc = pw_progress_check(progress, err, "umap")))
                goto cleanup;
            pw_progress_report(progress, "umap_optimize", (double)epoch / (double)n_epochs);
        }
    }
cleanup:
    free(act);
    free(aptr);
    return rc;
}

int umap_fit(const float *x, size_t n, size_t d, const struct umap_options *opt, float *out,
             struct umap_result *res, const struct pw_progress *progress, struct pw_error *err)
{
    struct umap_options o;
    umap_options_default(&o);
    o = opt ? *opt : o;
    struct umap_result r;
    memset(&r, 0, sizeof r);
    int rc = dense_validate_fit("umap", x, n, d, out, err);
    if (rc)
        return rc;
    if (o.n_neighbors < 2)
        return pw_error_set(err, PW_EINVAL, "umap: n_neighbors must be at least 2, got %zu",
                            o.n_neighbors);
    if (!(o.negative_sample_rate >= 0) || !(o.learning_rate > 0) || !(o.repulsion_strength >= 0) ||
        !(o.local_connectivity >= 0) || !(o.set_op_mix_ratio >= 0 && o.set_op_mix_ratio <= 1))
        return pw_error_set(err, PW_EINVAL,
                            "umap: learning_rate must be > 0 and negative_sample_rate, "
                            "repulsion_strength, local_connectivity >= 0, set_op_mix_ratio in "
                            "[0, 1]");
    if ((rc = find_ab(o.spread, o.min_dist, &r.a, &r.b, err)))
        return rc;
    if (o.n_epochs == 0)
        o.n_epochs = n <= 10000 ? 500 : 200; /* umap-learn 0.5's default_epochs */
    int threads = dense_threads(o.threads);
    /* umap-learn truncates n_neighbors to n - 1; the point itself is one of them */
    size_t n_neighbors = o.n_neighbors < n ? o.n_neighbors : n - 1;
    size_t kr = n_neighbors > 1 ? n_neighbors - 1 : 1;

    struct knn_graph knn = {0};
    struct fgraph g = {0};
    struct sgd s;
    memset(&s, 0, sizeof s);
    double *emb = NULL;
    double t0 = stopwatch_now();

    struct knn_options ko;
    knn_options_default(&ko);
    ko.metric = o.metric;
    ko.method = o.knn_method;
    ko.exact_max_n = o.knn_exact_max_n;
    ko.seed = o.seed;
    ko.threads = threads;
    if ((rc = knn_build(x, n, d, kr, &ko, &knn, progress, err)))
        goto cleanup;
    double t1 = stopwatch_now();
    r.seconds_knn = t1 - t0;

    if ((rc = build_fuzzy_graph(&knn, n_neighbors, &o, threads, &g, err)))
        goto cleanup;
    knn_free(&knn);
    r.n_edges = g.nnz;
    double t2 = stopwatch_now();
    r.seconds_graph = t2 - t1;
    if ((rc = pw_progress_check(progress, err, "umap")))
        goto cleanup;

    /* initialisation */
    emb = malloc(2 * n * sizeof *emb);
    if (!emb) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory");
        goto cleanup;
    }
    pw_progress_report(progress, "umap_init", 0.0);
    r.spectral_ok = 0;
    if (o.init == UMAP_INIT_SPECTRAL) {
        int f =
            spectral_layout(x, d, &g, o.seed, threads, emb, &r.n_graph_components, progress, err);
        if (f < 0) {
            rc = f;
            goto cleanup;
        }
        if ((rc = pw_progress_check(progress, err, "umap")))
            goto cleanup;
        r.spectral_ok = f == 0;
        double mx = 0;
        for (size_t i = 0; i < 2 * n; i++)
            mx = fabs(emb[i]) > mx ? fabs(emb[i]) : mx;
        double expansion = mx > 0 ? 10.0 / mx : 1.0;
        for (size_t i = 0; i < 2 * n; i++) /* + N(0, 1e-4) noise as umap-learn */
            emb[i] = (double)(float)(emb[i] * expansion) + 1e-4 * rng_normal(o.seed, 0x401, i);
    } else {
        for (size_t i = 0; i < 2 * n; i++)
            emb[i] = rng_unit(o.seed, 0x7a11, i) * 20.0 - 10.0;
    }
    /* rescale each coordinate to [0, 10] (simplicial_set_embedding) */
    for (int t = 0; t < 2; t++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            lo = emb[2 * i + t] < lo ? emb[2 * i + t] : lo;
            hi = emb[2 * i + t] > hi ? emb[2 * i + t] : hi;
        }
        double span = hi > lo ? hi - lo : 1.0;
        for (size_t i = 0; i < n; i++)
            out[2 * i + t] = (float)(10.0 * (emb[2 * i + t] - lo) / span);
    }
    double t3 = stopwatch_now();
    r.seconds_init = t3 - t2;
    pw_progress_input_done(progress); /* the spectral layout was its last reader */

    /* make_epochs_per_sample and the SGD state */
    size_t nnz = g.nnz;
    s.g = &g;
    s.Y = out;
    s.a = r.a;
    s.b = r.b;
    s.gamma = o.repulsion_strength;
    s.seed = o.seed;
    s.draws = neg_draws;
#ifdef UMAP_DRAWS_AVX512
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        s.draws = neg_draws_avx512;
#endif
    s.snap = malloc(2 * n * sizeof *s.snap);
    s.eps = malloc((nnz + 1) * sizeof *s.eps);
    s.eons = malloc((nnz + 1) * sizeof *s.eons);
    s.epns = malloc((nnz + 1) * sizeof *s.epns);
    s.epneg = malloc((nnz + 1) * sizeof *s.epneg);
    if (!s.snap || !s.eps || !s.eons || !s.epns || !s.epneg) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    float wmax = 0;
    for (size_t e = 0; e < nnz; e++)
        wmax = g.val[e] > wmax ? g.val[e] : wmax;
    for (size_t e = 0; e < nnz; e++) {
        double ns = (double)o.n_epochs * (g.val[e] / wmax);
        s.eps[e] = ns > 0 ? (float)((double)o.n_epochs / ns) : -1.0f;
        s.eons[e] = s.eps[e];
        s.epneg[e] = o.negative_sample_rate > 0 ? s.eps[e] / o.negative_sample_rate : INFINITY;
        s.epns[e] = s.epneg[e];
    }
    /* The optimiser relies on every edge (i, j) having a reverse (j, i) of the same weight
     * (they are then sampled in the same epochs; see sgd_range). */
    for (size_t i = 0; i < n; i++)
        for (size_t e = g.rowptr[i]; e < g.rowptr[i + 1]; e++) {
            size_t j = (size_t)g.col[e];
            size_t lo = g.rowptr[j], hi = g.rowptr[j + 1];
            while (lo < hi) { /* binary search for column i in row j */
                size_t mid = (lo + hi) / 2;
                if (g.col[mid] < (int32_t)i)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo >= g.rowptr[j + 1] || g.col[lo] != (int32_t)i || g.val[lo] != g.val[e]) {
                rc = pw_error_set(err, PW_EINTERNAL, "umap: fuzzy graph is not symmetric");
                goto cleanup;
            }
        }
    rc = optimize_layout(&s, o.n_epochs, o.learning_rate, threads, progress, err);
    if (rc)
        goto cleanup;
    r.n_epochs = o.n_epochs;
    r.seconds_optimize = stopwatch_now() - t3;
    pw_progress_report(progress, "umap_optimize", 1.0);
    if (res)
        *res = r;

cleanup:
    knn_free(&knn);
    fgraph_free(&g);
    free(emb);
    free(s.snap);
    free(s.eps);
    free(s.eons);
    free(s.epns);
    free(s.epneg);
    return rc;
}
