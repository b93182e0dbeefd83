/* umap_graph.c - the fuzzy simplicial set of the k-NN graph (see umap_graph.h).
 *
 * Memberships per row by umap-learn's binary search for sigma; the union
 * A + A^T - A.A^T is formed by writing every directed edge into both endpoints' rows
 * and merging each sorted row in place. */
#include "umap_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void umap_graph_free(struct umap_graph *g)
{
    free(g->rowptr);
    free(g->col);
    free(g->val);
    memset(g, 0, sizeof *g);
}

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
int umap_graph_build(const struct knn_graph *knn, size_t n_neighbors, const struct umap_options *o,
                     int threads, struct umap_graph *g, struct pw_error *err)
{
    size_t n = knn->n, kr = knn->k;
    int rc = 0;
    float *memb = malloc(n * kr * sizeof *memb);
    size_t *cnt = calloc(n + 1, sizeof *cnt);
    struct tri *tris = malloc(2 * n * kr * sizeof *tris);
    size_t *outcnt = calloc(n, sizeof *outcnt); /* first each row's fill position */
    memset(g, 0, sizeof *g);
    if (!memb || !cnt || !tris || !outcnt) {
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
    size_t *fill = outcnt;
    memcpy(fill, cnt, n * sizeof *fill);
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < kr; s++) {
            int32_t j = knn->idx[i * kr + s];
            float v = memb[i * kr + s];
            tris[fill[i]++] = (struct tri){j, 0, v};
            tris[fill[j]++] = (struct tri){(int32_t)i, 1, v};
        }
    free(memb); /* before the merged graph is allocated: the peak of this step */
    memb = NULL;
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
    free(tris);
    free(outcnt);
    if (rc)
        umap_graph_free(g);
    return rc;
}
