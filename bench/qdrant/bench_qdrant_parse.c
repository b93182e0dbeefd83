/* bench_qdrant_parse.c - parse-from-memory throughput of the Qdrant scroll parser.
 *
 *   bench_qdrant_parse PAGE.json REPS [parse|chunked|nofast|yajl]
 * parse:   qdrant_page_parse() of the whole buffer into a reused matrix
 * chunked: the same through qdrant_page_parser_feed() in 16 KiB chunks (as libcurl
 *          delivers a body)
 * nofast:  parse without the vector fast path (yajl tokenizes the numbers too)
 * yajl:    yajl_parse with number callbacks that do nothing: the tokenizer alone,
 *          the ceiling for a parser that lets yajl see every number
 * Prints one JSON line: bytes, best/median seconds per page, MB/s (1e6 bytes) of the
 * best rep, rows, dim, peak RSS in KiB. */
#include "qdrant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_parse.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int null_number(void *ctx, const char *s, size_t len)
{
    (void)s;
    *(size_t *)ctx += len;
    return 1;
}

static const yajl_callbacks count_numbers = {NULL, NULL, NULL, NULL, null_number, NULL,
                                             NULL, NULL, NULL, NULL, NULL};

/* Peak resident set of this process (VmHWM).  Not getrusage: on Linux ru_maxrss
 * carries the parent's peak across fork+exec, which would charge us the driver's. */
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
    if (argc < 3) {
        fprintf(stderr, "usage: %s PAGE.json REPS [parse|chunked|nofast|yajl]\n", argv[0]);
        return 2;
    }
    const char *mode = argc > 3 ? argv[3] : "parse";
    int reps = atoi(argv[2]);
    FILE *f = fopen(argv[1], "rb");
    if (!f || reps < 1) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(len);
    if (!buf || fread(buf, 1, len, f) != len)
        return 2;
    fclose(f);

    double *t = calloc((size_t)reps, sizeof *t);
    struct qdrant_matrix m;
    struct qdrant_parse_opts o = {.keep_payload = 1, .no_fast_path = strcmp(mode, "nofast") == 0};
    struct pw_error err;
    qdrant_matrix_init(&m);
    for (int r = 0; r < reps; r++) {
        qdrant_matrix_clear(&m);
        double t0 = now();
        int rc = 0;
        if (strcmp(mode, "yajl") == 0) {
            size_t sum = 0;
            yajl_handle h = yajl_alloc(&count_numbers, NULL, &sum);
            rc = yajl_parse(h, (const unsigned char *)buf, len) == yajl_status_ok &&
                         yajl_complete_parse(h) == yajl_status_ok
                     ? 0
                     : -1;
            yajl_free(h);
        } else if (strcmp(mode, "chunked") == 0) {
            struct qdrant_page_parser *p;
            struct qdrant_page pg;
            rc = qdrant_page_parser_new(&p, &m, &o, &err);
            for (size_t off = 0; rc == 0 && off < len; off += 16384)
                rc = qdrant_page_parser_feed(p, buf + off, len - off < 16384 ? len - off : 16384,
                                             &err);
            if (rc == 0)
                rc = qdrant_page_parser_finish(p, &pg, &err);
            qdrant_page_parser_free(p);
        } else {
            struct qdrant_page pg;
            rc = qdrant_page_parse(&m, &o, buf, len, &pg, &err);
        }
        t[r] = now() - t0;
        if (rc != 0) {
            fprintf(stderr, "parse failed: %s\n", err.msg);
            return 1;
        }
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    printf("{\"mode\":\"%s\",\"bytes\":%zu,\"reps\":%d,\"best_s\":%.6f,\"median_s\":%.6f,"
           "\"mb_per_s\":%.1f,\"median_mb_per_s\":%.1f,\"rows\":%zu,\"dim\":%zu,"
           "\"maxrss_kb\":%ld}\n",
           mode, len, reps, t[0], t[reps / 2], (double)len / t[0] / 1e6,
           (double)len / t[reps / 2] / 1e6, m.n, m.dim, peak_rss_kb());
    qdrant_matrix_free(&m);
    free(t);
    free(buf);
    return 0;
}
