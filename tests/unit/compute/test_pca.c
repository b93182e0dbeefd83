/* test_pca.c - PCA against a case solved by hand, plus input errors. */
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "pca.h"
#include "pw_test.h"
#include "test_data.h"

/* Points on a line y = 2x (plus a tiny orthogonal wobble) in 3-D, z constant:
 * the first component is (1, 2, 0)/sqrt(5), the centred projections are known. */
static void test_pca_recovers_known_line(void)
{
    float x[5 * 3];
    const float t[5] = {-2, -1, 0, 1, 2};
    const float w[5] = {0.1f, -0.1f, 0.0f, -0.1f, 0.1f}; /* along (-2, 1, 0)/sqrt(5) */
    for (int i = 0; i < 5; i++) {
        x[i * 3 + 0] = 3.0f + t[i] * 1.0f - w[i] * 2.0f / sqrtf(5.0f);
        x[i * 3 + 1] = 1.0f + t[i] * 2.0f + w[i] * 1.0f / sqrtf(5.0f);
        x[i * 3 + 2] = 7.0f;
    }
    /* mean of w is 0, so the mean is (3, 1, 7); s1^2 = 5 * sum t^2 = 50, s2^2 = sum w^2 = 0.04 */
    float out[10], comp[6], mean[3], sv[2], evr[2];
    struct pca_result res = {comp, mean, sv, evr};
    struct pw_error err;
    CHECK(pca_fit(x, 5, 3, NULL, out, &res, NULL, &err) == 0);
    CHECK(fabsf(mean[0] - 3.0f) < 1e-5f && fabsf(mean[1] - 1.0f) < 1e-5f &&
          fabsf(mean[2] - 7.0f) < 1e-5f);
    CHECK(fabsf(comp[0] - 1.0f / sqrtf(5.0f)) < 1e-4f);
    CHECK(fabsf(comp[1] - 2.0f / sqrtf(5.0f)) < 1e-4f);
    CHECK(fabsf(comp[2]) < 1e-4f);
    CHECK(fabsf(sv[0] - sqrtf(50.0f)) < 1e-3f);
    CHECK(fabsf(sv[1] - 0.2f) < 1e-3f);
    CHECK(fabsf(evr[0] - 50.0f / 50.04f) < 1e-5f);
    CHECK(fabsf(evr[1] - 0.04f / 50.04f) < 1e-5f);
    for (int i = 0; i < 5; i++) {
        CHECK(fabsf(out[i * 2] - t[i] * sqrtf(5.0f)) < 1e-3f);
        CHECK(fabsf(fabsf(out[i * 2 + 1]) - fabsf(w[i])) < 1e-3f);
    }
}

static void test_pca_rejects_single_point(void)
{
    float x[4] = {1, 2, 3, 4}, out[4];
    struct pw_error err;
    CHECK(pca_fit(x, 1, 4, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "at least 2 points") != NULL);
}

static void test_pca_rejects_one_dimension(void)
{
    float x[4] = {1, 2, 3, 4}, out[8];
    struct pw_error err;
    CHECK(pca_fit(x, 4, 1, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "at least 2 dimensions") != NULL);
}

static void test_pca_rejects_nan(void)
{
    float x[6] = {1, 2, 3, NAN, 5, 6}, out[6];
    struct pw_error err;
    CHECK(pca_fit(x, 3, 2, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "NaN") != NULL && strstr(err.msg, "row 1") != NULL);
}

static void test_pca_rejects_inf(void)
{
    float x[6] = {1, 2, 3, 4, INFINITY, 6}, out[6];
    struct pw_error err;
    CHECK(pca_fit(x, 3, 2, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "Inf") != NULL);
}

/* +Inf and -Inf far apart (different chunks of the column sums, whose total is then
 * NaN): still reported as the first bad value, by row. */
static void test_pca_rejects_opposite_infinities_in_different_blocks(void)
{
    size_t n = 5000, d = 3;
    float *x = td_clusters(n, d, 2, 3), *out = malloc(n * 2 * sizeof *out);
    x[10 * d + 1] = INFINITY;
    x[4500 * d + 1] = -INFINITY;
    struct pw_error err;
    CHECK(pca_fit(x, n, d, NULL, out, NULL, NULL, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "Inf") != NULL && strstr(err.msg, "row 10,") != NULL);
    free(x);
    free(out);
}

/* Huge finite values are not mistaken for bad input (the check is on double sums). */
static void test_pca_accepts_float_max_values(void)
{
    size_t n = 4100, d = 2;
    float *x = td_clusters(n, d, 2, 4), *out = malloc(n * 2 * sizeof *out);
    for (size_t i = 0; i < n; i++)
        x[i * d] = 3.0e38f;
    struct pw_error err;
    CHECK(pca_fit(x, n, d, NULL, out, NULL, NULL, &err) == 0);
    free(x);
    free(out);
}

/* The team's split of rows changes nothing: the same bytes on 1 and 3 threads. */
static void test_pca_does_not_depend_on_thread_count(void)
{
    size_t n = 7000, d = 20;
    float *x = td_clusters(n, d, 4, 5);
    float *a = malloc(n * 2 * sizeof *a), *b = malloc(n * 2 * sizeof *b);
    struct pca_options o;
    pca_options_default(&o);
    struct pw_error err;
    o.threads = 1;
    CHECK(pca_fit(x, n, d, &o, a, NULL, NULL, &err) == 0);
    o.threads = 3;
    CHECK(pca_fit(x, n, d, &o, b, NULL, NULL, &err) == 0);
    CHECK(memcmp(a, b, n * 2 * sizeof *a) == 0);
    free(x);
    free(a);
    free(b);
}

int main(void)
{
    RUN(test_pca_recovers_known_line);
    RUN(test_pca_rejects_single_point);
    RUN(test_pca_rejects_one_dimension);
    RUN(test_pca_rejects_nan);
    RUN(test_pca_rejects_inf);
    RUN(test_pca_rejects_opposite_infinities_in_different_blocks);
    RUN(test_pca_accepts_float_max_values);
    RUN(test_pca_does_not_depend_on_thread_count);
    PW_TEST_MAIN();
}
