/* test_knn.c - exact k-NN against brute force, approximate recall, determinism. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gram.h"
#include "knn.h"
#include "knn_probe.h"
#include "pw_test.h"
#include "test_data.h"

/* Brute-force k-NN in double (td_ref_dist), written independently of knn.c. */
static void brute_knn(const float *x, size_t n, size_t d, size_t k, int cosine, int32_t *idx)
{
    double *dist = malloc(n * sizeof *dist);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++)
            dist[j] = td_ref_dist(x, d, cosine, i, j);
        dist[i] = INFINITY;
        for (size_t a = 0; a < k; a++) { /* selection of the a-th smallest */
            size_t best = 0;
            for (size_t j = 1; j < n; j++)
                if (dist[j] < dist[best])
                    best = j;
            idx[i * k + a] = (int32_t)best;
            dist[best] = INFINITY;
        }
    }
    free(dist);
}

static double overlap(const int32_t *a, const int32_t *b, size_t n, size_t k)
{
    size_t hit = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t p = 0; p < k; p++)
            for (size_t q = 0; q < k; q++)
                if (a[i * k + p] == b[i * k + q]) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(n * k);
}

static void check_exact_matches_brute_force(int cosine)
{
    size_t n = 300, d = 16, k = 10;
    float *x = td_clusters(n, d, 5, 7);
    int32_t *want = malloc(n * k * sizeof *want);
    brute_knn(x, n, d, k, cosine, want);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_EXACT;
    o.metric = cosine ? KNN_COSINE : KNN_EUCLIDEAN;
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
    /* continuous random data: no ties, the sets must be identical */
    CHECK(overlap(g.idx, want, n, k) == 1.0);
    for (size_t i = 0; i < n; i++)
        for (size_t a = 1; a < k; a++)
            CHECK(g.dist[i * k + a - 1] <= g.dist[i * k + a]);
    knn_free(&g);
    free(want);
    free(x);
}

static void test_exact_euclidean_matches_brute_force(void)
{
    check_exact_matches_brute_force(0);
}

static void test_exact_cosine_matches_brute_force(void)
{
    check_exact_matches_brute_force(1);
}

/* Recall of the approximate graph against the exact one on 2000 rows in `clusters`
 * clusters; part_size 0 seeds NN-descent with the RP forest, else with k-means cells of
 * that many rows; iters as knn_options.n_iters; amx as knn_options.amx and .screen (0:
 * float sgemm only).  Without the recall check (recall_target 0): these measure the
 * approximate path itself. */
static double approx_recall_rows(int cosine, size_t d, size_t clusters, size_t part_size,
                                 size_t iters, int amx, size_t list_rows)
{
    size_t n = 2000, k = 15;
    float *x = td_clusters(n, d, clusters, 11);
    struct knn_options o;
    knn_options_default(&o);
    o.part_size = part_size;
    o.n_iters = iters;
    o.amx = amx;
    o.screen = amx ? KNN_SCREEN_ALWAYS : 0;
    o.list_rows = list_rows;
    o.metric = cosine ? KNN_COSINE : KNN_EUCLIDEAN;
    o.recall_target = 0.0;
    struct knn_graph exact, approx;
    struct pw_error err;
    o.method = KNN_EXACT;
    CHECK(knn_build(x, n, d, k, &o, &exact, NULL, &err) == 0);
    o.method = KNN_APPROX;
    CHECK(knn_build(x, n, d, k, &o, &approx, NULL, &err) == 0);
    double r = knn_recall(&approx, &exact);
    if (!amx)
        CHECK(approx.screened == 0 && exact.screened == 0);
    printf(
        "     approx recall (%s, d = %zu, %zu clusters, cells of %zu, %s rounds%s, lists of %zu) = "
        "%.5f\n",
        cosine ? "cosine" : "euclidean", d, clusters, part_size,
        iters == KNN_NO_ROUNDS ? "no" : "default", amx ? "" : ", sgemm", list_rows, r);
    knn_free(&exact);
    knn_free(&approx);
    free(x);
    return r;
}

static double approx_recall_amx(int cosine, size_t d, size_t clusters, size_t part_size,
                                size_t iters, int amx)
{
    return approx_recall_rows(cosine, d, clusters, part_size, iters, amx, 0);
}

static double approx_recall(int cosine, size_t d, size_t clusters, size_t part_size, size_t iters)
{
    return approx_recall_amx(cosine, d, clusters, part_size, iters, 1);
}

static void test_forest_euclidean_recall_at_least_095(void)
{
    CHECK(approx_recall(0, 32, 10, 0, 0) >= 0.95);
}

static void test_forest_cosine_recall_at_least_095(void)
{
    CHECK(approx_recall(1, 32, 10, 0, 0) >= 0.95);
}

/* d > 128: the random projection trees split in a 64-d sketch of the rows */
static void test_forest_wide_rows_euclidean_recall_at_least_095(void)
{
    CHECK(approx_recall(0, 300, 10, 0, 0) >= 0.95);
}

static void test_forest_wide_rows_cosine_recall_at_least_095(void)
{
    CHECK(approx_recall(1, 300, 10, 0, 0) >= 0.95);
}

/* Eight cells of ~250 rows over ten clusters: the exact neighbours inside cells. */
static void test_cells_euclidean_recall_at_least_095(void)
{
    CHECK(approx_recall(0, 32, 10, 250, KNN_NO_ROUNDS) >= 0.95);
}

static void test_cells_wide_rows_cosine_recall_at_least_095(void)
{
    CHECK(approx_recall(1, 300, 10, 250, KNN_NO_ROUNDS) >= 0.95);
}

/* Two clusters cut into eight cells: neighbours across cell borders are lost without
 * the spill and the NN-descent rounds, which must bring them back. */
static void test_cells_cutting_clusters_are_repaired_by_nn_descent(void)
{
    double seeded = approx_recall(0, 32, 2, 250, KNN_NO_ROUNDS);
    double refined = approx_recall(0, 32, 2, 250, 0);
    CHECK(refined > seeded);
    CHECK(refined >= 0.95);
}

/* The same with NN-descent's candidate lists sampled 200 points at a time (ten blocks a
 * round, each seeing what the blocks before it found), seeded by cells and by trees. */
static void test_nn_descent_in_list_blocks_repairs_cut_clusters(void)
{
    double seeded = approx_recall_rows(0, 32, 2, 250, KNN_NO_ROUNDS, 1, 200);
    double refined = approx_recall_rows(0, 32, 2, 250, 0, 1, 200);
    CHECK(refined > seeded);
    CHECK(refined >= 0.95);
    CHECK(approx_recall_rows(1, 32, 10, 0, 0, 1, 200) >= 0.95);
}

/* Rows k-means cannot split: 2400 copies of two points, interleaved, plus 600 clustered
 * rows, in cells of 100.  The copies end in cells cut by index; each copy must still get
 * k copies at distance 0, and the clustered rows their exact neighbours. */
static void test_duplicate_rows_in_cut_cells(void)
{
    size_t n = 3000, d = 8, k = 10;
    float *x = td_clusters(n, d, 6, 9);
    for (size_t i = 600; i < n; i++)
        for (size_t t = 0; t < d; t++)
            x[i * d + t] = i % 2 ? 5.0f : -5.0f;
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 100;
    struct knn_graph g, exact;
    struct pw_error err;
    CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
    o.method = KNN_EXACT;
    CHECK(knn_build(x, n, d, k, &o, &exact, NULL, &err) == 0);
    size_t zero = 0, hit = 0;
    for (size_t i = 600; i < n; i++)
        for (size_t a = 0; a < k; a++)
            zero += g.dist[i * k + a] == 0.0f && g.idx[i * k + a] % 2 == (int32_t)(i % 2);
    CHECK(zero == (n - 600) * k);
    for (size_t i = 0; i < 600; i++)
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                hit += g.idx[i * k + a] == exact.idx[i * k + b];
    CHECK((double)hit / (600.0 * (double)k) >= 0.95);
    knn_free(&g);
    knn_free(&exact);
    free(x);
}

/* One cell (part_size >= n) is the exact graph: to the last neighbour with sgemm's
 * float dot products; with AMX's (gram.h, ~2^-16 of each term) or the int8 pre-screen's
 * (ranked again on float distances from the differences) near-ties may swap. */
static void test_one_cell_is_exact(void)
{
    CHECK(approx_recall_amx(1, 40, 5, 4096, KNN_NO_ROUNDS, 0) == 1.0);
    CHECK(approx_recall_amx(0, 40, 5, 4096, KNN_NO_ROUNDS, 0) == 1.0);
    CHECK(approx_recall_amx(1, 40, 5, 4096, KNN_NO_ROUNDS, 1) >= 0.9999);
    CHECK(approx_recall_amx(0, 40, 5, 4096, KNN_NO_ROUNDS, 1) >= 0.9999);
}

/* Builds the approximate graph of one clustered set twice, with threads t1 and t2, and
 * checks both graphs are the same bytes. */
static void check_approx_same_graph(size_t d, enum knn_metric metric, uint64_t seed, int t1, int t2,
                                    size_t part_size, size_t list_rows)
{
    size_t n = 1500, k = 10;
    float *x = td_clusters(n, d, 8, seed);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = part_size;
    o.list_rows = list_rows;
    o.metric = metric;
    struct knn_graph a, b;
    struct pw_error err;
    o.threads = t1;
    CHECK(knn_build(x, n, d, k, &o, &a, NULL, &err) == 0);
    o.threads = t2;
    CHECK(knn_build(x, n, d, k, &o, &b, NULL, &err) == 0);
    CHECK(memcmp(a.idx, b.idx, n * k * sizeof *a.idx) == 0);
    CHECK(memcmp(a.dist, b.dist, n * k * sizeof *a.dist) == 0);
    knn_free(&a);
    knn_free(&b);
    free(x);
}

static void test_approx_wide_rows_do_not_depend_on_thread_count(void)
{
    check_approx_same_graph(200, KNN_COSINE, 6, 1, 3, 0, 0);
    check_approx_same_graph(200, KNN_COSINE, 6, 1, 3, 200, 0);
}

static void test_approx_is_deterministic_for_seed_and_threads(void)
{
    struct knn_options o;
    knn_options_default(&o);
    check_approx_same_graph(24, o.metric, 3, 2, 2, 0, 0);
    check_approx_same_graph(24, o.metric, 3, 2, 2, 200, 0);
}

/* Fraction of the true (double-precision) k nearest neighbours of every 20th row that
 * g lists. */
static double true_recall(const float *x, size_t n, size_t d, const struct knn_graph *g)
{
    size_t k = g->k, hits = 0, rows = 0;
    double *dist = malloc(n * sizeof *dist);
    for (size_t i = 0; i < n; i += 20, rows++) {
        for (size_t j = 0; j < n; j++) {
            dist[j] = j == i ? INFINITY : td_ref_dist(x, d, 0, i, j);
        }
        for (size_t e = 0; e < k; e++) { /* listed and no farther than the true k-th */
            size_t below = 0;
            double de = dist[g->idx[i * k + e]];
            for (size_t j = 0; j < n; j++)
                below += dist[j] < de;
            hits += below < k;
        }
    }
    free(dist);
    return (double)hits / (double)(rows * k);
}

/* Euclidean rows far from the origin (every coordinate + 1000), where |a|^2 + |b|^2 -
 * 2 a.b cancels: the cells (AMX or sgemm) and the exact path are centred first, so they
 * keep the precision the neighbours need. */
static void test_cells_on_offset_rows_find_true_neighbours(void)
{
    size_t n = 2000, d = 40, k = 15;
    float *x = td_clusters(n, d, 5, 12);
    for (size_t i = 0; i < n * d; i++)
        x[i] += 1000.0f;
    struct knn_options o;
    knn_options_default(&o);
    o.part_size = 4096;
    o.n_iters = KNN_NO_ROUNDS;
    o.method = KNN_APPROX;
    o.recall_target = 0.0;
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
    double r = true_recall(x, n, d, &g);
    printf("     one cell, rows offset by 1000: recall %.5f\n", r);
    CHECK(r >= 0.9999);
    knn_free(&g);
    o.amx = 0;
    o.screen = 0;
    CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
    r = true_recall(x, n, d, &g);
    printf("     the same on sgemm: recall %.5f\n", r);
    CHECK(r >= 0.9999);
    knn_free(&g);
    o.method = KNN_EXACT;
    CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
    r = true_recall(x, n, d, &g);
    printf("     exact path: recall %.5f\n", r);
    CHECK(r >= 0.9999);
    knn_free(&g);
    free(x);
}

/* The largest relative error of g's distances against the test's own double-precision
 * ones. */
static double worst_distance_error(const float *x, size_t d, const struct knn_graph *g)
{
    double worst = 0;
    for (size_t i = 0; i < g->n; i++)
        for (size_t e = 0; e < g->k; e++) {
            double s = td_ref_dist(x, d, 0, i, (size_t)g->idx[i * g->k + e]);
            double err = fabs(g->dist[i * g->k + e] - sqrt(s)) / (sqrt(s) + 1e-6);
            worst = err > worst ? err : worst;
        }
    return worst;
}

/* Rows offset by 1000 again, seeded by the trees' leaves and by cells of 250 rows, then
 * NN-descent: the graph's distances are the leaves', the cells' and the joins' own (not
 * computed again at the end), so all must keep float precision; and the k-means behind
 * the cells must place rows by centred distances (uncentred, |x|^2 + |c|^2 - 2 x.c
 * cancelled here and the cells were close to random: recall 0.35). */
static void test_offset_rows_keep_distance_precision_through_nn_descent(void)
{
    size_t n = 2000, d = 32, k = 15;
    float *x = td_clusters(n, d, 2, 11);
    for (size_t i = 0; i < n * d; i++)
        x[i] += 1000.0f;
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.recall_target = 0.0;
    struct pw_error err;
    size_t parts[2] = {250, 0};
    for (int c = 0; c < 2; c++) {
        struct knn_graph g;
        o.part_size = parts[c];
        CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
        double r = true_recall(x, n, d, &g), e = worst_distance_error(x, d, &g);
        printf("     rows offset by 1000, %s: recall %.5f, worst distance error %.2e\n",
               c ? "trees" : "cells of 250", r, e);
        CHECK(r >= 0.95);
        CHECK(e < 1e-4);
        knn_free(&g);
    }
    free(x);
}

/* Cells on sgemm: the same recall bar (AMX or the int8 pre-screen, when the CPU has
 * them, are the default). */
static void test_cells_on_sgemm_recall_at_least_095(void)
{
    CHECK(approx_recall_amx(0, 32, 10, 250, KNN_NO_ROUNDS, 0) >= 0.95);
    CHECK(approx_recall_amx(1, 300, 10, 250, KNN_NO_ROUNDS, 0) >= 0.95);
}

static void test_approx_does_not_depend_on_thread_count(void)
{
    struct knn_options o;
    knn_options_default(&o);
    check_approx_same_graph(24, o.metric, 4, 1, 3, 0, 0);
    check_approx_same_graph(24, o.metric, 4, 1, 3, 200, 0);
    check_approx_same_graph(24, o.metric, 4, 1, 3, 200, 130); /* lists in blocks */
    check_approx_same_graph(24, o.metric, 4, 2, 3, 0, 130);
}

static void test_knn_cancel_flag_returns_ecanceled(void)
{
    size_t n = 500, d = 8;
    float *x = td_clusters(n, d, 4, 5);
    atomic_int cancel = 1;
    struct pw_progress p = {.cancel = &cancel};
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, n, d, 5, NULL, &g, &p, &err) == PW_ECANCELED);
    CHECK(g.idx == NULL);
    free(x);
}

/* Cancelled while the cells are joined: the flag is raised by the report after the
 * first cell, so the k-means rounds and one cell have run. */
struct cancel_later {
    atomic_int cancel;
    int reports;
};

static void cancel_on_second_report(void *ctx, const char *phase, double fraction)
{
    (void)phase;
    (void)fraction;
    struct cancel_later *c = ctx;
    if (++c->reports == 2)
        atomic_store(&c->cancel, 1);
}

static void test_cells_cancel_returns_ecanceled(void)
{
    size_t n = 3000, d = 16;
    float *x = td_clusters(n, d, 4, 5);
    struct cancel_later c = {0, 0};
    struct pw_progress p = {.cancel = &c.cancel, .report = cancel_on_second_report, .ctx = &c};
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 300;
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, n, d, 5, &o, &g, &p, &err) == PW_ECANCELED);
    CHECK(c.reports == 2);
    CHECK(g.idx == NULL);
    free(x);
}

/* n points with independent N(0, 1) coordinates: no cluster structure, and at d = 64
 * NN-descent stalls far from the true neighbours. */
static float *isotropic(size_t n, size_t d, uint64_t seed)
{
    float *x = malloc(n * d * sizeof *x);
    uint64_t s = seed;
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)td_normal(&s);
    return x;
}

/* x's graph with options o for 1, 2 and 3 threads into g[0..3), which must be the same
 * bytes. */
static void build_on_1_2_3_threads(const float *x, size_t n, size_t d, size_t k,
                                   struct knn_options *o, struct knn_graph g[3])
{
    struct pw_error err;
    for (int t = 0; t < 3; t++) {
        o->threads = t + 1;
        CHECK(knn_build(x, n, d, k, o, &g[t], NULL, &err) == 0);
    }
    for (int t = 1; t < 3; t++) {
        CHECK(memcmp(g[0].idx, g[t].idx, n * k * sizeof *g[0].idx) == 0);
        CHECK(memcmp(g[0].dist, g[t].dist, n * k * sizeof *g[0].dist) == 0);
    }
}

static void free_graphs(struct knn_graph *g, int count)
{
    for (int t = 0; t < count; t++)
        knn_free(&g[t]);
}

/* On an isotropic cloud the cells and NN-descent alone miss many neighbours; the recall
 * probe sees it and the graph comes out exact instead, for any thread count. */
static void test_recall_check_escalates_isotropic_data_to_095(void)
{
    size_t n = 2500, d = 64, k = 15;
    float *x = isotropic(n, d, 21);
    int32_t *want = malloc(n * k * sizeof *want);
    brute_knn(x, n, d, k, 0, want);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 500;
    struct knn_graph plain, g[3];
    struct pw_error err;
    o.recall_target = 0.0;
    CHECK(knn_build(x, n, d, k, &o, &plain, NULL, &err) == 0);
    double before = overlap(plain.idx, want, n, k);
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 500;
    build_on_1_2_3_threads(x, n, d, k, &o, g);
    double after = overlap(g[0].idx, want, n, k);
    printf("     isotropic 2500 x 64: recall %.4f without the check, %.4f with it\n", before,
           after);
    CHECK(before < 0.95);
    CHECK(after >= 0.95);
    CHECK(g[0].built == KNN_BUILT_EXACT);
    free_graphs(g, 3);
    knn_free(&plain);
    free(want);
    free(x);
}

/* Four far-apart clusters, isotropic inside and eight times bigger than the cells: the
 * rounds cannot repair what the small cells cut, and the probe predicts that cells of
 * n/4 rows hold the neighbours, so those cells are joined instead of building the exact
 * graph; same bytes for any thread count. */
static void test_recall_check_joins_larger_cells_before_exact(void)
{
    size_t n = 3200, d = 128, k = 15, per = n / 4;
    float *x = isotropic(n, d, 5);
    for (size_t i = 0; i < n; i++)
        x[i * d + (i / per) * 32] += 40.0f; /* cluster i / per, centres 56 apart */
    int32_t *want = malloc(n * k * sizeof *want);
    brute_knn(x, n, d, k, 0, want);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 100;
    struct knn_graph plain, g[3];
    struct pw_error err;
    o.recall_target = 0.0;
    CHECK(knn_build(x, n, d, k, &o, &plain, NULL, &err) == 0);
    double before = overlap(plain.idx, want, n, k);
    o.recall_target = 0.97;
    build_on_1_2_3_threads(x, n, d, k, &o, g);
    double after = overlap(g[0].idx, want, n, k);
    printf("     4 isotropic clusters 3200 x 128, cells of 100: recall %.4f without the check, "
           "%.4f with it (built %d, estimate %.4f)\n",
           before, after, (int)g[0].built, g[0].recall_estimate);
    CHECK(before < 0.97); /* below the target: the plain graph would not do */
    CHECK(after >= 0.95);
    CHECK(g[0].built == KNN_BUILT_LARGER_CELLS);
    CHECK(g[0].recall_estimate >= 0.97);
    /* 128-d isotropic clusters are far above the rounds' intrinsic dimension: the cells of
     * 100 are not joined and no round runs */
    CHECK(g[0].rounds == 0);
    free_graphs(g, 3);
    /* the clusters are far apart: the n/4 cells hold every neighbour with no row spilled,
     * so each row sits in one cell (the pre-screen counts the rows it joins) */
    struct knn_graph one;
    o.screen = KNN_SCREEN_ALWAYS;
    o.threads = 2;
    CHECK(knn_build(x, n, d, k, &o, &one, NULL, &err) == 0);
    if (one.screened) /* CPUs without AVX512-VNNI do not pre-screen */
        CHECK(one.screened == n);
    CHECK(overlap(one.idx, want, n, k) >= 0.95);
    knn_free(&one);
    knn_free(&plain);
    free(want);
    free(x);
}

/* n points on a random m-dimensional subspace of d-space (Gaussian coordinates inside). */
static float *on_subspace(size_t n, size_t d, size_t m, uint64_t seed)
{
    float *basis = malloc(m * d * sizeof *basis), *x = calloc(n * d, sizeof *x);
    uint64_t s = seed;
    for (size_t i = 0; i < m * d; i++)
        basis[i] = (float)td_normal(&s);
    for (size_t i = 0; i < n; i++)
        for (size_t a = 0; a < m; a++) {
            float z = (float)td_normal(&s);
            for (size_t t = 0; t < d; t++)
                x[i * d + t] += z * basis[a * d + t];
        }
    free(basis);
    return x;
}

/* The probe's intrinsic dimension follows the data's, not the rows' width: 3 and 12
 * dimensions inside 64-d rows, either metric; duplicates do not break it. */
static void test_probe_estimates_intrinsic_dimension(void)
{
    size_t n = 4000, d = 64, k = 15;
    const size_t dims[2] = {3, 12};
    for (int t = 0; t < 2; t++)
        for (int cosine = 0; cosine < 2; cosine++) {
            float *x = on_subspace(n, d, dims[t], 7 + (uint64_t)t);
            float *inv = malloc(n * sizeof *inv), *sq = malloc(n * sizeof *sq);
            for (size_t i = 0; i < n; i++) {
                double q = 0;
                for (size_t c = 0; c < d; c++)
                    q += (double)x[i * d + c] * x[i * d + c];
                sq[i] = (float)q;
                inv[i] = (float)(1.0 / sqrt(q));
            }
            struct knn_probe p;
            struct pw_error err;
            CHECK(knn_probe_build(x, n, d, k, cosine, inv, sq, 256, 42, 2, &p, &err) == 0);
            /* cosine sees the directions: one dimension fewer */
            double want = (double)dims[t] - (cosine ? 1.0 : 0.0);
            printf("     %zu-d subspace of 64-d, %s: estimate %.2f\n", dims[t],
                   cosine ? "cosine" : "euclidean", p.lid);
            CHECK(p.lid > 0.75 * want && p.lid < 1.25 * want);
            knn_probe_free(&p);
            free(inv);
            free(sq);
            free(x);
        }
    /* every row twice: the zero distances are left out, the estimate stays */
    float *x = on_subspace(n / 2, d, 3, 9), *both = malloc(n * d * sizeof *both);
    memcpy(both, x, n / 2 * d * sizeof *x);
    memcpy(both + n / 2 * d, x, n / 2 * d * sizeof *x);
    float *sq = malloc(n * sizeof *sq);
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t c = 0; c < d; c++)
            q += (double)both[i * d + c] * both[i * d + c];
        sq[i] = (float)q;
    }
    struct knn_probe p;
    struct pw_error err;
    CHECK(knn_probe_build(both, n, d, k, 0, NULL, sq, 256, 42, 2, &p, &err) == 0);
    printf("     3-d subspace, every row twice: estimate %.2f\n", p.lid);
    CHECK(p.lid > 0.75 * 3.0 && p.lid < 1.25 * 3.0);
    knn_probe_free(&p);
    free(sq);
    free(both);
    free(x);
}

/* Clustered data passes the probe without the exact graph: NN-descent's rounds stop
 * once the estimate is high enough, and the recall stays >= 0.95. */
static void test_recall_check_keeps_approximate_graph_on_clusters(void)
{
    size_t n = 2000, d = 32, k = 15;
    float *x = td_clusters(n, d, 10, 11);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 250;
    struct knn_graph checked, plain;
    struct pw_error err;
    CHECK(knn_build(x, n, d, k, &o, &checked, NULL, &err) == 0);
    o.recall_target = 0.0;
    CHECK(knn_build(x, n, d, k, &o, &plain, NULL, &err) == 0);
    o.method = KNN_EXACT;
    struct knn_graph exact;
    CHECK(knn_build(x, n, d, k, &o, &exact, NULL, &err) == 0);
    printf("     10 clusters: recall %.4f with the check, %.4f without\n",
           knn_recall(&checked, &exact), knn_recall(&plain, &exact));
    CHECK(knn_recall(&checked, &exact) >= 0.95);
    knn_free(&checked);
    knn_free(&plain);
    knn_free(&exact);
    free(x);
}

/* The exact graph and cells of `part` rows (no rounds) of x (n rows), euclidean and
 * cosine, with the int8 pre-screen on: the brute-force graph in double, for 1, 2 and 3
 * threads; on a VNNI machine the cells through int8 products for at least `least` rows,
 * of which at least `rejoined` were joined again. */
static void check_screen_matches_brute_force(const float *x, size_t n, size_t d, const char *what,
                                             size_t part, size_t least, size_t rejoined)
{
    size_t k = 15;
    int32_t *want = malloc(n * k * sizeof *want);
    for (int cosine = 0; cosine < 2; cosine++) {
        brute_knn(x, n, d, k, cosine, want);
        for (int cell = 0; cell < 2; cell++) {
            struct knn_options o;
            knn_options_default(&o);
            o.screen = KNN_SCREEN_ALWAYS; /* 96 values: too narrow for the rule */
            o.metric = cosine ? KNN_COSINE : KNN_EUCLIDEAN;
            o.method = cell ? KNN_APPROX : KNN_EXACT;
            o.part_size = part;
            o.n_iters = KNN_NO_ROUNDS;
            o.recall_target = 0.0;
            struct knn_graph g[3];
            build_on_1_2_3_threads(x, n, d, k, &o, g);
            double r = overlap(g[0].idx, want, n, k);
            printf("     %s, %s, %s: recall %.5f, %zu rows through int8, %zu joined again\n", what,
                   cosine ? "cosine" : "euclidean", cell ? "cells" : "exact", r, g[0].screened,
                   g[0].rejoined);
            CHECK(r >= 0.999);
            if (cell && gram_vnni_usable()) {
                CHECK(g[0].screened >= least);
                CHECK(g[0].rejoined >= rejoined);
            }
            free_graphs(g, 3);
        }
    }
    free(want);
}

static void test_screen_matches_brute_force_on_isotropic_rows(void)
{
    size_t n = 2000, d = 96;
    float *x = isotropic(n, d, 31);
    check_screen_matches_brute_force(x, n, d, "isotropic 2000 x 96", 4096, n, 0);
    free(x);
}

/* Ten clusters: in cells of one cluster each, int8 products; all of them in one cell
 * (the exact graph) are far apart against their own spread, so float products there. */
static void test_screen_matches_brute_force_on_clustered_rows(void)
{
    size_t n = 2000, d = 96;
    float *x = td_clusters(n, d, 10, 31);
    check_screen_matches_brute_force(x, n, d, "10 clusters 2000 x 96", 200, n / 2, 0);
    free(x);
}

/* Ten tight clusters far apart in one cell (the exact graph): the sampled rows' gaps are
 * far below the int8 error of rows measured from the cell's mean, so the cell stays on
 * float, and the graph is the float path's to the byte. */
static void test_screen_keeps_float_for_tight_clusters_in_one_cell(void)
{
    size_t n = 2000, d = 96, k = 15;
    float *x = td_clusters(n, d, 10, 31);
    for (int cosine = 0; cosine < 2; cosine++) {
        struct knn_options o;
        knn_options_default(&o);
        o.metric = cosine ? KNN_COSINE : KNN_EUCLIDEAN;
        o.method = KNN_EXACT;
        struct knn_graph on, off;
        struct pw_error err;
        o.screen = KNN_SCREEN_ALWAYS;
        CHECK(knn_build(x, n, d, k, &o, &on, NULL, &err) == 0);
        o.screen = 0;
        CHECK(knn_build(x, n, d, k, &o, &off, NULL, &err) == 0);
        CHECK(on.screened == 0 && on.rejoined == 0);
        CHECK(memcmp(on.idx, off.idx, n * k * sizeof *on.idx) == 0);
        CHECK(memcmp(on.dist, off.dist, n * k * sizeof *on.dist) == 0);
        knn_free(&on);
        knn_free(&off);
    }
    free(x);
}

/* A pre-screen pool smaller than the cells: the rows are joined a range at a time (each
 * pair's int8 product twice, only the range's wide heaps held), ranges of 300 and 100
 * rows.  The graph is the one a pool of every row gives,
 * to the byte, for 1, 2 and 3 threads, exact and in cells, near-copies included. */
static void test_screen_in_ranges_gives_the_whole_pool_graph(void)
{
    size_t n = 2000, d = 96, k = 15;
    float *x = isotropic(n, d, 33);
    uint64_t seed = 78;
    for (size_t i = 1; i < 60; i++)
        for (size_t t = 0; t < d; t++)
            x[i * d + t] = x[t] + 1e-2f * (float)td_normal(&seed);
    for (int cosine = 0; cosine < 2; cosine++)
        for (int cell = 0; cell < 2; cell++) {
            struct knn_options o;
            knn_options_default(&o);
            o.screen = KNN_SCREEN_ALWAYS;
            o.metric = cosine ? KNN_COSINE : KNN_EUCLIDEAN;
            o.method = cell ? KNN_APPROX : KNN_EXACT;
            o.part_size = 700;
            o.n_iters = KNN_NO_ROUNDS;
            o.recall_target = 0.0;
            struct knn_graph whole, g[3];
            struct pw_error err;
            o.screen_rows = n;
            CHECK(knn_build(x, n, d, k, &o, &whole, NULL, &err) == 0);
            size_t rows[2] = {300, 100};
            for (int r = 0; r < 2; r++) {
                o.screen_rows = rows[r];
                build_on_1_2_3_threads(x, n, d, k, &o, g);
                printf("     %s, %s, ranges of %zu: %zu pairs through int8, %zu joined again\n",
                       cosine ? "cosine" : "euclidean", cell ? "cells" : "exact", rows[r],
                       g[0].screened, g[0].rejoined);
                CHECK(memcmp(g[0].idx, whole.idx, n * k * sizeof *whole.idx) == 0);
                CHECK(memcmp(g[0].dist, whole.dist, n * k * sizeof *whole.dist) == 0);
                /* in one cell the near-copies come again; in cells of 700 the one that
                 * holds the 60 copies may stay on float (one in eight of its rows would be
                 * joined again), the others go through int8 */
                if (gram_vnni_usable())
                    CHECK(cell ? g[0].screened > 0 : g[0].screened >= n && g[0].rejoined >= 59);
                free_graphs(g, 3);
            }
            knn_free(&whole);
        }
    free(x);
}

/* Rows the error bound cannot vouch for: 60 near-copies of one row (offsets of 1e-2)
 * among isotropic rows.  Their 15th and 39th nearest are all copies, closer together
 * than the int8 error, so they are joined again exactly, and still come out right. */
static void test_screen_rejoins_rows_the_bound_cannot_vouch_for(void)
{
    size_t n = 2000, d = 96;
    float *x = isotropic(n, d, 32);
    uint64_t s = 77;
    for (size_t i = 1; i < 60; i++)
        for (size_t t = 0; t < d; t++)
            x[i * d + t] = x[t] + 1e-2f * (float)td_normal(&s);
    check_screen_matches_brute_force(x, n, d, "isotropic with 60 near-copies", 4096, n, 60);
    free(x);
}

/* KNN_AUTO's rule (knn_auto_exact) follows the work: exact where its n^2 pairs cost
 * less than the cells' path (small n, and more n at small d), approximate beyond; an
 * explicit exact_max_n is a fixed switch; the RP forest keeps umap-learn's 4096. */
static void test_auto_rule_picks_exact_for_small_work_and_approx_for_large(void)
{
    struct knn_options o;
    knn_options_default(&o);
    CHECK(knn_auto_exact(1797, 64, &o));    /* digits */
    CHECK(knn_auto_exact(6000, 96, &o));    /* t-SNE's 6k cells */
    CHECK(knn_auto_exact(6000, 784, &o));   /* more rows than umap-learn's 4096 */
    CHECK(knn_auto_exact(20000, 96, &o));   /* narrow rows: selection-bound pairs */
    CHECK(!knn_auto_exact(20000, 768, &o)); /* wide rows: the cells pay */
    CHECK(!knn_auto_exact(70000, 784, &o));
    CHECK(!knn_auto_exact(200000, 2, &o)); /* never past 6 cells' worth, whatever d */
    CHECK(knn_auto_exact(12000, 96, &o) >= knn_auto_exact(12000, 768, &o));
    o.exact_max_n = 1000;
    CHECK(knn_auto_exact(1000, 96, &o));
    CHECK(!knn_auto_exact(1001, 96, &o));
    o.exact_max_n = 0;
    o.part_size = 0;
    CHECK(knn_auto_exact(4096, 96, &o));
    CHECK(!knn_auto_exact(4097, 96, &o));
}

/* Where the rule picks exact, KNN_AUTO's graph is KNN_EXACT's, byte for byte; with the
 * switch set below n it is the approximate one. */
static void test_auto_where_exact_is_chosen_gives_the_exact_graph(void)
{
    size_t n = 1500, d = 24, k = 15;
    float *x = td_clusters(n, d, 8, 5);
    struct knn_options o;
    knn_options_default(&o);
    struct knn_graph a, e, p;
    struct pw_error err;
    CHECK(knn_auto_exact(n, d, &o));
    CHECK(knn_build(x, n, d, k, &o, &a, NULL, &err) == 0);
    o.method = KNN_EXACT;
    CHECK(knn_build(x, n, d, k, &o, &e, NULL, &err) == 0);
    CHECK(a.built == KNN_BUILT_EXACT);
    CHECK(memcmp(a.idx, e.idx, n * k * sizeof *a.idx) == 0);
    CHECK(memcmp(a.dist, e.dist, n * k * sizeof *a.dist) == 0);
    o.method = KNN_AUTO;
    o.exact_max_n = n - 1;
    o.part_size = 500;
    CHECK(knn_build(x, n, d, k, &o, &p, NULL, &err) == 0);
    CHECK(p.built == KNN_BUILT_APPROX);
    knn_free(&a);
    knn_free(&e);
    knn_free(&p);
    free(x);
}

/* x's exact graph with the default options, pre-screen as chosen (on) and off (screen 0). */
static void exact_screen_on_off(const float *x, size_t n, size_t d, size_t k, struct knn_graph *on,
                                struct knn_graph *off)
{
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_EXACT;
    struct pw_error err;
    CHECK(knn_build(x, n, d, k, &o, on, NULL, &err) == 0);
    o.screen = 0;
    CHECK(knn_build(x, n, d, k, &o, off, NULL, &err) == 0);
}

/* The int8 pre-screen runs by default only on rows wide enough for it to pay: 96
 * values stay on float (same graph as screen 0), 384 go through int8. */
static void test_screen_by_default_only_on_wide_rows(void)
{
    size_t n = 1000, k = 15;
    for (size_t d = 96; d <= 384; d *= 4) {
        float *x = isotropic(n, d, 21);
        struct knn_graph on, off;
        exact_screen_on_off(x, n, d, k, &on, &off);
        if (!gram_vnni_usable() || gram_amx_usable()) {
            CHECK(on.screened == 0);
        } else if (d == 96) {
            CHECK(on.screened == 0);
            CHECK(memcmp(on.idx, off.idx, n * k * sizeof *on.idx) == 0);
        } else {
            CHECK(on.screened == n);
        }
        knn_free(&on);
        knn_free(&off);
        free(x);
    }
}

/* Large cells amortise the pre-screen's fixed costs, and then its per-pair cost follows
 * the wide heap: 64 values in ranges (each pair twice, half the multiply-adds saved) go
 * through int8 at UMAP's k = 15 and stay on float at t-SNE's k = 91 (same graph as
 * screen 0), on 16,500 rows; the int8 graph is the exact one but for near-ties. */
static void test_screen_on_narrow_rows_of_large_cells_follows_k(void)
{
    size_t n = 16500, d = 64;
    float *x = isotropic(n, d, 23);
    for (size_t k = 15; k <= 91; k += 76) {
        struct knn_graph on, off;
        exact_screen_on_off(x, n, d, k, &on, &off);
        printf("     k %zu: %zu rows screened, %zu joined again, recall %.5f against float\n", k,
               on.screened, on.rejoined, knn_recall(&on, &off));
        if (!gram_vnni_usable() || gram_amx_usable() || k == 91) {
            CHECK(on.screened == 0);
            CHECK(memcmp(on.idx, off.idx, n * k * sizeof *on.idx) == 0);
        } else {
            CHECK(on.screened == n);
            CHECK(knn_recall(&on, &off) >= 0.9999);
        }
        knn_free(&on);
        knn_free(&off);
    }
    free(x);
}

/* An isotropic 24-d cloud in cells of 1,000: the cells hold under half of the
 * neighbours and NN-descent gains a few hundredths a round, so after one round the
 * graph goes to the larger cells or the exact graph instead of more rounds (three more
 * at that gain would not reach the target), and the recall still holds. */
static void test_rounds_that_cannot_reach_the_target_soon_are_not_run(void)
{
    size_t n = 20000, d = 24, k = 15;
    float *x = isotropic(n, d, 29);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
    o.part_size = 1000;
    struct knn_graph g, exact;
    struct pw_error err;
    CHECK(knn_build(x, n, d, k, &o, &g, NULL, &err) == 0);
    o.method = KNN_EXACT;
    CHECK(knn_build(x, n, d, k, &o, &exact, NULL, &err) == 0);
    printf("     %zu rounds, built %d, recall %.4f\n", g.rounds, (int)g.built,
           knn_recall(&g, &exact));
    CHECK(g.rounds == 1);
    CHECK(g.built != KNN_BUILT_APPROX);
    CHECK(knn_recall(&g, &exact) >= 0.95);
    knn_free(&g);
    knn_free(&exact);
    free(x);
}

/* Group g's nearest other group (skip: the one to leave out too), by the bases' squared
 * distances in double. */
static size_t nearest_group(const float *base, size_t groups, size_t d, size_t g, size_t skip)
{
    size_t best = SIZE_MAX;
    double bd = INFINITY;
    for (size_t h = 0; h < groups; h++) {
        double v = h == g || h == skip ? INFINITY : td_ref_dist(base, d, 0, g, h);
        if (v < bd) {
            bd = v;
            best = h;
        }
    }
    return best;
}

/* Rows in groups of ten identical copies: a row's 15 nearest are its 9 copies and 6 of
 * the 10 copies of the nearest other group, all 10 at the same distance.  A graph that
 * lists other copies of that group than the probe's exact neighbours (the last six
 * instead of the first) is as exact: the probe's recall is 1; one that lists the
 * second-nearest group's copies finds 9 of 15. */
static void test_probe_recall_counts_rows_tied_with_the_kth(void)
{
    size_t groups = 40, copies = 10, n = groups * copies, d = 8, k = 15;
    float *base = isotropic(groups, d, 41), *x = malloc(n * d * sizeof *x);
    float *sq = malloc(n * sizeof *sq);
    for (size_t i = 0; i < n; i++) {
        memcpy(x + i * d, base + i / copies * d, d * sizeof *x);
        double s = 0;
        for (size_t t = 0; t < d; t++)
            s += (double)x[i * d + t] * x[i * d + t];
        sq[i] = (float)s;
    }
    int32_t *tied = malloc(n * k * sizeof *tied), *far = malloc(n * k * sizeof *far);
    for (size_t i = 0; i < n; i++) {
        size_t g = i / copies, e = 0, near = nearest_group(base, groups, d, g, SIZE_MAX);
        size_t next = nearest_group(base, groups, d, g, near);
        for (size_t c = 0; c < copies; c++)
            if (g * copies + c != i) {
                tied[i * k + e] = far[i * k + e] = (int32_t)(g * copies + c);
                e++;
            }
        for (size_t c = 0; e < k; c++, e++) {
            tied[i * k + e] = (int32_t)(near * copies + copies - 1 - c);
            far[i * k + e] = (int32_t)(next * copies + c);
        }
    }
    struct knn_probe p;
    struct pw_error err;
    CHECK(knn_probe_build(x, n, d, k, 0, NULL, sq, n, 42, 1, &p, &err) == 0);
    printf("     recall of the tied graph %.4f, of the farther one %.4f\n",
           knn_probe_recall(&p, tied, k), knn_probe_recall(&p, far, k));
    CHECK(knn_probe_recall(&p, tied, k) == 1.0);
    CHECK(fabs(knn_probe_recall(&p, far, k) - 9.0 / 15.0) < 1e-12);
    knn_probe_free(&p);
    free(tied);
    free(far);
    free(sq);
    free(x);
    free(base);
}

static void test_knn_rejects_k_not_below_n(void)
{
    float x[6] = {0, 1, 2, 3, 4, 5};
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, 3, 2, 3, NULL, &g, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "k must be") != NULL);
}

/* A NaN or an Inf anywhere is refused with its row and column (the check rides on the
 * row norms); rows of finite values whose norm overflows a float are not refused. */
static void test_knn_rejects_non_finite_values_with_their_place(void)
{
    size_t n = 300, d = 8;
    float *x = isotropic(n, d, 41);
    struct knn_graph g;
    struct pw_error err;
    x[123 * d + 5] = NAN;
    x[200 * d + 1] = INFINITY;
    CHECK(knn_build(x, n, d, 5, NULL, &g, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "NaN") != NULL && strstr(err.msg, "row 123, column 5") != NULL);
    CHECK(g.idx == NULL && g.dist == NULL);
    x[123 * d + 5] = 0.0f;
    CHECK(knn_build(x, n, d, 5, NULL, &g, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "Inf") != NULL && strstr(err.msg, "row 200, column 1") != NULL);
    x[200 * d + 1] = 3e38f; /* with the next: a norm of 4.2e38, past FLT_MAX */
    x[200 * d + 2] = 3e38f;
    CHECK(knn_build(x, n, d, 5, NULL, &g, NULL, &err) == 0);
    knn_free(&g);
    free(x);
}

int main(void)
{
    RUN(test_exact_euclidean_matches_brute_force);
    RUN(test_exact_cosine_matches_brute_force);
    RUN(test_forest_euclidean_recall_at_least_095);
    RUN(test_forest_cosine_recall_at_least_095);
    RUN(test_forest_wide_rows_euclidean_recall_at_least_095);
    RUN(test_forest_wide_rows_cosine_recall_at_least_095);
    RUN(test_cells_euclidean_recall_at_least_095);
    RUN(test_cells_wide_rows_cosine_recall_at_least_095);
    RUN(test_cells_cutting_clusters_are_repaired_by_nn_descent);
    RUN(test_nn_descent_in_list_blocks_repairs_cut_clusters);
    RUN(test_one_cell_is_exact);
    RUN(test_cells_on_sgemm_recall_at_least_095);
    RUN(test_cells_on_offset_rows_find_true_neighbours);
    RUN(test_offset_rows_keep_distance_precision_through_nn_descent);
    RUN(test_duplicate_rows_in_cut_cells);
    RUN(test_approx_wide_rows_do_not_depend_on_thread_count);
    RUN(test_approx_is_deterministic_for_seed_and_threads);
    RUN(test_approx_does_not_depend_on_thread_count);
    RUN(test_knn_cancel_flag_returns_ecanceled);
    RUN(test_cells_cancel_returns_ecanceled);
    RUN(test_recall_check_escalates_isotropic_data_to_095);
    RUN(test_recall_check_joins_larger_cells_before_exact);
    RUN(test_probe_estimates_intrinsic_dimension);
    RUN(test_recall_check_keeps_approximate_graph_on_clusters);
    RUN(test_screen_matches_brute_force_on_isotropic_rows);
    RUN(test_screen_matches_brute_force_on_clustered_rows);
    RUN(test_screen_keeps_float_for_tight_clusters_in_one_cell);
    RUN(test_screen_rejoins_rows_the_bound_cannot_vouch_for);
    RUN(test_screen_in_ranges_gives_the_whole_pool_graph);
    RUN(test_auto_rule_picks_exact_for_small_work_and_approx_for_large);
    RUN(test_auto_where_exact_is_chosen_gives_the_exact_graph);
    RUN(test_screen_by_default_only_on_wide_rows);
    RUN(test_screen_on_narrow_rows_of_large_cells_follows_k);
    RUN(test_rounds_that_cannot_reach_the_target_soon_are_not_run);
    RUN(test_probe_recall_counts_rows_tied_with_the_kth);
    RUN(test_knn_rejects_k_not_below_n);
    RUN(test_knn_rejects_non_finite_values_with_their_place);
    PW_TEST_MAIN();
}
