/* test_dense.c - the blocked row kernels dense_dots and dense_sqdists: every value
 * against a plain double-precision loop, on sizes that leave partial tiles and lane
 * tails, and the same bytes whatever block a value is computed in. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "dense.h"
#include "pw_test.h"
#include "test_data.h"

/* d not a multiple of 8 or 16 (and 1: a tail only), rows not a multiple of the tiles'. */
static const size_t DIMS[] = {1, 2, 7, 13, 16, 31, 100, 769};
static const size_t ROWS[] = {1, 2, 3, 5, 17};
#define MAX_CENTS 23

static float *random_rows(size_t n, size_t d, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 88172645463325252ull;
    float *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)(td_normal(&s) + 0.5);
    return x;
}

/* |got - exact| within the float sum's worst-case rounding: d ulps of the sum of the
 * terms' magnitudes (each term rounds once, each of the d adds once). */
static int close_to_exact(float got, const float *a, const float *b, size_t d, int sq)
{
    double exact = 0.0, mag = 0.0;
    for (size_t j = 0; j < d; j++) {
        double t = sq ? (double)a[j] - b[j] : a[j];
        double p = t * (sq ? t : b[j]);
        exact += p;
        mag += fabs(p);
    }
    return fabs((double)got - exact) <= 2.0 * (double)(d + 2) * FLT_EPSILON * mag + 1e-30;
}

static void check_against_exact(int sq)
{
    size_t maxr = 17, maxd = 769;
    float *x = random_rows(maxr, maxd, 7), *c = random_rows(MAX_CENTS, maxd, 8);
    float *out = malloc(maxr * (MAX_CENTS + 3) * sizeof *out);
    for (size_t di = 0; di < sizeof DIMS / sizeof *DIMS; di++)
        for (size_t ri = 0; ri < sizeof ROWS / sizeof *ROWS; ri++)
            for (size_t nc = 1; nc <= MAX_CENTS; nc++) {
                size_t d = DIMS[di], nr = ROWS[ri], ldo = nc + 3;
                (sq ? dense_sqdists : dense_dots)(x, nr, c, nc, d, out, ldo);
                for (size_t i = 0; i < nr; i++)
                    for (size_t a = 0; a < nc; a++)
                        CHECK(close_to_exact(out[i * ldo + a], x + i * d, c + a * d, d, sq));
            }
    free(x);
    free(c);
    free(out);
}

static void test_dots_match_a_double_precision_loop(void)
{
    check_against_exact(0);
}

static void test_sqdists_match_a_double_precision_loop(void)
{
    check_against_exact(1);
}

/* A value's bytes do not depend on the block it was computed in (a row's place in its
 * tile, the other centroids beside it): k-means shares rows between threads by blocks. */
static void test_each_value_is_the_same_in_any_block(void)
{
    size_t nr = 5, nc = 23, d = 101;
    float *x = random_rows(nr, d, 11), *c = random_rows(nc, d, 12);
    float all[5 * 23], one;
    for (int sq = 0; sq < 2; sq++) {
        (sq ? dense_sqdists : dense_dots)(x, nr, c, nc, d, all, nc);
        for (size_t i = 0; i < nr; i++)
            for (size_t a = 0; a < nc; a++) {
                (sq ? dense_sqdists : dense_dots)(x + i * d, 1, c + a * d, 1, d, &one, 1);
                CHECK(memcmp(&one, &all[i * nc + a], sizeof one) == 0);
            }
    }
    free(x);
    free(c);
}

/* dense_dot and dense_sqdist give the blocked kernels' bytes, in every build (the
 * sanitizers' unoptimised one too): the k-means cells do not move when one replaces the
 * other. */
static void test_values_are_dense_dots_bytes(void)
{
    size_t nr = 3, nc = 7;
    for (size_t di = 0; di < sizeof DIMS / sizeof *DIMS; di++) {
        size_t d = DIMS[di];
        float *x = random_rows(nr, d, 21), *c = random_rows(nc, d, 22), dots[3 * 7], sqd[3 * 7];
        dense_dots(x, nr, c, nc, d, dots, nc);
        dense_sqdists(x, nr, c, nc, d, sqd, nc);
        for (size_t i = 0; i < nr; i++)
            for (size_t a = 0; a < nc; a++) {
                float dot = dense_dot(x + i * d, c + a * d, d);
                float sqdist = dense_sqdist(x + i * d, c + a * d, d);
                CHECK(memcmp(&dot, &dots[i * nc + a], sizeof dot) == 0);
                CHECK(memcmp(&sqdist, &sqd[i * nc + a], sizeof sqdist) == 0);
            }
        free(x);
        free(c);
    }
}

int main(void)
{
    RUN(test_dots_match_a_double_precision_loop);
    RUN(test_sqdists_match_a_double_precision_loop);
    RUN(test_each_value_is_the_same_in_any_block);
    RUN(test_values_are_dense_dots_bytes);
    PW_TEST_MAIN();
}
