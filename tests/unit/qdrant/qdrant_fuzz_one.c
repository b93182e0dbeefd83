/* qdrant_fuzz_one.c - see qdrant_fuzz_one.h. */
#include "qdrant_fuzz_one.h"
#include "qdrant.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int parse_chunked(struct qdrant_matrix *m, const struct qdrant_parse_opts *o,
                         const uint8_t *data, size_t size, uint64_t seed, struct qdrant_page *pg,
                         struct pw_error *err)
{
    struct qdrant_page_parser *p;
    int rc = qdrant_page_parser_new(&p, m, o, err);
    if (rc < 0)
        return rc;
    size_t off = 0;
    while (rc == 0 && off < size) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t step = 1 + (size_t)((seed >> 33) % 97);
        if (step > size - off)
            step = size - off;
        rc = qdrant_page_parser_feed(p, (const char *)data + off, step, err);
        off += step;
    }
    if (rc == 0)
        rc = qdrant_page_parser_finish(p, pg, err);
    qdrant_page_parser_free(p);
    return rc;
}

static int check_matrix(const struct qdrant_matrix *m, int rc)
{
    if (rc < 0 && m->n != 0) {
        fprintf(stderr, "fuzz: failed parse left %zu rows\n", m->n);
        return -1;
    }
    for (size_t i = 0; i < m->n * m->dim; i++) {
        if (!isfinite(m->x[i])) {
            fprintf(stderr, "fuzz: non-finite value stored\n");
            return -1;
        }
    }
    for (size_t i = 0; i < m->n; i++) {
        char id[QDRANT_ID_TEXT_MAX];
        if (qdrant_id_format(&m->ids[i], id) >= QDRANT_ID_TEXT_MAX)
            return -1;
        for (int f = 0; f < QDRANT_F_COUNT; f++) {
            struct qdrant_value v = qdrant_matrix_field(m, i, f);
            if (v.text == NULL || strlen(v.text) > v.len) /* text may hold NUL bytes (\u0000) */
                return -1;
        }
    }
    return 0;
}

static int same_result(const char *what, int ra, const struct qdrant_matrix *a,
                       const struct qdrant_page *pa, const struct pw_error *ea, int rb,
                       const struct qdrant_matrix *b, const struct qdrant_page *pb,
                       const struct pw_error *eb)
{
    if (ra != rb) {
        fprintf(stderr, "fuzz: %s: rc %d (%s) != rc %d (%s)\n", what, ra, ra ? ea->msg : "", rb,
                rb ? eb->msg : "");
        return 0;
    }
    if (a->n != b->n || a->dim != b->dim || a->skipped != b->skipped ||
        (a->n && memcmp(a->x, b->x, a->n * a->dim * sizeof(float)) != 0) ||
        (a->n && memcmp(a->ids, b->ids, a->n * sizeof *a->ids) != 0) ||
        a->arena_len != b->arena_len ||
        (a->arena_len && memcmp(a->arena, b->arena, a->arena_len) != 0)) {
        fprintf(stderr, "fuzz: %s: matrices differ\n", what);
        return 0;
    }
    if (ra == 0 &&
        (pa->points != pb->points || pa->kept != pb->kept || pa->skipped != pb->skipped ||
         pa->has_next != pb->has_next || strcmp(pa->next_offset, pb->next_offset) != 0)) {
        fprintf(stderr, "fuzz: %s: page summaries differ\n", what);
        return 0;
    }
    return 1;
}

int qdrant_fuzz_one(const uint8_t *data, size_t size, uint64_t split_seed)
{
    static const char *names[] = {NULL, "image", ""};
    char next[QDRANT_OFFSET_TEXT_MAX];
    int bad = 0, has_next = 0;
    /* the tail peek reads any bytes without reading past them (ASan) */
    if (qdrant_page_peek_next((const char *)data, size, &has_next, next) == 1 &&
        strlen(next) >= QDRANT_OFFSET_TEXT_MAX) {
        fprintf(stderr, "fuzz: peeked offset too long\n");
        return -1;
    }
    for (int k = 0; k < 3 && !bad; k++) {
        struct qdrant_parse_opts fast = {
            .vector_name = names[k], .limit = k == 1 ? 2 : 0, .keep_payload = k != 2};
        struct qdrant_parse_opts ref = fast;
        ref.no_fast_path = 1;
        struct qdrant_matrix r, a, b;
        struct qdrant_page pr, pa, pb;
        struct pw_error er, ea, eb;
        qdrant_matrix_init(&r);
        qdrant_matrix_init(&a);
        qdrant_matrix_init(&b);
        /* reference: yajl tokenizes everything, whole buffer */
        int rr = qdrant_page_parse(&r, &ref, (const char *)data, size, &pr, &er);
        int ra = qdrant_page_parse(&a, &fast, (const char *)data, size, &pa, &ea);
        int rb = parse_chunked(&b, &fast, data, size, split_seed + (uint64_t)k, &pb, &eb);
        if (!same_result("fast path vs yajl only", rr, &r, &pr, &er, ra, &a, &pa, &ea) ||
            !same_result("chunked vs whole", ra, &a, &pa, &ea, rb, &b, &pb, &eb) ||
            check_matrix(&a, ra) < 0)
            bad = 1;
        /* which error class (truncated vs malformed) must not depend on the path either */
        if (!bad && ra < 0 && (ra == PW_EUNAVAIL) != (rr == PW_EUNAVAIL))
            bad = 1;
        qdrant_matrix_free(&r);
        qdrant_matrix_free(&a);
        qdrant_matrix_free(&b);
    }
    return bad ? -1 : 0;
}
