/* py_json.c - json.dumps(v, sort_keys=True) of a jansson value, byte for byte, in the two
 * forms the worker writes: indent=N (meta.json) and separators=(",", ":") (canonical).
 *
 * jansson's own json_dumps cannot be used: it prints upper-case \u escapes, %.17g reals
 * and ", " / ":" separators that differ from Python's.  The rules follow CPython's
 * json/encoder.py (_make_iterencode, encode_basestring_ascii): strings through
 * py_json_put_string, reals through py_float_repr, keys sorted by code point (for valid
 * UTF-8 that is plain byte order).  Output goes into one strbuf; the first allocation
 * failure is remembered and reported once at the end. */
#include "pycompat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dump {
    struct strbuf b;
    int indent; /* PY_JSON_COMPACT or spaces per level */
    struct pw_error *err;
};

/* Before a member: "," unless first, then a newline and indentation unless compact. */
static void put_separator(struct dump *d, bool first, int level)
{
    if (!first)
        strbuf_put(&d->b, ",", 1);
    if (d->indent < 0)
        return;
    strbuf_put(&d->b, "\n", 1);
    for (long i = 0; i < (long)d->indent * level; i++)
        strbuf_put(&d->b, " ", 1);
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

static int put_value(struct dump *d, const json_t *v, int level);

static int put_object(struct dump *d, const json_t *v, int level)
{
    json_t *obj = (json_t *)v; /* jansson's iterators take non-const; nothing is modified */
    size_t n = json_object_size(obj), k = 0;
    struct member *m = NULL;
    int rc = 0;

    if (n == 0) {
        strbuf_put(&d->b, "{}", 2);
        return 0;
    }
    m = calloc(n, sizeof *m);
    if (!m) {
        rc = pw_error_set(d->err, PW_ENOMEM, "py_json: out of memory sorting %zu keys", n);
        goto cleanup;
    }
    for (void *it = json_object_iter(obj); it && k < n; it = json_object_iter_next(obj, it)) {
        m[k].key = json_object_iter_key(it);
        m[k].key_len = json_object_iter_key_len(it);
        m[k].value = json_object_iter_value(it);
        k++;
    }
    qsort(m, k, sizeof *m, member_cmp);
    strbuf_put(&d->b, "{", 1);
    for (size_t i = 0; i < k; i++) {
        put_separator(d, i == 0, level + 1);
        if (py_json_put_string(&d->b, m[i].key, m[i].key_len) < 0) {
            rc = pw_error_set(d->err, PW_EINVAL, "py_json: object key is not valid UTF-8");
            goto cleanup;
        }
        strbuf_puts(&d->b, d->indent < 0 ? ":" : ": ");
        if ((rc = put_value(d, m[i].value, level + 1)) < 0)
            goto cleanup;
    }
    put_separator(d, true, level);
    strbuf_put(&d->b, "}", 1);
cleanup:
    free(m);
    return rc;
}

static int put_array(struct dump *d, const json_t *v, int level)
{
    size_t n = json_array_size(v);
    int rc;

    if (n == 0) {
        strbuf_put(&d->b, "[]", 2);
        return 0;
    }
    strbuf_put(&d->b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        put_separator(d, i == 0, level + 1);
        if ((rc = put_value(d, json_array_get(v, i), level + 1)) < 0)
            return rc;
    }
    put_separator(d, true, level);
    strbuf_put(&d->b, "]", 1);
    return 0;
}

static int put_value(struct dump *d, const json_t *v, int level)
{
    char num[48];

    if (level >= PY_JSON_MAX_DEPTH)
        return pw_error_set(d->err, PW_EINVAL, "py_json: value nested deeper than %d levels",
                            PY_JSON_MAX_DEPTH);
    switch (json_typeof(v)) {
    case JSON_NULL:
        strbuf_put(&d->b, "null", 4);
        return 0;
    case JSON_TRUE:
        strbuf_put(&d->b, "true", 4);
        return 0;
    case JSON_FALSE:
        strbuf_put(&d->b, "false", 5);
        return 0;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        strbuf_puts(&d->b, num);
        return 0;
    case JSON_REAL:
        /* jansson holds finite reals only, so repr() always succeeds. */
        if (py_float_repr(json_real_value(v), num, sizeof num) < 0)
            return pw_error_set(d->err, PW_EINTERNAL, "py_json: cannot format a real");
        strbuf_puts(&d->b, num);
        return 0;
    case JSON_STRING:
        if (py_json_put_string(&d->b, json_string_value(v), json_string_length(v)) < 0)
            return pw_error_set(d->err, PW_EINVAL, "py_json: string is not valid UTF-8");
        return 0;
    case JSON_ARRAY:
        return put_array(d, v, level);
    case JSON_OBJECT:
        return put_object(d, v, level);
    }
    return pw_error_set(d->err, PW_EINTERNAL, "py_json: unknown jansson type");
}

int py_json_dumps(const json_t *v, int indent, char **out, struct pw_error *err)
{
    struct dump d = {{0}, indent, err};
    int rc;

    if (out)
        *out = NULL;
    if (!v || !out || indent < PY_JSON_COMPACT) {
        rc = pw_error_set(err, PW_EINVAL,
                          "py_json: need a value, an output and indent >= 0 or PY_JSON_COMPACT");
        goto cleanup;
    }
    if ((rc = put_value(&d, v, 0)) < 0)
        goto cleanup;
    strbuf_put(&d.b, "", 0); /* an empty buffer still becomes "" */
    if (d.b.nomem) {
        rc = pw_error_set(err, PW_ENOMEM, "py_json: out of memory (%zu bytes printed)", d.b.len);
        goto cleanup;
    }
    *out = d.b.data;
    d.b.data = NULL;
cleanup:
    free(d.b.data);
    return rc;
}
