/* test_gram.c - the AMX dot products (compute/gram.h) against double-precision sums.
 * Machines without AMX-BF16 have nothing to test here: the program exits 77, which
 * ctest reports as skipped (knn's tests cover the sgemm path there). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gram.h"
#include "pw_test.h"
#include "test_data.h"

/* Rows with values over six orders of magnitude, both signs. */
static float *mixed_rows(size_t n, size_t d, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 1;
    float *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)(td_normal(&s) * pow(10.0, 3.0 * td_uniform(&s) - 2.0));
    return x;
}

/* Every block of `block` rows against the rows from the block on, in one call, with
 * each dot product within 2^-14 of the sum of |a_t b_t| of the double sum, and the
 * padding (rows past the block, columns past cnt) zero. */
static void check_against_double(size_t cnt, size_t d, size_t block, uint64_t seed)
{
    size_t total = cnt + 40;
    float *x = mixed_rows(total, d, seed);
    int32_t *idx = malloc(cnt * sizeof *idx);
    for (size_t i = 0; i < cnt; i++) /* a permuted subset of the rows */
        idx[i] = (int32_t)((i * 7 + 3) % total);
    struct gram g;
    struct pw_error err;
    CHECK(gram_init(&g, GRAM_AMX_BF16, cnt, d, block, 3, &err) == 0);
    gram_source(&g, x, NULL);
    gram_set(&g, idx, cnt);
    for (int t = 0; t < 3; t++) /* packed in three shares, as three threads would */
        gram_pack(&g, t, 3);
    size_t pad_rows = (block + GRAM_ROWS - 1) / GRAM_ROWS * GRAM_ROWS;
    size_t ld = (cnt + GRAM_COLS - 1) / GRAM_COLS * GRAM_COLS;
    float *out = aligned_alloc(64, pad_rows * ld * sizeof *out);
    int bad = 0, bad_pad = 0;
    for (size_t r0 = 0; r0 < cnt; r0 += block) {
        size_t rows = cnt - r0 < block ? cnt - r0 : block;
        size_t rp = (rows + GRAM_ROWS - 1) / GRAM_ROWS * GRAM_ROWS;
        size_t cols = ld - r0;
        memset(out, 0xff, pad_rows * ld * sizeof *out); /* NaN: unwritten shows */
        gram_rowset(&g, idx + r0, rows);
        gram_block(&g, 0, 2);
        gram_block(&g, 1, 2);
        gram_rows(&g, rows, r0, r0, cnt, out, cols);
        for (size_t r = 0; r < rp; r++)
            for (size_t c = r0; c < r0 + cols; c++) {
                float v = out[r * cols + (c - r0)];
                if (r >= rows || c >= cnt) {
                    bad_pad += v != 0.0f;
                    continue;
                }
                const float *a = x + (size_t)idx[r0 + r] * d, *b = x + (size_t)idx[c] * d;
                double sum = 0, mag = 0;
                for (size_t t = 0; t < d; t++) {
                    sum += (double)a[t] * b[t];
                    mag += fabs((double)a[t] * b[t]);
                }
                bad += !(fabs(v - sum) <= mag * 0x1p-14);
            }
    }
    if (bad || bad_pad)
        fprintf(stderr, "     cnt %zu d %zu block %zu: %d bad values, %d bad pads\n", cnt, d, block,
                bad, bad_pad);
    CHECK(bad == 0);
    CHECK(bad_pad == 0);
    free(out);
    gram_free(&g);
    free(idx);
    free(x);
}

static void test_dots_match_double_sums(void)
{
    check_against_double(100, 768, 48, 1); /* blocks not a multiple of 32 rows */
    check_against_double(17, 33, 64, 2);   /* d not a multiple of 32 */
    check_against_double(1, 3, 32, 3);
    check_against_double(250, 64, 250, 4); /* one block */
}

/* Columns split into any 16-aligned ranges (as threads split them) give the same bytes
 * as one call: odd and even numbers of panels take different kernels. */
static void test_column_split_gives_same_bytes(void)
{
    size_t cnt = 203, d = 96, rows = 70;
    float *x = mixed_rows(cnt, d, 9);
    int32_t *idx = malloc(cnt * sizeof *idx);
    for (size_t i = 0; i < cnt; i++)
        idx[i] = (int32_t)i;
    struct gram g;
    struct pw_error err;
    CHECK(gram_init(&g, GRAM_AMX_BF16, cnt, d, rows, 1, &err) == 0);
    gram_source(&g, x, NULL);
    gram_set(&g, idx, cnt);
    gram_pack(&g, 0, 1);
    gram_rowset(&g, idx + 16, rows);
    gram_block(&g, 0, 1);
    size_t ld = 208 - 16, prows = 96;
    float *one = aligned_alloc(64, prows * ld * sizeof *one);
    float *split = aligned_alloc(64, prows * ld * sizeof *split);
    gram_rows(&g, rows, 16, 16, cnt, one, ld);
    size_t cuts[] = {16, 32, 80, 96, 144, 203};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++)
        gram_rows(&g, rows, 16, cuts[i], cuts[i + 1], split, ld);
    for (size_t r = 0; r < rows; r++)
        CHECK(memcmp(one + r * ld, split + r * ld, (cnt - 16) * sizeof *one) == 0);
    /* and a dot product does not depend on the row block it came in */
    gram_rowset(&g, idx + 48, 20);
    gram_block(&g, 0, 1);
    float *again = aligned_alloc(64, 32 * ld * sizeof *again);
    gram_rows(&g, 20, 16, 16, cnt, again, ld);
    for (size_t r = 0; r < 20; r++)
        CHECK(memcmp(again + r * ld, one + (r + 32) * ld, (cnt - 16) * sizeof *one) == 0);
    free(again);
    free(one);
    free(split);
    gram_free(&g);
    free(idx);
    free(x);
}

int main(void)
{
    if (!gram_amx_usable()) {
        printf("skipped: this CPU or kernel offers no AMX-BF16\n");
        return 77;
    }
    RUN(test_dots_match_double_sums);
    RUN(test_column_split_gives_same_bytes);
    PW_TEST_MAIN();
}
