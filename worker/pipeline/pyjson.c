/* pyjson.c - json.dumps(v, indent=N, sort_keys=True) of a jansson value, byte for byte.
 *
 * jansson's own json_dumps cannot be used: it prints upper-case \u escapes, %.17g reals
 * and ", " / ":" separators that differ from Python's.  The rules below follow CPython's
 * json/encoder.py (_make_iterencode with indent, encode_basestring_ascii):
 *   - escapes: \" \\ \n \r \t \b \f, every other character outside ' '..'~' as \u%04x,
 *     code points above U+FFFF as a surrogate pair;
 *   - keys sorted by code point, which for valid UTF-8 is plain byte order;
 *   - reals through metadata_hash_format_double (repr(float)).
 * Output goes into one growable buffer; the first allocation failure is remembered and
 * reported once at the end. */
#include "strbuf.h"
#include "pyjson.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metadata_hash.h"

static void obuf_newline(struct strbuf *b, int indent, int level)
{
    strbuf_put(b, "\n", 1);
    for (long i = 0; i < (long)indent * level; i++)
        strbuf_put(b, " ", 1);
}

/* Decodes one UTF-8 sequence at s[*i] (strict: no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char c = s[*i];
    uint32_t v, min;
    size_t n;
    if (c < 0x80) {
        *cp = c;
        (*i)++;
        return 0;
    } else if ((c & 0xe0) == 0xc0) {
        v = c & 0x1f, n = 2, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        v = c & 0x0f, n = 3, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        v = c & 0x07, n = 4, min = 0x10000;
    } else {
        return -1;
    }
    if (*i + n > len)
        return -1;
    for (size_t k = 1; k < n; k++) {
        unsigned char d = s[*i + k];
        if ((d & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (d & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *cp = v;
    *i += n;
    return 0;
}

static int emit_string(struct strbuf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    char esc[16];
    size_t i = 0;
    strbuf_put(b, "\"", 1);
    while (i < len) {
        /* Copy the longest run of characters that need no escape in one go. */
        size_t start = i;
        while (i < len && s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '"' && s[i] != '\\')
            i++;
        strbuf_put(b, str + start, i - start);
        if (i >= len)
            break;
        uint32_t cp;
        if (utf8_next(s, len, &i, &cp) < 0)
            return -1;
        switch (cp) {
        case '"':
            strbuf_put(b, "\\\"", 2);
            break;
        case '\\':
            strbuf_put(b, "\\\\", 2);
            break;
        case '\n':
            strbuf_put(b, "\\n", 2);
            break;
        case '\r':
            strbuf_put(b, "\\r", 2);
            break;
        case '\t':
            strbuf_put(b, "\\t", 2);
            break;
        case '\b':
            strbuf_put(b, "\\b", 2);
            break;
        case '\f':
            strbuf_put(b, "\\f", 2);
            break;
        default:
            if (cp < 0x10000) {
                snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            } else {
                uint32_t v = cp - 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", (unsigned)(0xd800 | (v >> 10)),
                         (unsigned)(0xdc00 | (v & 0x3ff)));
            }
            strbuf_puts(b, esc);
        }
    }
    strbuf_put(b, "\"", 1);
    return 0;
}

struct member {
    const char *key;
    size_t key_len;
    json_t *value;
};

static int member_cmp(const void *pa, const void *pb)
{
    const struct member *a = pa, *b = pb;
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c)
        return c;
    return (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

static int emit_value(struct strbuf *b, const json_t *v, int indent, int level,
                      struct pw_error *err);

static int emit_object(struct strbuf *b, const json_t *v, int indent, int level,
                       struct pw_error *err)
{
    json_t *obj = (json_t *)v; /* jansson's iterators take non-const; nothing is modified */
    size_t n = json_object_size(obj), k = 0;
    struct member *m = NULL;
    int rc = 0;
    if (n == 0) {
        strbuf_put(b, "{}", 2);
        return 0;
    }
    m = calloc(n, sizeof *m);
    if (!m) {
        rc = pw_error_set(err, PW_ENOMEM, "pyjson: out of memory sorting %zu keys", n);
        goto cleanup;
    }
    for (void *it = json_object_iter(obj); it && k < n; it = json_object_iter_next(obj, it)) {
        m[k].key = json_object_iter_key(it);
        m[k].key_len = json_object_iter_key_len(it);
        m[k].value = json_object_iter_value(it);
        k++;
    }
    qsort(m, k, sizeof *m, member_cmp);
    strbuf_put(b, "{", 1);
    for (size_t i = 0; i < k; i++) {
        if (i)
            strbuf_put(b, ",", 1);
        obuf_newline(b, indent, level + 1);
        if (emit_string(b, m[i].key, m[i].key_len) < 0) {
            rc = pw_error_set(err, PW_EINVAL, "pyjson: object key is not valid UTF-8");
            goto cleanup;
        }
        strbuf_put(b, ": ", 2);
        if ((rc = emit_value(b, m[i].value, indent, level + 1, err)) < 0)
            goto cleanup;
    }
    obuf_newline(b, indent, level);
    strbuf_put(b, "}", 1);
cleanup:
    free(m);
    return rc;
}

static int emit_value(struct strbuf *b, const json_t *v, int indent, int level,
                      struct pw_error *err)
{
    char num[48];
    int rc;
    if (level >= PYJSON_MAX_DEPTH)
        return pw_error_set(err, PW_EINVAL, "pyjson: value nested deeper than %d levels",
                            PYJSON_MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_NULL:
        strbuf_put(b, "null", 4);
        return 0;
    case JSON_TRUE:
        strbuf_put(b, "true", 4);
        return 0;
    case JSON_FALSE:
        strbuf_put(b, "false", 5);
        return 0;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        strbuf_puts(b, num);
        return 0;
    case JSON_REAL: {
        double d = json_real_value(v);
        /* jansson refuses non-finite reals today; print them as Python would anyway. */
        if (isnan(d))
            strbuf_puts(b, "NaN");
        else if (isinf(d))
            strbuf_puts(b, d > 0 ? "Infinity" : "-Infinity");
        else if (metadata_hash_format_double(d, num, sizeof num) < 0)
            return pw_error_set(err, PW_EINTERNAL, "pyjson: cannot format a real");
        else
            strbuf_puts(b, num);
        return 0;
    }
    case JSON_STRING:
        if (emit_string(b, json_string_value(v), json_string_length(v)) < 0)
            return pw_error_set(err, PW_EINVAL, "pyjson: string is not valid UTF-8");
        return 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0) {
            strbuf_put(b, "[]", 2);
            return 0;
        }
        strbuf_put(b, "[", 1);
        for (size_t i = 0; i < n; i++) {
            if (i)
                strbuf_put(b, ",", 1);
            obuf_newline(b, indent, level + 1);
            if ((rc = emit_value(b, json_array_get(v, i), indent, level + 1, err)) < 0)
                return rc;
        }
        obuf_newline(b, indent, level);
        strbuf_put(b, "]", 1);
        return 0;
    }
    case JSON_OBJECT:
        return emit_object(b, v, indent, level, err);
    }
    return pw_error_set(err, PW_EINTERNAL, "pyjson: unknown jansson type");
}

int pyjson_dumps_indent(const json_t *v, int indent, char **out, struct pw_error *err)
{
    struct strbuf b = {0};
    int rc;
    if (out)
        *out = NULL;
    if (!v || !out || indent < 0) {
        rc = pw_error_set(err, PW_EINVAL, "pyjson: need a value, an output and indent >= 0");
        goto cleanup;
    }
    if ((rc = emit_value(&b, v, indent, 0, err)) < 0)
        goto cleanup;
    strbuf_put(&b, "", 0); /* an empty buffer still becomes "" */
    if (b.nomem) {
        rc = pw_error_set(err, PW_ENOMEM, "pyjson: out of memory (%zu bytes printed)", b.len);
        goto cleanup;
    }
    *out = b.data;
    b.data = NULL;
cleanup:
    free(b.data);
    return rc;
}
