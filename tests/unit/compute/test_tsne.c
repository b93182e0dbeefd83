/* test_tsne.c - t-SNE determinism, the Python task's parameter rules, cancellation and
 * input errors (quality against sklearn is in tests/quality/test_tsne_quality.py). */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pw_test.h"
#include "test_data.h"
#include "tsne.h"

static int run(const float *x, size_t n, size_t d, int threads, float *out, struct tsne_result *r)
{
    struct tsne_options o;
    tsne_options_default(&o);
    o.threads = threads;
    o.n_iter = n > 5000 ? 250 : 300;
    struct pw_error err;
    return tsne_fit(x, n, d, &o, out, r, NULL, &err);
}

static void test_tsne_same_seed_and_threads_give_identical_bytes(void)
{
    size_t n = 500, d = 12;
    float *x = td_clusters(n, d, 5, 31), *a = malloc(n * 2 * sizeof *a),
          *b = malloc(n * 2 * sizeof *b);
    CHECK(run(x, n, d, 2, a, NULL) == 0);
    CHECK(run(x, n, d, 2, b, NULL) == 0);
    CHECK(memcmp(a, b, n * 2 * sizeof *a) == 0);
    free(x);
    free(a);
    free(b);
}

static void test_tsne_result_does_not_depend_on_thread_count(void)
{
    size_t n = 8200, d = 8; /* >= 8192: iterations run threaded */
    float *x = td_clusters(n, d, 5, 32), *a = malloc(n * 2 * sizeof *a),
          *b = malloc(n * 2 * sizeof *b);
    CHECK(run(x, n, d, 1, a, NULL) == 0);
    CHECK(run(x, n, d, 3, b, NULL) == 0);
    CHECK(memcmp(a, b, n * 2 * sizeof *a) == 0);
    free(x);
    free(a);
    free(b);
}

static void test_tsne_applies_python_parameter_rules(void)
{
    size_t n = 40, d = 5;
    float *x = td_clusters(n, d, 2, 33), out[80];
    struct tsne_options o;
    tsne_options_default(&o);
    o.perplexity = 500;  /* clamped to n - 1 */
    o.learning_rate = 1; /* raised to 10 */
    o.n_iter = 10;       /* raised to 250 */
    struct tsne_result r;
    struct pw_error err;
    CHECK(tsne_fit(x, n, d, &o, out, &r, NULL, &err) == 0);
    CHECK(r.perplexity == 39.0);
    CHECK(r.learning_rate == 10.0);
    CHECK(r.n_iter == 249); /* sklearn's n_iter_ for max_iter 250 */
    CHECK(isfinite(r.kl_divergence) && r.kl_divergence >= 0);
    o.perplexity = 0.2; /* raised to 1 */
    CHECK(tsne_fit(x, n, d, &o, out, &r, NULL, &err) == 0);
    CHECK(r.perplexity == 1.0);
    free(x);
}

static void test_tsne_kl_divergence_decreases_with_iterations(void)
{
    size_t n = 400, d = 10;
    float *x = td_clusters(n, d, 4, 34), *out = malloc(n * 2 * sizeof *out);
    struct tsne_options o;
    tsne_options_default(&o);
    struct tsne_result short_run, long_run;
    struct pw_error err;
    o.n_iter = 260;
    CHECK(tsne_fit(x, n, d, &o, out, &short_run, NULL, &err) == 0);
    o.n_iter = 800;
    CHECK(tsne_fit(x, n, d, &o, out, &long_run, NULL, &err) == 0);
    CHECK(long_run.kl_divergence < short_run.kl_divergence);
    free(x);
    free(out);
}

static void cancel_on_optimize(void *ctx, const char *phase, double fraction)
{
    (void)fraction;
    if (!strcmp(phase, "pca")) /* the PCA init runs after the affinities */
        atomic_store((atomic_int *)ctx, 1);
}

static void test_tsne_cancel_flag_stops_the_run_with_ecanceled(void)
{
    size_t n = 400, d = 8;
    float *x = td_clusters(n, d, 4, 35), *out = malloc(n * 2 * sizeof *out);
    atomic_int cancel = 0;
    struct pw_progress p = {&cancel, cancel_on_optimize, &cancel};
    struct pw_error err;
    CHECK(tsne_fit(x, n, d, NULL, out, NULL, &p, &err) == PW_ECANCELED);
    free(x);
    free(out);
}

static void test_tsne_rejects_nan_input(void)
{
    float x[6] = {1, 2, NAN, 4, 5, 6}, out[6];
    struct pw_error err;
    CHECK(tsne_fit(x, 3, 2, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "NaN") != NULL);
}

static void test_tsne_rejects_one_dimension(void)
{
    float x[3] = {1, 2, 3}, out[6];
    struct pw_error err;
    CHECK(tsne_fit(x, 3, 1, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "dimensions") != NULL);
}

static void test_tsne_rejects_nan_perplexity(void)
{
    float *x = td_clusters(20, 4, 2, 36), out[40];
    struct tsne_options o;
    tsne_options_default(&o);
    o.perplexity = NAN;
    struct pw_error err;
    CHECK(tsne_fit(x, 20, 4, &o, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "perplexity") != NULL);
    free(x);
}

int main(void)
{
    RUN(test_tsne_same_seed_and_threads_give_identical_bytes);
    RUN(test_tsne_result_does_not_depend_on_thread_count);
    RUN(test_tsne_applies_python_parameter_rules);
    RUN(test_tsne_kl_divergence_decreases_with_iterations);
    RUN(test_tsne_cancel_flag_stops_the_run_with_ecanceled);
    RUN(test_tsne_rejects_nan_input);
    RUN(test_tsne_rejects_one_dimension);
    RUN(test_tsne_rejects_nan_perplexity);
    PW_TEST_MAIN();
}
