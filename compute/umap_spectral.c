/* umap_spectral.c - spectral initialisation of UMAP (see umap_spectral.h).
 *
 * Per connected component, the 2nd and 3rd eigenvectors of the normalised Laplacian
 * (umap_eigen.h); several components are placed around meta points
 * (multi_component_layout, with the differences said at umap_spectral_layout). */
#include "umap_spectral.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pca.h"
#include "rng.h"
#include "umap_eigen.h"

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
            umap_eigen_solve(&sub, seed, 0x5bec + c, threads, cc->max_it, cemb, &cc->apps[c],
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
            umap_eigen_solve(g, seed, 0x5bec, threads, max_it, emb, &st->applications, progress)
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
