/* test_gram.c - the dot products of compute/gram.h against double-precision sums, for
 * each kind this CPU offers: AMX-BF16 (hi + lo bf16, within 2^-14 of the sum of |a_t b_t|)
 * and AVX512-VNNI int8 (within gram_i8_bound, the kind's stated error bound), and the int8
 * kind's filtered values (gram_rows_filtered) against its dots.  A machine
 * with neither has nothing to test here: the program exits 77, which ctest reports as
 * skipped (knn's tests cover the sgemm path there). */
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

/* Normal rows offset by 50 in every dimension. */
static float *offset_rows(size_t n, size_t d, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 1;
    float *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < n * d; i++)
        x[i] = (float)(50.0 + td_normal(&s));
    return x;
}

/* |a - centre|, in double */
static double row_len(const float *a, const float *centre, size_t d)
{
    double q = 0;
    for (size_t t = 0; t < d; t++) {
        double v = (double)a[t] - (centre ? centre[t] : 0.0f);
        q += v * v;
    }
    return sqrt(q);
}

/* The error a dot product of the centred rows a and b may have in this kind. */
static double allowed_error(enum gram_kind kind, const float *a, const float *b,
                            const float *centre, size_t d)
{
    if (kind == GRAM_VNNI_I8)
        return gram_i8_bound(gram_i8_scale(a, 1.0f, centre, d), row_len(a, centre, d),
                             gram_i8_scale(b, 1.0f, centre, d), row_len(b, centre, d), d);
    double mag = 0;
    for (size_t t = 0; t < d; t++)
        mag += fabs(((double)a[t] - (centre ? centre[t] : 0.0f)) *
                    ((double)b[t] - (centre ? centre[t] : 0.0f)));
    return mag * 0x1p-14;
}

/* Every block of `block` rows against the rows from the block on, with every dot product
 * of the centred rows within allowed_error of the double sum (for int8 the bound is 5
 * deviations: a few of these 10^4-10^5 pairs beyond 4 would be normal, none beyond 5), and
 * the padding (rows past the block, columns past cnt) zero.  Returns the largest error as
 * a fraction of the allowed one. */
static double check_against_double(enum gram_kind kind, float *x, size_t total, size_t cnt,
                                   size_t d, size_t block, const float *centre)
{
    int32_t *idx = malloc(cnt * sizeof *idx);
    for (size_t i = 0; i < cnt; i++) /* a permuted subset of the rows */
        idx[i] = (int32_t)((i * 7 + 3) % total);
    struct gram g;
    struct pw_error err;
    CHECK(gram_init(&g, kind, cnt, d, block, 3, &err) == 0);
    gram_source(&g, x, centre);
    gram_set(&g, idx, cnt);
    for (int t = 0; t < 3; t++) /* packed in three shares, as three threads would */
        gram_pack(&g, t, 3);
    size_t pad_rows = (block + GRAM_ROWS - 1) / GRAM_ROWS * GRAM_ROWS;
    size_t ld = (cnt + GRAM_COLS - 1) / GRAM_COLS * GRAM_COLS;
    float *out = aligned_alloc(64, pad_rows * ld * sizeof *out);
    int bad = 0, bad_pad = 0;
    double worst = 0.0;
    for (size_t r0 = 0; r0 < cnt; r0 += block) {
        size_t rows = cnt - r0 < block ? cnt - r0 : block;
        size_t rp = (rows + GRAM_ROWS - 1) / GRAM_ROWS * GRAM_ROWS;
        size_t cols = ld - r0 / GRAM_COLS * GRAM_COLS, c0 = r0 / GRAM_COLS * GRAM_COLS;
        memset(out, 0xff, pad_rows * ld * sizeof *out); /* NaN: unwritten shows */
        gram_rowset(&g, idx + r0, rows);
        gram_block(&g, 0, 2);
        gram_block(&g, 1, 2);
        gram_rows(&g, rows, c0, c0, cnt, out, cols);
        for (size_t r = 0; r < rp; r++)
            for (size_t c = c0; c < c0 + cols; c++) {
                float v = out[r * cols + (c - c0)];
                if (r >= rows || c >= cnt) {
                    bad_pad += v != 0.0f;
                    continue;
                }
                const float *a = x + (size_t)idx[r0 + r] * d, *b = x + (size_t)idx[c] * d;
                double sum = 0;
                for (size_t t = 0; t < d; t++)
                    sum += ((double)a[t] - (centre ? centre[t] : 0.0f)) *
                           ((double)b[t] - (centre ? centre[t] : 0.0f));
                double allowed = allowed_error(kind, a, b, centre, d), e = fabs(v - sum);
                worst = e / allowed > worst ? e / allowed : worst;
                bad += !(e <= allowed);
            }
    }
    if (bad || bad_pad)
        fprintf(stderr, "     kind %d cnt %zu d %zu block %zu: %d beyond the bound, %d bad pads\n",
                (int)kind, cnt, d, block, bad, bad_pad);
    CHECK(bad == 0);
    CHECK(bad_pad == 0);
    free(out);
    gram_free(&g);
    free(idx);
    return worst;
}

static void dots_within_bound_of_double_sums(enum gram_kind kind)
{
    struct {
        size_t cnt, d, block;
    } shapes[] = {{300, 768, 48}, {17, 33, 64}, {1, 3, 32}, {250, 64, 250}, {200, 1536, 256}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t cnt = shapes[s].cnt, d = shapes[s].d, total = cnt + 40;
        float *x = mixed_rows(total, d, s + 1);
        double worst = check_against_double(kind, x, total, cnt, d, shapes[s].block, NULL);
        printf("     kind %d, mixed rows %zu x %zu: largest error %.2f of the allowed\n", (int)kind,
               cnt, d, worst);
        free(x);
    }
}

/* Rows far from the origin, measured from a centre (as the k-NN cells do): the error is
 * relative to the centred rows. */
static void centred_dots_within_bound(enum gram_kind kind)
{
    size_t cnt = 300, d = 96, total = cnt + 40;
    float *x = offset_rows(total, d, 7);
    float *centre = malloc(d * sizeof *centre);
    for (size_t t = 0; t < d; t++)
        centre[t] = 50.0f;
    double worst = check_against_double(kind, x, total, cnt, d, 64, centre);
    printf("     kind %d, offset rows, centred: largest error %.2f of the allowed\n", (int)kind,
           worst);
    CHECK(worst > 0.0); /* the rounding is there: the check is not vacuous */
    free(centre);
    free(x);
}

/* `cnt` mixed rows of d values (seed) packed as the set, members 16 .. 16 + rows as the
 * block: what the column-split and filter tests read.  packed_free frees it. */
struct packed {
    float *x;
    int32_t *idx;
    struct gram g;
};

static void packed_init(struct packed *p, enum gram_kind kind, size_t cnt, size_t d, size_t rows,
                        uint64_t seed)
{
    struct pw_error err;
    p->x = mixed_rows(cnt, d, seed);
    p->idx = malloc(cnt * sizeof *p->idx);
    for (size_t i = 0; i < cnt; i++)
        p->idx[i] = (int32_t)i;
    CHECK(gram_init(&p->g, kind, cnt, d, rows, 1, &err) == 0);
    gram_source(&p->g, p->x, NULL);
    gram_set(&p->g, p->idx, cnt);
    gram_pack(&p->g, 0, 1);
    gram_rowset(&p->g, p->idx + 16, rows);
    gram_block(&p->g, 0, 1);
}

static void packed_free(struct packed *p)
{
    gram_free(&p->g);
    free(p->idx);
    free(p->x);
}

/* Columns split into any 16-aligned ranges (as threads split them) give the same bytes
 * as one call (for AMX, odd and even numbers of panels take different kernels), and a dot
 * product does not depend on the row block it came in. */
static void column_split_gives_same_bytes(enum gram_kind kind)
{
    size_t cnt = 203, d = 96, rows = 70;
    struct packed p;
    packed_init(&p, kind, cnt, d, rows, 9);
    size_t ld = 208 - 16, prows = 96;
    float *one = aligned_alloc(64, prows * ld * sizeof *one);
    float *split = aligned_alloc(64, prows * ld * sizeof *split);
    gram_rows(&p.g, rows, 16, 16, cnt, one, ld);
    size_t cuts[] = {16, 32, 80, 96, 144, 203};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++)
        gram_rows(&p.g, rows, 16, cuts[i], cuts[i + 1], split, ld);
    for (size_t r = 0; r < rows; r++)
        CHECK(memcmp(one + r * ld, split + r * ld, (cnt - 16) * sizeof *one) == 0);
    gram_rowset(&p.g, p.idx + 48, 20);
    gram_block(&p.g, 0, 1);
    float *again = aligned_alloc(64, 32 * ld * sizeof *again);
    gram_rows(&p.g, 20, 16, 16, cnt, again, ld);
    for (size_t r = 0; r < 20; r++)
        CHECK(memcmp(again + r * ld, one + (r + 32) * ld, (cnt - 16) * sizeof *one) == 0);
    free(again);
    free(one);
    free(split);
    packed_free(&p);
}

/* gram_rows_filtered against gram_rows: each lane's value is max(0, a (gr + gc) - b dot)
 * of the same dot, to the byte; a lane passes exactly when that is at most the larger of
 * its row's limit and (from cfrom on) its column's; a group's values are written only
 * when a lane passed; padding lanes never pass; and the masks and values are the same
 * for columns split into ranges. */
static void filtered_matches_dots(float a, float b, int row_limits)
{
    size_t cnt = 203, d = 96, rows = 70, c0 = 16, cfrom = 77;
    struct packed p;
    packed_init(&p, GRAM_VNNI_I8, cnt, d, rows, 11);
    size_t ld = 208 - c0, prows = 96, mld = ld / 16;
    float *dots = aligned_alloc(64, prows * ld * sizeof *dots);
    float *vals = aligned_alloc(64, prows * ld * sizeof *vals);
    gram_rows(&p.g, rows, c0, c0, cnt, dots, ld);
    /* values and limits that put the cut inside the range of the distances */
    uint64_t seed = 5;
    float *gr = malloc(rows * sizeof *gr), *gc = malloc(cnt * sizeof *gc);
    float *rlim = malloc(rows * sizeof *rlim), *clim = malloc(cnt * sizeof *clim);
    double scale = 0;
    for (size_t i = 0; i < rows * ld; i++)
        scale = fmax(scale, fabs(dots[i]));
    for (size_t r = 0; r < rows; r++) {
        gr[r] = (float)(scale * (1.0 + td_uniform(&seed)));
        rlim[r] = (float)(scale * a * (2.0 + 1.5 * td_uniform(&seed)));
    }
    for (size_t c = 0; c < cnt; c++) {
        gc[c] = (float)(scale * (1.0 + td_uniform(&seed)));
        clim[c] = (float)(scale * a * (2.0 + 1.5 * td_uniform(&seed)));
    }
    uint16_t *mask = malloc(prows * mld * sizeof *mask),
             *mask2 = malloc(prows * mld * sizeof *mask);
    float *vals2 = aligned_alloc(64, prows * ld * sizeof *vals2);
    struct gram_filter f = {a, b, gr, gc, row_limits ? rlim : NULL, clim, cfrom, mask, mld};
    memset(vals, 0xff, prows * ld * sizeof *vals); /* NaN: "not written" */
    gram_rows_filtered(&p.g, rows, c0, c0, cnt, vals, ld, &f);
    size_t passed = 0, kept = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t grp = 0; grp < mld; grp++) {
            uint16_t m = mask[r * mld + grp];
            for (size_t l = 0; l < 16; l++) {
                size_t c = c0 + grp * 16 + l, o = grp * 16 + l;
                if (c >= cnt) {
                    CHECK(!(m >> l & 1));
                    continue;
                }
                float t = a * (gr[r] + gc[c]) - b * dots[r * ld + o];
                t = t < 0.0f ? 0.0f : t;
                float lim = row_limits ? rlim[r] : -INFINITY;
                if (c >= cfrom && clim[c] > lim)
                    lim = clim[c];
                CHECK((m >> l & 1) == (t <= lim));
                passed += t <= lim;
                if (m) {
                    CHECK(memcmp(&vals[r * ld + o], &t, sizeof t) == 0);
                } else {
                    CHECK(isnan(vals[r * ld + o]));
                    kept++;
                }
            }
        }
    printf("     a %g, b %g, row limits %d: %zu of %zu lanes passed, %zu values not written\n",
           (double)a, (double)b, row_limits, passed, rows * (cnt - c0), kept);
    CHECK(passed > 0 && kept > 0); /* the cut falls inside the block */
    f.mask = mask2;
    memset(vals2, 0xff, prows * ld * sizeof *vals2);
    size_t cuts[] = {16, 32, 80, 96, 144, 203};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++)
        gram_rows_filtered(&p.g, rows, c0, cuts[i], cuts[i + 1], vals2, ld, &f);
    for (size_t r = 0; r < rows; r++) {
        CHECK(memcmp(mask + r * mld, mask2 + r * mld, mld * sizeof *mask) == 0);
        CHECK(memcmp(vals + r * ld, vals2 + r * ld, (cnt - c0) * sizeof *vals) == 0);
    }
    free(vals2);
    free(mask2);
    free(mask);
    free(gr);
    free(gc);
    free(rlim);
    free(clim);
    free(vals);
    free(dots);
    packed_free(&p);
}

static void test_i8_filtered_euclidean(void)
{
    filtered_matches_dots(1.0f, 2.0f, 1);
}
static void test_i8_filtered_unit_rows(void)
{
    filtered_matches_dots(0.5f, 1.0f, 1);
}
static void test_i8_filtered_column_limits_only(void)
{
    filtered_matches_dots(1.0f, 2.0f, 0);
}

static void test_amx_dots_within_bound(void)
{
    dots_within_bound_of_double_sums(GRAM_AMX_BF16);
}
static void test_amx_centred_dots(void)
{
    centred_dots_within_bound(GRAM_AMX_BF16);
}
static void test_amx_column_split(void)
{
    column_split_gives_same_bytes(GRAM_AMX_BF16);
}
static void test_i8_dots_within_bound(void)
{
    dots_within_bound_of_double_sums(GRAM_VNNI_I8);
}
static void test_i8_centred_dots(void)
{
    centred_dots_within_bound(GRAM_VNNI_I8);
}
static void test_i8_column_split(void)
{
    column_split_gives_same_bytes(GRAM_VNNI_I8);
}

int main(void)
{
    int amx = gram_amx_usable(), vnni = gram_vnni_usable();
    if (!amx && !vnni) {
        printf("skipped: this CPU offers neither AMX-BF16 nor AVX512-VNNI\n");
        return 77;
    }
    if (amx) {
        RUN(test_amx_dots_within_bound);
        RUN(test_amx_centred_dots);
        RUN(test_amx_column_split);
    } else {
        printf("     no AMX-BF16 here: its kind is not tested\n");
    }
    if (vnni) {
        RUN(test_i8_dots_within_bound);
        RUN(test_i8_centred_dots);
        RUN(test_i8_column_split);
        RUN(test_i8_filtered_euclidean);
        RUN(test_i8_filtered_unit_rows);
        RUN(test_i8_filtered_column_limits_only);
    } else {
        printf("     no AVX512-VNNI here: its kind is not tested\n");
    }
    PW_TEST_MAIN();
}
