/* kmeans.c - k-means++ seeds and Lloyd rounds on a sample, then every row's two
 * nearest centroids (see kmeans.h). */
#include "kmeans.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_fixed.h"
#include "dense.h"
#include "rng.h"

#define KMEANS_SAMPLE_PER_CELL 256
#define KMEANS_ROUNDS          10
/* Rows a thread takes at a time through dense_dots / dense_sqdists (<= BLAS_FIXED_ROWS:
 * the assignment's scratch holds BLAS_FIXED_ROWS rows of scores a thread). */
#define KMEANS_TILE_ROWS 16

void kmeans_cells_free(struct kmeans_cells *cells)
{
    if (!cells)
        return;
    free(cells->first);
    free(cells->second);
    free(cells->border);
    memset(cells, 0, sizeof *cells);
}

/* Squared norms of the c centroids and their pairwise distances. */
static void centroid_geometry(const float *cent, size_t c, size_t d, float *csq, float *cdist)
{
    for (size_t a = 0; a < c; a++)
        csq[a] = dense_dot(cent + a * d, cent + a * d, d);
    for (size_t a = 0; a < c; a++)
        for (size_t b = 0; b < c; b++)
            cdist[a * c + b] = sqrtf(dense_sqdist(cent + a * d, cent + b * d, d));
}

/* Unit length (cosine); a zero vector stays zero. */
static void normalise(float *v, size_t d)
{
    float s = sqrtf(dense_dot(v, v, d));
    if (s > 0.0f)
        for (size_t t = 0; t < d; t++)
            v[t] /= s;
}

/* Greedy k-means++ seeding on the sample xs (s rows), as scikit-learn's: each step
 * draws 2 + ln(c) candidates by D^2 sampling (rng.h, from the seed) and keeps the one
 * that lowers the total squared distance most.  Plain k-means++ merged two of six
 * well-separated test clusters.  The step's candidates are drawn first (they depend on
 * the distances before the step only), then each sample row is measured against all of
 * them while it is in cache: one pass over the sample a step rather than one a
 * candidate.  The totals are summed in row order after the pass, so they do not depend
 * on how the rows were shared between threads.  cand: tries indices; sums: tries
 * values; cbuf: the tries candidates' rows (tries * d), measured a tile at a time. */
static void seed_plus_plus(const float *xs, size_t s, size_t d, size_t c, uint64_t seed,
                           int threads, float *cent, double *dmin, double *trial, size_t *cand,
                           double *sums, float *cbuf)
{
    size_t tries = 2 + (size_t)log((double)c);
    size_t pick = rng_below(seed, 0x6b6d, 0, s);
    memcpy(cent, xs + pick * d, d * sizeof *cent);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < s; i++)
        dmin[i] = dense_sqdist(xs + i * d, cent, d);
    double total = 0.0;
    for (size_t i = 0; i < s; i++)
        total += dmin[i];
    for (size_t a = 1; a < c; a++) {
        for (size_t t = 0; t < tries; t++) {
            double r = rng_unit(seed, 0x6b6d + a, t) * total, acc = 0.0;
            cand[t] = s - 1;
            for (size_t i = 0; i < s; i++) {
                acc += dmin[i];
                if (acc > r && dmin[i] > 0.0) {
                    cand[t] = i;
                    break;
                }
            }
        }
        for (size_t t = 0; t < tries; t++)
            memcpy(cbuf + t * d, xs + cand[t] * d, d * sizeof *cbuf);
        size_t blocks = (s + KMEANS_TILE_ROWS - 1) / KMEANS_TILE_ROWS;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t b = 0; b < blocks; b++) {
            size_t i0 = b * KMEANS_TILE_ROWS,
                   m = s - i0 < KMEANS_TILE_ROWS ? s - i0 : KMEANS_TILE_ROWS;
            float v[KMEANS_TILE_ROWS * tries];
            dense_sqdists(xs + i0 * d, m, cbuf, tries, d, v, tries);
            for (size_t r = 0; r < m; r++)
                for (size_t t = 0; t < tries; t++) {
                    size_t i = i0 + r;
                    trial[t * s + i] = v[r * tries + t] < dmin[i] ? v[r * tries + t] : dmin[i];
                }
        }
        for (size_t t = 0; t < tries; t++) {
            sums[t] = 0.0;
            for (size_t i = 0; i < s; i++)
                sums[t] += trial[t * s + i];
        }
        size_t best = 0;
        double best_total = INFINITY;
        for (size_t t = 0; t < tries; t++)
            if (sums[t] < best_total) {
                best_total = sums[t];
                best = t;
                pick = cand[t];
            }
        memcpy(cent + a * d, xs + pick * d, d * sizeof *cent);
        memcpy(dmin, trial + best * s, s * sizeof *dmin);
        total = best_total;
    }
}

/* Scores of rows against centroids: dots (rows x c) = rows . cent^T.  Fewer than
 * KMEANS_BLAS_CELLS centroids take dense_dots, KMEANS_TILE_ROWS rows at a time: sgemm
 * there would touch OpenBLAS's per-thread buffers, which stay resident for the life of
 * the process and raise t-SNE's peak memory. */
#define KMEANS_BLAS_CELLS 24
static void scores(const float *rows, size_t nr, size_t d, const float *cent, size_t c, int threads,
                   float *dots)
{
    if (c < KMEANS_BLAS_CELLS) {
        size_t blocks = (nr + KMEANS_TILE_ROWS - 1) / KMEANS_TILE_ROWS;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t b = 0; b < blocks; b++) {
            size_t i = b * KMEANS_TILE_ROWS;
            size_t m = nr - i < KMEANS_TILE_ROWS ? nr - i : KMEANS_TILE_ROWS;
            dense_dots(rows + i * d, m, cent, c, d, dots + i * c, c);
        }
        return;
    }
    struct blas_nt prod = {rows, cent, dots, nr, c, d, d, d, c};
    blas_nt_run(&prod, threads);
}

/* Lloyd rounds on the sample: assign, then move each centroid to its cell's mean; an
 * empty cell takes the sample row farthest from its centroid. */
static int lloyd(const float *xs, size_t s, size_t d, int cosine, size_t c, int threads,
                 float *cent, const struct pw_progress *progress, struct pw_error *err)
{
    float *dots = malloc(s * c * sizeof *dots), *csq = malloc(c * sizeof *csq);
    int32_t *lab = malloc(s * sizeof *lab);
    float *far = malloc(s * sizeof *far);
    double *sum = malloc(c * d * sizeof *sum);
    size_t *count = malloc(c * sizeof *count);
    int rc = 0;
    if (!dots || !csq || !lab || !far || !sum || !count) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means (%zu cells)", c);
        goto done;
    }
    for (size_t i = 0; i < s; i++)
        lab[i] = -1;
    for (int round = 0; round < KMEANS_ROUNDS; round++) {
        if ((rc = pw_progress_check(progress, err, "knn")))
            goto done;
        for (size_t a = 0; a < c; a++)
            csq[a] = dense_dot(cent + a * d, cent + a * d, d);
        scores(xs, s, d, cent, c, threads, dots);
        size_t moved = 0;
        for (size_t i = 0; i < s; i++) {
            const float *row = dots + i * c;
            size_t best = 0;
            float bv = csq[0] - 2.0f * row[0];
            for (size_t a = 1; a < c; a++) {
                float v = csq[a] - 2.0f * row[a];
                if (v < bv) {
                    bv = v;
                    best = a;
                }
            }
            far[i] = bv; /* squared distance minus |x_i|^2 */
            moved += lab[i] != (int32_t)best;
            lab[i] = (int32_t)best;
        }
        if (!moved)
            break;
        memset(sum, 0, c * d * sizeof *sum);
        memset(count, 0, c * sizeof *count);
        for (size_t i = 0; i < s; i++) {
            double *acc = sum + (size_t)lab[i] * d;
            const float *xi = xs + i * d;
            for (size_t t = 0; t < d; t++)
                acc[t] += xi[t];
            count[lab[i]]++;
        }
        for (size_t a = 0; a < c; a++) {
            float *ca = cent + a * d;
            if (count[a]) {
                for (size_t t = 0; t < d; t++)
                    ca[t] = (float)(sum[a * d + t] / (double)count[a]);
            } else { /* empty (rare): re-seed at the worst-served sample row */
                size_t worst = 0;
                float wv = -INFINITY;
                for (size_t i = 0; i < s; i++) {
                    float v = far[i] + dense_dot(xs + i * d, xs + i * d, d);
                    if (v > wv) {
                        wv = v;
                        worst = i;
                    }
                }
                memcpy(ca, xs + worst * d, d * sizeof *ca);
                far[worst] = -INFINITY;
            }
            if (cosine)
                normalise(ca, d);
        }
    }
done:
    free(dots);
    free(csq);
    free(lab);
    free(far);
    free(sum);
    free(count);
    return rc;
}

/* What assign_row needs besides the row: the centroids' squared lengths (euclidean:
 * about mu) and pairwise distances, mu and mu . (c - mu) (euclidean); for the scores,
 * the centroids they are taken against and each thread's scores of a tile (buf:
 * threads x BLAS_FIXED_ROWS x c). */
struct assign_geom {
    const float *x, *csq, *cdist, *mu, *muc, *cent;
    float *buf;
    size_t d, c;
    int cosine;
};

/* Row i's two nearest centroids and its distance to their bisector, from its scores
 * (dots: c, against the centroids or, euclidean, the centroids less mu). */
static void assign_row(const struct assign_geom *g, size_t i, const float *row,
                       struct kmeans_cells *out)
{
    size_t d = g->d, c = g->c;
    const float *xi = g->x + i * d;
    float xsq = g->cosine ? dense_dot(xi, xi, d) : dense_sqdist(xi, g->mu, d), scale = 1.0f;
    if (g->cosine) { /* compare the unit row */
        scale = xsq > 0.0f ? 1.0f / sqrtf(xsq) : 0.0f;
        xsq = xsq > 0.0f ? 1.0f : 0.0f;
    }
    size_t b1 = 0, b2 = 0;
    float v1 = INFINITY, v2 = INFINITY;
    for (size_t a = 0; a < c; a++) {
        float v = g->cosine ? xsq + g->csq[a] - 2.0f * scale * row[a]
                            : xsq + g->csq[a] - 2.0f * (row[a] - g->muc[a]);
        if (v < v1) {
            v2 = v1;
            b2 = b1;
            v1 = v;
            b1 = a;
        } else if (v < v2) {
            v2 = v;
            b2 = a;
        }
    }
    out->first[i] = (int32_t)b1;
    if (c == 1) {
        out->second[i] = (int32_t)b1;
        out->border[i] = INFINITY;
    } else {
        float gap = g->cdist[b1 * c + b2];
        out->second[i] = (int32_t)b2;
        out->border[i] = gap > 0.0f ? (v2 - v1) / (2.0f * gap) : 0.0f;
    }
}

/* Rows a parallel region of the assignment takes (a multiple of BLAS_FIXED_ROWS): each
 * region ends in a barrier, where a thread waits (spinning, in libgomp) for its partner;
 * on a shared machine that partner may be descheduled for milliseconds.  The parallel
 * loops here hand out their tiles one at a time (schedule dynamic), so a descheduled
 * thread holds up its current tile only; which thread scores a tile never changes its
 * bytes. */
#define KMEANS_ASSIGN_BLOCK 16384

/* The assignment of rows [r0, r0 + nr), r0 a multiple of BLAS_FIXED_ROWS: each thread
 * scores a tile of rows, by dense_dots (fewer than KMEANS_BLAS_CELLS centroids) or by
 * sgemm on BLAS_FIXED_ROWS rows (the blocks blas_nt_run makes: the same bytes), and
 * assigns them while the scores are in cache, one parallel region for the block. */
static void assign_block(const struct assign_geom *g, size_t r0, size_t nr, int threads,
                         struct kmeans_cells *out)
{
    int dense = g->c < KMEANS_BLAS_CELLS;
    size_t d = g->d, c = g->c, tile = dense ? KMEANS_TILE_ROWS : BLAS_FIXED_ROWS;
    size_t tiles = (nr + tile - 1) / tile;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t b = 0; b < tiles; b++) {
        float *dots = g->buf + (size_t)omp_get_thread_num() * BLAS_FIXED_ROWS * c;
        size_t i = r0 + b * tile, m = r0 + nr - i < tile ? r0 + nr - i : tile;
        if (dense) {
            dense_dots(g->x + i * d, m, g->cent, c, d, dots, c);
        } else {
            struct blas_nt prod = {g->x + i * d, g->cent, dots, m, c, d, d, d, c};
            blas_nt_share(&prod, 0, 1);
        }
        for (size_t r = 0; r < m; r++)
            assign_row(g, i + r, dots + r * c, out);
    }
}

/* Every row's two nearest centroids and its distance to their bisector, in blocks. */
static int assign_all(const float *x, size_t n, size_t d, int cosine, const float *cent, size_t c,
                      int threads, struct kmeans_cells *out, const struct pw_progress *progress,
                      struct pw_error *err)
{
    float *dots = malloc((size_t)threads * BLAS_FIXED_ROWS * c * sizeof *dots);
    float *csq = malloc(c * sizeof *csq), *cdist = malloc(c * c * sizeof *cdist);
    /* euclidean: scores against the centroids less their mean mu, |x - c|^2 =
     * |x - mu|^2 + |c - mu|^2 - 2 (x . (c - mu) - mu . (c - mu)): |x|^2 + |c|^2 - 2 x.c
     * cancels on rows far from the origin (cells close to random, docs/knn.md). */
    float *cc = cosine ? NULL : malloc(c * d * sizeof *cc), *mu = malloc(d * sizeof *mu);
    float *muc = malloc(c * sizeof *muc);
    int rc = 0;
    if (!dots || !csq || !cdist || (!cosine && !cc) || !mu || !muc) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means (%zu cells)", c);
        goto done;
    }
    centroid_geometry(cent, c, d, csq, cdist);
    if (!cosine) {
        for (size_t t = 0; t < d; t++) {
            double m = 0;
            for (size_t a = 0; a < c; a++)
                m += cent[a * d + t];
            mu[t] = (float)(m / (double)c);
        }
        for (size_t a = 0; a < c; a++) {
            for (size_t t = 0; t < d; t++)
                cc[a * d + t] = cent[a * d + t] - mu[t];
            csq[a] = dense_dot(cc + a * d, cc + a * d, d);
            muc[a] = dense_dot(mu, cc + a * d, d);
        }
    }
    struct assign_geom g = {x, csq, cdist, mu, muc, cosine ? cent : cc, dots, d, c, cosine};
    for (size_t r0 = 0; r0 < n; r0 += KMEANS_ASSIGN_BLOCK) {
        if ((rc = pw_progress_check(progress, err, "knn")))
            goto done;
        assign_block(&g, r0, n - r0 < KMEANS_ASSIGN_BLOCK ? n - r0 : KMEANS_ASSIGN_BLOCK, threads,
                     out);
    }
done:
    free(dots);
    free(csq);
    free(cdist);
    free(cc);
    free(mu);
    free(muc);
    return rc;
}

int kmeans_fit(const float *x, const int32_t *rows, size_t n, size_t d, int cosine, size_t c,
               uint64_t seed, int threads, float *cent, const struct pw_progress *progress,
               struct pw_error *err)
{
    if (c < 1 || c > n)
        return pw_error_set(err, PW_EINVAL, "knn: k-means needs 1 <= cells <= n, got %zu", c);
    size_t s = KMEANS_SAMPLE_PER_CELL * c;
    if (s > n)
        s = n;
    float *xs = malloc(s * d * sizeof *xs);
    double *dmin = malloc(s * sizeof *dmin);
    size_t tries = 2 + (size_t)log((double)c);
    double *trial = malloc(tries * s * sizeof *trial), *sums = malloc(tries * sizeof *sums);
    size_t *cand = malloc(tries * sizeof *cand);
    float *cbuf = malloc(tries * d * sizeof *cbuf);
    int rc = 0;
    if (!xs || !dmin || !trial || !sums || !cand || !cbuf) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means (%zu cells)", c);
        goto done;
    }
    for (size_t i = 0; i < s; i++) {
        size_t r = i * n / s;
        memcpy(xs + i * d, x + (rows ? (size_t)rows[r] : r) * d, d * sizeof *xs);
        if (cosine)
            normalise(xs + i * d, d);
    }
    /* euclidean: the sample less its mean, so Lloyd's |x|^2 + |c|^2 - 2 x.c does not
     * cancel on rows far from the origin; the mean goes back on the centroids */
    double *mean = cosine ? NULL : calloc(d, sizeof *mean);
    if (!cosine && !mean) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means (%zu cells)", c);
        goto done;
    }
    if (!cosine) {
        for (size_t i = 0; i < s; i++)
            for (size_t t = 0; t < d; t++)
                mean[t] += xs[i * d + t];
        for (size_t t = 0; t < d; t++)
            mean[t] /= (double)s;
        for (size_t i = 0; i < s; i++)
            for (size_t t = 0; t < d; t++)
                xs[i * d + t] = (float)(xs[i * d + t] - mean[t]);
    }
    seed_plus_plus(xs, s, d, c, seed, threads, cent, dmin, trial, cand, sums, cbuf);
    rc = lloyd(xs, s, d, cosine, c, threads, cent, progress, err);
    if (!cosine)
        for (size_t a = 0; a < c; a++)
            for (size_t t = 0; t < d; t++)
                cent[a * d + t] = (float)(cent[a * d + t] + mean[t]);
    free(mean);
done:
    free(xs);
    free(dmin);
    free(trial);
    free(sums);
    free(cand);
    free(cbuf);
    return rc;
}

int kmeans_assign(const float *x, size_t n, size_t d, int cosine, const float *cent, size_t c,
                  int threads, struct kmeans_cells *out, const struct pw_progress *progress,
                  struct pw_error *err)
{
    memset(out, 0, sizeof *out);
    out->first = malloc(n * sizeof *out->first);
    out->second = malloc(n * sizeof *out->second);
    out->border = malloc(n * sizeof *out->border);
    int rc;
    if (!out->first || !out->second || !out->border) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means (n = %zu)", n);
    } else {
        out->n = n;
        out->c = c;
        rc = assign_all(x, n, d, cosine, cent, c, threads, out, progress, err);
    }
    if (rc)
        kmeans_cells_free(out);
    return rc;
}

int kmeans_cells(const float *x, size_t n, size_t d, int cosine, size_t c, uint64_t seed,
                 int threads, struct kmeans_cells *out, const struct pw_progress *progress,
                 struct pw_error *err)
{
    memset(out, 0, sizeof *out);
    float *cent = c >= 1 && c <= n ? malloc(c * d * sizeof *cent) : NULL;
    if (c >= 1 && c <= n && !cent)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means (%zu cells)", c);
    int rc = kmeans_fit(x, NULL, n, d, cosine, c, seed, threads, cent, progress, err);
    if (!rc)
        rc = kmeans_assign(x, n, d, cosine, cent, c, threads, out, progress, err);
    free(cent);
    return rc;
}
