/* test_blas_threads.c - the bytes of every reducer depend on the input, options and
 * seed only: 1, 2 and 3 threads, with OpenBLAS set to as many threads (as the worker
 * does), give identical k-NN graphs, PCA, UMAP and t-SNE outputs.  Rows are 800-d:
 * wider than OpenBLAS's inner block on AVX-512 kernels (threaded and one-thread sgemm
 * block it differently there; on older kernels they differ at any width).  Shapes: a
 * clustered set and an isotropic one (one Gaussian), exact and approximate k-NN. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "knn.h"
#include "pca.h"
#include "pw_test.h"
#include "test_data.h"
#include "tsne.h"
#include "umap.h"

#define N 2000
#define D 800

enum which { PCA, UMAP, TSNE };

/* The 2-d output of one reducer on `threads` threads (OpenBLAS too); 0 on success. */
static int reduce(enum which w, const float *x, int threads, float *out)
{
    struct pw_error err;
    openblas_set_num_threads(threads);
    if (w == PCA) {
        struct pca_options o;
        pca_options_default(&o);
        o.threads = threads;
        return pca_fit(x, N, D, &o, out, NULL, NULL, &err);
    }
    if (w == UMAP) {
        struct umap_options o;
        umap_options_default(&o);
        o.threads = threads;
        o.n_epochs = 30;
        o.knn_exact_max_n = 1000; /* the approximate k-NN's cells */
        return umap_fit(x, N, D, &o, out, NULL, NULL, &err);
    }
    struct tsne_options o;
    tsne_options_default(&o);
    o.threads = threads;
    o.n_iter = 250;
    return tsne_fit(x, N, D, &o, out, NULL, NULL, &err); /* exact k-NN */
}

static void check_reducer(enum which w, size_t clusters, uint64_t seed)
{
    float *x = td_clusters(N, D, clusters, seed), *a = malloc(N * 2 * sizeof *a),
          *b = malloc(N * 2 * sizeof *b);
    CHECK(reduce(w, x, 1, a) == 0);
    for (int t = 2; t <= 3; t++) {
        CHECK(reduce(w, x, t, b) == 0);
        CHECK(memcmp(a, b, N * 2 * sizeof *a) == 0);
    }
    free(x);
    free(a);
    free(b);
}

static void test_pca_bytes_do_not_depend_on_threads(void)
{
    check_reducer(PCA, 12, 31);
    check_reducer(PCA, 1, 32);
}

static void test_umap_bytes_do_not_depend_on_threads(void)
{
    check_reducer(UMAP, 12, 33);
    check_reducer(UMAP, 1, 34);
}

static void test_tsne_bytes_do_not_depend_on_threads(void)
{
    check_reducer(TSNE, 12, 35);
    check_reducer(TSNE, 1, 36);
}

/* Cells of 64 rows: ~31 k-means centroids, scored by sgemm (24 or more). */
static int graph(const float *x, int threads, enum knn_method method, struct knn_graph *g)
{
    struct knn_options o;
    knn_options_default(&o);
    o.threads = threads;
    o.method = method;
    o.part_size = 64;
    o.metric = KNN_COSINE;
    struct pw_error err;
    openblas_set_num_threads(threads);
    return knn_build(x, N, D, 10, &o, g, NULL, &err);
}

static void test_knn_graph_does_not_depend_on_threads(void)
{
    float *x = td_clusters(N, D, 12, 37);
    for (int m = 0; m < 2; m++) {
        enum knn_method method = m ? KNN_APPROX : KNN_EXACT;
        struct knn_graph a, b;
        CHECK(graph(x, 1, method, &a) == 0);
        for (int t = 2; t <= 3; t++) {
            CHECK(graph(x, t, method, &b) == 0);
            CHECK(memcmp(a.idx, b.idx, N * 10 * sizeof *a.idx) == 0);
            CHECK(memcmp(a.dist, b.dist, N * 10 * sizeof *a.dist) == 0);
            knn_free(&b);
        }
        knn_free(&a);
    }
    free(x);
}

static void test_caller_blas_thread_count_is_restored(void)
{
    float *x = td_clusters(N, D, 12, 38), *out = malloc(N * 2 * sizeof *out);
    CHECK(reduce(PCA, x, 3, out) == 0);
    CHECK(openblas_get_num_threads() == 3);
    free(x);
    free(out);
}

int main(void)
{
    RUN(test_pca_bytes_do_not_depend_on_threads);
    RUN(test_umap_bytes_do_not_depend_on_threads);
    RUN(test_tsne_bytes_do_not_depend_on_threads);
    RUN(test_knn_graph_does_not_depend_on_threads);
    RUN(test_caller_blas_thread_count_is_restored);
    PW_TEST_MAIN();
}
