/* qdrant.h - read-only Qdrant REST client: collection info, and a scroll that streams
 * vectors straight into one float32 matrix (contract: shared/qdrant/README.md).
 *
 * What it does, as the Python task does it (packages/webui/tasks/projection.py): read
 * the first `sample_limit` points in scroll order, pages of <= 1000 with payload and
 * vectors; a point's vector is the plain vector, or for named vectors the requested
 * name, or else the first non-null one; points without a usable dense vector
 * (null, missing name, multivector, sparse) are skipped and counted, not stored.
 * Each response is parsed as it arrives (libcurl write callback -> yajl, on a parser
 * thread while the next page is requested: qdrant_scroll.c); numbers go through
 * qdrant_f32_parse() directly into the matrix row, so vectors cost no allocation per
 * point or per number.  Of each payload only the fields the color_by
 * rules read are kept (enum qdrant_field), as typed text in one arena.
 *
 * Memory: struct qdrant_matrix owns x, ids and the payload arena; qdrant_matrix_free()
 * releases them.  Everything else is owned by its creator.  Strings returned by
 * qdrant_matrix_field() point into the arena: valid until the matrix grows or is freed.
 *
 * Errors (return value and err->code):
 *   PW_ENOTFOUND  collection does not exist (HTTP 404)
 *   PW_EDENIED    API key missing or refused (HTTP 401/403)
 *   PW_EUNAVAIL   5xx/408/429, connection refused/reset, truncated body: retried with
 *                 capped exponential backoff, returned when retries run out
 *   PW_ETIMEOUT   request timeout, after the same retries
 *   PW_EPROTO     malformed JSON or unexpected shape; bad vector data (mixed
 *                 dimensions, non-numbers, values that are not finite float32): the
 *                 message names the point id
 *   PW_EINVAL     bad arguments, or HTTP 400/422 (message from the server)
 *   PW_ENOMEM, PW_EIO (other transport failures), PW_ECANCELED (progress callback)
 * Messages never contain the API key or URL credentials.
 *
 * Threads: a qdrant_client holds one libcurl handle; use it from one thread at a time
 * (one client per worker thread).  main() should call curl_global_init() before
 * starting threads. */
#ifndef QDRANT_H
#define QDRANT_H

#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

#define QDRANT_SCROLL_BATCH    1000   /* projection.py QDRANT_SCROLL_BATCH */
#define QDRANT_SAMPLE_LIMIT    200000 /* projection.py DEFAULT_SAMPLE_LIMIT */
#define QDRANT_NAME_MAX        64     /* vector names longer than this are refused */
#define QDRANT_MAX_VECTORS     16     /* named vectors reported by qdrant_collection_info */
#define QDRANT_ID_TEXT_MAX     37     /* "18446744073709551615" or a hyphenated UUID + NUL */
#define QDRANT_OFFSET_TEXT_MAX 40     /* next_page_offset as JSON text: digits or "uuid" */

/* ---- point ids ------------------------------------------------------------------- */

enum qdrant_id_kind { QDRANT_ID_NUM = 0, QDRANT_ID_UUID = 1 };

struct qdrant_id {
    uint8_t kind; /* enum qdrant_id_kind */
    union {
        uint64_t num;     /* full u64 range, never via double */
        uint8_t uuid[16]; /* big-endian bytes, the order Qdrant sorts by */
    } u;
};

/* Writes the id as str(record.id) does in Python: decimal, or lowercase hyphenated
 * UUID.  Returns the length (< QDRANT_ID_TEXT_MAX). */
size_t qdrant_id_format(const struct qdrant_id *id, char buf[QDRANT_ID_TEXT_MAX]);

/* ---- the matrix a scroll fills --------------------------------------------------- */

/* Payload fields kept per point: the keys projection.py's color_by rules look up. */
enum qdrant_field {
    QDRANT_F_DOC_ID,
    QDRANT_F_DOCUMENT_ID,
    QDRANT_F_CHUNK_ID,
    QDRANT_F_SOURCE_ID,
    QDRANT_F_SOURCE_PATH,
    QDRANT_F_PATH,
    QDRANT_F_MIME_TYPE,
    QDRANT_F_INGESTED_AT,
    QDRANT_F_CREATED_AT,
    QDRANT_F_UPDATED_AT,
    QDRANT_F_TIMESTAMP,
    QDRANT_F_META_SOURCE_PATH, /* payload["metadata"]["source_path"] ... */
    QDRANT_F_META_MIME_TYPE,
    QDRANT_F_META_INGESTED_AT,
    QDRANT_F_META_CREATED_AT,
    QDRANT_F_META_UPDATED_AT,
    QDRANT_F_META_TIMESTAMP,
    QDRANT_F_COUNT
};

/* The payload key of field f ("doc_id", ...; a META_* field's key inside "metadata"),
 * or NULL for a value outside the enum. */
const char *qdrant_field_key(enum qdrant_field f);

enum qdrant_value_kind {
    QDRANT_V_ABSENT = 0, /* key not in the payload (or payload missing/null) */
    QDRANT_V_NULL,
    QDRANT_V_FALSE,
    QDRANT_V_TRUE,
    QDRANT_V_INT,    /* text: the JSON number as sent (may exceed 64 bits) */
    QDRANT_V_FLOAT,  /* text: the JSON number as sent */
    QDRANT_V_STRING, /* text: decoded UTF-8 (escapes resolved), NUL-terminated */
    QDRANT_V_OBJECT, /* text "", empty says whether it has members */
    QDRANT_V_ARRAY
};

struct qdrant_value {
    enum qdrant_value_kind kind;
    const char *text; /* never NULL; "" when the kind has no text */
    size_t len;
    int empty; /* OBJECT/ARRAY with no members */
};

struct qdrant_matrix {
    float *x;              /* n rows of dim floats, row-major, in scroll order */
    size_t n, dim;         /* dim 0 until known (collection info or first vector) */
    struct qdrant_id *ids; /* n ids, parallel to the rows */
    size_t skipped;        /* points seen without a usable dense vector */
    /* private */
    size_t cap;      /* rows allocated */
    size_t x_cap;    /* floats allocated in x */
    size_t *pay_off; /* cap + 1 arena offsets: point i's fields are [pay_off[i], pay_off[i+1]) */
    char *arena;
    size_t arena_len, arena_cap;
};

void qdrant_matrix_init(struct qdrant_matrix *m);
/* Preallocates n_max rows of dim floats (dim 0: learn it from the first vector); a
 * larger matrix is not shrunk.  Rows beyond n_max are still accepted (growth is
 * geometric). */
int qdrant_matrix_reserve(struct qdrant_matrix *m, size_t n_max, size_t dim, struct pw_error *err);
void qdrant_matrix_free(struct qdrant_matrix *m);
/* Empties the matrix (n = 0, dim kept) but keeps its allocations for reuse. */
void qdrant_matrix_clear(struct qdrant_matrix *m);

/* Payload field f of point i with Python dict semantics: a duplicated key keeps its
 * last value; metadata.* fields exist only when the last "metadata" is an object. */
struct qdrant_value qdrant_matrix_field(const struct qdrant_matrix *m, size_t i,
                                        enum qdrant_field f);

/* ---- parsing one scroll response --------------------------------------------------- */

struct qdrant_parse_opts {
    const char *vector_name; /* NULL: plain vector, else first non-null named vector */
    size_t limit;            /* store no more than this many rows in m (0: no limit) */
    int keep_payload;        /* 1: keep the enum qdrant_field values of each point */
    int no_fast_path;        /* tests: let yajl tokenize vector numbers as well */
};

struct qdrant_page {
    size_t points;                            /* records in result.points */
    size_t kept;                              /* rows appended to the matrix */
    size_t skipped;                           /* records without a usable vector */
    int has_next;                             /* next_page_offset present and not null */
    char next_offset[QDRANT_OFFSET_TEXT_MAX]; /* as JSON text: 42 or "uuid" */
};

/* A streaming parser for one response body, fed in arbitrary chunks.  On any failure,
 * and when freed without a successful finish, m is rolled back to its state at
 * qdrant_page_parser_new() (so a retried page never leaves half rows behind). */
struct qdrant_page_parser;
int qdrant_page_parser_new(struct qdrant_page_parser **out, struct qdrant_matrix *m,
                           const struct qdrant_parse_opts *opts, struct pw_error *err);
int qdrant_page_parser_feed(struct qdrant_page_parser *p, const char *buf, size_t len,
                            struct pw_error *err);
/* Returns PW_EUNAVAIL when the body ended early (truncated), PW_EPROTO otherwise. */
int qdrant_page_parser_finish(struct qdrant_page_parser *p, struct qdrant_page *page,
                              struct pw_error *err);
void qdrant_page_parser_free(struct qdrant_page_parser *p);

/* The same for a whole body in memory (tests, fuzzing, benchmarks). */
int qdrant_page_parse(struct qdrant_matrix *m, const struct qdrant_parse_opts *opts,
                      const char *buf, size_t len, struct qdrant_page *page, struct pw_error *err);

/* Pages parsed in parallel into one matrix (used by qdrant_scroll_matrix).  A window is
 * rows [base, base + rows) of m, which must have dim set and room for them; parse a page
 * into &win->w with a parser whose limit is `rows`, then commit the windows in page
 * order: rows move down to m->n if earlier pages kept fewer rows than asked for, ids
 * and payload fields are appended.  m must not be reallocated while a window is open.
 * The window owns its payload buffers (reused by the next open) until _free. */
struct qdrant_window {
    struct qdrant_matrix w; /* x and ids borrowed from m */
    size_t base;
    size_t *pay_off; /* owned */
    size_t pay_cap;
};
int qdrant_window_open(struct qdrant_window *win, struct qdrant_matrix *m, size_t base, size_t rows,
                       struct pw_error *err);
int qdrant_window_commit(struct qdrant_window *win, struct qdrant_matrix *m, struct pw_error *err);
void qdrant_window_free(struct qdrant_window *win);

/* Reads next_page_offset from the last bytes of a complete scroll body without parsing
 * the rest, so the next page can be requested while this one is still being parsed.
 * Recognises only `] , "next_page_offset" : (u64|"uuid"|null) }`, i.e. the key right
 * after the points array; returns 1 and fills has_next/next_offset (as
 * struct qdrant_page has them), or 0 when the tail does not have that shape.  Only a
 * hint: the full parse of the page is authoritative. */
int qdrant_page_peek_next(const char *tail, size_t len, int *has_next,
                          char next_offset[QDRANT_OFFSET_TEXT_MAX]);

/* ---- the HTTP client --------------------------------------------------------------- */

struct qdrant_config {
    const char *url;         /* QDRANT_URL, e.g. "http://localhost:6333"; copied */
    const char *api_key;     /* QDRANT_API_KEY or NULL; sent as `api-key`; copied */
    long timeout_ms;         /* per request; 0: 60000 (Qdrant's default search_timeout) */
    long connect_timeout_ms; /* 0: 5000 */
    int max_retries;         /* retries after the first attempt; 0: 5; negative: none */
    long backoff_initial_ms; /* 0: 200; doubles per retry */
    long backoff_max_ms;     /* 0: 5000 */
    int no_compression;      /* 1: send no Accept-Encoding.  Default: accept any encoding
                                libcurl decodes (README §3: float text shrinks a lot); on
                                a fast LAN inflating may cost more CPU than it saves */
};

struct qdrant_client;
int qdrant_client_new(struct qdrant_client **out, const struct qdrant_config *cfg,
                      struct pw_error *err);
void qdrant_client_free(struct qdrant_client *c);

struct qdrant_vector_info {
    char name[QDRANT_NAME_MAX]; /* "" for the single unnamed vector */
    size_t size;
    int multivector; /* has multivector_config: points return [[...]], never projected */
};

struct qdrant_collection_info {
    int64_t points_count; /* approximate, -1 when null */
    int named;            /* 1: config.params.vectors is a map of names */
    size_t n_vectors;     /* dense vector configs, in the server's order */
    struct qdrant_vector_info vectors[QDRANT_MAX_VECTORS];
    size_t n_sparse;
};

int qdrant_collection_info(struct qdrant_client *c, const char *collection,
                           struct qdrant_collection_info *out, struct pw_error *err);

struct qdrant_scroll_opts {
    const char *collection;
    size_t sample_limit;     /* 0: QDRANT_SAMPLE_LIMIT */
    size_t batch;            /* 0: QDRANT_SCROLL_BATCH (larger values are capped to it) */
    const char *vector_name; /* NULL: as struct qdrant_parse_opts */
    int skip_payload;        /* 1: ask for no payload (with_payload false) */
    int parse_threads;       /* pages parsed on this many threads while the next page is
                                received; 0: one per online CPU (at most 8); 1: parse on
                                the calling thread as each page arrives, no threads */
    /* Called after each page (on the calling thread); returning non-zero stops with PW_ECANCELED.
     */
    int (*progress)(void *ud, size_t fetched, size_t sample_limit);
    void *progress_ud;
};

struct qdrant_scroll_stats {
    size_t pages, requests, retries;
    int reached_end;      /* the scroll ran out of points (else it stopped at the limit) */
    int64_t points_count; /* from the collection info, -1 if unknown */
};

/* Fills m (initialised, empty) with up to sample_limit points, in scroll order, using
 * parse_threads threads while it runs (qdrant_scroll.c).  On failure m keeps the pages
 * committed so far; the caller frees it either way. */
int qdrant_scroll_matrix(struct qdrant_client *c, const struct qdrant_scroll_opts *opts,
                         struct qdrant_matrix *m, struct qdrant_scroll_stats *stats,
                         struct pw_error *err);

#endif
