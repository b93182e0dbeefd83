/* qdrant_scroll_tool.c - runs one qdrant_scroll_matrix() and reports what came out.
 *
 * The integration driver (test_qdrant_client.py) starts the Qdrant stand-in, runs this
 * tool against it and checks the report against values it computed itself.  The tool
 * prints one JSON object (return code, error, shape, ids, the kept payload fields,
 * request counts) and writes the matrix as raw float32 to --out.  The API key comes
 * from $QDRANT_API_KEY, never from argv.
 *   qdrant_scroll_tool --url U --collection C [--limit N] [--batch N] [--vector NAME]
 *                      [--timeout-ms N] [--retries N] [--backoff-ms N] [--out PATH]
 *                      [--no-dump] [--no-payload] [--no-compression]
 *                      [--cancel-after PAGES] */
#include "pycompat.h"
#include "qdrant.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct progress {
    long cancel_after; /* pages; 0 = never */
    long pages;
};

static int on_progress(void *ud, size_t fetched, size_t limit)
{
    struct progress *pr = ud;
    (void)fetched;
    (void)limit;
    pr->pages++;
    return pr->cancel_after > 0 && pr->pages >= pr->cancel_after;
}

static const char *const field_names[QDRANT_F_COUNT] = {"doc_id",
                                                        "document_id",
                                                        "chunk_id",
                                                        "source_id",
                                                        "source_path",
                                                        "path",
                                                        "mime_type",
                                                        "ingested_at",
                                                        "created_at",
                                                        "updated_at",
                                                        "timestamp",
                                                        "metadata.source_path",
                                                        "metadata.mime_type",
                                                        "metadata.ingested_at",
                                                        "metadata.created_at",
                                                        "metadata.updated_at",
                                                        "metadata.timestamp"};

/* Peak resident set of this process (VmHWM).  Not getrusage: on Linux ru_maxrss
 * carries the parent's peak across fork+exec, which would charge us the driver's. */
/* bool() of a payload field, through the one truthiness rule (py_truthy): the field is
 * rebuilt as a jansson value of the same truthiness (integers beyond 64 bits as reals,
 * non-empty containers with one placeholder member). */
static int py_truthy_of_field(const struct qdrant_value *v)
{
    json_t *j = NULL;
    int truthy;

    switch (v->kind) {
    case QDRANT_V_STRING:
        j = json_stringn_nocheck(v->text, v->len);
        break;
    case QDRANT_V_INT:
    case QDRANT_V_FLOAT:
        j = json_loadb(v->text, v->len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
        break;
    case QDRANT_V_TRUE:
        j = json_true();
        break;
    case QDRANT_V_ARRAY:
        j = v->empty ? json_array() : json_pack("[n]");
        break;
    case QDRANT_V_OBJECT:
        j = v->empty ? json_object() : json_pack("{s:n}", "k");
        break;
    default:
        break;
    }
    truthy = py_truthy(j);
    json_decref(j);
    return truthy;
}

static long peak_rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    struct qdrant_config cfg = {0};
    struct qdrant_scroll_opts so = {0};
    const char *out = NULL;
    struct progress pr = {0, 0};
    int dump = 1;
    cfg.api_key = getenv("QDRANT_API_KEY");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-dump") == 0) {
            dump = 0;
            continue;
        }
        if (strcmp(a, "--no-compression") == 0) {
            cfg.no_compression = 1;
            continue;
        }
        if (strcmp(a, "--no-payload") == 0) {
            so.skip_payload = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "missing value for %s\n", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--url") == 0)
            cfg.url = v;
        else if (strcmp(a, "--collection") == 0)
            so.collection = v;
        else if (strcmp(a, "--limit") == 0)
            so.sample_limit = strtoul(v, NULL, 10);
        else if (strcmp(a, "--batch") == 0)
            so.batch = strtoul(v, NULL, 10);
        else if (strcmp(a, "--vector") == 0)
            so.vector_name = v;
        else if (strcmp(a, "--parse-threads") == 0)
            so.parse_threads = atoi(v);
        else if (strcmp(a, "--timeout-ms") == 0)
            cfg.timeout_ms = atol(v);
        else if (strcmp(a, "--retries") == 0)
            cfg.max_retries = atoi(v) > 0 ? atoi(v) : -1; /* 0 retries: negative */
        else if (strcmp(a, "--backoff-ms") == 0)
            cfg.backoff_initial_ms = cfg.backoff_max_ms = atol(v);
        else if (strcmp(a, "--cancel-after") == 0)
            pr.cancel_after = atol(v);
        else if (strcmp(a, "--out") == 0)
            out = v;
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 2;
        }
    }

    struct qdrant_client *c = NULL;
    struct qdrant_matrix m;
    struct qdrant_scroll_stats st = {0};
    struct pw_error err = {0};
    qdrant_matrix_init(&m);
    so.progress = on_progress;
    so.progress_ud = &pr;
    int rc = qdrant_client_new(&c, &cfg, &err);
    if (rc == 0)
        rc = qdrant_scroll_matrix(c, &so, &m, &st, &err);

    json_t *rep = json_pack("{s:i, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I}", "rc", rc,
                            "code", err.code, "msg", rc ? err.msg : "", "n", (json_int_t)m.n, "dim",
                            (json_int_t)m.dim, "skipped", (json_int_t)m.skipped, "requests",
                            (json_int_t)st.requests, "retries", (json_int_t)st.retries, "pages",
                            (json_int_t)st.pages, "reached_end", st.reached_end, "points_count",
                            (json_int_t)st.points_count);
    json_object_set_new(rep, "maxrss_kb", json_integer(peak_rss_kb()));
    struct rusage ru; /* CPU time is per process (unlike ru_maxrss) */
    getrusage(RUSAGE_SELF, &ru);
    json_object_set_new(rep, "cpu_s",
                        json_real((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                                  (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6));
    if (dump) {
        json_t *ids = json_array(), *fields = json_array();
        for (size_t i = 0; i < m.n; i++) {
            char buf[QDRANT_ID_TEXT_MAX];
            qdrant_id_format(&m.ids[i], buf);
            json_array_append_new(ids, json_string(buf));
            json_t *f = json_object();
            for (int k = 0; k < QDRANT_F_COUNT; k++) {
                struct qdrant_value v = qdrant_matrix_field(&m, i, k);
                if (v.kind != QDRANT_V_ABSENT)
                    json_object_set_new(f, field_names[k],
                                        json_pack("[i, s#, b]", (int)v.kind, v.text, (int)v.len,
                                                  py_truthy_of_field(&v)));
            }
            json_array_append_new(fields, f);
        }
        json_object_set_new(rep, "ids", ids);
        json_object_set_new(rep, "fields", fields);
    }
    if (out) {
        FILE *fh = fopen(out, "wb");
        if (!fh ||
            (m.n * m.dim != 0 && fwrite(m.x, sizeof(float), m.n * m.dim, fh) != m.n * m.dim)) {
            fprintf(stderr, "cannot write %s\n", out);
            rc = 3;
        }
        if (fh)
            fclose(fh);
    }
    json_dumpf(rep, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(rep);
    qdrant_matrix_free(&m);
    qdrant_client_free(c);
    return rc == 3 ? 3 : 0;
}
