/* umap.c - UMAP: fuzzy simplicial set of the k-NN graph, spectral init, edge-sampled SGD.
 *
 * Follows umap-learn 0.5 (umap_.py, spectral.py, layouts.py) step by step; the
 * comments name the function each block reproduces and say where we deliberately
 * differ (deterministic SGD, see umap.h; the meta-layout of disconnected components,
 * see umap_spectral.c).  This file holds the options, the a/b curve fit and the
 * pipeline; the steps are umap_graph.c, umap_spectral.c and umap_sgd.c. */
#include "umap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "knn_order.h"
#include "rng.h"
#include "stopwatch.h"
#include "umap_graph.h"
#include "umap_sgd.h"
#include "umap_spectral.h"

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
    struct umap_graph g = {0};
    double *emb = NULL;
    int32_t *order = NULL, *inv = NULL; /* order[v] = the input row of graph vertex v */
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

    /* Number the points breadth-first along the k-NN graph (knn_order.h): the spectral
     * solve's gathers and the SGD's reads of neighbours' positions then mostly hit
     * cache.  The layout is numbered back at the end. */
    order = malloc(n * sizeof *order);
    inv = malloc(n * sizeof *inv);
    if (!order || !inv) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory");
        goto cleanup;
    }
    knn_bfs_order(&knn, order, inv);
    if ((rc = knn_renumber(&knn, order, inv, NULL, 0, err)))
        goto cleanup;
    free(inv);
    inv = NULL;

    if ((rc = umap_graph_build(&knn, n_neighbors, &o, threads, &g, err)))
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
        struct umap_spectral_stats st = {0};
        int f = umap_spectral_layout(x, d, order, &g, o.seed, threads, emb, &st, progress, err);
        if (f < 0) {
            rc = f;
            goto cleanup;
        }
        if ((rc = pw_progress_check(progress, err, "umap")))
            goto cleanup;
        r.spectral_ok = f == 0;
        r.n_graph_components = st.n_components;
        r.init_applications = st.applications;
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

    struct umap_sgd_params sp = {
        .a = r.a,
        .b = r.b,
        .gamma = o.repulsion_strength,
        .learning_rate = o.learning_rate,
        .negative_sample_rate = o.negative_sample_rate,
        .n_epochs = o.n_epochs,
        .seed = o.seed,
    };
    pw_progress_report(progress, "umap_optimize", 0.0);
    rc = umap_sgd_optimize(&g, &sp, threads, out, progress, err);
    if (rc)
        goto cleanup;
    {
        float *back = (float *)emb; /* n * 2 doubles, free since the init */
        for (size_t i = 0; i < n; i++) {
            back[2 * (size_t)order[i]] = out[2 * i];
            back[2 * (size_t)order[i] + 1] = out[2 * i + 1];
        }
        memcpy(out, back, 2 * n * sizeof *out);
    }
    r.n_epochs = o.n_epochs;
    r.seconds_optimize = stopwatch_now() - t3;
    pw_progress_report(progress, "umap_optimize", 1.0);
    if (res)
        *res = r;

cleanup:
    knn_free(&knn);
    umap_graph_free(&g);
    free(emb);
    free(order);
    free(inv);
    return rc;
}
