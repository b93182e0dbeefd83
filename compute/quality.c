/* quality.c - trustworthiness and k-NN preservation by brute force (see quality.h).
 *
 * Per point: all original distances (one row), the k nearest in the layout, then
 * each layout neighbour's rank in the original row by counting closer points.  Ties
 * are broken by index, as a stable argsort would. */
#include "quality.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "dense.h"

static int closer(double da, size_t ia, double db, size_t ib)
{
    return da < db || (da == db && ia < ib);
}

int quality_scores(const float *x, size_t n, size_t d, const float *y, size_t k,
                   enum knn_metric metric, int threads, struct quality_scores *out,
                   struct pw_error *err)
{
    int rc = dense_validate("quality", x, n, d, err);
    if (rc)
        return rc;
    if (!y || k < 1 || 2 * k >= n)
        return pw_error_set(err, PW_EINVAL, "quality: need a layout and 1 <= k < n / 2 (k = %zu)",
                            k);
    threads = dense_threads(threads);
    float *norms = malloc(n * sizeof *norms);
    double *excess = calloc(n, sizeof *excess), *kept = calloc(n, sizeof *kept);
    double *rows = malloc((size_t)threads * n * sizeof *rows);
    size_t *lay = malloc((size_t)threads * 2 * k * sizeof *lay);
    int oom = !norms || !excess || !kept || !rows || !lay;
    if (oom) {
        rc = pw_error_set(err, PW_ENOMEM, "quality: out of memory (n = %zu)", n);
        goto cleanup;
    }
    dense_row_norms(x, n, d, norms, threads);
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        int t = omp_get_thread_num();
        double *row = rows + (size_t)t * n;
        size_t *ly = lay + (size_t)t * 2 * k, *orig = ly + k;
        for (size_t j = 0; j < n; j++) {
            if (metric == KNN_COSINE) {
                double nn = (double)norms[i] * norms[j];
                row[j] = nn > 0 ? 1.0 - dense_dot(x + i * d, x + j * d, d) / nn : 1.0;
            } else {
                row[j] = sqrt(dense_sqdist(x + i * d, x + j * d, d));
            }
        }
        /* k nearest in the layout and in the original space, by insertion */
        size_t cl = 0, co = 0;
        for (size_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            double dl = dx * dx + dy * dy;
            size_t p = cl < k ? cl++ : k;
            while (p > 0) {
                size_t q = ly[p - 1];
                double ex = y[2 * i] - y[2 * q], ey = y[2 * i + 1] - y[2 * q + 1];
                if (!closer(dl, j, ex * ex + ey * ey, q))
                    break;
                if (p < k)
                    ly[p] = q;
                p--;
            }
            if (p < k)
                ly[p] = j;
            size_t r = co < k ? co++ : k;
            while (r > 0 && closer(row[j], j, row[orig[r - 1]], orig[r - 1])) {
                if (r < k)
                    orig[r] = orig[r - 1];
                r--;
            }
            if (r < k)
                orig[r] = j;
        }
        double ex = 0, kp = 0;
        for (size_t a = 0; a < k; a++) {
            size_t j = ly[a], rank = 1; /* 1-based rank of j among i's original neighbours */
            for (size_t l = 0; l < n; l++)
                if (l != i && l != j && closer(row[l], l, row[j], j))
                    rank++;
            if (rank > k)
                ex += (double)(rank - k);
            for (size_t b = 0; b < k; b++)
                if (orig[b] == j) {
                    kp += 1;
                    break;
                }
        }
        excess[i] = ex;
        kept[i] = kp;
    }
    double te = 0, tk = 0;
    for (size_t i = 0; i < n; i++) {
        te += excess[i];
        tk += kept[i];
    }
    double nd = (double)n, kd = (double)k;
    out->trustworthiness = 1.0 - te * (2.0 / (nd * kd * (2.0 * nd - 3.0 * kd - 1.0)));
    out->knn_preservation = tk / (nd * kd);
cleanup:
    free(norms);
    free(excess);
    free(kept);
    free(rows);
    free(lay);
    return rc;
}
