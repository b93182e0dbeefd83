/* metadata_hash.c - canonical JSON and SHA-256 of a projection request (contract v1).
 *
 * Python's json.dumps decides the bytes, so this file reproduces its rules rather than
 * any C library's: jansson prints upper-case \u escapes and %.17g floats, and it cannot
 * hold integers beyond 64 bits, so the config is parsed with yajl's event parser into a
 * small tree that keeps each number's source digits and each string's exact bytes
 * (embedded NULs included).  The tree lives only for one call.
 *
 * Python semantics reproduced here, all from metadata_hash_reference.py:
 *   - int() of the sample value (bool, int, float truncation, py_int_digits for str),
 *     then max(value, 1);
 *   - str(color_by or "document_id").lower() against the four allowed names;
 *   - (reducer or "pca").lower();
 *   - repr(float) and json.dumps string escaping, from pycompat (the tree printer here
 *     exists because only it keeps big integers exact; the rules live in pycompat). */
#include "metadata_hash.h"

#include "pycompat.h"

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
        } else if (v >= 0) {
            s += 5;
        } /* not four hex digits (the text may end there): invalid JSON, yajl says so */
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

/* ---------------------------------------------------------------- numbers */

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
        if ((rc = py_json_put_string(b, m->key, m->keylen)) < 0)
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
        if (py_float_repr(n->real, tmp, sizeof tmp) < 0)
            return PW_EINVAL;
        strbuf_puts(b, tmp);
        return 0;
    case J_STRING:
        return py_json_put_string(b, n->text, n->len);
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
        int rc = py_int_digits(raw->text, raw->len, &digits, &negative);
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
    for (size_t i = 0; i < n->len;) {
        long cp = py_utf8_next(n->text, n->len, &i);
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
    locale_t loc = (locale_t)0;
    int rc = 0;
    strbuf_put(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        long cp = py_utf8_next(reducer, len, &i);
        if (cp < 0) {
            rc = PW_EINVAL;
            goto cleanup;
        }
        if (cp >= 'A' && cp <= 'Z') {
            cp += 32;
        } else if (cp == 0x130) {
            py_json_put_codepoint(b, 'i');
            cp = 0x307;
        } else if (cp > 0x7F) {
            if (loc == (locale_t)0)
                loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
            if (loc != (locale_t)0)
                cp = (long)towlower_l((wint_t)cp, loc);
        }
        py_json_put_codepoint(b, cp);
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
                            struct metadata_hash_effective *eff, struct pw_error *err)
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
    if (py_json_put_string(&b, in->collection_id, strlen(in->collection_id)) < 0) {
        rc = pw_error_set(err, PW_EINVAL, "collection_id is not valid UTF-8");
        goto cleanup;
    }
    snprintf(tmp, sizeof tmp, ",\"collection_updated_at_us\":%lld",
             (long long)in->collection_updated_at_us);
    strbuf_puts(&b, tmp);
    const char *color_by = effective_color_by(config);
    strbuf_puts(&b, ",\"color_by\":\"");
    strbuf_puts(&b, color_by);
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
    if (py_json_put_string(&b, in->embedding_model, strlen(in->embedding_model)) < 0) {
        rc = pw_error_set(err, PW_EINVAL, "embedding_model is not valid UTF-8");
        goto cleanup;
    }
    strbuf_puts(&b, ",\"reducer\":");
    if (emit_reducer(&b, in->reducer) < 0) {
        rc = pw_error_set(err, PW_EINVAL, "reducer is not valid UTF-8");
        goto cleanup;
    }
    strbuf_puts(&b, ",\"sample_limit\":");
    size_t sample_limit_at = b.len;
    if ((rc = emit_sample_limit(&b, config)) < 0) {
        rc = pw_error_set(err, rc, "out of memory");
        goto cleanup;
    }
    if (eff && !b.nomem) {
        eff->color_by = color_by;
        eff->sample_limit = strtod(b.data + sample_limit_at, NULL); /* stops at the digits' end */
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
    int rc = metadata_hash_canonical(in, &text, NULL, err);
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

int metadata_hash_request(const struct metadata_hash_input *in,
                          char hex_out[METADATA_HASH_HEX_LEN + 1],
                          struct metadata_hash_effective *eff, struct pw_error *err)
{
    char *text = NULL;
    int rc = metadata_hash_canonical(in, &text, eff, err);
    if (rc == 0)
        rc = metadata_hash_sha256_hex(text, strlen(text), hex_out, err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- timestamps */

int metadata_hash_parse_timestamp(const char *text, int64_t *us_out, struct pw_error *err)
{
    if (py_fromisoformat(text, us_out) < 0)
        return pw_error_set(err, PW_EINVAL, "timestamp is not ISO-8601 as fromisoformat reads it");
    return 0;
}
