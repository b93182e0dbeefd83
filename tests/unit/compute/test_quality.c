/* test_quality.c - trustworthiness and k-NN preservation on layouts whose answer is known. */
#include <math.h>
#include <stdlib.h>

#include "pw_test.h"
#include "quality.h"
#include "test_data.h"

/* A 2-D data set laid out as itself keeps every neighbourhood: both scores are 1. */
static void test_identity_layout_scores_one(void)
{
    size_t n = 200;
    float *x = td_clusters(n, 2, 4, 41);
    struct quality_scores s;
    struct pw_error err;
    CHECK(quality_scores(x, n, 2, x, 10, KNN_EUCLIDEAN, 2, &s, &err) == 0);
    CHECK(fabs(s.trustworthiness - 1.0) < 1e-12);
    CHECK(fabs(s.knn_preservation - 1.0) < 1e-12);
    free(x);
}

/* Points on a line, laid out in reverse order on the same line: distances are kept. */
static void test_mirrored_layout_scores_one(void)
{
    size_t n = 50;
    float x[100], y[100];
    for (size_t i = 0; i < n; i++) {
        x[2 * i] = (float)i * (float)i; /* distinct gaps: no ties */
        x[2 * i + 1] = 0;
        y[2 * i] = -(float)i * (float)i;
        y[2 * i + 1] = 0;
    }
    struct quality_scores s;
    struct pw_error err;
    CHECK(quality_scores(x, n, 2, y, 5, KNN_EUCLIDEAN, 1, &s, &err) == 0);
    CHECK(fabs(s.trustworthiness - 1.0) < 1e-12);
    CHECK(fabs(s.knn_preservation - 1.0) < 1e-12);
}

/* A random layout of clustered data loses most neighbourhoods. */
static void test_random_layout_scores_low(void)
{
    size_t n = 300;
    float *x = td_clusters(n, 8, 5, 42), *y = td_clusters(n, 2, 1, 43);
    struct quality_scores s;
    struct pw_error err;
    CHECK(quality_scores(x, n, 8, y, 10, KNN_EUCLIDEAN, 2, &s, &err) == 0);
    CHECK(s.trustworthiness < 0.7);
    CHECK(s.knn_preservation < 0.2);
    free(x);
    free(y);
}

static void test_quality_rejects_k_too_large(void)
{
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    struct quality_scores s;
    struct pw_error err;
    CHECK(quality_scores(x, 4, 2, x, 2, KNN_EUCLIDEAN, 1, &s, &err) == PW_EINVAL);
}

int main(void)
{
    RUN(test_identity_layout_scores_one);
    RUN(test_mirrored_layout_scores_one);
    RUN(test_random_layout_scores_low);
    RUN(test_quality_rejects_k_too_large);
    PW_TEST_MAIN();
}
