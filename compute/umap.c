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
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dense.h"
#include "pca.h"
#include "rng.h"

void umap_options_default(struct umap_options *opt)
{
    opt->n_neighbors = 15;
    opt->min_dist = 0.1f;
    opt->spread = 1.0f;
    opt->metric = KNN_COSINE;
    opt->n_epochs = 0;
    opt->learning_rate = 1.0f;
    opt->negative_sample_rate = 5.0f;
    opt->repulsion_strength = 1.0f;
    opt->local_connectivity = 1.0f;
    opt->set_op_mix_ratio = 1.0f;
    opt->init = UMAP_INIT_SPECTRAL;
    opt->seed = 42;
    opt->threads = 0;
    opt->knn_method = KNN_AUTO;
    opt->knn_exact_max_n = 4096;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

int umap_find_ab(float spread, float min_dist, float *a_out, float *b_out, struct pw_error *err)
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

/* Cholesky QR of the m x b block X (row-major, double), twice for stability. */
static int orthonormalize(double *X, size_t m, size_t b, double *G)
{
    for (int pass = 0; pass < 2; pass++) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)b, (int)m, 1.0, X, (int)b, 0.0, G,
                    (int)b);
        if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)b, G, (lapack_int)b) != 0)
            return -1;
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)m,
                    (int)b, 1.0, G, (int)b, X, (int)b);
    }
    return 0;
}

/* Y = S X with S = (I + D^-1/2 W D^-1/2) / 2, then Y -= v1 (v1^T Y) (deflate the known
 * top eigenvector v1 = sqrt(deg) / |sqrt(deg)|). */
static void apply_op(const struct fgraph *g, const double *isq, const double *v1, const double *X,
                     double *Y, size_t b, double *coef, int threads)
{
    size_t m = g->n;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < m; i++) {
        double *y = Y + i * b;
        for (size_t c = 0; c < b; c++)
            y[c] = 0.0;
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            size_t j = (size_t)g->col[e];
            double w = g->val[e] * isq[j];
            for (size_t c = 0; c < b; c++)
                y[c] += w * X[j * b + c];
        }
        for (size_t c = 0; c < b; c++)
            y[c] = 0.5 * X[i * b + c] + 0.5 * isq[i] * y[c];
    }
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)b, 1.0, Y, (int)b, v1, 1, 0.0, coef, 1);
    cblas_dger(CblasRowMajor, (int)m, (int)b, -1.0, v1, 1, coef, 1, Y, (int)b);
}

/* The eigenvectors of the 2nd and 3rd smallest eigenvalues of the normalised Laplacian
 * I - D^-1/2 W D^-1/2 of a connected graph, by block subspace iteration with
 * Rayleigh-Ritz (LAPACKE_dsyev).  umap-learn asks ARPACK for tol 1e-4; we stop at a
 * residual of 1e-4 or after an iteration budget (then keep the current Ritz vectors,
 * which are already smooth on the graph).  Returns -1 on numerical failure. */
static int spectral_connected(const struct fgraph *g, uint64_t seed, uint64_t stream, int threads,
                              size_t max_it, double *emb, const struct pw_progress *progress)
{
    size_t m = g->n, b = m - 1 < 10 ? m - 1 : 10;
    int rc = -1;
    double *isq = malloc(m * sizeof *isq), *v1 = calloc(m, sizeof *v1);
    double *X = calloc(m * b, sizeof *X), *Y = malloc(m * b * sizeof *Y);
    double *G = malloc(b * b * sizeof *G), *H = malloc(b * b * sizeof *H);
    double *theta = malloc(b * sizeof *theta), *coef = malloc(b * sizeof *coef);
    if (!isq || !v1 || !X || !Y || !G || !H || !theta || !coef || b < 2)
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
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)b, 1.0, X, (int)b, v1, 1, 0.0, coef, 1);
    cblas_dger(CblasRowMajor, (int)m, (int)b, -1.0, v1, 1, coef, 1, X, (int)b);
    if (orthonormalize(X, m, b, G))
        goto cleanup;
    if (m < 4096)
        threads = 1; /* fork/join costs more than the work */
    for (size_t it = 1; it <= max_it; it++) {
        apply_op(g, isq, v1, X, Y, b, coef, threads);
        if (it % 10 == 0 || it == max_it) {
            /* Rayleigh-Ritz on span(X): H = X^T S X, rotate, check the top-2 residuals */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)b, (int)b, (int)m, 1.0, X,
                        (int)b, Y, (int)b, 0.0, H, (int)b);
            for (size_t r = 0; r < b; r++)
                for (size_t c = r + 1; c < b; c++)
                    H[r * b + c] = H[c * b + r] = 0.5 * (H[r * b + c] + H[c * b + r]);
            if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)b, H, (lapack_int)b, theta) !=
                0)
                goto cleanup;
            /* reverse to descending order */
            for (size_t r = 0; r < b; r++)
                for (size_t c = 0; c < b / 2; c++) {
                    double t = H[r * b + c];
                    H[r * b + c] = H[r * b + b - 1 - c];
                    H[r * b + b - 1 - c] = t;
                }
            for (size_t c = 0; c < b / 2; c++) {
                double t = theta[c];
                theta[c] = theta[b - 1 - c];
                theta[b - 1 - c] = t;
            }
            /* X <- X H, Y <- Y H (G as scratch row by row) */
            double res0 = 0, res1 = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : res0, res1)
            for (size_t i = 0; i < m; i++) {
                double xr[16], yr[16];
                for (size_t c = 0; c < b; c++) {
                    double sx = 0, sy = 0;
                    for (size_t r = 0; r < b; r++) {
                        sx += X[i * b + r] * H[r * b + c];
                        sy += Y[i * b + r] * H[r * b + c];
                    }
                    xr[c] = sx;
                    yr[c] = sy;
                }
                for (size_t c = 0; c < b; c++) {
                    X[i * b + c] = xr[c];
                    Y[i * b + c] = yr[c];
                }
                res0 += (yr[0] - theta[0] * xr[0]) * (yr[0] - theta[0] * xr[0]);
                res1 += (yr[1] - theta[1] * xr[1]) * (yr[1] - theta[1] * xr[1]);
            }
            /* ARPACK's criterion with umap-learn's tol: |residual| <= 1e-4 |theta| */
            if ((sqrt(res0) <= 1e-4 * theta[0] && sqrt(res1) <= 1e-4 * theta[1]) || it == max_it) {
                /* S = (I + M) / 2: eigenvalue theta of S is 1 - lambda / 2 of L */
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
        }
        double *t = X;
        X = Y;
        Y = t;
        if (orthonormalize(X, m, b, G))
            goto cleanup;
    }
cleanup:
    free(isq);
    free(v1);
    free(X);
    free(Y);
    free(G);
    free(H);
    free(theta);
    free(coef);
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
    /* Iteration budget: about 4e9 flops of operator applications over the whole graph
     * (a few seconds on one core), the same count for every component. */
    double budget = 4e9 / ((double)(g->nnz + n) * 10.0 * 2.0);
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
    for (size_t c = 0; c < nc; c++) {
        size_t m = start[c + 1] - start[c];
        const int32_t *vs = verts + start[c];
        double range = INFINITY;
        for (size_t o = 0; o < nc; o++) {
            double dx = meta[o * 2] - meta[c * 2], dy = meta[o * 2 + 1] - meta[c * 2 + 1];
            double dd = sqrt(dx * dx + dy * dy);
            if (dd > 0 && dd < range)
                range = dd;
        }
        range = isfinite(range) ? range / 2.0 : 1.0;
        int ok = 0;
        if (m >= 4) { /* umap-learn: not (m < 2 * dim or m <= dim + 1) */
            struct fgraph sub = {0};
            if (subgraph(g, label, (int32_t)c, vs, m, local, &sub) == 0 &&
                spectral_connected(&sub, seed, 0x5bec + c, threads, max_it, cemb, progress) == 0) {
                double mx = 0;
                for (size_t i = 0; i < 2 * m; i++)
                    mx = fabs(cemb[i]) > mx ? fabs(cemb[i]) : mx;
                if (mx > 0) {
                    for (size_t s = 0; s < m; s++)
                        for (int t = 0; t < 2; t++)
                            emb[(size_t)vs[s] * 2 + t] =
                                cemb[s * 2 + t] * range / mx + meta[c * 2 + t];
                    ok = 1;
                }
            }
            fgraph_free(&sub);
            if (!ok)
                failures++;
        }
        if (!ok)
            for (size_t s = 0; s < m; s++)
                for (int t = 0; t < 2; t++)
                    emb[(size_t)vs[s] * 2 + t] =
                        (rng_unit(seed, 0x7a11 + c, s * 2 + (size_t)t) * 2.0 - 1.0) * range +
                        meta[c * 2 + t];
        if (pw_progress_cancelled(progress))
            break;
    }
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

/* x^b for x > 0 within ~1e-5 relative: log2 by the atanh series on the mantissa, exp2 by
 * a degree-6 polynomial.  The optimiser spends most of its time here; libm's powf (or
 * expf + logf) is 2-3 times slower and its last bits do not matter to SGD. */
static inline float fast_powf(float x, float b)
{
    union {
        float f;
        uint32_t i;
    } u = {x};
    int e = (int)((u.i >> 23) & 0xff) - 127;
    u.i = (u.i & 0x007fffffu) | 0x3f800000u; /* mantissa in [1, 2) */
    int big = u.f > 1.41421356f;             /* centre on [0.707, 1.414) */
    float m = big ? u.f * 0.5f : u.f;
    e += big;
    float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;
    float ln_m = 2.0f * t * (1.0f + t2 * (1.0f / 3 + t2 * (1.0f / 5 + t2 * (1.0f / 7))));
    float y = b * ((float)e + ln_m * 1.44269504f); /* b * log2(x) */
    y = y < -126.0f ? -126.0f : y > 126.0f ? 126.0f : y;
    int fi = (int)y;
    fi -= (float)fi > y;
    float f = (y - (float)fi) * 0.69314718f;
    float p =
        1.0f +
        f * (1.0f +
             f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
    union {
        float f;
        uint32_t i;
    } v = {.i = (uint32_t)(fi + 127) << 23};
    return p * v.f;
}

#define NEG_BATCH 8

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define V8F(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
#define V8I(x) ((v8i){(x), (x), (x), (x), (x), (x), (x), (x)})

/* fast_powf on 8 lanes with GCC vector extensions (AVX2 in the x86-64-v3 clone). */
__attribute__((always_inline)) static inline v8f v8_powf(v8f x, float b)
{
    v8i xi = (v8i)x;
    v8i e = ((xi >> 23) & V8I(0xff)) - V8I(127);
    v8f m = (v8f)((xi & V8I(0x007fffff)) | V8I(0x3f800000));
    v8i big = m > V8F(1.41421356f); /* -1 where true */
    m = (v8f)(((v8i)(m * V8F(0.5f)) & big) | ((v8i)m & ~big));
    e = e - big;
    v8f t = (m - V8F(1.0f)) / (m + V8F(1.0f)), t2 = t * t;
    v8f ln_m = V8F(2.0f) * t *
               (V8F(1.0f) + t2 * (V8F(1.0f / 3) + t2 * (V8F(1.0f / 5) + t2 * V8F(1.0f / 7))));
    v8f y = V8F(b) * (__builtin_convertvector(e, v8f) + ln_m * V8F(1.44269504f));
    v8i lo = y<V8F(-126.0f), hi = y> V8F(126.0f);
    y = (v8f)(((v8i)V8F(-126.0f) & lo) | ((v8i)y & ~lo));
    y = (v8f)(((v8i)V8F(126.0f) & hi) | ((v8i)y & ~hi));
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

static inline float clip4(float v)
{
    return v > 4.0f ? 4.0f : v < -4.0f ? -4.0f : v;
}

struct sgd {
    const struct fgraph *g;
    float *Y, *snap;
    float *eps, *eons, *epns, *epneg; /* per edge, as umap-learn's arrays */
    float *tail_delta; /* per edge, 2 floats: the tail's move, written by the head's thread */
    int32_t *stamp;    /* per edge: the epoch tail_delta was written in (-1: never) */
    int32_t *rev;      /* per edge: index of the reverse edge */
    float a, b, gamma;
    uint64_t seed;
};

PW_CLONES static void sgd_vertex(struct sgd *s, size_t i, size_t epoch, float alpha)
{
    const struct fgraph *g = s->g;
    size_t n = g->n;
    float *cur = s->Y + 2 * i;
    const float a = s->a, b = s->b;
    for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
        if (s->eons[e] > (float)epoch)
            continue;
        size_t k = (size_t)g->col[e];
        const float *other = s->snap + 2 * k;
        float dx = cur[0] - other[0], dy = cur[1] - other[1];
        float d2 = dx * dx + dy * dy, gc = 0.0f;
        if (d2 > 0.0f) { /* pow(d2, b) once; pow(d2, b - 1) = pow(d2, b) / d2 */
            float pb = fast_powf(d2, b);
            gc = (-2.0f * a * b * (pb / d2)) / (a * pb + 1.0f);
        }
        float gx = clip4(gc * dx) * alpha, gy = clip4(gc * dy) * alpha;
        cur[0] += gx;
        cur[1] += gy;
        s->tail_delta[2 * e] = -gx; /* own row: no cache line shared with other threads */
        s->tail_delta[2 * e + 1] = -gy;
        s->stamp[e] = (int32_t)epoch;
        s->eons[e] += s->eps[e];
        int nneg = (int)(((float)epoch - s->epns[e]) / s->epneg[e]);
        /* Negative samples: all pushed away from the same current position (umap-learn
         * moves `current` after each one); independent forces let the CPU overlap them. */
        for (int p0 = 0; p0 < nneg; p0 += NEG_BATCH) {
            int cnt = nneg - p0 < NEG_BATCH ? nneg - p0 : NEG_BATCH;
            float ex[NEG_BATCH], ey[NEG_BATCH], e2[NEG_BATCH], c[NEG_BATCH];
            for (int p = 0; p < cnt; p++) {
                uint64_t h = rng_mix(rng_mix(s->seed + e) ^ (epoch << 12 | (uint64_t)(p0 + p)));
                size_t kk = (size_t)(((unsigned __int128)h * n) >> 64); /* Lemire: h n / 2^64 */
                const float *o2 = s->snap + 2 * kk;
                ex[p] = cur[0] - o2[0];
                ey[p] = cur[1] - o2[1];
                e2[p] = kk == i ? -1.0f : ex[p] * ex[p] + ey[p] * ey[p];
            }
            for (int p = cnt; p < NEG_BATCH; p++)
                e2[p] = 1.0f; /* unused lanes */
            v8f q, cv;
            memcpy(&q, e2, sizeof q);
            q = (v8f)(((v8i)q & (q > V8F(0.0f))) | ((v8i)V8F(1.0f) & ~(q > V8F(0.0f))));
            cv = V8F(2.0f * s->gamma * b) /
                 ((V8F(0.001f) + q) * (V8F(a) * v8_powf(q, b) + V8F(1.0f)));
            memcpy(c, &cv, sizeof cv);
            float mx = 0.0f, my = 0.0f;
            for (int p = 0; p < cnt; p++) {
                if (e2[p] > 0.0f) {
                    mx += clip4(c[p] * ex[p]);
                    my += clip4(c[p] * ey[p]);
                } else if (e2[p] == 0.0f) { /* umap-learn: grad_d = 4 when coincident */
                    mx += 4.0f;
                    my += 4.0f;
                } /* e2 < 0: the point itself, skipped */
            }
            cur[0] += mx * alpha;
            cur[1] += my * alpha;
        }
        s->epns[e] += (float)nneg * s->epneg[e];
    }
}

static int optimize_layout(struct sgd *s, size_t n_epochs, float alpha0, int threads,
                           const struct pw_progress *progress, struct pw_error *err)
{
    if (s->g->n < 8192)
        threads = 1; /* two barriers per epoch cost more than they save on small graphs */
    const struct fgraph *g = s->g;
    size_t n = g->n;
    double last = now_seconds();
    float alpha = alpha0;
    for (size_t epoch = 0; epoch < n_epochs; epoch++) {
        memcpy(s->snap, s->Y, 2 * n * sizeof *s->Y);
#pragma omp parallel for schedule(dynamic, 512) num_threads(threads)
        for (size_t i = 0; i < n; i++)
            sgd_vertex(s, i, epoch, alpha);
            /* tail moves, applied by the tail's owner in the tail's edge order */
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < n; i++)
            for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
                size_t r = (size_t)s->rev[e]; /* read-only here: no false sharing */
                if (s->stamp[r] == (int32_t)epoch) {
                    s->Y[2 * i] += s->tail_delta[2 * r];
                    s->Y[2 * i + 1] += s->tail_delta[2 * r + 1];
                }
            }
        alpha = alpha0 * (1.0f - (float)epoch / (float)n_epochs);
        double t = now_seconds();
        if (t - last > 0.2) {
            last = t;
            int rc = pw_progress_check(progress, err, "umap");
            if (rc)
                return rc;
            pw_progress_report(progress, "umap_optimize", (double)epoch / (double)n_epochs);
        }
    }
    return 0;
}

int umap_fit(const float *x, size_t n, size_t d, const struct umap_options *opt, float *out,
             struct umap_result *res, const struct pw_progress *progress, struct pw_error *err)
{
    struct umap_options o;
    if (opt)
        o = *opt;
    else
        umap_options_default(&o);
    struct umap_result r;
    memset(&r, 0, sizeof r);
    int rc = dense_validate("umap", x, n, d, err);
    if (rc)
        return rc;
    if (!out)
        return pw_error_set(err, PW_EINVAL, "umap: no output buffer");
    if (o.n_neighbors < 2)
        return pw_error_set(err, PW_EINVAL, "umap: n_neighbors must be at least 2, got %zu",
                            o.n_neighbors);
    if (!(o.negative_sample_rate >= 0) || !(o.learning_rate > 0) || !(o.repulsion_strength >= 0) ||
        !(o.local_connectivity >= 0) || !(o.set_op_mix_ratio >= 0 && o.set_op_mix_ratio <= 1))
        return pw_error_set(err, PW_EINVAL,
                            "umap: learning_rate must be > 0 and negative_sample_rate, "
                            "repulsion_strength, local_connectivity >= 0, set_op_mix_ratio in "
                            "[0, 1]");
    if ((rc = umap_find_ab(o.spread, o.min_dist, &r.a, &r.b, err)))
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
    double t0 = now_seconds();

    struct knn_options ko;
    knn_options_default(&ko);
    ko.metric = o.metric;
    ko.method = o.knn_method;
    ko.exact_max_n = o.knn_exact_max_n;
    ko.seed = o.seed;
    ko.threads = threads;
    if ((rc = knn_build(x, n, d, kr, &ko, &knn, progress, err)))
        goto cleanup;
    double t1 = now_seconds();
    r.seconds_knn = t1 - t0;

    if ((rc = build_fuzzy_graph(&knn, n_neighbors, &o, threads, &g, err)))
        goto cleanup;
    knn_free(&knn);
    r.n_edges = g.nnz;
    double t2 = now_seconds();
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
    double t3 = now_seconds();
    r.seconds_init = t3 - t2;

    /* make_epochs_per_sample and the SGD state */
    size_t nnz = g.nnz;
    s.g = &g;
    s.Y = out;
    s.a = r.a;
    s.b = r.b;
    s.gamma = o.repulsion_strength;
    s.seed = o.seed;
    s.snap = malloc(2 * n * sizeof *s.snap);
    s.eps = malloc((nnz + 1) * sizeof *s.eps);
    s.eons = malloc((nnz + 1) * sizeof *s.eons);
    s.epns = malloc((nnz + 1) * sizeof *s.epns);
    s.epneg = malloc((nnz + 1) * sizeof *s.epneg);
    s.tail_delta = malloc(2 * (nnz + 1) * sizeof *s.tail_delta);
    s.stamp = malloc((nnz + 1) * sizeof *s.stamp);
    s.rev = malloc((nnz + 1) * sizeof *s.rev);
    if (!s.snap || !s.eps || !s.eons || !s.epns || !s.epneg || !s.tail_delta || !s.stamp ||
        !s.rev) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    for (size_t e = 0; e <= nnz; e++)
        s.stamp[e] = -1;
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
            if (lo >= g.rowptr[j + 1] || g.col[lo] != (int32_t)i) {
                rc = pw_error_set(err, PW_EINTERNAL, "umap: fuzzy graph is not symmetric");
                goto cleanup;
            }
            s.rev[e] = (int32_t)lo;
        }
    rc = optimize_layout(&s, o.n_epochs, o.learning_rate, threads, progress, err);
    if (rc)
        goto cleanup;
    r.n_epochs = o.n_epochs;
    r.seconds_optimize = now_seconds() - t3;
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
    free(s.tail_delta);
    free(s.stamp);
    free(s.rev);
    return rc;
}
