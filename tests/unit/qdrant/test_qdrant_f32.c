/* test_qdrant_f32.c - qdrant_f32_parse() must equal (float)strtod() bit for bit.
 *
 * The reference is glibc's strtod (correctly rounded) followed by a cast, computed here
 * for every input.  Inputs: float32 values printed at every precision (what Qdrant
 * sends), random digit strings of every shape, midpoints between adjacent floats
 * (double-rounding traps), and a hand list of edge cases.  QDRANT_F32_CASES=N raises the
 * random case count (default 1,000,000 per family; campaigns use more). */
#include "pw_test.h"
#include "qdrant_f32.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    return pw_test_rand(&rng_state);
}

static long cases(void)
{
    const char *s = getenv("QDRANT_F32_CASES");
    return s ? atol(s) : 1000000;
}

static int bits_equal(float a, float b)
{
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

static long mismatches;

static void check_one(const char *s)
{
    float got = 12345.0f, got_in_text = 12345.0f;
    float want = (float)strtod(s, NULL);
    size_t len = strlen(s);
    int rc = qdrant_f32_parse(s, len, &got);
    /* as the page parser meets it: followed by more array text (the 8-byte loads of the
     * SWAR digit loop then read past the number) */
    char text[400];
    const char *src = text, *stop = NULL;
    int rc2;
    if (len + 24 < sizeof text)
        snprintf(text, sizeof text, "%s,0.123456789,98765]", s);
    else
        src = s; /* very long inputs: parsed where they are */
    rc2 = qdrant_f32_parse_prefix(src, src + strlen(src), &got_in_text, &stop);
    if (rc != 0 || !bits_equal(got, want) || rc2 != 0 || stop != src + len ||
        !bits_equal(got_in_text, want)) {
        if (mismatches++ < 10)
            fprintf(stderr,
                    "mismatch for \"%s\": rc=%d got %.9g, in text rc=%d got %.9g; want %.9g\n", s,
                    rc, got, rc2, got_in_text, want);
        pw_test_current_failed = 1;
    }
}

static void test_matches_strtod_on_edge_cases(void)
{
    static const char *edge[] = {"0",
                                 "-0",
                                 "0.0",
                                 "-0.0",
                                 "0e0",
                                 "0E+5",
                                 "0.000",
                                 "1",
                                 "-1",
                                 "1.5",
                                 "0.1",
                                 "0.2",
                                 "0.3",
                                 "1e-45",
                                 "1.4e-45",
                                 "1.401298464324817e-45",
                                 "7e-46",
                                 "7.006492321624085e-46",
                                 "7.006492321624087e-46",
                                 "1.1754942e-38",
                                 "1.17549435e-38",
                                 "3.4028235e38",
                                 "3.4028234663852886e38",
                                 "3.40282357e38",
                                 "3.4028236e38",
                                 "1e39",
                                 "-1e39",
                                 "1e-50",
                                 "4.9e-324",
                                 "1e400",
                                 "-1e400",
                                 "1e-400",
                                 "9007199254740992",
                                 "9007199254740993",
                                 "9007199254740993.0",
                                 "18446744073709551615",
                                 "18446744073709551616",
                                 "123456789012345678901234567890",
                                 "0.000000000000000000000000000001",
                                 "1e22",
                                 "1e23",
                                 "12e30",
                                 "123456789e30",
                                 "9e37",
                                 "1e37",
                                 "0.1e-30",
                                 "16777216",
                                 "16777217",
                                 "16777217.000000001",
                                 "33554431",
                                 "0.30000001192092896",
                                 "0.3000000119209290",
                                 "2.5000000000000000000001",
                                 "1.00000005960464477539062499",
                                 "1.000000059604644775390625",
                                 "1.00000005960464477539062501",
                                 "0.012345678",
                                 "-0.027469946",
                                 "1.2345679e-05",
                                 "1.2345679E-5",
                                 "99999999999999999999e-20",
                                 "1.0000000000000000000000000000000000",
                                 "000",
                                 NULL};
    for (int i = 0; edge[i]; i++) {
        if (strcmp(edge[i], "000") == 0)
            continue;
        check_one(edge[i]);
    }
}

static void test_rejects_text_outside_json_number_grammar(void)
{
    static const char *bad[] = {"",          "-",   "01",    "1.",  ".5",   "1e",
                                "1e+",       "+1",  "inf",   "nan", "NaN",  "0x10",
                                " 1",        "1 ",  "1.5.5", "--1", "1e5e", "Infinity",
                                "-Infinity", "1,5", "00.5",  "-.5", NULL};
    for (int i = 0; bad[i]; i++) {
        float f = 7.0f;
        int rc = qdrant_f32_parse(bad[i], strlen(bad[i]), &f);
        if (rc != -1 || f != 7.0f)
            fprintf(stderr, "accepted \"%s\"\n", bad[i]);
        CHECK(rc == -1 && f == 7.0f);
    }
    /* the length bounds the text: a valid prefix of a longer buffer is parsed alone */
    float f = 0;
    CHECK(qdrant_f32_parse("1.25xyz", 4, &f) == 0 && f == 1.25f);
}

static void test_matches_strtod_on_float32_values_at_every_precision(void)
{
    char buf[64];
    long n = cases();
    mismatches = 0;
    for (long i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)rnd();
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f))
            continue;
        int prec = 1 + (int)(rnd() % 17);
        snprintf(buf, sizeof buf, (rnd() & 1) ? "%.*g" : "%.*e", prec, (double)f);
        check_one(buf);
    }
    /* values in [-1, 1] as embeddings have them */
    for (long i = 0; i < n; i++) {
        float f = (float)((double)(int64_t)(rnd() >> 11) / (double)(1ull << 52)) - 1.0f;
        snprintf(buf, sizeof buf, "%.*g", 6 + (int)(rnd() % 4), (double)f);
        check_one(buf);
    }
}

static void test_matches_strtod_on_random_digit_strings(void)
{
    char buf[160];
    long n = cases();
    mismatches = 0;
    for (long i = 0; i < n; i++) {
        char *p = buf;
        if (rnd() & 1)
            *p++ = '-';
        int intd = (int)(rnd() % 26);
        if (intd == 0 || rnd() % 4 == 0) {
            *p++ = '0';
        } else {
            *p++ = (char)('1' + rnd() % 9);
            for (int k = 1; k < intd; k++)
                *p++ = (char)('0' + rnd() % 10);
        }
        int frac = (int)(rnd() % 4 ? rnd() % 26 : 0);
        if (frac) {
            *p++ = '.';
            int zeros = (int)(rnd() % 3 == 0 ? rnd() % 40 : 0);
            for (int k = 0; k < zeros && k < 40; k++)
                *p++ = '0';
            for (int k = 0; k < frac; k++)
                *p++ = (char)('0' + rnd() % 10);
        }
        if (rnd() % 2) {
            *p++ = (rnd() & 1) ? 'e' : 'E';
            uint64_t r = rnd() % 3;
            if (r == 1)
                *p++ = '-';
            else if (r == 2)
                *p++ = '+';
            int e = (int)(rnd() % 4 ? rnd() % 50 : rnd() % 400);
            p += sprintf(p, "%d", e);
        }
        *p = '\0';
        check_one(buf);
    }
}

static void test_matches_strtod_on_midpoints_between_adjacent_floats(void)
{
    char buf[64];
    long n = cases() / 4;
    mismatches = 0;
    for (long i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)rnd() & 0x7f7fffffu;
        float f, g;
        memcpy(&f, &bits, 4);
        bits++;
        memcpy(&g, &bits, 4);
        if (!isfinite(f) || !isfinite(g))
            continue;
        double mid = ((double)f + (double)g) / 2;
        snprintf(buf, sizeof buf, "%.*g", 8 + (int)(rnd() % 10), mid);
        check_one(buf);
        double off = mid + (rnd() & 1 ? 1 : -1) * mid * 1e-16;
        snprintf(buf, sizeof buf, "%.17g", off);
        check_one(buf);
    }
}

int main(void)
{
    RUN(test_matches_strtod_on_edge_cases);
    RUN(test_rejects_text_outside_json_number_grammar);
    RUN(test_matches_strtod_on_float32_values_at_every_precision);
    RUN(test_matches_strtod_on_random_digit_strings);
    RUN(test_matches_strtod_on_midpoints_between_adjacent_floats);
    PW_TEST_MAIN();
}
