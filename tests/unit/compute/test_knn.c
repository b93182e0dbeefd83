/* test_knn.c - exact k-NN against brute force, approximate recall, determinism. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "knn.h"
#include "pw_test.h"
#include "test_data.h"

/* Brute-force k-NN in double, written independently of knn.c. */
static void brute_knn(const float *x, size_t n, size_t d, size_t k, int cosine, int32_t *idx)
{
    double *dist = malloc(n * sizeof *dist);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            double s = 0, na = 0, nb = 0, dot = 0;
            for (size_t t = 0; t < d; t++) {
                double a = x[i * d + t], b = x[j * d + t];
                s += (a - b) * (a - b);
                dot += a * b;
                na += a * a;
                nb += b * b;
            }
            dist[j] = cosine ? 1.0 - dot / sqrt(na * nb) : sqrt(s);
        }
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

static void check_approx_recall(int cosine, size_t d)
{
    size_t n = 2000, k = 15;
    float *x = td_clusters(n, d, 10, 11);
    struct knn_options o;
    knn_options_default(&o);
    o.metric = cosine ? KNN_COSINE : KNN_EUCLIDEAN;
    struct knn_graph exact, approx;
    struct pw_error err;
    o.method = KNN_EXACT;
    CHECK(knn_build(x, n, d, k, &o, &exact, NULL, &err) == 0);
    o.method = KNN_APPROX;
    CHECK(knn_build(x, n, d, k, &o, &approx, NULL, &err) == 0);
    double r = knn_recall(&approx, &exact);
    printf("     approx recall (%s, d = %zu) = %.4f\n", cosine ? "cosine" : "euclidean", d, r);
    CHECK(r >= 0.95);
    knn_free(&exact);
    knn_free(&approx);
    free(x);
}

static void test_approx_euclidean_recall_at_least_095(void)
{
    check_approx_recall(0, 32);
}

static void test_approx_cosine_recall_at_least_095(void)
{
    check_approx_recall(1, 32);
}

/* d > 128: the random projection trees split in a 64-d sketch of the rows */
static void test_approx_wide_rows_euclidean_recall_at_least_095(void)
{
    check_approx_recall(0, 300);
}

static void test_approx_wide_rows_cosine_recall_at_least_095(void)
{
    check_approx_recall(1, 300);
}

/* Builds the approximate graph of one clustered set twice, with threads t1 and t2, and
 * checks both graphs are the same bytes. */
static void check_approx_same_graph(size_t d, enum knn_metric metric, uint64_t seed, int t1, int t2)
{
    size_t n = 1500, k = 10;
    float *x = td_clusters(n, d, 8, seed);
    struct knn_options o;
    knn_options_default(&o);
    o.method = KNN_APPROX;
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
    check_approx_same_graph(200, KNN_COSINE, 6, 1, 3);
}

static void test_approx_is_deterministic_for_seed_and_threads(void)
{
    struct knn_options o;
    knn_options_default(&o);
    check_approx_same_graph(24, o.metric, 3, 2, 2);
}

static void test_approx_does_not_depend_on_thread_count(void)
{
    struct knn_options o;
    knn_options_default(&o);
    check_approx_same_graph(24, o.metric, 4, 1, 3);
}

static void test_knn_cancel_flag_returns_ecanceled(void)
{
    size_t n = 500, d = 8;
    float *x = td_clusters(n, d, 4, 5);
    atomic_int cancel = 1;
    struct pw_progress p = {&cancel, NULL, NULL};
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, n, d, 5, NULL, &g, &p, &err) == PW_ECANCELED);
    CHECK(g.idx == NULL);
    free(x);
}

static void test_knn_rejects_k_not_below_n(void)
{
    float x[6] = {0, 1, 2, 3, 4, 5};
    struct knn_graph g;
    struct pw_error err;
    CHECK(knn_build(x, 3, 2, 3, NULL, &g, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "k must be") != NULL);
}

int main(void)
{
    RUN(test_exact_euclidean_matches_brute_force);
    RUN(test_exact_cosine_matches_brute_force);
    RUN(test_approx_euclidean_recall_at_least_095);
    RUN(test_approx_cosine_recall_at_least_095);
    RUN(test_approx_wide_rows_euclidean_recall_at_least_095);
    RUN(test_approx_wide_rows_cosine_recall_at_least_095);
    RUN(test_approx_wide_rows_do_not_depend_on_thread_count);
    RUN(test_approx_is_deterministic_for_seed_and_threads);
    RUN(test_approx_does_not_depend_on_thread_count);
    RUN(test_knn_cancel_flag_returns_ecanceled);
    RUN(test_knn_rejects_k_not_below_n);
    PW_TEST_MAIN();
}
