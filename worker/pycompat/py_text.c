/* py_text.c - UTF-8 decoding, json.dumps string escaping and repr(float), the text rules
 * every byte-exact writer in the worker shares (meta.json, the metadata hash, str()).
 *
 * The escaper copies runs of plain ASCII in one go and decodes only where an escape is
 * needed.  repr(float) searches the fewest significant digits that read back to the same
 * double, which is what CPython's float_repr (David Gay's shortest mode) prints. */
#include "pycompat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

long py_utf8_next(const char *str, size_t len, size_t *i)
{
    const unsigned char *s = (const unsigned char *)str;
    static const long min_for_extra[4] = {0, 0x80, 0x800, 0x10000};
    unsigned char c = s[*i];
    size_t extra;
    long cp;

    if (c < 0x80) {
        (*i)++;
        return c;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F, extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F, extra = 2;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07, extra = 3;
    } else {
        return -1;
    }
    if (*i + extra >= len)
        return -1;
    for (size_t k = 1; k <= extra; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    if (cp < min_for_extra[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += extra + 1;
    return cp;
}

bool py_isspace(long cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

void py_json_put_codepoint(struct strbuf *b, long cp)
{
    static const char *const short_escapes[0x60] = {
        ['"'] = "\\\"", ['\\'] = "\\\\", ['\n'] = "\\n", ['\r'] = "\\r",
        ['\t'] = "\\t", ['\b'] = "\\b",  ['\f'] = "\\f",
    };
    char tmp[32];

    if (cp >= 0 && cp < 0x60 && short_escapes[cp]) {
        strbuf_puts(b, short_escapes[cp]);
    } else if (cp >= 0x20 && cp <= 0x7E) {
        char c = (char)cp;
        strbuf_put(b, &c, 1);
    } else if (cp < 0x10000) {
        snprintf(tmp, sizeof tmp, "\\u%04lx", cp);
        strbuf_puts(b, tmp);
    } else {
        long v = cp - 0x10000;
        snprintf(tmp, sizeof tmp, "\\u%04lx\\u%04lx", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        strbuf_puts(b, tmp);
    }
}

int py_json_put_string(struct strbuf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    strbuf_put(b, "\"", 1);
    while (i < len) {
        size_t start = i;
        while (i < len && u[i] >= 0x20 && u[i] <= 0x7E && u[i] != '"' && u[i] != '\\')
            i++;
        strbuf_put(b, s + start, i - start);
        if (i >= len)
            break;
        long cp = py_utf8_next(s, len, &i);
        if (cp < 0)
            return PW_EINVAL;
        py_json_put_codepoint(b, cp);
    }
    strbuf_put(b, "\"", 1);
    return 0;
}

/* The shortest digit string (no trailing zeros) and decimal exponent of |value| > 0 that
 * strtod reads back to |value|.  For each precision p the correctly rounded p-digit
 * decimal and its two neighbours are tried: the neighbours matter where the round-trip
 * interval is lopsided (powers of two). */
static int shortest_digits(double mag, char digits[24], int *ndig, int *exp10)
{
    char tmp[48], cand_text[48], ds[24];

    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, mag);
        char *e = strchr(tmp, 'e');
        int x = atoi(e + 1);
        unsigned long long m = 0;
        for (char *q = tmp; q < e; q++)
            if (*q >= '0' && *q <= '9')
                m = m * 10 + (unsigned long long)(*q - '0');
        unsigned long long cand[3] = {m, m + 1, m - 1};
        for (int k = 0; k < 3; k++) {
            /* value = cand * 10^(x - (p - 1)) */
            snprintf(cand_text, sizeof cand_text, "%llue%d", cand[k], x - (p - 1));
            if (cand[k] == 0 || strtod(cand_text, NULL) != mag)
                continue;
            int n = snprintf(ds, sizeof ds, "%llu", cand[k]);
            /* n may be p + 1 when m + 1 carried (999 -> 1000): the exponent moves up. */
            *exp10 = x + (n - p);
            while (n > 1 && ds[n - 1] == '0')
                ds[--n] = '\0';
            memcpy(digits, ds, (size_t)n + 1);
            *ndig = n;
            return 0;
        }
    }
    return PW_EINVAL; /* unreachable: 17 significant digits always round-trip */
}

int py_float_repr(double value, char *buf, size_t bufsize)
{
    char digits[24], out[64];
    int exp10 = 0, ndig = 0;
    size_t o = 0;

    if (!isfinite(value) || bufsize < PY_FLOAT_REPR_MAX)
        return PW_EINVAL;
    if (value == 0) {
        snprintf(buf, bufsize, "%s0.0", signbit(value) ? "-" : "");
        return 0;
    }
    if (shortest_digits(fabs(value), digits, &ndig, &exp10) < 0)
        return PW_EINVAL;
    if (signbit(value))
        out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        int decpt = exp10 + 1; /* digits before the decimal point */
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[o++] = '0';
            memcpy(out + o, digits, (size_t)ndig + 1);
        } else if (decpt >= ndig) {
            memcpy(out + o, digits, (size_t)ndig);
            o += (size_t)ndig;
            for (int i = 0; i < decpt - ndig; i++)
                out[o++] = '0';
            memcpy(out + o, ".0", 3);
        } else {
            snprintf(out + o, sizeof out - o, "%.*s.%s", decpt, digits, digits + decpt);
        }
    } else {
        o += (size_t)snprintf(out + o, sizeof out - o, "%c%s%s", digits[0], ndig > 1 ? "." : "",
                              digits + 1);
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    if (strlen(out) + 1 > bufsize)
        return PW_EINVAL;
    memcpy(buf, out, strlen(out) + 1);
    return 0;
}
