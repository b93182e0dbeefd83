/* test_kmeans.c - the k-means cells behind the partitioned k-NN: clusters found,
 * borders, determinism, spherical (cosine) cells, bad arguments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kmeans.h"
#include "pw_test.h"
#include "test_data.h"

/* Row i is in cluster i % c (test_data.h): every cluster must map to one cell and
 * different clusters to different cells. */
static int cells_match_clusters(const struct kmeans_cells *k, size_t n, size_t c)
{
    int32_t *cell_of = malloc(c * sizeof *cell_of);
    int ok = 1;
    for (size_t a = 0; a < c; a++)
        cell_of[a] = k->first[a];
    for (size_t i = 0; i < n; i++)
        if (k->first[i] != cell_of[i % c])
            ok = 0;
    for (size_t a = 0; a < c; a++)
        for (size_t b = a + 1; b < c; b++)
            if (cell_of[a] == cell_of[b])
                ok = 0;
    free(cell_of);
    return ok;
}

/* Clusters moved 12 apart along their own axis: well separated (td_clusters' random
 * centres can overlap, and then k-means may rightly prefer another partition). */
static void test_separated_clusters_become_cells(void)
{
    size_t n = 1200, d = 16, c = 6;
    float *x = td_clusters(n, d, c, 21);
    for (size_t i = 0; i < n; i++)
        x[i * d + i % c] += 12.0f;
    struct kmeans_cells k;
    struct pw_error err;
    CHECK(kmeans_cells(x, n, d, 0, c, 42, 2, &k, NULL, &err) == 0);
    CHECK(cells_match_clusters(&k, n, c));
    for (size_t i = 0; i < n; i++) {
        CHECK(k.second[i] != k.first[i]);
        CHECK(k.second[i] >= 0 && (size_t)k.second[i] < c);
        CHECK(k.border[i] >= 0.0f);
    }
    kmeans_cells_free(&k);
    free(x);
}

/* Centroids fitted on a subset of the rows (clusters 1 and 4 of six, given as row
 * indices, as knn_cells.c splits a cell): assigning every row to them puts cluster 1 in one
 * cell and cluster 4 in the other. */
static void test_centroids_fitted_on_a_subset_of_rows(void)
{
    size_t n = 1200, d = 16, c = 6, cnt = 0;
    float *x = td_clusters(n, d, c, 21);
    for (size_t i = 0; i < n; i++)
        x[i * d + i % c] += 12.0f;
    int32_t *rows = malloc(n * sizeof *rows);
    for (size_t i = 0; i < n; i++)
        if (i % c == 1 || i % c == 4)
            rows[cnt++] = (int32_t)i;
    float *cent = malloc(2 * d * sizeof *cent);
    struct kmeans_cells k;
    struct pw_error err;
    CHECK(kmeans_fit(x, rows, cnt, d, 0, 2, 42, 2, cent, NULL, &err) == 0);
    CHECK(kmeans_assign(x, n, d, 0, cent, 2, 2, &k, NULL, &err) == 0);
    CHECK(k.n == n && k.c == 2);
    CHECK(k.first[1] != k.first[4]);
    for (size_t i = 0; i < n; i++)
        if (i % c == 1 || i % c == 4)
            CHECK(k.first[i] == k.first[i % c]);
    kmeans_cells_free(&k);
    free(cent);
    free(rows);
    free(x);
}

/* A row half way between two cluster centres sits on their cells' border: its border
 * distance is below every clustered row's. */
static void test_midpoint_has_the_smallest_border(void)
{
    size_t n = 601, d = 16, c = 3;
    float *x = td_clusters(n, d, c, 22);
    float *mean = calloc(2 * d, sizeof *mean);
    size_t per = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (i % c == 2)
            continue;
        for (size_t t = 0; t < d; t++)
            mean[(i % c) * d + t] += x[i * d + t];
        per += i % c == 0;
    }
    for (size_t t = 0; t < d; t++) /* last row: midpoint of clusters 0 and 1's means */
        x[(n - 1) * d + t] = 0.5f * (mean[t] + mean[d + t]) / (float)per;
    struct kmeans_cells k;
    struct pw_error err;
    CHECK(kmeans_cells(x, n, d, 0, c, 42, 1, &k, NULL, &err) == 0);
    for (size_t i = 0; i + 1 < n; i++)
        CHECK(k.border[n - 1] < k.border[i]);
    CHECK(k.first[n - 1] == k.first[0] || k.first[n - 1] == k.first[1]);
    CHECK(k.second[n - 1] == k.first[0] || k.second[n - 1] == k.first[1]);
    kmeans_cells_free(&k);
    free(mean);
    free(x);
}

/* kmeans_assign against the test's own double-precision distances, for centroid counts
 * on both sides of kmeans.c's switch to sgemm (24): each row's first and second cells
 * are its two nearest centroids (up to float rounding of near ties). */
static void check_assign_is_nearest(size_t c, int cosine)
{
    size_t n = 2500, d = 20;
    float *x = td_clusters(n, d, 7, 31), *cent = malloc(c * d * sizeof *cent);
    for (size_t a = 0; a < c; a++) { /* every 61st row, unit length for cosine */
        double q = 0;
        for (size_t t = 0; t < d; t++)
            q += (double)x[a * 61 * d + t] * x[a * 61 * d + t];
        for (size_t t = 0; t < d; t++)
            cent[a * d + t] = (float)(x[a * 61 * d + t] / (cosine ? sqrt(q) : 1.0));
    }
    struct kmeans_cells k;
    struct pw_error err;
    CHECK(kmeans_assign(x, n, d, cosine, cent, c, 2, &k, NULL, &err) == 0);
    double *dist = malloc(c * sizeof *dist);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double xn = 0, b1 = INFINITY, b2 = INFINITY;
        for (size_t t = 0; t < d; t++)
            xn += (double)x[i * d + t] * x[i * d + t];
        xn = cosine ? sqrt(xn) : 1.0;
        for (size_t a = 0; a < c; a++) {
            double q = 0;
            for (size_t t = 0; t < d; t++) {
                double v = x[i * d + t] / xn - cent[a * d + t];
                q += v * v;
            }
            dist[a] = q;
            if (q < b1) {
                b2 = b1;
                b1 = q;
            } else if (q < b2) {
                b2 = q;
            }
        }
        double tol = 1e-4 * (1.0 + b2);
        bad += dist[k.first[i]] > b1 + tol || dist[k.second[i]] > b2 + tol ||
               k.first[i] == k.second[i];
    }
    printf("     %zu centroids (%s): %zu of %zu rows not in their nearest two\n", c,
           cosine ? "cosine" : "euclidean", bad, n);
    CHECK(bad == 0);
    kmeans_cells_free(&k);
    free(dist);
    free(cent);
    free(x);
}

static void test_assignments_are_the_nearest_centroids_with_and_without_sgemm(void)
{
    check_assign_is_nearest(5, 0);
    check_assign_is_nearest(5, 1);
    check_assign_is_nearest(40, 0);
    check_assign_is_nearest(40, 1);
}

static void test_same_seed_same_cells_any_thread_count(void)
{
    size_t n = 2000, d = 24, c = 9;
    float *x = td_clusters(n, d, 5, 23); /* fewer clusters than cells: cells cut clusters */
    struct kmeans_cells a, b;
    struct pw_error err;
    CHECK(kmeans_cells(x, n, d, 1, c, 7, 1, &a, NULL, &err) == 0);
    CHECK(kmeans_cells(x, n, d, 1, c, 7, 3, &b, NULL, &err) == 0);
    CHECK(memcmp(a.first, b.first, n * sizeof *a.first) == 0);
    CHECK(memcmp(a.second, b.second, n * sizeof *a.second) == 0);
    CHECK(memcmp(a.border, b.border, n * sizeof *a.border) == 0);
    kmeans_cells_free(&a);
    kmeans_cells_free(&b);
    free(x);
}

/* The seeding's totals over the sample are summed in row order whoever measured the
 * rows, so the centroids themselves are the same bytes for any thread count, also on
 * rows without clusters where many candidates' totals are close. */
static void test_same_seed_same_centroids_any_thread_count(void)
{
    size_t n = 6000, d = 37, c = 30;
    float *x = td_clusters(n, d, 1, 29);
    float *cent[4];
    struct pw_error err;
    for (int t = 0; t < 4; t++) {
        cent[t] = malloc(c * d * sizeof *cent[t]);
        CHECK(kmeans_fit(x, NULL, n, d, 0, c, 11, t + 1, cent[t], NULL, &err) == 0);
        if (t)
            CHECK(memcmp(cent[t], cent[0], c * d * sizeof *cent[0]) == 0);
    }
    for (int t = 0; t < 4; t++)
        free(cent[t]);
    free(x);
}

/* Cosine cells depend on directions only: rows rescaled by positive factors keep theirs. */
static void test_cosine_cells_ignore_row_length(void)
{
    size_t n = 900, d = 12, c = 3;
    float *x = td_clusters(n, d, c, 24), *y = malloc(n * d * sizeof *y);
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < d; t++)
            y[i * d + t] = x[i * d + t] * (float)(1 + i % 7);
    struct kmeans_cells a, b;
    struct pw_error err;
    CHECK(kmeans_cells(x, n, d, 1, c, 5, 1, &a, NULL, &err) == 0);
    CHECK(kmeans_cells(y, n, d, 1, c, 5, 1, &b, NULL, &err) == 0);
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += a.first[i] == b.first[i];
    CHECK(same >= n - n / 100); /* float rounding may move a row on a border */
    kmeans_cells_free(&a);
    kmeans_cells_free(&b);
    free(x);
    free(y);
}

static void test_one_cell_has_no_border(void)
{
    size_t n = 50, d = 4;
    float *x = td_clusters(n, d, 2, 25);
    struct kmeans_cells k;
    struct pw_error err;
    CHECK(kmeans_cells(x, n, d, 0, 1, 1, 1, &k, NULL, &err) == 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(k.first[i] == 0 && k.second[i] == 0);
        CHECK(isinf(k.border[i]));
    }
    kmeans_cells_free(&k);
    free(x);
}

static void test_bad_cell_counts_are_rejected(void)
{
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    struct kmeans_cells k;
    struct pw_error err;
    CHECK(kmeans_cells(x, 4, 2, 0, 0, 1, 1, &k, NULL, &err) == PW_EINVAL);
    CHECK(kmeans_cells(x, 4, 2, 0, 5, 1, 1, &k, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "cells") != NULL);
    CHECK(k.first == NULL);
}

int main(void)
{
    RUN(test_separated_clusters_become_cells);
    RUN(test_centroids_fitted_on_a_subset_of_rows);
    RUN(test_midpoint_has_the_smallest_border);
    RUN(test_assignments_are_the_nearest_centroids_with_and_without_sgemm);
    RUN(test_same_seed_same_cells_any_thread_count);
    RUN(test_same_seed_same_centroids_any_thread_count);
    RUN(test_cosine_cells_ignore_row_length);
    RUN(test_one_cell_has_no_border);
    RUN(test_bad_cell_counts_are_rejected);
    PW_TEST_MAIN();
}
