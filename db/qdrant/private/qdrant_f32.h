/* qdrant_f32.h - JSON number text to float32, bit-identical to (float)strtod(text).
 *
 * Scroll pages are ~90% float text, so this is the hot loop of the Qdrant client.
 * Qdrant prints float32 values in shortest form (<= 9 significant digits, small
 * exponents), which the Clinger fast path covers exactly: a mantissa below 2^53 and a
 * power of ten up to 1e22 are both exact doubles, so one IEEE multiply or divide gives
 * the correctly rounded double, i.e. what glibc's strtod returns; the cast to float then
 * rounds it exactly as (float)strtod does (double rounding included, on purpose: the
 * contract is "same as (float)strtod", which is what numpy's float32(float(s)) gives).
 * Anything else (more than 19 significant digits, huge exponents, long text) goes to
 * strtod itself, so results never differ.  strtod reads LC_NUMERIC: the process must
 * keep the "C" locale (the default unless main calls setlocale).
 *
 * qdrant_f32_parse() accepts exactly the JSON number grammar
 *   -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * over s[0..len) (no NUL needed) and returns 0, or -1 (nothing stored) for other text. */
#ifndef QDRANT_F32_H
#define QDRANT_F32_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int qdrant_f32_parse_slow(const char *s, size_t len, float *out);
/* The same for the longest number-grammar prefix of s..end (with more than 19
 * significant digits); sets *stop. */
int qdrant_f32_parse_slow_prefix(const char *s, const char *end, float *out, const char **stop);

/* Value of eight ASCII digits loaded little-endian (first digit in the low byte). */
static inline uint64_t qdrant_f32_eight_digits(uint64_t v)
{
    const uint64_t mask = UINT64_C(0x000000FF000000FF);
    const uint64_t mul1 = UINT64_C(0x000F424000000064); /* 100 + (1000000 << 32) */
    const uint64_t mul2 = UINT64_C(0x0000271000000001); /* 1 + (10000 << 32) */
    v -= UINT64_C(0x3030303030303030);
    v = (v * 10) + (v >> 8);
    return (((v & mask) * mul1) + (((v >> 16) & mask) * mul2)) >> 32;
}

/* A number's digits as read so far: value m of nd significant digits, times 10^exp10. */
struct qdrant_f32_digits {
    uint64_t m;
    int nd, exp10;
};

/* Fraction digits at p (one at least, checked by the caller): 0 with *p moved past
 * them, or 1 when more than 19 significant digits need strtod.
 * Up to eight digits at once (SWAR): load eight bytes, find the first byte that is not a
 * digit, pad the digits before it with leading '0' bytes and convert them in one go - no
 * branch per digit, and none that depends on how many digits a number has (Qdrant's
 * shortest float text varies from 1 to 9).  Leading zeros are counted in nd here, which
 * only sends a few more numbers to strtod. */
__attribute__((always_inline)) static inline int
qdrant_f32_fraction(const char **pp, const char *end, struct qdrant_f32_digits *g)
{
    static const uint64_t pow10u[9] = {1,      10,      100,      1000,     10000,
                                       100000, 1000000, 10000000, 100000000};
    const char *p = *pp;

    while (end - p >= 8) {
        uint64_t v, x, bad;
        memcpy(&v, p, 8);
        x = v ^ UINT64_C(0x3030303030303030); /* digits become 0..9 */
        /* high bit of each byte that is not 0..9; a carry only runs into bytes after the
         * first such byte, which are not looked at */
        bad = ((x + UINT64_C(0x7676767676767676)) | x) & UINT64_C(0x8080808080808080);
        unsigned k = bad ? (unsigned)__builtin_ctzll(bad) >> 3 : 8;
        if (k == 0 || g->nd + (int)k > 19)
            break;
        if (k < 8) {
            unsigned sh = (8 - k) * 8;
            v = (v << sh) | (UINT64_C(0x3030303030303030) >> (64 - sh));
        }
        g->m = g->m * pow10u[k] + qdrant_f32_eight_digits(v);
        g->nd += (int)k;
        g->exp10 -= (int)k;
        p += k;
        if (k < 8)
            break;
    }
    while (p < end && (unsigned)(*p - '0') < 10) {
        if (g->m != 0 || *p != '0') { /* leading zeros of 0.000ddd are not significant */
            if (g->nd == 19)
                return 1;
            g->m = g->m * 10 + (uint64_t)(*p - '0');
            g->nd++;
        }
        g->exp10--;
        p++;
    }
    *pp = p;
    return 0;
}

/* m * 10^exp10 as the correctly rounded double: 0 with *d set, or 1 when only strtod
 * can tell (m >= 2^53, or a power of ten beyond what stays exact). */
__attribute__((always_inline)) static inline int qdrant_f32_scale(uint64_t m, int exp10, double *d)
{
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (m > (UINT64_C(1) << 53))
        return 1;
    if (exp10 >= 0 && exp10 <= 22) {
        *d = (double)m * pow10[exp10];
    } else if (exp10 < 0 && exp10 >= -22) {
        /* m * RN(10^-k) is within 2 ulps of the exact quotient m / 10^k.  Unless a float
         * rounding boundary (a midpoint between adjacent floats, whose low 29 double
         * mantissa bits are 0x10000000) lies that close, both round to the same float,
         * and the multiply avoids the division's latency.  Near a boundary, or outside
         * the normal float range, divide exactly. */
        static const double inv10[23] = {1e0,   1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,
                                         1e-8,  1e-9,  1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15,
                                         1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22};
        uint64_t bits;
        *d = (double)m * inv10[-exp10];
        memcpy(&bits, d, 8);
        uint64_t low = bits & ((UINT64_C(1) << 29) - 1);
        uint64_t bexp = bits >> 52; /* d > 0: no sign bit */
        if (low - (UINT64_C(0x10000000) - 8) <= 16 || bexp <= 1023 - 126 || bexp >= 1023 + 127)
            *d = (double)m / pow10[-exp10];
    } else if (exp10 > 22 && exp10 <= 22 + 15) {
        /* 12e30: move the excess power into the mantissa while it stays exact */
        int k = exp10 - 22;
        while (k > 0 && m <= (UINT64_C(1) << 53) / 10) {
            m *= 10;
            k--;
        }
        if (k > 0)
            return 1;
        *d = (double)m * 1e22;
    } else {
        return 1;
    }
    return 0;
}

/* The longest JSON number at s (before end): 0 with *out and *stop set (the text is
 * s..*stop), or -1 when the text at s does not start with a complete number.  Stopping
 * is not validation: the caller checks what follows (qdrant_f32_parse wants nothing). */
__attribute__((always_inline)) static inline int
qdrant_f32_parse_prefix(const char *s, const char *end, float *out, const char **stop)
{
    struct qdrant_f32_digits g = {0, 0, 0};
    const char *p = s;
    int neg = 0;
    double d;

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p == end)
        return -1;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && (unsigned)(*p - '0') < 10) {
            if (g.nd == 19)
                return qdrant_f32_parse_slow_prefix(s, end, out, stop);
            g.m = g.m * 10 + (uint64_t)(*p - '0');
            g.nd++;
            p++;
        }
    } else {
        return -1;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || (unsigned)(*p - '0') >= 10)
            return -1;
        if (qdrant_f32_fraction(&p, end, &g))
            return qdrant_f32_parse_slow_prefix(s, end, out, stop);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0, e = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p == end || (unsigned)(*p - '0') >= 10)
            return -1;
        while (p < end && (unsigned)(*p - '0') < 10) {
            if (e < 100000)
                e = e * 10 + (*p - '0');
            p++;
        }
        g.exp10 += eneg ? -e : e;
    }
    *stop = p;
    if (g.m == 0) {
        *out = neg ? -0.0f : 0.0f;
        return 0;
    }
    if (qdrant_f32_scale(g.m, g.exp10, &d))
        return qdrant_f32_parse_slow(s, (size_t)(p - s), out);
    *out = (float)(neg ? -d : d);
    return 0;
}

static inline int qdrant_f32_parse(const char *s, size_t len, float *out)
{
    const char *stop;
    float v;
    if (qdrant_f32_parse_prefix(s, s + len, &v, &stop) != 0 || stop != s + len)
        return -1;
    *out = v;
    return 0;
}

#endif
