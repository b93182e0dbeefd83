/* categories.c - colour categories as the Python task derives them (see header).
 *
 * Python semantics reproduced here, because they decide labels users see:
 * `a or b` picks the first *truthy* value (py_truthy: 0, "", [], {}, false, null are
 * skipped); str() of non-strings prints them as Python would (py_str); pathlib's
 * PurePosixPath collapses repeated slashes and "." parts, keeps a "//" anchor, and a
 * suffix needs a dot that is neither first nor last in the name. */
#include "categories.h"

#include "pycompat.h"

#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <wchar.h>
#include <wctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define UNKNOWN_LABEL  "unknown"
#define OVERFLOW_LABEL "Other"

/* ---- Python value helpers ------------------------------------------------------ */

/* First truthy value among payload[keys...] (NULL-terminated), or NULL. */
static json_t *first_truthy(json_t *obj, const char *const *keys)
{
    for (; *keys; keys++) {
        json_t *v = json_is_object(obj) ? json_object_get(obj, *keys) : NULL;
        if (v && py_truthy(v))
            return v;
    }
    return NULL;
}

/* Python's `a or b or c`: the first truthy operand, else the *last* operand as it is
 * (so `{"source_id": 0}` yields 0, which str() makes "0").  NULL stands for None. */
static json_t *python_or(json_t *const *vals, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (vals[i] && py_truthy(vals[i]))
            return vals[i];
    return n ? vals[n - 1] : NULL;
}

/* ---- pathlib.PurePosixPath ----------------------------------------------------- */

struct pypath {
    const char *parts[256];
    size_t lens[256];
    size_t n;
    const char *anchor; /* "", "/" or "//" */
};

static void pypath_parse(const char *s, struct pypath *p)
{
    size_t lead = strspn(s, "/");

    p->n = 0;
    p->anchor = lead == 0 ? "" : lead == 2 ? "//" : "/";
    s += lead;
    while (*s) {
        size_t len = strcspn(s, "/");
        if (len && !(len == 1 && s[0] == '.') && p->n < 256) {
            p->parts[p->n] = s;
            p->lens[p->n++] = len;
        }
        s += len;
        s += strspn(s, "/");
    }
}

/* Returns the suffix of the last part (".txt") as pointer/length, or length 0. */
static size_t pypath_suffix(const struct pypath *p, const char **suffix)
{
    const char *name;
    size_t len, i;

    if (!p->n)
        return 0;
    name = p->parts[p->n - 1];
    len = p->lens[p->n - 1];
    for (i = len; i > 0 && name[i - 1] != '.'; i--)
        ;
    if (i == 0)
        return 0;
    i--; /* index of the last dot */
    if (i > 0 && i < len - 1) {
        *suffix = name + i;
        return len - i;
    }
    return 0;
}

/* str(v), whole, malloc'd: py_str into a buffer that grows until the text fits (a
 * string's own length is enough at once).  NULL when out of memory. */
static char *py_str_dup(const json_t *v)
{
    size_t cap = json_is_string(v) ? json_string_length(v) + 1 : 64;

    for (;;) {
        char *buf = malloc(cap);
        if (!buf || !py_str(v, buf, cap))
            return buf;
        free(buf);
        if (cap > SIZE_MAX / 2)
            return NULL;
        cap *= 2;
    }
}

static json_t *metadata_of(json_t *payload)
{
    json_t *m = json_object_get(payload, "metadata");
    return json_is_object(m) ? m : NULL;
}

static char *label_source_dir(json_t *payload)
{
    static const char *const path_keys[] = {"path", NULL};
    static const char *const meta_keys[] = {"source_path", NULL};
    json_t *v = json_object_get(payload, "source_path");
    struct pypath p;
    const char *suffix;

    if (!v || !py_truthy(v)) {
        v = first_truthy(payload, path_keys);
        if (!v)
            v = first_truthy(metadata_of(payload), meta_keys);
    }
    if (!json_is_string(v) || !json_string_length(v))
        return strdup(UNKNOWN_LABEL);
    pypath_parse(json_string_value(v), &p);
    if (pypath_suffix(&p, &suffix) && p.n >= 2)
        return strndup(p.parts[p.n - 2], p.lens[p.n - 2]);
    if (p.n)
        return strndup(p.parts[p.n - 1], p.lens[p.n - 1]);
    /* No parts: str(path) is the anchor, or "." for an empty relative path. */
    return strdup(*p.anchor ? p.anchor : ".");
}

/* The C.UTF-8 locale gives towlower_l() Unicode case mappings; it is created once and
 * never changes afterwards, so sharing it between threads is safe. */
static locale_t utf8_locale;
static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;

static void utf8_locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Python's str.lower() for UTF-8 text, in place (one-to-one mappings; a lower-case
 * form that needs more bytes than the original keeps the original character). */
static void lower_utf8(char *s)
{
    char *w = s;
    mbstate_t in, out;
    size_t n;
    wchar_t wc;

    pthread_once(&utf8_locale_once, utf8_locale_init);
    if (!utf8_locale) {
        for (; *s; s++)
            *s = (char)tolower((unsigned char)*s);
        return;
    }
    /* uselocale() switches only this thread's locale, and only for this loop. */
    locale_t previous = uselocale(utf8_locale);
    memset(&in, 0, sizeof in);
    while (*s) {
        char buf[MB_LEN_MAX];
        size_t m;
        n = mbrtowc(&wc, s, MB_LEN_MAX, &in);
        if (n == (size_t)-1 || n == (size_t)-2 || n == 0) { /* invalid: copy the byte */
            *w++ = *s++;
            memset(&in, 0, sizeof in);
            continue;
        }
        memset(&out, 0, sizeof out);
        m = wcrtomb(buf, (wchar_t)towlower((wint_t)wc), &out);
        if (m != (size_t)-1 && m <= n) {
            memcpy(w, buf, m);
            w += m;
        } else {
            memmove(w, s, n);
            w += n;
        }
        s += n;
    }
    *w = '\0';
    uselocale(previous);
}

static char *label_filetype(json_t *payload)
{
    static const char *const mime_keys[] = {"mime_type", NULL};
    static const char *const path_keys[] = {"path", "source_path", NULL};
    static const char *const meta_path[] = {"source_path", NULL};
    json_t *meta = metadata_of(payload);
    json_t *mime = first_truthy(payload, mime_keys);
    json_t *path;
    struct pypath p;
    const char *suffix;
    char *label;
    size_t n;

    if (!mime)
        mime = first_truthy(meta, mime_keys);
    if (json_is_string(mime)) {
        if ((label = strndup(json_string_value(mime), json_string_length(mime))))
            lower_utf8(label);
        return label;
    }
    path = first_truthy(payload, path_keys);
    if (!path)
        path = first_truthy(meta, meta_path);
    if (json_is_string(path) && (pypath_parse(json_string_value(path), &p), 1) &&
        (n = pypath_suffix(&p, &suffix)) > 0) {
        size_t dots = 0;
        while (dots < n && suffix[dots] == '.')
            dots++;
        if (dots < n) {
            if ((label = strndup(suffix + dots, n - dots)))
                lower_utf8(label);
            return label;
        }
    }
    return strdup(UNKNOWN_LABEL);
}

/* ---- timestamps ------------------------------------------------------------------ */

static int parse_timestamp(json_t *v, double *out)
{
    if (json_is_number(v) || json_is_boolean(v)) {
        double ts = json_is_boolean(v) ? (json_is_true(v) ? 1.0 : 0.0) : json_number_value(v);
        double a = fabs(ts);
        if (a >= 1e14)
            ts /= 1000000.0;
        else if (a >= 1e12)
            ts /= 1000.0;
        /* datetime.fromtimestamp's range: years 1..9999 */
        if (!(ts > -62135596800.0 && ts < 253402300800.0))
            return 0;
        *out = ts;
        return 1;
    }
    if (json_is_string(v)) {
        /* value.strip(), then fromisoformat (whose "Z" is the task's "+00:00") */
        const char *s = json_string_value(v);
        char buf[96];
        size_t n;
        int64_t us;
        while (isspace((unsigned char)*s))
            s++;
        n = strlen(s);
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        if (n == 0 || n >= sizeof buf)
            return 0;
        memcpy(buf, s, n);
        buf[n] = '\0';
        if (py_fromisoformat(buf, &us) < 0)
            return 0;
        *out = (double)us / 1e6;
        return 1;
    }
    return 0;
}

static const char *age_bucket(double ts, double now)
{
    double delta = now - ts, days;

    if (delta < 0)
        return "future";
    days = delta / 86400.0;
    if (days <= 1)
        return "\u22641d";
    if (days <= 7)
        return "\u22647d";
    if (days <= 30)
        return "\u226430d";
    if (days <= 90)
        return "\u226490d";
    if (days <= 180)
        return "\u2264180d";
    if (days <= 365)
        return "\u22641y";
    return ">1y";
}

static char *label_age(json_t *payload, double now)
{
    static const char *const keys[] = {"ingested_at", "created_at", "updated_at", "timestamp",
                                       NULL};
    json_t *v = first_truthy(payload, keys);
    double ts;
    const char *bucket;

    if (!v)
        v = first_truthy(metadata_of(payload), keys);
    bucket = v && parse_timestamp(v, &ts) ? age_bucket(ts, now) : UNKNOWN_LABEL;
    return strdup(bucket);
}

/* ---- labels ------------------------------------------------------------------------ */

enum color_by categories_parse_color_by(const char *text)
{
    if (text && !strcasecmp(text, "source_dir"))
        return COLOR_BY_SOURCE_DIR;
    if (text && !strcasecmp(text, "filetype"))
        return COLOR_BY_FILETYPE;
    if (text && !strcasecmp(text, "age_bucket"))
        return COLOR_BY_AGE_BUCKET;
    return COLOR_BY_DOCUMENT_ID;
}

const char *categories_color_by_name(enum color_by c)
{
    static const char *const names[] = {"document_id", "source_dir", "filetype", "age_bucket"};
    return names[c];
}

/* Python's `a or b` over the document id keys; NULL when none is set. */
static json_t *document_id_of(json_t *payload)
{
    static const char *const doc_keys[] = {"doc_id", "document_id", "chunk_id", "source_id"};
    json_t *chain[4], *v;

    for (int i = 0; i < 4; i++)
        chain[i] = json_object_get(payload, doc_keys[i]);
    v = python_or(chain, 4);
    return v && !json_is_null(v) ? v : NULL;
}

char *categories_label(json_t *payload, enum color_by color_by, double now_unix, char **doc_id)
{
    char *label = NULL;
    json_t *v;

    *doc_id = NULL;
    if (!json_is_object(payload))
        return strdup(UNKNOWN_LABEL);
    switch (color_by) {
    case COLOR_BY_SOURCE_DIR:
        label = label_source_dir(payload);
        break;
    case COLOR_BY_FILETYPE:
        label = label_filetype(payload);
        break;
    case COLOR_BY_AGE_BUCKET:
        label = label_age(payload, now_unix);
        break;
    case COLOR_BY_DOCUMENT_ID:
    default:
        if (!(v = document_id_of(payload)))
            return strdup(UNKNOWN_LABEL);
        label = py_str_dup(v);
        if (label && !(*doc_id = strdup(label))) {
            free(label);
            return NULL;
        }
        break;
    }
    if (label && !label[0]) { /* `if not category_label: category_label = "unknown"` */
        free(label);
        label = strdup(UNKNOWN_LABEL);
    }
    return label;
}

/* ---- the table ----------------------------------------------------------------------- */

struct category_table {
    enum color_by color_by;
    json_t *index_of;  /* label -> index (only the first 255 labels) */
    json_t *doc_map;   /* doc id -> first index */
    char *labels[256]; /* label_for_index */
    uint64_t counts[256];
    int order[256]; /* indexes in first-counted order, for category_counts */
    int n_order;
    int n_labels;
    int overflowed;
};

int category_table_new(struct category_table **out, enum color_by color_by, struct pw_error *err)
{
    struct category_table *t = calloc(1, sizeof *t);

    *out = NULL;
    if (!t || !(t->index_of = json_object()) || !(t->doc_map = json_object())) {
        category_table_free(t);
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    }
    t->color_by = color_by;
    *out = t;
    return 0;
}

void category_table_free(struct category_table *t)
{
    if (!t)
        return;
    json_decref(t->index_of);
    json_decref(t->doc_map);
    for (int i = 0; i < 256; i++)
        free(t->labels[i]);
    free(t);
}

int category_table_add(struct category_table *t, const char *label, const char *doc_id)
{
    json_t *known = json_object_get(t->index_of, label);
    int idx;

    if (known) {
        idx = (int)json_integer_value(known);
    } else if (t->n_labels < CATEGORY_OVERFLOW_INDEX) {
        idx = t->n_labels++;
        if (json_object_set_new(t->index_of, label, json_integer(idx)) ||
            !(t->labels[idx] = strdup(label)))
            return PW_ENOMEM;
    } else {
        idx = CATEGORY_OVERFLOW_INDEX;
        if (!t->labels[idx] && !(t->labels[idx] = strdup(OVERFLOW_LABEL)))
            return PW_ENOMEM;
        t->overflowed = 1;
    }
    if (t->counts[idx]++ == 0)
        t->order[t->n_order++] = idx;
    if (t->color_by == COLOR_BY_DOCUMENT_ID && doc_id && !json_object_get(t->doc_map, doc_id) &&
        json_object_set_new(t->doc_map, doc_id, json_integer(idx)))
        return PW_ENOMEM;
    return idx;
}

int category_table_overflowed(const struct category_table *t)
{
    return t->overflowed;
}

json_t *category_table_legend(const struct category_table *t)
{
    json_t *legend = json_array();

    for (int i = 0; legend && i < 256; i++)
        if (t->labels[i])
            json_array_append_new(legend,
                                  json_pack("{s:i, s:s, s:I}", "index", i, "label", t->labels[i],
                                            "count", (json_int_t)t->counts[i]));
    return legend;
}

json_t *category_table_counts(const struct category_table *t)
{
    json_t *counts = json_object();
    char key[8];

    for (int i = 0; counts && i < t->n_order; i++) {
        snprintf(key, sizeof key, "%d", t->order[i]);
        json_object_set_new(counts, key, json_integer((json_int_t)t->counts[t->order[i]]));
    }
    return counts;
}

json_t *category_table_doc_map(const struct category_table *t)
{
    return json_incref(t->doc_map);
}

/* ---- the payload of a fetched point ---------------------------------------------- */

/* One kept payload value as jansson holds it; containers keep only their emptiness. */
static json_t *value_to_json(struct qdrant_value v)
{
    char *end;
    long long i;

    switch (v.kind) {
    case QDRANT_V_NULL:
        return json_null();
    case QDRANT_V_FALSE:
        return json_false();
    case QDRANT_V_TRUE:
        return json_true();
    case QDRANT_V_INT:
        i = strtoll(v.text, &end, 10);
        if (*end == '\0' && i != LLONG_MAX && i != LLONG_MIN)
            return json_integer(i);
        return json_real(strtod(v.text, NULL));
    case QDRANT_V_FLOAT:
        return json_real(strtod(v.text, NULL));
    case QDRANT_V_STRING:
        return json_stringn_nocheck(v.text, v.len);
    case QDRANT_V_OBJECT:
        return v.empty ? json_object() : json_pack("{s:b}", "", 1);
    case QDRANT_V_ARRAY:
        return v.empty ? json_array() : json_pack("[b]", 1);
    default:
        return NULL;
    }
}

json_t *categories_point_payload(const struct qdrant_matrix *m, size_t i)
{
    json_t *p = json_object(), *meta = json_object();

    for (int f = 0; f < QDRANT_F_COUNT; f++) {
        json_t *v = value_to_json(qdrant_matrix_field(m, i, (enum qdrant_field)f));
        if (v)
            json_object_set_new_nocheck(f < QDRANT_F_META_SOURCE_PATH ? p : meta,
                                        qdrant_field_key((enum qdrant_field)f), v);
    }
    json_object_set_new_nocheck(p, "metadata", meta);
    return p;
}
