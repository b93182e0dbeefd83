/* qdrant_page.c - streaming parser of one scroll response into a qdrant_matrix.
 *
 * Why yajl: it is a Debian package the project already allows, it tokenizes at several
 * hundred MB/s, it accepts input in arbitrary chunks (tokens split across chunk
 * boundaries are reassembled in its own reused buffer) and, with the yajl_number
 * callback, hands us number text instead of calling strtod itself.  A DOM (jansson) is
 * 10x slower here and would allocate per number; a full hand-written tokenizer would
 * redo what yajl already does well (house rule).  Only the one hot spot, the inside of
 * a dense vector array, is scanned by hand (see "Vector fast path" below).
 *
 * The parser is a small state machine over the only shape we care about:
 *   {"result": {"points": [ {"id", "payload", "vector"} ... ], "next_page_offset"},
 *    "status", "time", ...}
 * A stack of frames records which of those objects/arrays we are in; any value we do
 * not need is skipped by counting nesting depth.  Vector numbers are written straight
 * into row m->n of the matrix; a point is committed (n++) only when its object closes
 * with an id and a complete dense vector, so a skipped or failed point leaves nothing.
 * Payload fields named by enum qdrant_field are appended to the matrix arena as
 * records [field u8][kind u8][empty u8][pad u8][len u32][text][NUL].
 *
 * Vector fast path: yajl's per-token work is most of the cost of a page, and a page is
 * mostly vector numbers.  So feed() cuts each chunk after every '[' and, when yajl has
 * just opened the vector we want (frame FR_VEC_FIRST), scans that array's bytes itself
 * (numbers, commas, whitespace; numbers split across chunks are stashed) until ']',
 * then hands yajl a synthetic "]" so its nesting stays right.  yajl never sees the
 * numbers.  On anything but well-formed numbers, commas and whitespace (a multivector,
 * a string, bad number grammar, the body ending inside the array) the fast path hands
 * the rest back to yajl after replaying a placeholder that puts yajl in the same state
 * (hand_back), so yajl's rules decide errors and truncation exactly as without the fast
 * path; only "not a finite float32" is reported here, by the same function yajl's
 * number callback uses.  The fuzz tests require identical results with and without
 * the fast path, whole and chunked. */
#include "qdrant.h"
#include "qdrant_f32.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

enum frame {
    FR_TOP,       /* the response object */
    FR_RESULT,    /* result */
    FR_POINTS,    /* result.points */
    FR_POINT,     /* one record */
    FR_PAYLOAD,   /* its payload */
    FR_META,      /* payload.metadata */
    FR_VECS,      /* its vector, when it is a map of named vectors */
    FR_VEC_FIRST, /* a vector array before its first element */
    FR_VEC_DENSE, /* a vector array of numbers */
    FR_VEC_FAST,  /* a vector array whose bytes the fast path is reading */
    FR_VEC_SYNTH, /* fast path handed back: next number is a synthetic placeholder */
    FR_STATUS     /* {"error": ...} in place of "ok" */
};

enum key {
    K_NONE,
    K_RESULT,
    K_STATUS,
    K_POINTS,
    K_NEXT,
    K_ID,
    K_PAYLOAD,
    K_VECTOR,
    K_FIELD,
    K_METADATA,
    K_VEC_CAND,
    K_ERROR
};

enum vec_state { VS_NONE, VS_DENSE, VS_SKIP };

#define MAX_FRAMES 12
#define FIELD_MARK 0xFE /* record for a "metadata" key: kind says what its value was */
#define NO_CAPTURE ((size_t)-1)
#define REC_HEADER 8

struct qdrant_page_parser {
    yajl_handle h;
    struct qdrant_matrix *m;
    const char *vname;
    size_t vname_len;
    size_t limit;
    int keep_payload;
    int no_fast_path;

    /* vector fast path (see the top of the file) */
    int fast, fast_closed, fast_refused, handback, fs, fs_before_number;
    char *numbuf; /* a number split across chunks; reused, grown geometrically */
    size_t numlen, numcap;

    size_t n0, arena0, dim0, skipped0; /* rollback point */
    int finished_ok, failed;

    uint8_t fr[MAX_FRAMES];
    int sp;
    int key, key_field;
    size_t skip;        /* > 0: inside a value we ignore, at this depth */
    size_t capture_rec; /* arena offset of an OBJECT/ARRAY field record awaiting a member */
    int seen_top, seen_points, status; /* status: 0 absent, 1 "ok", -1 error */
    char status_msg[160];

    /* the point being read */
    size_t pt_index;
    int id_seen;
    struct qdrant_id id;
    int vec_state, vec_decided;
    size_t vec_len, col, row_cap;
    float *row;
    size_t pt_arena0;

    struct qdrant_page page;
    struct pw_error err;
};

/* ---- ids ------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hyphenated (8-4-4-4-12) or 32 plain hex digits, any case. */
static int parse_uuid(const char *s, size_t len, uint8_t out[16])
{
    int hyph = len == 36;
    size_t i = 0, k = 0;
    if (len != 36 && len != 32)
        return -1;
    while (i < len) {
        if (hyph && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return -1;
            i++;
            continue;
        }
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[k++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return k == 16 ? 0 : -1;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

size_t qdrant_id_format(const struct qdrant_id *id, char buf[QDRANT_ID_TEXT_MAX])
{
    static const char hex[] = "0123456789abcdef";
    if (id->kind == QDRANT_ID_NUM)
        return (size_t)snprintf(buf, QDRANT_ID_TEXT_MAX, "%llu", (unsigned long long)id->u.num);
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[k++] = '-';
        buf[k++] = hex[id->u.uuid[i] >> 4];
        buf[k++] = hex[id->u.uuid[i] & 15];
    }
    buf[k] = '\0';
    return k;
}

/* ---- matrix storage -------------------------------------------------------------- */

void qdrant_matrix_init(struct qdrant_matrix *m)
{
    memset(m, 0, sizeof *m);
}

void qdrant_matrix_free(struct qdrant_matrix *m)
{
    if (!m)
        return;
    free(m->x);
    free(m->ids);
    free(m->pay_off);
    free(m->arena);
    qdrant_matrix_init(m);
}

void qdrant_matrix_clear(struct qdrant_matrix *m)
{
    m->n = 0;
    m->skipped = 0;
    m->arena_len = 0;
}

/* Makes room for `rows` rows (ids, payload offsets, and floats once dim is known).
 * Capacity doubles, but never past `max_rows` (0: no bound) unless `rows` needs it, so
 * a low points_count estimate cannot make a sample_limit-sized matrix twice as big. */
static int matrix_grow(struct qdrant_matrix *m, size_t rows, size_t max_rows)
{
    if (rows > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        if (max_rows && cap > max_rows)
            cap = max_rows;
        if (cap < rows)
            cap = rows;
        struct qdrant_id *ids = realloc(m->ids, cap * sizeof *ids);
        if (!ids)
            return PW_ENOMEM;
        m->ids = ids;
        size_t *po = realloc(m->pay_off, (cap + 1) * sizeof *po);
        if (!po)
            return PW_ENOMEM;
        if (!m->pay_off)
            po[0] = 0;
        m->pay_off = po;
        m->cap = cap;
    }
    if (m->dim && m->x_cap < m->cap * m->dim) {
        if (m->cap > SIZE_MAX / sizeof(float) / m->dim)
            return PW_ENOMEM;
        float *x = realloc(m->x, m->cap * m->dim * sizeof *x);
        if (!x)
            return PW_ENOMEM;
        m->x = x;
        m->x_cap = m->cap * m->dim;
    }
    return 0;
}

int qdrant_matrix_reserve(struct qdrant_matrix *m, size_t n_max, size_t dim, struct pw_error *err)
{
    if (m->n && dim && m->dim && dim != m->dim)
        return pw_error_set(err, PW_EINVAL, "matrix already holds rows of %zu floats", m->dim);
    if (dim)
        m->dim = dim;
    if (n_max == 0)
        n_max = 1;
    if (matrix_grow(m, n_max, n_max) < 0) /* exactly n_max rows, no doubling */
        return pw_error_set(err, PW_ENOMEM, "cannot allocate %zu x %zu float32 matrix", n_max, dim);
    return 0;
}

static int arena_reserve(struct qdrant_matrix *m, size_t extra)
{
    if (m->arena_len + extra <= m->arena_cap)
        return 0;
    size_t cap = m->arena_cap ? m->arena_cap : 4096;
    while (cap < m->arena_len + extra)
        cap *= 2;
    char *a = realloc(m->arena, cap);
    if (!a)
        return PW_ENOMEM;
    m->arena = a;
    m->arena_cap = cap;
    return 0;
}

/* Appends a field record; returns its arena offset or NO_CAPTURE when out of memory. */
static size_t arena_record(struct qdrant_matrix *m, int field, int kind, const char *text,
                           size_t len)
{
    if (len > UINT32_MAX || arena_reserve(m, REC_HEADER + len + 1) < 0)
        return NO_CAPTURE;
    size_t off = m->arena_len;
    char *r = m->arena + off;
    uint32_t l32 = (uint32_t)len;
    r[0] = (char)field;
    r[1] = (char)kind;
    r[2] = (kind == QDRANT_V_OBJECT || kind == QDRANT_V_ARRAY) ? 1 : 0; /* empty until a member */
    r[3] = 0;
    memcpy(r + 4, &l32, 4);
    if (len)
        memcpy(r + REC_HEADER, text, len);
    r[REC_HEADER + len] = '\0';
    m->arena_len += REC_HEADER + len + 1;
    return off;
}

static int field_is_meta(int f)
{
    return f >= QDRANT_F_META_SOURCE_PATH && f < QDRANT_F_COUNT;
}

struct qdrant_value qdrant_matrix_field(const struct qdrant_matrix *m, size_t i,
                                        enum qdrant_field f)
{
    struct qdrant_value v = {QDRANT_V_ABSENT, "", 0, 0};
    if (!m || i >= m->n || !m->arena)
        return v;
    const char *a = m->arena + m->pay_off[i], *end = m->arena + m->pay_off[i + 1];
    while (a < end) {
        uint32_t len;
        memcpy(&len, a + 4, 4);
        int field = (unsigned char)a[0];
        if (field == FIELD_MARK && field_is_meta((int)f)) {
            v.kind = QDRANT_V_ABSENT; /* a later "metadata" key replaces the earlier one */
            v.text = "";
            v.len = 0;
            v.empty = 0;
        } else if (field == (int)f) {
            v.kind = (enum qdrant_value_kind)(unsigned char)a[1];
            v.empty = a[2];
            v.text = a + REC_HEADER;
            v.len = len;
        }
        a += REC_HEADER + len + 1;
    }
    return v;
}

/* ---- parser helpers -------------------------------------------------------------- */

/* Payload keys of the fields kept; the META_* ones are keys inside "metadata". */
static const char *const field_keys[QDRANT_F_COUNT] = {
    [QDRANT_F_DOC_ID] = "doc_id",
    [QDRANT_F_DOCUMENT_ID] = "document_id",
    [QDRANT_F_CHUNK_ID] = "chunk_id",
    [QDRANT_F_SOURCE_ID] = "source_id",
    [QDRANT_F_SOURCE_PATH] = "source_path",
    [QDRANT_F_PATH] = "path",
    [QDRANT_F_MIME_TYPE] = "mime_type",
    [QDRANT_F_INGESTED_AT] = "ingested_at",
    [QDRANT_F_CREATED_AT] = "created_at",
    [QDRANT_F_UPDATED_AT] = "updated_at",
    [QDRANT_F_TIMESTAMP] = "timestamp",
    [QDRANT_F_META_SOURCE_PATH] = "source_path",
    [QDRANT_F_META_MIME_TYPE] = "mime_type",
    [QDRANT_F_META_INGESTED_AT] = "ingested_at",
    [QDRANT_F_META_CREATED_AT] = "created_at",
    [QDRANT_F_META_UPDATED_AT] = "updated_at",
    [QDRANT_F_META_TIMESTAMP] = "timestamp",
};

const char *qdrant_field_key(enum qdrant_field f)
{
    return f >= 0 && f < QDRANT_F_COUNT ? field_keys[f] : NULL;
}

static int key_is(const unsigned char *k, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(k, lit, n) == 0;
}

static void point_label(const struct qdrant_page_parser *p, char *buf, size_t size)
{
    if (p->id_seen) {
        char id[QDRANT_ID_TEXT_MAX];
        qdrant_id_format(&p->id, id);
        snprintf(buf, size, "point %s", id);
    } else {
        snprintf(buf, size, "point #%zu of the page (before its id)", p->pt_index);
    }
}

static int fail_point(struct qdrant_page_parser *p, const char *what)
{
    char label[80];
    point_label(p, label, sizeof label);
    pw_error_set(&p->err, PW_EPROTO, "qdrant scroll: %s: %s", label, what);
    return 0;
}

static int fail(struct qdrant_page_parser *p, int code, const char *what)
{
    pw_error_set(&p->err, code, "qdrant scroll: %s", what);
    return 0;
}

static int push(struct qdrant_page_parser *p, int frame)
{
    if (p->sp == MAX_FRAMES)
        return fail(p, PW_EINTERNAL, "frame stack overflow");
    p->fr[p->sp++] = (uint8_t)frame;
    return 1;
}

static int take_key(struct qdrant_page_parser *p)
{
    int k = p->key;
    p->key = K_NONE;
    return k;
}

/* First token inside a skipped OBJECT/ARRAY field: it has members. */
static void touch_capture(struct qdrant_page_parser *p)
{
    if (p->skip == 1 && p->capture_rec != NO_CAPTURE) {
        p->m->arena[p->capture_rec + 2] = 0;
        p->capture_rec = NO_CAPTURE;
    }
}

static int store_field(struct qdrant_page_parser *p, int field, int kind, const char *t, size_t len)
{
    size_t off = arena_record(p->m, field, kind, t, len);
    if (off == NO_CAPTURE)
        return fail(p, PW_ENOMEM, "out of memory for payload fields");
    if (kind == QDRANT_V_OBJECT || kind == QDRANT_V_ARRAY) {
        p->capture_rec = off;
        p->skip = 1;
    }
    return 1;
}

static void begin_point(struct qdrant_page_parser *p)
{
    p->pt_index++;
    p->id_seen = 0;
    p->vec_state = VS_NONE;
    p->vec_decided = 0;
    p->vec_len = 0;
    p->col = 0;
    p->pt_arena0 = p->m->arena_len;
}

enum fast_state { FS_FIRST, FS_VALUE, FS_AFTER, FS_NUMBER };

static int begin_vector(struct qdrant_page_parser *p)
{
    struct qdrant_matrix *m = p->m;
    p->vec_state = VS_NONE;
    p->col = 0;
    p->fast_refused = 0;
    if (m->dim) {
        if (matrix_grow(m, m->n + 1, p->limit) < 0)
            return fail(p, PW_ENOMEM, "out of memory for the vector matrix");
        p->row = m->x + m->n * m->dim;
        p->row_cap = m->dim;
    } else { /* n == 0: the first row doubles as a growable scratch row */
        p->row = m->x;
        p->row_cap = m->x_cap;
    }
    return push(p, FR_VEC_FIRST);
}

static int store_value(struct qdrant_page_parser *p, float v)
{
    if (p->col >= p->row_cap && !p->m->dim) {
        struct qdrant_matrix *m = p->m;
        size_t cap = m->x_cap ? m->x_cap * 2 : 1024;
        float *x = realloc(m->x, cap * sizeof *x);
        if (!x)
            return fail(p, PW_ENOMEM, "out of memory for the first vector");
        m->x = x;
        m->x_cap = cap;
        p->row = x;
        p->row_cap = cap;
    }
    if (p->col < p->row_cap)
        p->row[p->col] = v;
    p->col++; /* past dim: counted, not stored; end_point reports the mismatch */
    return 1;
}

static int bad_number(struct qdrant_page_parser *p, const char *s, size_t len)
{
    char what[96];
    snprintf(what, sizeof what, "vector value %.*s is not a finite float32",
             (int)(len > 40 ? 40 : len), s);
    return fail_point(p, what);
}

static int vector_number(struct qdrant_page_parser *p, const char *s, size_t len)
{
    float v;
    if (qdrant_f32_parse(s, len, &v) != 0 || !isfinite(v))
        return bad_number(p, s, len);
    return store_value(p, v);
}

static int end_point(struct qdrant_page_parser *p)
{
    struct qdrant_matrix *m = p->m;
    if (!p->id_seen)
        return fail_point(p, "record has no id");
    if (p->vec_state != VS_DENSE) {
        m->arena_len = p->pt_arena0;
        m->skipped++;
        p->page.skipped++;
        return 1;
    }
    if (p->vec_len == 0)
        return fail_point(p, "vector is empty");
    if (!m->dim) {
        m->dim = p->vec_len;
    } else if (p->vec_len != m->dim) {
        char what[96];
        snprintf(what, sizeof what, "vector has %zu values, expected %zu (mixed dimensions)",
                 p->vec_len, m->dim);
        return fail_point(p, what);
    }
    if (matrix_grow(m, m->n + 1, p->limit) < 0)
        return fail(p, PW_ENOMEM, "out of memory for the vector matrix");
    m->ids[m->n] = p->id;
    m->pay_off[m->n + 1] = m->arena_len;
    m->n++;
    p->page.kept++;
    return 1;
}

static int set_next_offset(struct qdrant_page_parser *p, int is_string, const char *s, size_t len)
{
    struct qdrant_id id;
    if (is_string) {
        if (parse_uuid(s, len, id.u.uuid) < 0)
            return fail(p, PW_EPROTO, "next_page_offset is neither a u64 nor a UUID");
        id.kind = QDRANT_ID_UUID;
        char txt[QDRANT_ID_TEXT_MAX];
        qdrant_id_format(&id, txt);
        snprintf(p->page.next_offset, sizeof p->page.next_offset, "\"%s\"", txt);
    } else {
        if (parse_u64(s, len, &id.u.num) < 0)
            return fail(p, PW_EPROTO, "next_page_offset is neither a u64 nor a UUID");
        memcpy(p->page.next_offset, s, len);
        p->page.next_offset[len] = '\0';
    }
    p->page.has_next = 1;
    return 1;
}

/* ---- yajl callbacks -------------------------------------------------------------- */

#define BEGIN_CONTINUE 2

/* The start of a scalar or an array inside the response object: BEGIN_CONTINUE with *k
 * the key it is the value of, or what the callback returns now - 1 inside a skipped
 * value (only the capture of a payload field's text moves on; `opens` is 1 for an
 * array, whose end will close one more level), 0 when the response is no object. */
static int begin_value(struct qdrant_page_parser *p, int opens, int *k)
{
    if (p->skip) {
        touch_capture(p);
        p->skip += opens;
        return 1;
    }
    if (p->sp == 0)
        return fail(p, PW_EPROTO, "response is not a JSON object");
    *k = take_key(p);
    return BEGIN_CONTINUE;
}

/* kind: a QDRANT_V_* scalar kind; s/len: its text (numbers raw, strings decoded). */
static int on_scalar(struct qdrant_page_parser *p, int kind, const char *s, size_t len)
{
    int k, rc = begin_value(p, 0, &k);
    if (rc != BEGIN_CONTINUE)
        return rc;
    switch (p->fr[p->sp - 1]) {
    case FR_TOP:
        if (k == K_STATUS) {
            if (kind == QDRANT_V_STRING && len == 2 && memcmp(s, "ok", 2) == 0) {
                p->status = 1;
            } else {
                p->status = -1;
                snprintf(p->status_msg, sizeof p->status_msg, "status %.*s",
                         (int)(len > 100 ? 100 : len), s);
            }
        } else if (k == K_RESULT && kind != QDRANT_V_NULL) {
            return fail(p, PW_EPROTO, "result is not an object");
        }
        return 1;
    case FR_RESULT:
        if (k == K_POINTS)
            return fail(p, PW_EPROTO, "result.points is not an array");
        if (k == K_NEXT) {
            if (kind == QDRANT_V_NULL)
                return 1;
            if (kind != QDRANT_V_STRING && kind != QDRANT_V_INT)
                return fail(p, PW_EPROTO, "next_page_offset is neither a u64 nor a UUID");
            return set_next_offset(p, kind == QDRANT_V_STRING, s, len);
        }
        return 1;
    case FR_POINTS:
        return fail(p, PW_EPROTO, "an element of result.points is not an object");
    case FR_POINT:
        if (k == K_ID) {
            if (kind == QDRANT_V_INT && parse_u64(s, len, &p->id.u.num) == 0) {
                p->id.kind = QDRANT_ID_NUM;
            } else if (kind == QDRANT_V_STRING && parse_uuid(s, len, p->id.u.uuid) == 0) {
                p->id.kind = QDRANT_ID_UUID;
            } else {
                p->id_seen = 0;
                return fail_point(p, "id is neither a u64 nor a UUID");
            }
            p->id_seen = 1;
        } else if (k == K_VECTOR) {
            p->vec_state = kind == QDRANT_V_NULL ? VS_NONE : VS_SKIP;
        } else if (k == K_PAYLOAD) {
            p->m->arena_len = p->pt_arena0; /* a repeated "payload" key replaces the first */
        }
        return 1;
    case FR_PAYLOAD:
        if (k == K_FIELD)
            return store_field(p, p->key_field, kind, s, len);
        if (k == K_METADATA)
            return store_field(p, FIELD_MARK, kind, "", 0);
        return 1;
    case FR_META:
        if (k == K_FIELD)
            return store_field(p, p->key_field, kind, s, len);
        return 1;
    case FR_VECS:
        if (k == K_VEC_CAND && kind != QDRANT_V_NULL) {
            p->vec_decided = 1; /* a number or string where a vector belongs: unusable */
            p->vec_state = VS_SKIP;
        }
        return 1;
    case FR_VEC_FIRST:
    case FR_VEC_DENSE:
        return fail_point(p, "vector contains a value that is not a number");
    case FR_STATUS:
        if (k == K_ERROR && kind == QDRANT_V_STRING)
            snprintf(p->status_msg, sizeof p->status_msg, "%.*s", (int)(len > 150 ? 150 : len), s);
        return 1;
    }
    return 1;
}

static int cb_null(void *ctx)
{
    return on_scalar(ctx, QDRANT_V_NULL, "", 0);
}

static int cb_boolean(void *ctx, int b)
{
    return on_scalar(ctx, b ? QDRANT_V_TRUE : QDRANT_V_FALSE, "", 0);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
    struct qdrant_page_parser *p = ctx;
    if (!p->skip && p->sp) {
        int f = p->fr[p->sp - 1];
        if (f == FR_VEC_DENSE)
            return vector_number(p, s, len);
        if (f == FR_VEC_FIRST) {
            p->fr[p->sp - 1] = FR_VEC_DENSE;
            return vector_number(p, s, len);
        }
        if (f == FR_VEC_SYNTH) { /* stands for values the fast path already stored */
            p->fr[p->sp - 1] = FR_VEC_DENSE;
            return 1;
        }
    }
    int is_float = memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len);
    return on_scalar(p, is_float ? QDRANT_V_FLOAT : QDRANT_V_INT, s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    return on_scalar(ctx, QDRANT_V_STRING, (const char *)s, len);
}

static int cb_start_map(void *ctx)
{
    struct qdrant_page_parser *p = ctx;
    if (p->skip) {
        touch_capture(p);
        p->skip++;
        return 1;
    }
    if (p->sp == 0) {
        p->seen_top = 1;
        return push(p, FR_TOP);
    }
    int k = take_key(p);
    if (k == K_FIELD) /* a kept payload field (K_FIELD only arises in those frames) */
        return store_field(p, p->key_field, QDRANT_V_OBJECT, "", 0);
    switch (p->fr[p->sp - 1]) {
    case FR_TOP:
        if (k == K_RESULT)
            return push(p, FR_RESULT);
        if (k == K_STATUS) {
            p->status = -1;
            snprintf(p->status_msg, sizeof p->status_msg, "error status without message");
            return push(p, FR_STATUS);
        }
        break;
    case FR_RESULT:
        if (k == K_POINTS)
            return fail(p, PW_EPROTO, "result.points is not an array");
        if (k == K_NEXT)
            return fail(p, PW_EPROTO, "next_page_offset is neither a u64 nor a UUID");
        break;
    case FR_POINTS:
        p->page.points++;
        if (p->limit && p->m->n >= p->limit)
            break; /* enough rows: read past the rest of the page */
        begin_point(p);
        return push(p, FR_POINT);
    case FR_POINT:
        if (k == K_ID)
            return fail_point(p, "id is neither a u64 nor a UUID");
        if (k == K_VECTOR) {
            p->vec_state = VS_NONE;
            p->vec_decided = 0;
            return push(p, FR_VECS);
        }
        if (k == K_PAYLOAD) {
            p->m->arena_len = p->pt_arena0;
            if (p->keep_payload)
                return push(p, FR_PAYLOAD);
        }
        break;
    case FR_PAYLOAD:
        if (k == K_METADATA) {
            if (!store_field(p, FIELD_MARK, QDRANT_V_OBJECT, "", 0))
                return 0;
            p->skip = 0; /* the marker needs no member tracking: descend instead */
            p->capture_rec = NO_CAPTURE;
            return push(p, FR_META);
        }
        break;
    case FR_VECS:
        if (k == K_VEC_CAND) { /* sparse vector {"indices","values"}: not projected */
            p->vec_decided = 1;
            p->vec_state = VS_SKIP;
        }
        break;
    case FR_VEC_FIRST:
    case FR_VEC_DENSE:
        return fail_point(p, "vector contains a value that is not a number");
    default:
        break;
    }
    p->skip = 1;
    return 1;
}

/* The keys each frame knows by name; payload fields and vector names are matched apart. */
static const struct {
    int frame;
    const char *name;
    int key;
} frame_keys[] = {
    {FR_TOP, "result", K_RESULT},     {FR_TOP, "status", K_STATUS},
    {FR_RESULT, "points", K_POINTS},  {FR_RESULT, "next_page_offset", K_NEXT},
    {FR_POINT, "id", K_ID},           {FR_POINT, "vector", K_VECTOR},
    {FR_POINT, "payload", K_PAYLOAD}, {FR_PAYLOAD, "metadata", K_METADATA},
    {FR_STATUS, "error", K_ERROR},
};

static int cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct qdrant_page_parser *p = ctx;
    if (p->skip) {
        touch_capture(p);
        return 1;
    }
    p->key = K_NONE;
    for (size_t i = 0; i < sizeof frame_keys / sizeof frame_keys[0]; i++) {
        if (frame_keys[i].frame == p->fr[p->sp - 1] && key_is(s, len, frame_keys[i].name)) {
            p->key = frame_keys[i].key;
            return 1;
        }
    }
    switch (p->fr[p->sp - 1]) {
    case FR_PAYLOAD:
    case FR_META: { /* the payload's own fields, or the META_* ones inside "metadata" */
        int meta = p->fr[p->sp - 1] == FR_META;
        int end = meta ? QDRANT_F_COUNT : QDRANT_F_META_SOURCE_PATH;
        for (int f = meta ? QDRANT_F_META_SOURCE_PATH : 0; f < end; f++) {
            if (key_is(s, len, field_keys[f])) {
                p->key = K_FIELD;
                p->key_field = f;
                return 1;
            }
        }
        break;
    }
    case FR_VECS:
        if (p->vname ? (len == p->vname_len && memcmp(s, p->vname, len) == 0) : !p->vec_decided)
            p->key = K_VEC_CAND;
        break;
    default:
        break;
    }
    return 1;
}

/* The frame a closing } or ] ends, or -1 inside a skipped value (which may end the
 * capture of a payload field's text). */
static int close_frame(struct qdrant_page_parser *p)
{
    if (p->skip) {
        if (--p->skip == 0)
            p->capture_rec = NO_CAPTURE;
        return -1;
    }
    p->key = K_NONE;
    return p->fr[--p->sp];
}

static int cb_end_map(void *ctx)
{
    struct qdrant_page_parser *p = ctx;
    int f = close_frame(p);
    if (f == FR_POINT)
        return end_point(p);
    return 1;
}

static int cb_start_array(void *ctx)
{
    struct qdrant_page_parser *p = ctx;
    int k, rc = begin_value(p, 1, &k);
    if (rc != BEGIN_CONTINUE)
        return rc;
    if (k == K_FIELD) /* a kept payload field (K_FIELD only arises in those frames) */
        return store_field(p, p->key_field, QDRANT_V_ARRAY, "", 0);
    switch (p->fr[p->sp - 1]) {
    case FR_TOP:
        if (k == K_RESULT)
            return fail(p, PW_EPROTO, "result is not an object");
        break;
    case FR_RESULT:
        if (k == K_POINTS) {
            p->seen_points = 1;
            return push(p, FR_POINTS);
        }
        if (k == K_NEXT)
            return fail(p, PW_EPROTO, "next_page_offset is neither a u64 nor a UUID");
        break;
    case FR_POINTS:
        return fail(p, PW_EPROTO, "an element of result.points is not an object");
    case FR_POINT:
        if (k == K_ID)
            return fail_point(p, "id is neither a u64 nor a UUID");
        if (k == K_VECTOR) {
            if (p->vname && p->vname_len) { /* a plain vector has no name to match */
                p->vec_state = VS_NONE;
                break;
            }
            return begin_vector(p);
        }
        if (k == K_PAYLOAD)
            p->m->arena_len = p->pt_arena0;
        break;
    case FR_PAYLOAD:
        if (k == K_METADATA) {
            if (!store_field(p, FIELD_MARK, QDRANT_V_ARRAY, "", 0))
                return 0;
            p->capture_rec = NO_CAPTURE;
            return 1; /* store_field set skip = 1 */
        }
        break;
    case FR_VECS:
        if (k == K_VEC_CAND) {
            p->vec_decided = 1;
            return begin_vector(p);
        }
        break;
    case FR_VEC_FIRST: /* [[...]]: a multivector, never projected (ndim 2 in Python) */
        p->sp--;
        p->vec_state = VS_SKIP;
        p->skip = 2;
        return 1;
    case FR_VEC_DENSE:
        return fail_point(p, "vector contains a value that is not a number");
    default:
        break;
    }
    p->skip = 1;
    return 1;
}

static int cb_end_array(void *ctx)
{
    struct qdrant_page_parser *p = ctx;
    int f = close_frame(p);
    if (f == FR_VEC_FIRST || f == FR_VEC_DENSE || f == FR_VEC_FAST) {
        p->vec_state = VS_DENSE;
        p->vec_len = p->col;
    }
    return 1;
}

static const yajl_callbacks callbacks = {
    cb_null,      cb_boolean, NULL,       NULL,           cb_number,    cb_string,
    cb_start_map, cb_map_key, cb_end_map, cb_start_array, cb_end_array,
};

/* ---- public parser API ----------------------------------------------------------- */

int qdrant_page_parser_new(struct qdrant_page_parser **out, struct qdrant_matrix *m,
                           const struct qdrant_parse_opts *opts, struct pw_error *err)
{
    struct qdrant_page_parser *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return pw_error_set(err, PW_ENOMEM, "out of memory for the page parser");
    p->h = yajl_alloc(&callbacks, NULL, p);
    if (!p->h) {
        free(p);
        return pw_error_set(err, PW_ENOMEM, "out of memory for the page parser");
    }
    p->m = m;
    if (opts) {
        p->vname = opts->vector_name;
        p->vname_len = opts->vector_name ? strlen(opts->vector_name) : 0;
        p->limit = opts->limit;
        p->keep_payload = opts->keep_payload;
        p->no_fast_path = opts->no_fast_path;
    }
    if (matrix_grow(m, m->n + 1, opts ? opts->limit : 0) <
        0) { /* pay_off[0] must exist before the first commit */
        qdrant_page_parser_free(p);
        return pw_error_set(err, PW_ENOMEM, "out of memory for the vector matrix");
    }
    p->n0 = m->n;
    p->arena0 = m->arena_len;
    p->dim0 = m->dim;
    p->skipped0 = m->skipped;
    p->capture_rec = NO_CAPTURE;
    *out = p;
    return 0;
}

static int parser_failed(struct qdrant_page_parser *p, struct pw_error *err)
{
    p->failed = 1;
    if (err)
        *err = p->err;
    return p->err.code;
}

static int yajl_feed(struct qdrant_page_parser *p, const char *buf, size_t len)
{
    yajl_status st = yajl_parse(p->h, (const unsigned char *)buf, len);
    if (st == yajl_status_ok)
        return 0;
    if (st == yajl_status_error) {
        unsigned char *msg = yajl_get_error(p->h, 0, NULL, 0);
        char label[80];
        point_label(p, label, sizeof label);
        pw_error_set(&p->err, PW_EPROTO, "qdrant scroll: malformed JSON near %s: %s", label,
                     msg ? (const char *)msg : "?");
        if (msg)
            yajl_free_error(p->h, msg);
    }
    return -1;
}

/* JSON's four whitespace characters. */
static inline int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const uint8_t number_char[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['-'] = 1, ['+'] = 1, ['.'] = 1, ['e'] = 1, ['E'] = 1,
};

static int stash_number(struct qdrant_page_parser *p, const char *s, size_t len)
{
    if (p->numlen + len > p->numcap) {
        size_t cap = p->numcap ? p->numcap : 64;
        while (cap < p->numlen + len)
            cap *= 2;
        char *b = realloc(p->numbuf, cap);
        if (!b)
            return fail(p, PW_ENOMEM, "out of memory for a number");
        p->numbuf = b;
        p->numcap = cap;
    }
    memcpy(p->numbuf + p->numlen, s, len);
    p->numlen += len;
    return 1;
}

/* Reads vector bytes from s and returns where it stopped.  It clears p->fast when the
 * array closed (p->fast_closed: yajl still needs its "]") or when it meets anything but
 * well-formed numbers (p->handback: the rest goes to yajl, see hand_back).  NULL after
 * an error (a value that is not a finite float32, out of memory). */
static const char *fast_vector(struct qdrant_page_parser *p, const char *s, const char *end)
{
    while (s < end) {
        const char *q;
        float v;
        char c = *s;
        if (p->fs == FS_NUMBER) {
            for (q = s; q < end && number_char[(unsigned char)*q]; q++)
                ;
            if (!stash_number(p, s, (size_t)(q - s)))
                return NULL;
            if (q == end)
                return end;
            if (qdrant_f32_parse(p->numbuf, p->numlen, &v) != 0) {
                p->fast = 0;
                p->handback = 1; /* hand_back feeds numbuf to yajl */
                return q;
            }
            if (!isfinite(v)) {
                bad_number(p, p->numbuf, p->numlen);
                return NULL;
            }
            if (!store_value(p, v))
                return NULL;
            p->fs = FS_AFTER;
            s = q;
            continue;
        }
        if (is_ws(c)) {
            s++;
            continue;
        }
        if (p->fs == FS_AFTER && c == ',') {
            p->fs = FS_VALUE;
            s++;
            continue;
        }
        if (c == ']' && p->fs != FS_VALUE) {
            p->fast = 0;
            p->fast_closed = 1;
            return s + 1;
        }
        if (p->fs != FS_AFTER && (c == '-' || (c >= '0' && c <= '9'))) {
            /* one pass: parse, then make sure the number-like run ended where the
             * number did (else the run is judged whole: "1-2" is not "1") */
            if (qdrant_f32_parse_prefix(s, end, &v, &q) != 0 || q == end ||
                number_char[(unsigned char)*q]) {
                for (q = s; q < end && number_char[(unsigned char)*q]; q++)
                    ;
                if (q == end) {
                    p->numlen = 0;
                    p->fs_before_number = p->fs;
                    p->fs = FS_NUMBER;
                    return stash_number(p, s, (size_t)(q - s)) ? end : NULL;
                }
                if (qdrant_f32_parse(s, (size_t)(q - s), &v) != 0)
                    break; /* not JSON number grammar: yajl reports it */
            }
            if (!isfinite(v)) {
                bad_number(p, s, (size_t)(q - s));
                return NULL;
            }
            if (!store_value(p, v))
                return NULL;
            p->fs = FS_AFTER;
            s = q;
            continue;
        }
        break; /* [[..]], ["x"], [1 2], [1,]: yajl's rules apply from here */
    }
    if (s < end) {
        p->fast = 0;
        p->handback = 1;
    }
    return s;
}

/* Puts yajl, which saw only the '[', in the state the fast path reached, so that it
 * can take over: nothing read yet -> as is; after a value -> a placeholder number
 * ("0 ", ignored through FR_VEC_SYNTH); after a comma -> "0,".  A number split across
 * chunks is replayed from numbuf. */
static int hand_back(struct qdrant_page_parser *p)
{
    int before = p->fs == FS_NUMBER ? p->fs_before_number : p->fs;
    p->handback = 0;
    p->fast = 0;
    p->fast_refused = 1;
    if (before == FS_FIRST) {
        p->fr[p->sp - 1] = FR_VEC_FIRST;
    } else {
        p->fr[p->sp - 1] = FR_VEC_SYNTH;
        if (yajl_feed(p, before == FS_VALUE ? "0," : "0 ", 2) < 0)
            return -1;
    }
    if (p->fs == FS_NUMBER && yajl_feed(p, p->numbuf, p->numlen) < 0)
        return -1;
    return 0;
}

int qdrant_page_parser_feed(struct qdrant_page_parser *p, const char *buf, size_t len,
                            struct pw_error *err)
{
    const char *s = buf, *end = buf + len;
    if (p->failed)
        return parser_failed(p, err);
    while (s < end) {
        if (p->fast) {
            s = fast_vector(p, s, end);
            if (!s)
                return parser_failed(p, err);
            if (p->fast_closed) {
                p->fast_closed = 0;
                if (yajl_feed(p, "]", 1) < 0)
                    return parser_failed(p, err);
            } else if (p->handback && hand_back(p) < 0) {
                return parser_failed(p, err);
            }
            continue;
        }
        const char *cut = p->no_fast_path ? NULL : memchr(s, '[', (size_t)(end - s));
        const char *stop = cut ? cut + 1 : end;
        if (yajl_feed(p, s, (size_t)(stop - s)) < 0)
            return parser_failed(p, err);
        s = stop;
        if (cut && !p->skip && p->sp && p->fr[p->sp - 1] == FR_VEC_FIRST && !p->fast_refused) {
            p->fr[p->sp - 1] = FR_VEC_FAST;
            p->fast = 1;
            p->fs = FS_FIRST;
        }
    }
    return 0;
}

int qdrant_page_parser_finish(struct qdrant_page_parser *p, struct qdrant_page *page,
                              struct pw_error *err)
{
    if (p->failed)
        return parser_failed(p, err);
    if (p->fast && hand_back(p) < 0) /* the body ended inside a vector: yajl judges */
        return parser_failed(p, err);
    yajl_status st = yajl_complete_parse(p->h);
    if (st == yajl_status_client_canceled)
        return parser_failed(p, err);
    if (st != yajl_status_ok || !p->seen_top) {
        pw_error_set(&p->err, PW_EUNAVAIL, "qdrant scroll: response body ended early (truncated)");
        return parser_failed(p, err);
    }
    if (p->status < 0) {
        pw_error_set(&p->err, PW_EPROTO, "qdrant scroll: server reported an error: %s",
                     p->status_msg);
        return parser_failed(p, err);
    }
    if (!p->seen_points) {
        pw_error_set(&p->err, PW_EPROTO, "qdrant scroll: response has no result.points array");
        return parser_failed(p, err);
    }
    p->finished_ok = 1;
    if (page)
        *page = p->page;
    return 0;
}

void qdrant_page_parser_free(struct qdrant_page_parser *p)
{
    if (!p)
        return;
    if (!p->finished_ok && p->m) {
        p->m->n = p->n0;
        p->m->arena_len = p->arena0;
        p->m->dim = p->dim0;
        p->m->skipped = p->skipped0;
    }
    if (p->h)
        yajl_free(p->h);
    free(p->numbuf);
    free(p);
}

int qdrant_page_parse(struct qdrant_matrix *m, const struct qdrant_parse_opts *opts,
                      const char *buf, size_t len, struct qdrant_page *page, struct pw_error *err)
{
    struct qdrant_page_parser *p = NULL;
    int rc = qdrant_page_parser_new(&p, m, opts, err);
    if (rc < 0)
        return rc;
    rc = qdrant_page_parser_feed(p, buf, len, err);
    if (rc == 0)
        rc = qdrant_page_parser_finish(p, page, err);
    qdrant_page_parser_free(p);
    return rc;
}

/* ---- windows: pages parsed in parallel into one matrix (qdrant_scroll.c) ------------
 *
 * A window is a qdrant_matrix whose rows and ids are a slice of the final matrix
 * (borrowed) and whose payload offsets and arena are its own (owned, reused from page
 * to page).  Its capacity is exactly `rows` and the page parser is given limit = rows,
 * so matrix_grow() never reallocates the borrowed arrays.  Committing moves the rows
 * down to m->n when earlier pages kept fewer rows than they asked for (skipped points),
 * then appends ids and payload records to m. */

int qdrant_window_open(struct qdrant_window *win, struct qdrant_matrix *m, size_t base, size_t rows,
                       struct pw_error *err)
{
    struct qdrant_matrix *w = &win->w;
    if (!m->dim || rows == 0 || base + rows > m->cap || m->x_cap < m->cap * m->dim)
        return pw_error_set(err, PW_EINVAL, "window of %zu rows at %zu does not fit the matrix",
                            rows, base);
    if (rows + 1 > win->pay_cap) {
        size_t *po = realloc(win->pay_off, (rows + 1) * sizeof *po);
        if (!po)
            return pw_error_set(err, PW_ENOMEM, "out of memory for payload offsets");
        win->pay_off = po;
        win->pay_cap = rows + 1;
    }
    win->base = base;
    w->x = m->x + base * m->dim;
    w->dim = m->dim;
    w->n = 0;
    w->ids = m->ids + base;
    w->skipped = 0;
    w->cap = rows;
    w->x_cap = rows * m->dim;
    w->pay_off = win->pay_off;
    w->pay_off[0] = 0;
    w->arena_len = 0; /* w->arena and arena_cap stay: the window owns them */
    return 0;
}

int qdrant_window_commit(struct qdrant_window *win, struct qdrant_matrix *m, struct pw_error *err)
{
    struct qdrant_matrix *w = &win->w;
    if (win->base < m->n || win->base + w->n > m->cap)
        return pw_error_set(err, PW_EINVAL,
                            "window at row %zu commits behind the matrix (%zu rows)", win->base,
                            m->n);
    if (arena_reserve(m, w->arena_len) < 0)
        return pw_error_set(err, PW_ENOMEM, "out of memory for payload fields");
    if (win->base != m->n && w->n) {
        memmove(m->x + m->n * m->dim, w->x, w->n * m->dim * sizeof *m->x);
        memmove(m->ids + m->n, w->ids, w->n * sizeof *m->ids);
    }
    if (w->arena_len)
        memcpy(m->arena + m->arena_len, w->arena, w->arena_len);
    for (size_t i = 0; i < w->n; i++)
        m->pay_off[m->n + i + 1] = m->arena_len + w->pay_off[i + 1];
    m->arena_len += w->arena_len;
    m->n += w->n;
    m->skipped += w->skipped;
    w->n = 0;
    return 0;
}

void qdrant_window_free(struct qdrant_window *win)
{
    if (!win)
        return;
    free(win->pay_off);
    free(win->w.arena);
    memset(win, 0, sizeof *win);
}

/* ---- next_page_offset from the tail of a body ------------------------------------- */

int qdrant_page_peek_next(const char *tail, size_t len, int *has_next,
                          char next_offset[QDRANT_OFFSET_TEXT_MAX])
{
    static const char key[] = "\"next_page_offset\"";
    const size_t klen = sizeof key - 1;
    if (len < klen)
        return 0;
    for (size_t at = len - klen + 1; at-- > 0;) {
        if (memcmp(tail + at, key, klen) != 0)
            continue;
        /* it must follow the points array: ] , "next_page_offset" */
        size_t b = at;
        while (b > 0 && is_ws(tail[b - 1]))
            b--;
        if (b == 0 || tail[--b] != ',')
            return 0;
        while (b > 0 && is_ws(tail[b - 1]))
            b--;
        if (b == 0 || tail[b - 1] != ']')
            return 0;
        size_t i = at + klen;
        while (i < len && is_ws(tail[i]))
            i++;
        if (i >= len || tail[i++] != ':')
            return 0;
        while (i < len && is_ws(tail[i]))
            i++;
        size_t v0 = i;
        struct qdrant_id id;
        if (i < len && tail[i] == '"') {
            size_t e = ++i;
            while (e < len && tail[e] != '"')
                e++;
            if (e >= len || parse_uuid(tail + i, e - i, id.u.uuid) < 0)
                return 0;
            i = e + 1;
        } else if (len - i >= 4 && memcmp(tail + i, "null", 4) == 0) {
            i += 4;
        } else {
            while (i < len && tail[i] >= '0' && tail[i] <= '9')
                i++;
            if (parse_u64(tail + v0, i - v0, &id.u.num) < 0)
                return 0;
        }
        size_t v1 = i;
        while (i < len && is_ws(tail[i]))
            i++;
        if (i >= len || tail[i] != '}') /* the end of "result" */
            return 0;
        if (tail[v0] == 'n') {
            *has_next = 0;
            next_offset[0] = '\0';
        } else if (tail[v0] == '"') {
            char txt[QDRANT_ID_TEXT_MAX];
            id.kind = QDRANT_ID_UUID;
            qdrant_id_format(&id, txt);
            snprintf(next_offset, QDRANT_OFFSET_TEXT_MAX, "\"%s\"", txt);
            *has_next = 1;
        } else {
            memcpy(next_offset, tail + v0, v1 - v0);
            next_offset[v1 - v0] = '\0';
            *has_next = 1;
        }
        return 1;
    }
    return 0;
}
