/* metadata_hash.c - canonical JSON and SHA-256 of a projection request (contract v1).
 *
 * Python's json.dumps decides the bytes, so this file reproduces its rules rather than
 * any C library's: jansson prints upper-case \u escapes and %.17g floats, and it cannot
 * hold integers beyond 64 bits, so the config is parsed with yajl's event parser into a
 * small tree that keeps each number's source digits and each string's exact bytes
 * (embedded NULs included).  The tree lives only for one call.
 *
 * Python semantics reproduced here, all from metadata_hash_reference.py:
 *   - int() of the sample value (bool, int, float truncation, str with Unicode digits,
 *     whitespace and underscores, the 4300-digit limit), then max(value, 1);
 *   - str(color_by or "document_id").lower() against the four allowed names;
 *   - (reducer or "pca").lower();
 *   - repr(float) and json.dumps string escaping. */
#include "strbuf.h"
#include "metadata_hash.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#include <openssl/evp.h>
#include <yajl/yajl_parse.h>

/* ---------------------------------------------------------------- JSON tree (yajl) */

enum jtype { J_NULL, J_FALSE, J_TRUE, J_INT, J_REAL, J_STRING, J_OBJECT, J_ARRAY };

struct jnode {
    enum jtype type;
    char *text; /* string bytes, or the number exactly as written */
    size_t len;
    double real; /* J_REAL only */
    char *key;   /* member name when the parent is an object */
    size_t keylen;
    struct jnode **kids; /* J_OBJECT / J_ARRAY members in source order */
    size_t nkids, capkids;
};

#define JSON_MAX_DEPTH 1000 /* about where Python 3.11 json hits its recursion limit */

struct jparse {
    struct jnode *root;
    struct jnode *stack[JSON_MAX_DEPTH];
    int depth;
    char *pending_key;
    size_t pending_keylen;
    bool nomem, not_finite, too_deep;
};

static void jnode_free(struct jnode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        jnode_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n->key);
    free(n);
}

static char *dup_bytes(const void *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Attaches a new node to the open container (or makes it the root); 0 stops yajl. */
static struct jnode *jp_add(struct jparse *jp, enum jtype type)
{
    struct jnode *n = calloc(1, sizeof *n);
    if (!n) {
        jp->nomem = true;
        return NULL;
    }
    n->type = type;
    if (jp->depth == 0) {
        jp->root = n;
        return n;
    }
    struct jnode *parent = jp->stack[jp->depth - 1];
    if (parent->nkids == parent->capkids) {
        size_t cap = parent->capkids ? parent->capkids * 2 : 8;
        struct jnode **k = realloc(parent->kids, cap * sizeof *k);
        if (!k) {
            free(n);
            jp->nomem = true;
            return NULL;
        }
        parent->kids = k;
        parent->capkids = cap;
    }
    parent->kids[parent->nkids++] = n;
    if (parent->type == J_OBJECT) {
        n->key = jp->pending_key;
        n->keylen = jp->pending_keylen;
        jp->pending_key = NULL;
    }
    return n;
}

static int cb_null(void *ctx)
{
    return jp_add(ctx, J_NULL) != NULL;
}

static int cb_boolean(void *ctx, int value)
{
    return jp_add(ctx, value ? J_TRUE : J_FALSE) != NULL;
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    struct jparse *jp = ctx;
    bool real = memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len);
    struct jnode *n = jp_add(jp, real ? J_REAL : J_INT);
    if (!n)
        return 0;
    n->text = dup_bytes(s, len);
    n->len = len;
    if (!n->text) {
        jp->nomem = true;
        return 0;
    }
    if (real) {
        /* Python's float() of the literal: correctly rounded, overflow gives inf, which
         * json.dumps(allow_nan=False) refuses. */
        n->real = strtod(n->text, NULL);
        if (!isfinite(n->real)) {
            jp->not_finite = true;
            return 0;
        }
    }
    return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    struct jparse *jp = ctx;
    struct jnode *n = jp_add(jp, J_STRING);
    if (!n)
        return 0;
    n->text = dup_bytes(s, len);
    n->len = len;
    if (!n->text)
        jp->nomem = true;
    return n->text != NULL;
}

static int jp_open(struct jparse *jp, enum jtype type)
{
    if (jp->depth == JSON_MAX_DEPTH) {
        jp->too_deep = true;
        return 0;
    }
    struct jnode *n = jp_add(jp, type);
    if (!n)
        return 0;
    jp->stack[jp->depth++] = n;
    return 1;
}

static int cb_start_map(void *ctx)
{
    return jp_open(ctx, J_OBJECT);
}

static int cb_start_array(void *ctx)
{
    return jp_open(ctx, J_ARRAY);
}

static int cb_end(void *ctx)
{
    ((struct jparse *)ctx)->depth--;
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct jparse *jp = ctx;
    free(jp->pending_key);
    jp->pending_key = dup_bytes(s, len);
    jp->pending_keylen = len;
    if (!jp->pending_key)
        jp->nomem = true;
    return jp->pending_key != NULL;
}

static const yajl_callbacks json_callbacks = {
    cb_null,      cb_boolean, NULL,   NULL,           cb_number, cb_string,
    cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end,
};

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* yajl turns a \uD800 escape without its partner into '?', where Python keeps the lone
 * surrogate and prints it back as \ud800.  Rather than hash something else, such text is
 * refused (PostgreSQL's json type refuses it too).  Backslashes only occur inside
 * strings in valid JSON, so no string tracking is needed. */
static bool has_lone_surrogate_escape(const char *s)
{
    for (; *s; s++) {
        if (*s != '\\')
            continue;
        if (s[1] != 'u') {
            s += s[1] != '\0';
            continue;
        }
        int v = hex4(s + 2);
        if (v >= 0xD800 && v <= 0xDBFF) {
            int w = s[6] == '\\' && s[7] == 'u' ? hex4(s + 8) : -1;
            if (w < 0xDC00 || w > 0xDFFF)
                return true;
            s += 11;
        } else if (v >= 0xDC00 && v <= 0xDFFF) {
            return true;
        } else {
            s += 5;
        }
    }
    return false;
}

/* Parses one JSON document into *out (caller frees with jnode_free). */
static int json_parse_tree(const char *text, struct jnode **out, struct pw_error *err)
{
    struct jparse jp = {0};
    int rc = 0;
    if (has_lone_surrogate_escape(text))
        return pw_error_set(err, PW_EINVAL, "config has a lone UTF-16 surrogate escape");
    yajl_handle h = yajl_alloc(&json_callbacks, NULL, &jp);
    if (!h)
        return pw_error_set(err, PW_ENOMEM, "out of memory parsing config");
    yajl_status st = yajl_parse(h, (const unsigned char *)text, strlen(text));
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        if (jp.nomem)
            rc = pw_error_set(err, PW_ENOMEM, "out of memory parsing config");
        else if (jp.not_finite)
            rc = pw_error_set(err, PW_EINVAL,
                              "config contains a number that is not finite: not hashable");
        else if (jp.too_deep)
            rc = pw_error_set(err, PW_EINVAL, "config nests deeper than %d levels", JSON_MAX_DEPTH);
        else
            rc = pw_error_set(err, PW_EINVAL, "config is not valid JSON");
        goto cleanup;
    }
    *out = jp.root;
    jp.root = NULL;
cleanup:
    yajl_free(h);
    jnode_free(jp.root);
    free(jp.pending_key);
    return rc;
}

/* dict semantics: the last member with this name wins. */
static const struct jnode *object_get(const struct jnode *obj, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = obj->nkids; i-- > 0;)
        if (obj->kids[i]->keylen == klen && !memcmp(obj->kids[i]->key, key, klen))
            return obj->kids[i];
    return NULL;
}

/* ---------------------------------------------------------------- UTF-8 and strings */

/* Decodes one UTF-8 sequence at s[*i]; returns the code point or -1 when invalid. */
static long utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    long cp;
    size_t extra;
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
    for (size_t k = 1; k <= extra; k++) {
        if (*i + k >= len || (s[*i + k] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    static const long min_for_len[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[extra] || cp > 0x10FFFF)
        return -1;
    *i += extra + 1;
    return cp;
}

/* One code point as json.dumps(ensure_ascii=True) writes it inside a string. */
static void emit_codepoint(struct strbuf *b, long cp)
{
    char tmp[32];
    switch (cp) {
    case '"':
        strbuf_puts(b, "\\\"");
        return;
    case '\\':
        strbuf_puts(b, "\\\\");
        return;
    case '\n':
        strbuf_puts(b, "\\n");
        return;
    case '\r':
        strbuf_puts(b, "\\r");
        return;
    case '\t':
        strbuf_puts(b, "\\t");
        return;
    case '\b':
        strbuf_puts(b, "\\b");
        return;
    case '\f':
        strbuf_puts(b, "\\f");
        return;
    }
    if (cp >= 0x20 && cp <= 0x7E) {
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

static int emit_string(struct strbuf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    strbuf_put(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        long cp = utf8_next(u, len, &i);
        if (cp < 0)
            return PW_EINVAL;
        emit_codepoint(b, cp);
    }
    strbuf_put(b, "\"", 1);
    return 0;
}

/* ---------------------------------------------------------------- numbers */

/* Shortest-digit candidates: the correctly rounded p-digit decimal, and its two
 * neighbours, which matter where the round-trip interval is lopsided (powers of two). */
static bool roundtrips(const char *text, double value)
{
    return strtod(text, NULL) == value;
}

int metadata_hash_format_double(double value, char *buf, size_t bufsize)
{
    char tmp[48], digits[24];
    int exp10 = 0, ndig = 0;
    bool neg = signbit(value) != 0;
    if (!isfinite(value) || bufsize < 32)
        return PW_EINVAL;
    if (value == 0) {
        snprintf(buf, bufsize, "%s0.0", neg ? "-" : "");
        return 0;
    }
    double mag = fabs(value);
    bool found = false;
    for (int p = 1; p <= 17 && !found; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, mag);
        char *e = strchr(tmp, 'e');
        int x = atoi(e + 1);
        unsigned long long m = 0;
        for (char *q = tmp; q < e; q++)
            if (*q >= '0' && *q <= '9')
                m = m * 10 + (unsigned long long)(*q - '0');
        unsigned long long cand[3] = {m, m + 1, m - 1};
        for (int k = 0; k < 3 && !found; k++) {
            char t2[48];
            /* value = cand * 10^(x - (p - 1)) */
            snprintf(t2, sizeof t2, "%llue%d", cand[k], x - (p - 1));
            if (cand[k] == 0 || !roundtrips(t2, mag))
                continue;
            char ds[24];
            int n = snprintf(ds, sizeof ds, "%llu", cand[k]);
            /* n may be p + 1 when m + 1 carried (999 -> 1000): the exponent moves up. */
            exp10 = x + (n - p);
            while (n > 1 && ds[n - 1] == '0')
                ds[--n] = '\0';
            memcpy(digits, ds, (size_t)n + 1);
            ndig = n;
            found = true;
        }
    }
    if (!found) /* unreachable: 17 significant digits always round-trip */
        return PW_EINVAL;

    size_t o = 0;
    char out[64];
    if (neg)
        out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        int decpt = exp10 + 1; /* digits before the decimal point */
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[o++] = '0';
            memcpy(out + o, digits, (size_t)ndig);
            o += (size_t)ndig;
        } else if (decpt >= ndig) {
            memcpy(out + o, digits, (size_t)ndig);
            o += (size_t)ndig;
            for (int i = 0; i < decpt - ndig; i++)
                out[o++] = '0';
            out[o++] = '.';
            out[o++] = '0';
        } else {
            memcpy(out + o, digits, (size_t)decpt);
            o += (size_t)decpt;
            out[o++] = '.';
            memcpy(out + o, digits + decpt, (size_t)(ndig - decpt));
            o += (size_t)(ndig - decpt);
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (ndig > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(ndig - 1));
            o += (size_t)(ndig - 1);
        }
        snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    if (strlen(out) + 1 > bufsize)
        return PW_EINVAL;
    memcpy(buf, out, strlen(out) + 1);
    return 0;
}

/* A JSON integer literal as Python prints the int: only "-0" changes. */
static void emit_int_literal(struct strbuf *b, const char *text, size_t len)
{
    if (len == 2 && text[0] == '-' && text[1] == '0')
        strbuf_puts(b, "0");
    else
        strbuf_put(b, text, len);
}

/* ---------------------------------------------------------------- canonical values */

struct member_ref {
    const struct jnode *node;
    size_t order; /* position in the source, to keep the last of duplicate names */
};

static int member_cmp(const void *a, const void *b)
{
    const struct jnode *x = ((const struct member_ref *)a)->node;
    const struct jnode *y = ((const struct member_ref *)b)->node;
    size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
    int c = memcmp(x->key, y->key, n);
    if (c)
        return c;
    if (x->keylen != y->keylen)
        return x->keylen < y->keylen ? -1 : 1;
    size_t ox = ((const struct member_ref *)a)->order, oy = ((const struct member_ref *)b)->order;
    return ox < oy ? -1 : ox > oy;
}

static bool is_non_semantic_key(const struct jnode *n)
{
    static const char *const keys[] = {"color_by",    "force",        "metadata_hash",
                                       "sample_size", "sample_limit", "sample_n"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (n->keylen == strlen(keys[i]) && !memcmp(n->key, keys[i], n->keylen))
            return true;
    return false;
}

static int emit_value(struct strbuf *b, const struct jnode *n, bool drop_non_semantic);

/* Sorted by UTF-8 bytes, which orders code points as Python's str comparison does. */
static int emit_object(struct strbuf *b, const struct jnode *n, bool drop_non_semantic)
{
    int rc = 0;
    struct member_ref *refs = NULL;
    if (n->nkids) {
        refs = malloc(n->nkids * sizeof *refs);
        if (!refs)
            return PW_ENOMEM;
    }
    size_t count = 0;
    for (size_t i = 0; i < n->nkids; i++)
        if (!drop_non_semantic || !is_non_semantic_key(n->kids[i]))
            refs[count++] = (struct member_ref){n->kids[i], i};
    if (count)
        qsort(refs, count, sizeof *refs, member_cmp);
    strbuf_put(b, "{", 1);
    bool first = true;
    for (size_t i = 0; i < count; i++) {
        const struct jnode *m = refs[i].node;
        /* duplicate names: Python's dict keeps the last value only */
        if (i + 1 < count && refs[i + 1].node->keylen == m->keylen &&
            !memcmp(refs[i + 1].node->key, m->key, m->keylen))
            continue;
        if (!first)
            strbuf_put(b, ",", 1);
        first = false;
        if ((rc = emit_string(b, m->key, m->keylen)) < 0)
            goto cleanup;
        strbuf_put(b, ":", 1);
        if ((rc = emit_value(b, m, false)) < 0)
            goto cleanup;
    }
    strbuf_put(b, "}", 1);
cleanup:
    free(refs);
    return rc;
}

static int emit_value(struct strbuf *b, const struct jnode *n, bool drop_non_semantic)
{
    char tmp[48];
    int rc;
    switch (n->type) {
    case J_NULL:
        strbuf_puts(b, "null");
        return 0;
    case J_TRUE:
        strbuf_puts(b, "true");
        return 0;
    case J_FALSE:
        strbuf_puts(b, "false");
        return 0;
    case J_INT:
        emit_int_literal(b, n->text, n->len);
        return 0;
    case J_REAL:
        if (metadata_hash_format_double(n->real, tmp, sizeof tmp) < 0)
            return PW_EINVAL;
        strbuf_puts(b, tmp);
        return 0;
    case J_STRING:
        return emit_string(b, n->text, n->len);
    case J_OBJECT:
        return emit_object(b, n, drop_non_semantic);
    case J_ARRAY:
        strbuf_put(b, "[", 1);
        for (size_t i = 0; i < n->nkids; i++) {
            if (i)
                strbuf_put(b, ",", 1);
            if ((rc = emit_value(b, n->kids[i], false)) < 0)
                return rc;
        }
        strbuf_put(b, "]", 1);
        return 0;
    }
    return PW_EINTERNAL;
}

/* ---------------------------------------------------------------- Python int() */

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

/* str.isspace() code points (Python 3.11). */
static bool py_isspace(long cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

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

/* int(s) for a str: writes the normalized decimal (sign only when negative) into *out
 * (sbuf) and returns 0, or returns PW_EINVAL where Python raises ValueError. */
static int py_int_from_str(const char *s, size_t len, struct strbuf *out, bool *negative)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, ndigits = 0;
    long cp = 0;
    *negative = false;
    /* leading whitespace */
    while (i < len) {
        size_t save = i;
        cp = utf8_next(u, len, &i);
        if (cp < 0)
            return PW_EINVAL;
        if (!py_isspace(cp)) {
            i = save;
            break;
        }
    }
    if (i < len && (u[i] == '+' || u[i] == '-')) {
        *negative = u[i] == '-';
        i++;
    }
    bool want_digit = true, seen_digit = false, any_nonzero = false;
    while (i < len) {
        size_t save = i;
        cp = utf8_next(u, len, &i);
        if (cp < 0)
            return PW_EINVAL;
        int d = py_decimal(cp);
        if (d >= 0) {
            if (d || any_nonzero) {
                char c = (char)('0' + d);
                strbuf_put(out, &c, 1);
                any_nonzero = true;
            }
            ndigits++;
            seen_digit = true;
            want_digit = false;
        } else if (cp == '_' && seen_digit && !want_digit) {
            want_digit = true; /* one underscore, then a digit must follow */
        } else {
            i = save;
            break;
        }
    }
    if (!seen_digit || want_digit)
        return PW_EINVAL;
    while (i < len) {
        cp = utf8_next(u, len, &i);
        if (cp < 0 || !py_isspace(cp))
            return PW_EINVAL;
    }
    if (ndigits > PY_INT_MAX_STR_DIGITS)
        return PW_EINVAL;
    if (!any_nonzero) {
        strbuf_put(out, "0", 1);
        *negative = false;
    }
    return 0;
}

/* sample_limit: first of sample_size/sample_limit/sample_n that is present and not
 * null, int() of it, at least 1; 200000 when missing or int() raises TypeError or
 * ValueError.  Writes the decimal into b. */
static int emit_sample_limit(struct strbuf *b, const struct jnode *config)
{
    static const char *const keys[] = {"sample_size", "sample_limit", "sample_n"};
    const struct jnode *raw = NULL;
    char tmp[400];
    for (size_t i = 0; config && i < 3 && !raw; i++) {
        const struct jnode *n = object_get(config, keys[i]);
        if (n && n->type != J_NULL)
            raw = n;
    }
    if (!raw) {
        snprintf(tmp, sizeof tmp, "%d", METADATA_HASH_DEFAULT_SAMPLE);
        strbuf_puts(b, tmp);
        return 0;
    }
    switch (raw->type) {
    case J_TRUE:
    case J_FALSE: /* int(True) == 1, int(False) == 0 -> max(0, 1) == 1 */
        strbuf_puts(b, "1");
        return 0;
    case J_INT:
        if (raw->text[0] == '-' || !strcmp(raw->text, "0"))
            strbuf_puts(b, "1");
        else
            strbuf_put(b, raw->text, raw->len);
        return 0;
    case J_REAL: {
        double t = trunc(raw->real); /* int(float) truncates toward zero */
        if (t < 1)
            strbuf_puts(b, "1");
        else {
            /* glibc prints the exact decimal value of an integral double */
            snprintf(tmp, sizeof tmp, "%.0f", t);
            strbuf_puts(b, tmp);
        }
        return 0;
    }
    case J_STRING: {
        struct strbuf digits = {0};
        bool negative;
        int rc = py_int_from_str(raw->text, raw->len, &digits, &negative);
        if (digits.nomem) {
            free(digits.data);
            return PW_ENOMEM;
        }
        if (rc < 0) {
            snprintf(tmp, sizeof tmp, "%d", METADATA_HASH_DEFAULT_SAMPLE);
            strbuf_puts(b, tmp);
        } else if (negative || !strcmp(digits.data, "0")) {
            strbuf_puts(b, "1");
        } else {
            strbuf_put(b, digits.data, digits.len);
        }
        free(digits.data);
        return 0;
    }
    default: /* list or dict: TypeError */
        snprintf(tmp, sizeof tmp, "%d", METADATA_HASH_DEFAULT_SAMPLE);
        strbuf_puts(b, tmp);
        return 0;
    }
}

/* str(config.get("color_by") or "document_id").lower(), kept only when allowed.  Only
 * a non-empty string can pass: str() of any other truthy value is not a name below. */
static const char *effective_color_by(const struct jnode *config)
{
    static const char *const allowed[] = {"document_id", "source_dir", "filetype", "age_bucket"};
    const struct jnode *n = config ? object_get(config, "color_by") : NULL;
    char lowered[16];
    size_t o = 0;
    if (!n || n->type != J_STRING || n->len == 0)
        return "document_id";
    const unsigned char *u = (const unsigned char *)n->text;
    for (size_t i = 0; i < n->len;) {
        long cp = utf8_next(u, n->len, &i);
        /* U+212A KELVIN SIGN lower-cases to ASCII 'k'; every other non-ASCII code point
         * lower-cases to something non-ASCII, which no allowed name contains. */
        if (cp == 0x212A)
            cp = 'k';
        if (cp < 0 || cp > 0x7F || o + 1 >= sizeof lowered)
            return "document_id";
        lowered[o++] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    }
    lowered[o] = '\0';
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (!strcmp(lowered, allowed[i]))
            return allowed[i];
    return "document_id";
}

/* (reducer or "pca").lower() as a JSON string.  ASCII is lowered by hand; other code
 * points with glibc's C.UTF-8 simple case mapping plus U+0130's two-code-point special
 * case (Python's full mapping).  The context-dependent final sigma is not reproduced. */
static int emit_reducer(struct strbuf *b, const char *reducer)
{
    if (!reducer || !*reducer)
        reducer = "pca";
    size_t len = strlen(reducer);
    const unsigned char *u = (const unsigned char *)reducer;
    locale_t loc = (locale_t)0;
    int rc = 0;
    strbuf_put(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        long cp = utf8_next(u, len, &i);
        if (cp < 0) {
            rc = PW_EINVAL;
            goto cleanup;
        }
        if (cp >= 'A' && cp <= 'Z') {
            cp += 32;
        } else if (cp == 0x130) {
            emit_codepoint(b, 'i');
            cp = 0x307;
        } else if (cp > 0x7F) {
            if (loc == (locale_t)0)
                loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
            if (loc != (locale_t)0)
                cp = (long)towlower_l((wint_t)cp, loc);
        }
        emit_codepoint(b, cp);
    }
    strbuf_put(b, "\"", 1);
cleanup:
    if (loc != (locale_t)0)
        freelocale(loc);
    return rc;
}

/* ---------------------------------------------------------------- the canonical object */

static bool json_falsy(const struct jnode *n)
{
    switch (n->type) {
    case J_NULL:
    case J_FALSE:
        return true;
    case J_INT:
        return !strcmp(n->text, "0") || !strcmp(n->text, "-0");
    case J_REAL:
        return n->real == 0;
    case J_STRING:
        return n->len == 0;
    case J_OBJECT:
    case J_ARRAY:
        return n->nkids == 0;
    default:
        return false;
    }
}

int metadata_hash_canonical(const struct metadata_hash_input *in, char **canonical_out,
                            struct pw_error *err)
{
    struct jnode *tree = NULL;
    const struct jnode *config = NULL; /* NULL stands for {} */
    struct strbuf b = {0};
    char tmp[64];
    int rc = 0;

    if (!in || !canonical_out || !in->collection_id || !in->embedding_model)
        return pw_error_set(err, PW_EINVAL, "metadata hash: missing collection id or model");
    *canonical_out = NULL;
    if (in->config_json) {
        if ((rc = json_parse_tree(in->config_json, &tree, err)) < 0)
            goto cleanup;
        if (tree->type == J_OBJECT)
            config = tree;
        else if (!json_falsy(tree)) { /* dict(config or {}) of a truthy non-dict */
            rc = pw_error_set(err, PW_EINVAL, "config is not a JSON object");
            goto cleanup;
        }
    }

    strbuf_puts(&b, "{\"collection_id\":");
    if (emit_string(&b, in->collection_id, strlen(in->collection_id)) < 0) {
        rc = pw_error_set(err, PW_EINVAL, "collection_id is not valid UTF-8");
        goto cleanup;
    }
    snprintf(tmp, sizeof tmp, ",\"collection_updated_at_us\":%lld",
             (long long)in->collection_updated_at_us);
    strbuf_puts(&b, tmp);
    strbuf_puts(&b, ",\"color_by\":\"");
    strbuf_puts(&b, effective_color_by(config));
    strbuf_puts(&b, "\",\"config\":");
    if (config) {
        if ((rc = emit_object(&b, config, true)) < 0) {
            rc = pw_error_set(err, rc,
                              rc == PW_ENOMEM ? "out of memory"
                                              : "config holds a string that is "
                                                "not valid UTF-8");
            goto cleanup;
        }
    } else {
        strbuf_puts(&b, "{}");
    }
    snprintf(tmp, sizeof tmp, ",\"dimensionality\":%lld", (long long)in->dimensionality);
    strbuf_puts(&b, tmp);
    strbuf_puts(&b, ",\"embedding_model\":");
    if (emit_string(&b, in->embedding_model, strlen(in->embedding_model)) < 0) {
        rc = pw_error_set(err, PW_EINVAL, "embedding_model is not valid UTF-8");
        goto cleanup;
    }
    strbuf_puts(&b, ",\"reducer\":");
    if (emit_reducer(&b, in->reducer) < 0) {
        rc = pw_error_set(err, PW_EINVAL, "reducer is not valid UTF-8");
        goto cleanup;
    }
    strbuf_puts(&b, ",\"sample_limit\":");
    if ((rc = emit_sample_limit(&b, config)) < 0) {
        rc = pw_error_set(err, rc, "out of memory");
        goto cleanup;
    }
    snprintf(tmp, sizeof tmp, ",\"v\":%d,\"vector_count\":%lld}", METADATA_HASH_VERSION,
             (long long)in->vector_count);
    strbuf_puts(&b, tmp);
    if (b.nomem) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory building the canonical text");
        goto cleanup;
    }
    *canonical_out = b.data;
    b.data = NULL;
cleanup:
    free(b.data);
    jnode_free(tree);
    return rc;
}

int metadata_hash_config_text(const json_t *config, char **text_out, struct pw_error *err)
{
    *text_out = NULL;
    if (!config)
        return 0;
    *text_out = json_dumps(config, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (!*text_out)
        return pw_error_set(err, PW_ENOMEM, "cannot serialize the config");
    return 0;
}

int metadata_hash_sha256_hex(const void *data, size_t len, char hex_out[METADATA_HASH_HEX_LEN + 1],
                             struct pw_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return pw_error_set(err, PW_EINTERNAL, "SHA-256 failed in libcrypto");
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex_out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int metadata_hash_compute(const struct metadata_hash_input *in, char **canonical_out,
                          char hex_out[METADATA_HASH_HEX_LEN + 1], struct pw_error *err)
{
    char *text = NULL;
    int rc = metadata_hash_canonical(in, &text, err);
    if (rc < 0)
        return rc;
    rc = metadata_hash_sha256_hex(text, strlen(text), hex_out, err);
    if (rc == 0 && canonical_out) {
        *canonical_out = text;
        text = NULL;
    }
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- timestamps */

static int take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* HH[:MM[:SS[.f+]]] or HH[MM[SS[.f+]]]; fraction truncated to microseconds. */
static int parse_hms(const char **p, int *h, int *m, int *s, int *us)
{
    *h = *m = *s = *us = 0;
    if (take_digits(p, 2, h) < 0)
        return -1;
    bool colon = **p == ':';
    if (colon || is_digit(**p)) {
        *p += colon;
        if (take_digits(p, 2, m) < 0)
            return -1;
        if ((colon && **p == ':') || (!colon && is_digit(**p))) {
            *p += colon;
            if (take_digits(p, 2, s) < 0)
                return -1;
            if (**p == '.' || **p == ',') {
                (*p)++;
                if (!is_digit(**p))
                    return -1;
                int k = 0;
                for (; is_digit(**p); (*p)++, k++)
                    if (k < 6)
                        *us = *us * 10 + (**p - '0');
                for (; k < 6; k++)
                    *us *= 10;
            }
        }
    }
    return (*h > 23 || *m > 59 || *s > 59) ? -1 : 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int metadata_hash_parse_timestamp(const char *text, int64_t *us_out, struct pw_error *err)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = text;
    int y, mo, d, h = 0, mi = 0, s = 0, us = 0;
    int64_t offset_us = 0;
    if (!text)
        goto bad;
    if (take_digits(&p, 4, &y) < 0)
        goto bad;
    bool dash = *p == '-';
    p += dash;
    if (take_digits(&p, 2, &mo) < 0 || (dash && *p++ != '-') || take_digits(&p, 2, &d) < 0)
        goto bad;
    if (y < 1 || mo < 1 || mo > 12 || d < 1)
        goto bad;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        goto bad;
    if (*p) {
        /* any one character separates date and time (fromisoformat, Python 3.11) */
        const unsigned char c = (unsigned char)*p;
        p += c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (parse_hms(&p, &h, &mi, &s, &us) < 0)
            goto bad;
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om, os, ous;
            if (parse_hms(&p, &oh, &om, &os, &ous) < 0)
                goto bad;
            offset_us = sign * (((int64_t)oh * 3600 + om * 60 + os) * 1000000 + ous);
        }
        if (*p)
            goto bad;
    }
    int64_t days = days_from_civil(y, mo, d);
    *us_out = ((days * 86400 + h * 3600 + mi * 60 + s) * 1000000 + us) - offset_us;
    return 0;
bad:
    return pw_error_set(err, PW_EINVAL, "timestamp is not ISO-8601 as fromisoformat reads it");
}
