/* test_umap.c - UMAP determinism, cancellation and input errors (quality is checked
 * against umap-learn in tests/quality/test_umap_quality.py). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pw_test.h"
#include "test_data.h"
#include "umap.h"

static int run(const float *x, size_t n, size_t d, int threads, float *out)
{
    struct umap_options o;
    umap_options_default(&o);
    o.threads = threads;
    o.n_epochs = 60; /* enough to exercise the optimiser, quick under ASan */
    struct pw_error err;
    return umap_fit(x, n, d, &o, out, NULL, NULL, &err);
}

static void test_umap_same_seed_and_threads_give_identical_bytes(void)
{
    size_t n = 600, d = 16;
    float *x = td_clusters(n, d, 6, 21), *a = malloc(n * 2 * sizeof *a),
          *b = malloc(n * 2 * sizeof *b);
    CHECK(run(x, n, d, 2, a) == 0);
    CHECK(run(x, n, d, 2, b) == 0);
    CHECK(memcmp(a, b, n * 2 * sizeof *a) == 0);
    free(x);
    free(a);
    free(b);
}

static void test_umap_result_does_not_depend_on_thread_count(void)
{
    size_t n = 8200, d = 8; /* >= 8192: the optimiser runs threaded, k-NN is approximate */
    float *x = td_clusters(n, d, 6, 22), *a = malloc(n * 2 * sizeof *a),
          *b = malloc(n * 2 * sizeof *b);
    CHECK(run(x, n, d, 1, a) == 0);
    CHECK(run(x, n, d, 3, b) == 0);
    CHECK(memcmp(a, b, n * 2 * sizeof *a) == 0);
    free(x);
    free(a);
    free(b);
}

static void test_umap_different_seeds_give_different_layouts(void)
{
    size_t n = 300, d = 8;
    float *x = td_clusters(n, d, 3, 23), *a = malloc(n * 2 * sizeof *a),
          *b = malloc(n * 2 * sizeof *b);
    struct umap_options o;
    umap_options_default(&o);
    o.n_epochs = 30;
    struct pw_error err;
    CHECK(umap_fit(x, n, d, &o, a, NULL, NULL, &err) == 0);
    o.seed = 7;
    CHECK(umap_fit(x, n, d, &o, b, NULL, NULL, &err) == 0);
    CHECK(memcmp(a, b, n * 2 * sizeof *a) != 0);
    free(x);
    free(a);
    free(b);
}

static void cancel_on_init(void *ctx, const char *phase, double fraction)
{
    (void)fraction;
    if (!strcmp(phase, "umap_init"))
        atomic_store((atomic_int *)ctx, 1);
}

static void test_umap_cancel_flag_stops_the_run_with_ecanceled(void)
{
    size_t n = 500, d = 8;
    float *x = td_clusters(n, d, 4, 24), *out = malloc(n * 2 * sizeof *out);
    atomic_int cancel = 0;
    struct pw_progress p = {.cancel = &cancel,
                            .report = cancel_on_init,
                            .ctx = &cancel}; /* set midway, after the k-NN */
    struct pw_error err;
    CHECK(umap_fit(x, n, d, NULL, out, NULL, &p, &err) == PW_ECANCELED);
    CHECK(strstr(err.msg, "cancelled") != NULL);
    atomic_store(&cancel, 1);
    struct pw_progress q = {.cancel = &cancel}; /* already set: stops at once */
    CHECK(umap_fit(x, n, d, NULL, out, NULL, &q, &err) == PW_ECANCELED);
    free(x);
    free(out);
}

/* input_done comes once, after the input's last read (the k-NN and the spectral
 * layout, which places more than 2 x 2 components by their means): a run whose input is
 * poisoned then ends with the same bytes.  Eight blobs 40 apart: eight components. */
static void test_umap_reads_no_input_after_input_done(void)
{
    size_t n = 960, d = 12;
    float *x = td_clusters(n, d, 1, 37), *y = malloc(n * d * sizeof *y);
    for (size_t i = 0; i < n; i++)
        x[i * d + i % 8] += 40.0f;
    float *a = malloc(n * 2 * sizeof *a), *b = malloc(n * 2 * sizeof *b);
    memcpy(y, x, n * d * sizeof *y);
    struct umap_options o;
    umap_options_default(&o);
    o.n_epochs = 60;
    struct umap_result r;
    struct td_poison poison = {y, n * d, 0};
    struct pw_progress p = {.input_done = td_poison_input, .input_ctx = &poison};
    struct pw_error err;
    CHECK(umap_fit(x, n, d, &o, a, NULL, NULL, &err) == 0);
    CHECK(umap_fit(y, n, d, &o, b, &r, &p, &err) == 0);
    printf("     graph components: %zu\n", r.n_graph_components);
    CHECK(r.n_graph_components > 4);
    CHECK(poison.calls == 1);
    CHECK(isnan(y[0]));
    CHECK(memcmp(a, b, n * 2 * sizeof *a) == 0);
    free(x);
    free(y);
    free(a);
    free(b);
}

static void test_umap_rejects_single_point(void)
{
    float x[3] = {1, 2, 3}, out[2];
    struct pw_error err;
    CHECK(umap_fit(x, 1, 3, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "at least 2 points") != NULL);
}

static void test_umap_rejects_nan(void)
{
    float x[8] = {1, 2, 3, 4, 5, NAN, 7, 8}, out[8];
    struct pw_error err;
    CHECK(umap_fit(x, 4, 2, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "NaN") != NULL);
}

static void test_umap_rejects_n_neighbors_below_two(void)
{
    float *x = td_clusters(20, 4, 2, 1), out[40];
    struct umap_options o;
    umap_options_default(&o);
    o.n_neighbors = 1;
    struct pw_error err;
    CHECK(umap_fit(x, 20, 4, &o, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "n_neighbors") != NULL);
    free(x);
}

static void test_umap_rejects_min_dist_above_spread(void)
{
    float *x = td_clusters(20, 4, 2, 1), out[40];
    struct umap_options o;
    umap_options_default(&o);
    o.min_dist = 2.0f;
    struct pw_error err;
    CHECK(umap_fit(x, 20, 4, &o, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "min_dist") != NULL);
    free(x);
}

static void test_umap_handles_fewer_points_than_neighbours(void)
{
    float *x = td_clusters(8, 4, 2, 3), out[16];
    struct pw_error err;
    CHECK(umap_fit(x, 8, 4, NULL, out, NULL, NULL, &err) == 0);
    for (int i = 0; i < 16; i++)
        CHECK(isfinite(out[i]));
    free(x);
}

/* Points around a circle: the graph is a ring, whose Laplacian has no spectral gap at
 * the bottom (eigenvalues in close pairs), so the eigensolver converges slowly (about
 * 160 operator applications to umap-learn's tolerance).  The solve must stop within its
 * fixed budget and still give a layout: finite, spread in both directions. */
static void test_umap_spectral_init_on_gapless_graph_stays_within_its_budget(void)
{
    size_t n = 3000, d = 4;
    float *x = malloc(n * d * sizeof *x), *out = malloc(n * 2 * sizeof *out);
    uint64_t s = 31;
    for (size_t i = 0; i < n; i++) {
        double t = 6.283185307179586 * td_uniform(&s);
        x[i * d] = (float)cos(t);
        x[i * d + 1] = (float)sin(t);
        x[i * d + 2] = (float)(0.01 * td_normal(&s));
        x[i * d + 3] = (float)(0.01 * td_normal(&s));
    }
    struct umap_options o;
    umap_options_default(&o);
    o.metric = KNN_EUCLIDEAN;
    o.n_epochs = 5; /* the layout is the init's, barely moved */
    struct umap_result r;
    struct pw_error err;
    CHECK(umap_fit(x, n, d, &o, out, &r, NULL, &err) == 0);
    CHECK(r.n_graph_components == 1);
    CHECK(r.spectral_ok == 1); /* the best subspace found, not the random fallback */
    CHECK(r.init_applications <= UMAP_SPECTRAL_MAX_APPLICATIONS);
    CHECK(r.init_applications >= UMAP_SPECTRAL_MAX_APPLICATIONS / 2); /* the budget ended it */
    double m[2] = {0, 0}, c[3] = {0, 0, 0};
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        finite &= isfinite(out[2 * i]) && isfinite(out[2 * i + 1]);
        m[0] += out[2 * i] / (double)n;
        m[1] += out[2 * i + 1] / (double)n;
    }
    CHECK(finite);
    for (size_t i = 0; i < n; i++) {
        double u = out[2 * i] - m[0], v = out[2 * i + 1] - m[1];
        c[0] += u * u;
        c[1] += u * v;
        c[2] += v * v;
    }
    /* the covariance's smaller eigenvalue is a fair share of the larger: not a line */
    double tr = c[0] + c[2], det = c[0] * c[2] - c[1] * c[1];
    double lo = tr / 2 - sqrt(tr * tr / 4 - det), hi = tr / 2 + sqrt(tr * tr / 4 - det);
    CHECK(lo > 0.1 * hi);
    free(x);
    free(out);
}

int main(void)
{
    RUN(test_umap_same_seed_and_threads_give_identical_bytes);
    RUN(test_umap_result_does_not_depend_on_thread_count);
    RUN(test_umap_different_seeds_give_different_layouts);
    RUN(test_umap_cancel_flag_stops_the_run_with_ecanceled);
    RUN(test_umap_reads_no_input_after_input_done);
    RUN(test_umap_rejects_single_point);
    RUN(test_umap_rejects_nan);
    RUN(test_umap_rejects_n_neighbors_below_two);
    RUN(test_umap_rejects_min_dist_above_spread);
    RUN(test_umap_handles_fewer_points_than_neighbours);
    RUN(test_umap_spectral_init_on_gapless_graph_stays_within_its_budget);
    PW_TEST_MAIN();
}
