/* py_value.c - bool(), str(), int() and float() of JSON values as Python computes them.
 *
 * These decide what users see (category labels are str() of payload values, `a or b`
 * chains follow bool()) and which config values a reducer accepts, so each follows the
 * CPython 3.11 rule rather than the nearest C library call: strtoll would accept "1x"
 * prefixes and miss "1_000", strtod would accept hex and "nan(...)".  int() of a string
 * keeps every digit (py_int_digits) because the metadata hash prints integers of any
 * size; py_int then narrows to long long. */
#include "pycompat.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int py_truthy(const json_t *cv)
{
    json_t *v = (json_t *)cv; /* jansson's getters take non-const; nothing is modified */

    if (!v)
        return 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    case JSON_TRUE:
        return 1;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return 0;
    }
}

/* ---- str() ------------------------------------------------------------------------ */

/* A fixed-capacity writer that truncates and remembers it did. */
struct cbuf {
    char *p;
    size_t cap, len;
    int truncated;
};

static void cb_putn(struct cbuf *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap) {
        n = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
        b->truncated = 1;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void cb_puts(struct cbuf *b, const char *s)
{
    cb_putn(b, s, strlen(s));
}

static void put_float(struct cbuf *b, double v)
{
    char out[PY_FLOAT_REPR_MAX];

    if (isnan(v))
        cb_puts(b, "nan");
    else if (isinf(v))
        cb_puts(b, v < 0 ? "-inf" : "inf");
    else if (py_float_repr(v, out, sizeof out) == 0)
        cb_puts(b, out);
}

/* repr(str): single quotes unless the text has ' and no ", backslash escapes for the
 * quote, \\ and the non-printable Latin-1 characters (C0, DEL, U+0080..U+00A0, U+00AD). */
static void put_repr_string(struct cbuf *b, const char *s, size_t n)
{
    char q = (memchr(s, '\'', n) && !memchr(s, '"', n)) ? '"' : '\'';
    char esc[8];

    cb_putn(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned char c1 = c == 0xC2 && i + 1 < n ? (unsigned char)s[i + 1] : 0;
        if (c == '\\' || c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            cb_putn(b, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            cb_puts(b, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            cb_puts(b, esc);
        } else if ((c1 >= 0x80 && c1 <= 0xA0) || c1 == 0xAD) {
            snprintf(esc, sizeof esc, "\\x%02x", c1);
            cb_puts(b, esc);
            i++;
        } else {
            cb_putn(b, &s[i], 1);
        }
    }
    cb_putn(b, &q, 1);
}

static void put_value(struct cbuf *b, json_t *v, int top)
{
    char num[32];
    size_t i;
    json_t *item;
    const char *key;

    switch (json_typeof(v)) {
    case JSON_STRING:
        if (top)
            cb_putn(b, json_string_value(v), json_string_length(v));
        else
            put_repr_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        cb_puts(b, num);
        break;
    case JSON_REAL:
        put_float(b, json_real_value(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL:
        cb_puts(b, json_is_true(v) ? "True" : json_is_false(v) ? "False" : "None");
        break;
    case JSON_ARRAY:
        cb_puts(b, "[");
        json_array_foreach(v, i, item)
        {
            cb_puts(b, i ? ", " : "");
            put_value(b, item, 0);
        }
        cb_puts(b, "]");
        break;
    case JSON_OBJECT:
        i = 0;
        cb_puts(b, "{");
        json_object_foreach(v, key, item)
        {
            cb_puts(b, i++ ? ", " : "");
            put_repr_string(b, key, strlen(key));
            cb_puts(b, ": ");
            put_value(b, item, 0);
        }
        cb_puts(b, "}");
        break;
    }
}

int py_str(const json_t *v, char *out, size_t cap)
{
    struct cbuf b = {out, cap, 0, 0};

    if (cap == 0)
        return PW_EINVAL;
    out[0] = '\0';
    if (!v)
        cb_puts(&b, "None");
    else
        put_value(&b, (json_t *)v, 1);
    return b.truncated ? PW_EINVAL : 0;
}

/* ---- int() and float() ------------------------------------------------------------ */

/* Non-ASCII code points whose Unicode decimal value is 0; each starts a run of ten
 * digits.  Generated with /usr/bin/python3 (Python 3.11, Unicode 14.0.0):
 *   [cp for cp in range(0x80, 0x110000) if unicodedata.decimal(chr(cp), None) == 0] */
static const long unicode_digit_zeros[] = {
    0x660,   0x6F0,   0x7C0,   0x966,   0x9E6,   0xA66,   0xAE6,   0xB66,   0xBE6,   0xC66,
    0xCE6,   0xD66,   0xDE6,   0xE50,   0xED0,   0xF20,   0x1040,  0x1090,  0x17E0,  0x1810,
    0x1946,  0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,
    0xA900,  0xA9D0,  0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0,
    0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950,
    0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC,
    0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0};

static int py_decimal(long cp)
{
    if (cp >= '0' && cp <= '9')
        return (int)(cp - '0');
    for (size_t i = 0; i < sizeof unicode_digit_zeros / sizeof unicode_digit_zeros[0]; i++)
        if (cp >= unicode_digit_zeros[i] && cp < unicode_digit_zeros[i] + 10)
            return (int)(cp - unicode_digit_zeros[i]);
    return -1;
}

#define PY_INT_MAX_STR_DIGITS 4300 /* sys.get_int_max_str_digits() default, Python 3.11 */

/* Skips str.isspace() code points from s[*i]; -1 on invalid UTF-8. */
static int skip_space(const char *s, size_t len, size_t *i)
{
    while (*i < len) {
        size_t save = *i;
        long cp = py_utf8_next(s, len, i);
        if (cp < 0)
            return -1;
        if (!py_isspace(cp)) {
            *i = save;
            break;
        }
    }
    return 0;
}

int py_int_digits(const char *s, size_t len, struct strbuf *digits, bool *negative)
{
    size_t i = 0, ndigits = 0;
    bool want_digit = true, any_nonzero = false;

    *negative = false;
    if (skip_space(s, len, &i) < 0)
        return PW_EINVAL;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        *negative = s[i++] == '-';
    while (i < len) {
        size_t save = i;
        long cp = py_utf8_next(s, len, &i);
        int d = cp < 0 ? -1 : py_decimal(cp);
        if (d >= 0) {
            if (d || any_nonzero) {
                char c = (char)('0' + d);
                strbuf_put(digits, &c, 1);
                any_nonzero = true;
            }
            ndigits++;
            want_digit = false;
        } else if (cp == '_' && ndigits && !want_digit) {
            want_digit = true; /* one underscore, then a digit must follow */
        } else {
            i = save;
            break;
        }
    }
    if (!ndigits || want_digit || skip_space(s, len, &i) < 0 || i != len ||
        ndigits > PY_INT_MAX_STR_DIGITS)
        return PW_EINVAL;
    if (!any_nonzero) {
        strbuf_put(digits, "0", 1);
        *negative = false;
    }
    return 0;
}

static int int_from_string(const char *s, size_t len, long long *out)
{
    struct strbuf digits = {0};
    bool negative;
    int rc = py_int_digits(s, len, &digits, &negative);

    if (rc == 0 && (digits.nomem || digits.len > 19))
        rc = PW_EINVAL;
    if (rc == 0) {
        unsigned long long mag = strtoull(digits.data, NULL, 10);
        if (mag > (unsigned long long)LLONG_MAX + negative)
            rc = PW_EINVAL;
        else
            *out = negative ? (long long)(0 - mag) : (long long)mag;
    }
    free(digits.data);
    return rc;
}

int py_int(const json_t *cv, long long *out)
{
    json_t *v = (json_t *)cv;

    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double t = trunc(json_real_value(v)); /* NaN and inf fail the range test */
        if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0))
            return PW_EINVAL;
        *out = (long long)t;
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (json_is_string(v))
        return int_from_string(json_string_value(v), json_string_length(v), out);
    return PW_EINVAL;
}

/* A Python float literal in s[0, len) (no surrounding space) copied without its
 * underscores into buf for strtod; -1 when Python's float() would refuse it. */
static int float_literal(const char *s, size_t len, char *buf, size_t cap)
{
    static const char *const words[] = {"inf", "infinity", "nan"};
    size_t i = 0, o = 0, mantissa = 0;
    bool prev_digit = false;

    if (i < len && (s[i] == '+' || s[i] == '-'))
        buf[o++] = s[i++];
    for (size_t w = 0; w < 3; w++)
        if (len - i == strlen(words[w]) && !strncasecmp(s + i, words[w], len - i)) {
            memcpy(buf + o, s + i, len - i);
            buf[o + len - i] = '\0';
            return 0;
        }
    for (int part = 0; part < 3 && i < len; part++) { /* integer, fraction, exponent */
        if (part == 1 && s[i] == '.')
            buf[o++] = s[i++];
        else if (part == 1)
            continue;
        if (part == 2) {
            if (!mantissa || (s[i] != 'e' && s[i] != 'E'))
                return -1;
            buf[o++] = s[i++];
            if (i < len && (s[i] == '+' || s[i] == '-'))
                buf[o++] = s[i++];
        }
        size_t start = i;
        prev_digit = false;
        for (; i < len && o + 1 < cap; i++) {
            if (s[i] >= '0' && s[i] <= '9')
                buf[o++] = s[i], prev_digit = true;
            else if (s[i] == '_' && prev_digit && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')
                prev_digit = false;
            else
                break;
        }
        if (part < 2)
            mantissa += i - start;
        else if (i == start)
            return -1;
    }
    buf[o] = '\0';
    return i == len && mantissa && o + 1 < cap ? 0 : -1;
}

int py_float(const json_t *cv, double *out)
{
    json_t *v = (json_t *)cv;
    char buf[512];
    size_t i = 0, end;

    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (!json_is_string(v))
        return PW_EINVAL;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (skip_space(s, len, &i) < 0)
        return PW_EINVAL;
    for (end = len; end > i;) { /* trailing str.isspace(), scanning back to a lead byte */
        size_t start = end - 1, k;
        while (start > i && ((unsigned char)s[start] & 0xC0) == 0x80)
            start--;
        k = start;
        long cp = py_utf8_next(s, len, &k);
        if (cp < 0 || k != end || !py_isspace(cp))
            break;
        end = start;
    }
    char ascii[512];
    size_t o = 0;
    while (i < end && o + 1 < sizeof ascii) { /* Unicode decimal digits read as ASCII */
        long cp = py_utf8_next(s, end, &i);
        int d = cp < 0 ? -1 : py_decimal(cp);
        if (d < 0 && (cp < 0 || cp > 0x7F))
            return PW_EINVAL;
        ascii[o++] = d >= 0 ? (char)('0' + d) : (char)cp;
    }
    if (i < end || float_literal(ascii, o, buf, sizeof buf) < 0)
        return PW_EINVAL;
    errno = 0;
    *out = strtod(buf, NULL); /* overflow gives ±inf as Python's float() does */
    return 0;
}
