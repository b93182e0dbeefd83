/* test_qdrant_page.c - parsing one scroll response (db/qdrant/qdrant_page.c).
 *
 * Each test feeds a literal response body, shaped as shared/qdrant/README.md §1 shows,
 * and checks the rows, ids and payload fields that come out; expected floats are
 * computed here with (float)strtod from the same text. */
#include "pw_test.h"
#include "qdrant.h"

#include <stdlib.h>

static struct qdrant_parse_opts opts_all = {.keep_payload = 1};

static int parse(struct qdrant_matrix *m, const struct qdrant_parse_opts *o, const char *body,
                 struct qdrant_page *page, struct pw_error *err)
{
    return qdrant_page_parse(m, o, body, strlen(body), page, err);
}

static int row_equals(const struct qdrant_matrix *m, size_t i, const char *const *texts)
{
    for (size_t j = 0; j < m->dim; j++)
        if (m->x[i * m->dim + j] != (float)strtod(texts[j], NULL))
            return 0;
    return 1;
}

static const char *id_text(const struct qdrant_matrix *m, size_t i)
{
    static char buf[QDRANT_ID_TEXT_MAX];
    qdrant_id_format(&m->ids[i], buf);
    return buf;
}

static void test_parses_integer_ids_vectors_and_next_offset(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":["
                       "{\"id\":40,\"payload\":{\"city\":\"London\"},\"vector\":[0.875,0.14,0.89]},"
                       "{\"id\":41,\"payload\":{},\"vector\":[-0.027469946,1,2.5e-3]}],"
                       "\"next_page_offset\":42},\"status\":\"ok\",\"time\":0.0021}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 2 && m.dim == 3);
    static const char *r0[] = {"0.875", "0.14", "0.89"}, *r1[] = {"-0.027469946", "1", "2.5e-3"};
    CHECK(row_equals(&m, 0, r0) && row_equals(&m, 1, r1));
    CHECK(m.ids[0].kind == QDRANT_ID_NUM && m.ids[0].u.num == 40 && m.ids[1].u.num == 41);
    CHECK(pg.points == 2 && pg.kept == 2 && pg.skipped == 0 && pg.has_next);
    CHECK_STR(pg.next_offset, "42");
    qdrant_matrix_free(&m);
}

static void test_parses_uuid_ids_and_uuid_next_offset(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body =
        "{\"result\":{\"points\":[{\"id\":\"550e8400-e29b-41d4-a716-446655440000\","
        "\"vector\":[1,2]},{\"id\":\"6BA7B8109DAD11D180B400C04FD430C8\",\"vector\":[3,4]}],"
        "\"next_page_offset\":\"F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6\"},\"status\":\"ok\"}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 2);
    CHECK(m.ids[0].kind == QDRANT_ID_UUID);
    CHECK_STR(id_text(&m, 0), "550e8400-e29b-41d4-a716-446655440000");
    CHECK_STR(id_text(&m, 1), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    CHECK_STR(pg.next_offset, "\"f81d4fae-7dec-11d0-a765-00a0c91e6bf6\"");
    qdrant_matrix_free(&m);
}

static void test_keeps_integer_ids_above_2_pow_53_exact(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":9007199254740993,\"vector\":[1]},"
                       "{\"id\":18446744073709551615,\"vector\":[2]}],\"next_page_offset\":null}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 2 && m.ids[0].u.num == 9007199254740993ull);
    CHECK_STR(id_text(&m, 1), "18446744073709551615");
    CHECK(!pg.has_next);
    qdrant_matrix_free(&m);
}

static void test_rejects_id_that_is_not_u64_or_uuid(void)
{
    static const char *bodies[] = {
        "{\"result\":{\"points\":[{\"id\":18446744073709551616,\"vector\":[1]}]}}",
        "{\"result\":{\"points\":[{\"id\":-1,\"vector\":[1]}]}}",
        "{\"result\":{\"points\":[{\"id\":1.5,\"vector\":[1]}]}}",
        "{\"result\":{\"points\":[{\"id\":\"not-a-uuid\",\"vector\":[1]}]}}",
        "{\"result\":{\"points\":[{\"vector\":[1]}]}}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct qdrant_matrix m;
        struct qdrant_page pg;
        struct pw_error err;
        qdrant_matrix_init(&m);
        CHECK(parse(&m, &opts_all, bodies[i], &pg, &err) == PW_EPROTO && m.n == 0);
        qdrant_matrix_free(&m);
    }
}

static void test_named_vectors_take_first_non_null(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":["
                       "{\"id\":1,\"vector\":{\"a\":null,\"b\":[1,2],\"c\":[9,9]}},"
                       "{\"id\":2,\"vector\":{\"a\":[3,4],\"b\":[5,6]}}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 2 && m.dim == 2);
    CHECK(m.x[0] == 1 && m.x[1] == 2 && m.x[2] == 3 && m.x[3] == 4);
    qdrant_matrix_free(&m);
}

static void test_named_vectors_take_the_requested_name(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    struct qdrant_parse_opts o = {.vector_name = "text", .keep_payload = 1};
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":["
                       "{\"id\":1,\"vector\":{\"image\":[1,2,3],\"text\":[7,8]}},"
                       "{\"id\":2,\"vector\":{\"image\":[1,2,3]}},"
                       "{\"id\":3,\"vector\":{\"text\":[5,6],\"image\":[1,2,3]}}]}}";
    CHECK(parse(&m, &o, body, &pg, &err) == 0);
    CHECK(m.n == 2 && m.dim == 2 && pg.skipped == 1);
    CHECK(m.x[0] == 7 && m.x[1] == 8 && m.x[2] == 5 && m.x[3] == 6);
    CHECK(m.ids[0].u.num == 1 && m.ids[1].u.num == 3);
    qdrant_matrix_free(&m);
}

static void test_skips_points_with_null_or_missing_vector(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body =
        "{\"result\":{\"points\":[{\"id\":1,\"vector\":null,\"payload\":{\"doc_id\":"
        "\"x\"}},{\"id\":2},{\"id\":3,\"vector\":[1,2],\"payload\":{\"doc_id\":\"y\"}},"
        "{\"id\":4,\"vector\":{}}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 1 && m.ids[0].u.num == 3 && pg.points == 4 && pg.skipped == 3);
    CHECK(m.skipped == 3);
    struct qdrant_value v = qdrant_matrix_field(&m, 0, QDRANT_F_DOC_ID);
    CHECK(v.kind == QDRANT_V_STRING);
    CHECK_STR(v.text, "y");
    qdrant_matrix_free(&m);
}

static void test_skips_multivector_and_sparse_points(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body =
        "{\"result\":{\"points\":[{\"id\":1,\"vector\":[[1,2],[3,4]]},"
        "{\"id\":2,\"vector\":{\"s\":{\"indices\":[3,17],\"values\":[0.5,0.2]},\"d\":[1,2]}},"
        "{\"id\":3,\"vector\":{\"d\":[5,6]}}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 1 && m.ids[0].u.num == 3 && pg.skipped == 2);
    CHECK(m.x[0] == 5 && m.x[1] == 6);
    qdrant_matrix_free(&m);
}

static void test_missing_payload_gives_absent_fields(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1]},"
                       "{\"id\":2,\"vector\":[1],\"payload\":null}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 2);
    for (int f = 0; f < QDRANT_F_COUNT; f++) {
        CHECK(qdrant_matrix_field(&m, 0, f).kind == QDRANT_V_ABSENT);
        CHECK(qdrant_matrix_field(&m, 1, f).kind == QDRANT_V_ABSENT);
    }
    qdrant_matrix_free(&m);
}

static void test_payload_strings_decode_unicode_escapes(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1],\"payload\":{"
                       "\"source_path\":\"/d\\u00e9j\\u00e0/\\ud83d\\ude00\\\"q\\\".txt\","
                       "\"mime_type\":\"caf\xc3\xa9\"}}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    struct qdrant_value v = qdrant_matrix_field(&m, 0, QDRANT_F_SOURCE_PATH);
    CHECK_STR(v.text, "/d\xc3\xa9j\xc3\xa0/\xf0\x9f\x98\x80\"q\".txt");
    CHECK(v.len == strlen(v.text));
    CHECK_STR(qdrant_matrix_field(&m, 0, QDRANT_F_MIME_TYPE).text, "caf\xc3\xa9");
    qdrant_matrix_free(&m);
}

static void test_payload_field_kinds_and_texts(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body =
        "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1],\"payload\":{"
        "\"doc_id\":0,\"document_id\":123456789012345678901234,\"chunk_id\":\"\","
        "\"source_id\":0.0,\"path\":false,\"mime_type\":null,\"ingested_at\":1.7e12,"
        "\"created_at\":{},\"updated_at\":[1],\"timestamp\":true,\"other\":{\"doc_id\":\"n\"}}}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    struct qdrant_value v = qdrant_matrix_field(&m, 0, QDRANT_F_DOC_ID);
    CHECK(v.kind == QDRANT_V_INT);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_DOCUMENT_ID);
    CHECK(v.kind == QDRANT_V_INT);
    CHECK_STR(v.text, "123456789012345678901234");
    v = qdrant_matrix_field(&m, 0, QDRANT_F_CHUNK_ID);
    CHECK(v.kind == QDRANT_V_STRING);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_SOURCE_ID);
    CHECK(v.kind == QDRANT_V_FLOAT);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_PATH);
    CHECK(v.kind == QDRANT_V_FALSE);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_MIME_TYPE);
    CHECK(v.kind == QDRANT_V_NULL);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_INGESTED_AT);
    CHECK(v.kind == QDRANT_V_FLOAT);
    CHECK_STR(v.text, "1.7e12");
    v = qdrant_matrix_field(&m, 0, QDRANT_F_CREATED_AT);
    CHECK(v.kind == QDRANT_V_OBJECT && v.empty);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_UPDATED_AT);
    CHECK(v.kind == QDRANT_V_ARRAY && !v.empty);
    v = qdrant_matrix_field(&m, 0, QDRANT_F_TIMESTAMP);
    CHECK(v.kind == QDRANT_V_TRUE);
    qdrant_matrix_free(&m);
}

static void test_metadata_fields_follow_python_dict_semantics(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body =
        "{\"result\":{\"points\":["
        "{\"id\":1,\"vector\":[1],\"payload\":{\"metadata\":{\"mime_type\":\"a/b\","
        "\"source_path\":\"/x/"
        "y.pdf\",\"nested\":{\"mime_type\":\"no\"}},\"path\":\"p1\",\"path\":\"p2\"}},"
        "{\"id\":2,\"vector\":[1],\"payload\":{\"metadata\":{\"mime_type\":\"a/"
        "b\"},\"metadata\":5}},"
        "{\"id\":3,\"vector\":[1],\"payload\":{\"metadata\":[],\"metadata\":{\"timestamp\":17}}}]}"
        "}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 3);
    CHECK_STR(qdrant_matrix_field(&m, 0, QDRANT_F_META_MIME_TYPE).text, "a/b");
    CHECK_STR(qdrant_matrix_field(&m, 0, QDRANT_F_META_SOURCE_PATH).text, "/x/y.pdf");
    CHECK_STR(qdrant_matrix_field(&m, 0, QDRANT_F_PATH).text, "p2");
    CHECK(qdrant_matrix_field(&m, 0, QDRANT_F_MIME_TYPE).kind == QDRANT_V_ABSENT);
    CHECK(qdrant_matrix_field(&m, 1, QDRANT_F_META_MIME_TYPE).kind == QDRANT_V_ABSENT);
    CHECK_STR(qdrant_matrix_field(&m, 2, QDRANT_F_META_TIMESTAMP).text, "17");
    qdrant_matrix_free(&m);
}

static void test_parses_exponent_forms_and_big_numbers(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    static const char *r0[] = {
        "1e-5", "-2.5E+3",     "123456789012345678901234", "0.000000000000000000000000000001",
        "-0",   "3.4028234e38"};
    const char *body = "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1e-5,-2.5E+3,"
                       "123456789012345678901234,0.000000000000000000000000000001,-0,"
                       "3.4028234e38]}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    CHECK(m.n == 1 && m.dim == 6 && row_equals(&m, 0, r0));
    qdrant_matrix_free(&m);
}

static void test_rejects_mixed_dimensions_naming_the_point(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1,2,3]},"
                       "{\"id\":\"550e8400-e29b-41d4-a716-446655440000\",\"vector\":[1,2]}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == PW_EPROTO);
    CHECK(strstr(err.msg, "550e8400-e29b-41d4-a716-446655440000") != NULL);
    CHECK(strstr(err.msg, "mixed dimensions") != NULL);
    CHECK(m.n == 0); /* the failed page left nothing behind */
    qdrant_matrix_free(&m);
}

static void test_rejects_vector_longer_than_reserved_dim(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    CHECK(qdrant_matrix_reserve(&m, 4, 2, &err) == 0);
    const char *body = "{\"result\":{\"points\":[{\"id\":5,\"vector\":[1,2,3,4,5,6,7,8,9]}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == PW_EPROTO);
    CHECK(strstr(err.msg, "point 5") != NULL && strstr(err.msg, "9 values, expected 2"));
    qdrant_matrix_free(&m);
}

static void test_rejects_nan_text_naming_the_point(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1,2]},"
                       "{\"id\":77,\"vector\":[NaN,2]}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == PW_EPROTO);
    CHECK(strstr(err.msg, "point 77") != NULL);
    CHECK(m.n == 0);
    qdrant_matrix_free(&m);
}

static void test_rejects_values_outside_float32_naming_the_point(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":8,\"vector\":[1,1e39]}]}}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == PW_EPROTO);
    CHECK(strstr(err.msg, "point 8") != NULL && strstr(err.msg, "1e39") != NULL);
    qdrant_matrix_free(&m);
}

static void test_rejects_non_numbers_in_vector_naming_the_point(void)
{
    static const char *bodies[] = {"{\"result\":{\"points\":[{\"id\":9,\"vector\":[1,\"2\"]}]}}",
                                   "{\"result\":{\"points\":[{\"id\":9,\"vector\":[1,null]}]}}",
                                   "{\"result\":{\"points\":[{\"id\":9,\"vector\":[1,[2]]}]}}",
                                   "{\"result\":{\"points\":[{\"id\":9,\"vector\":[true]}]}}"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        struct qdrant_matrix m;
        struct qdrant_page pg;
        struct pw_error err;
        qdrant_matrix_init(&m);
        CHECK(parse(&m, &opts_all, bodies[i], &pg, &err) == PW_EPROTO);
        CHECK(strstr(err.msg, "point 9") != NULL);
        qdrant_matrix_free(&m);
    }
}

static void test_rejects_empty_vector(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    CHECK(parse(&m, &opts_all, "{\"result\":{\"points\":[{\"id\":3,\"vector\":[]}]}}", &pg, &err) ==
          PW_EPROTO);
    CHECK(strstr(err.msg, "point 3") != NULL);
    qdrant_matrix_free(&m);
}

static void test_reports_truncated_body_as_retryable(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1,2]},{\"id\":2,\"vec";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == PW_EUNAVAIL);
    CHECK(m.n == 0);
    CHECK(parse(&m, &opts_all, "", &pg, &err) == PW_EUNAVAIL);
    qdrant_matrix_free(&m);
}

static void test_reports_server_error_status(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    const char *body = "{\"status\":{\"error\":\"Not found: Collection `foo` doesn't exist!\"},"
                       "\"time\":0.00003}";
    CHECK(parse(&m, &opts_all, body, &pg, &err) == PW_EPROTO);
    CHECK(strstr(err.msg, "Collection `foo` doesn't exist!") != NULL);
    CHECK(parse(&m, &opts_all, "{\"result\":null,\"status\":\"ok\"}", &pg, &err) == PW_EPROTO);
    CHECK(parse(&m, &opts_all, "[1,2]", &pg, &err) == PW_EPROTO);
    CHECK(parse(&m, &opts_all, "{\"result\":{\"points\":{}}}", &pg, &err) == PW_EPROTO);
    qdrant_matrix_free(&m);
}

static void test_empty_page_has_no_points_and_no_next(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    CHECK(parse(&m, &opts_all,
                "{\"result\":{\"points\":[]},\"status\":\"ok\",\"time\":0,\"usage\":{\"cpu\":1}}",
                &pg, &err) == 0);
    CHECK(pg.points == 0 && !pg.has_next && m.n == 0);
    qdrant_matrix_free(&m);
}

static void test_stops_storing_rows_at_the_limit(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    struct qdrant_parse_opts o = {.limit = 2, .keep_payload = 1};
    qdrant_matrix_init(&m);
    const char *body =
        "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1]},{\"id\":2,\"vector\":[2]},"
        "{\"id\":3,\"vector\":[3]}],\"next_page_offset\":4}}";
    CHECK(parse(&m, &o, body, &pg, &err) == 0);
    CHECK(m.n == 2 && pg.points == 3 && pg.kept == 2 && m.x[1] == 2);
    qdrant_matrix_free(&m);
}

static void test_grows_rows_past_the_reservation_and_appends_pages(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    char *body = malloc(1 << 16);
    qdrant_matrix_init(&m);
    CHECK(qdrant_matrix_reserve(&m, 3, 0, &err) == 0);
    for (int page = 0; page < 3; page++) {
        int k = sprintf(body, "{\"result\":{\"points\":[");
        for (int i = 0; i < 100; i++)
            k += sprintf(body + k,
                         "%s{\"id\":%d,\"vector\":[%d,%d.5],\"payload\":{\"doc_id\":\"d%d\"}}",
                         i ? "," : "", page * 100 + i, page * 100 + i, i, page * 100 + i);
        sprintf(body + k, "]}}");
        CHECK(parse(&m, &opts_all, body, &pg, &err) == 0);
    }
    CHECK(m.n == 300 && m.dim == 2);
    int ok = 1;
    for (int i = 0; i < 300; i++) {
        char want[16];
        sprintf(want, "d%d", i);
        ok &= m.x[2 * i] == (float)i && m.x[2 * i + 1] == (float)(i % 100) + 0.5f;
        ok &= m.ids[i].u.num == (uint64_t)i;
        ok &= strcmp(qdrant_matrix_field(&m, i, QDRANT_F_DOC_ID).text, want) == 0;
    }
    CHECK(ok);
    free(body);
    qdrant_matrix_free(&m);
}

static void test_streaming_in_small_chunks_matches_whole_parse(void)
{
    const char *body =
        "{\"result\":{\"points\":[{\"id\":\"550e8400-e29b-41d4-a716-446655440000\",\"payload\":"
        "{\"doc_id\":\"\\u00e9t\\u00e9\",\"metadata\":{\"mime_type\":\"text/plain\"}},"
        "\"vector\":[0.12345679,-1.5e-7,123456.789]},{\"id\":7,\"vector\":{\"x\":null,"
        "\"y\":[1.25,2.5,-3.75]}}],\"next_page_offset\":8},\"status\":\"ok\",\"time\":1.5}";
    struct qdrant_matrix whole, chunked;
    struct qdrant_page pw, pc;
    struct pw_error err;
    qdrant_matrix_init(&whole);
    CHECK(parse(&whole, &opts_all, body, &pw, &err) == 0);
    for (size_t step = 1; step <= 7; step++) {
        struct qdrant_page_parser *p;
        qdrant_matrix_init(&chunked);
        CHECK(qdrant_page_parser_new(&p, &chunked, &opts_all, &err) == 0);
        size_t len = strlen(body);
        for (size_t off = 0; off < len; off += step)
            CHECK(qdrant_page_parser_feed(p, body + off, off + step > len ? len - off : step,
                                          &err) == 0);
        CHECK(qdrant_page_parser_finish(p, &pc, &err) == 0);
        qdrant_page_parser_free(p);
        CHECK(chunked.n == whole.n && chunked.dim == whole.dim);
        CHECK(memcmp(chunked.x, whole.x, whole.n * whole.dim * sizeof(float)) == 0);
        CHECK(memcmp(chunked.ids, whole.ids, whole.n * sizeof *whole.ids) == 0);
        CHECK_STR(qdrant_matrix_field(&chunked, 0, QDRANT_F_DOC_ID).text, "\xc3\xa9t\xc3\xa9");
        CHECK_STR(qdrant_matrix_field(&chunked, 0, QDRANT_F_META_MIME_TYPE).text, "text/plain");
        CHECK_STR(pc.next_offset, "8");
        qdrant_matrix_free(&chunked);
    }
    CHECK(whole.n == 2 && whole.x[3] == 1.25f);
    qdrant_matrix_free(&whole);
}

static void test_failed_parser_rolls_back_appended_rows(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    qdrant_matrix_init(&m);
    CHECK(
        parse(
            &m, &opts_all,
            "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1,2],\"payload\":{\"path\":\"a\"}}]}}",
            &pg, &err) == 0);
    size_t arena = m.arena_len;
    CHECK(parse(&m, &opts_all,
                "{\"result\":{\"points\":[{\"id\":2,\"vector\":[3,4],\"payload\":{\"path\":\"b\"}},"
                "{\"id\":3,\"vector\":[5,6]",
                &pg, &err) == PW_EUNAVAIL);
    CHECK(m.n == 1 && m.arena_len == arena && m.dim == 2);
    CHECK_STR(qdrant_matrix_field(&m, 0, QDRANT_F_PATH).text, "a");
    qdrant_matrix_free(&m);
}

static void test_without_keep_payload_stores_no_fields(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    struct qdrant_parse_opts o = {.keep_payload = 0};
    qdrant_matrix_init(&m);
    CHECK(parse(&m, &o,
                "{\"result\":{\"points\":[{\"id\":1,\"vector\":[1],\"payload\":{\"path\":"
                "\"a\"}}]}}",
                &pg, &err) == 0);
    CHECK(m.n == 1 && m.arena_len == 0);
    CHECK(qdrant_matrix_field(&m, 0, QDRANT_F_PATH).kind == QDRANT_V_ABSENT);
    qdrant_matrix_free(&m);
}

static void test_vector_fast_path_matches_yajl_on_whitespace_and_number_forms(void)
{
    const char *body = "{\"result\": {\"points\": [\n"
                       " {\"id\": 1, \"vector\": [ 1 , -2.5e-3,\n\t0.125,0,-0, 1E+2 ,3.4028234e38, "
                       "1e-45, 123456789012345678901234567890 ] },\n"
                       " {\"id\": 2, \"vector\": {\"a\": [[1,2]], \"b\": [ 9,8,7,6,5,4,3,2,1 ]}}\n"
                       "]}, \"status\": \"ok\"}";
    static const char *r0[] = {"1",
                               "-2.5e-3",
                               "0.125",
                               "0",
                               "-0",
                               "1E+2",
                               "3.4028234e38",
                               "1e-45",
                               "123456789012345678901234567890"};
    struct qdrant_parse_opts slow = {.keep_payload = 1, .no_fast_path = 1};
    struct qdrant_matrix a, b;
    struct qdrant_page pa, pb;
    struct pw_error err;
    qdrant_matrix_init(&a);
    qdrant_matrix_init(&b);
    CHECK(parse(&a, &opts_all, body, &pa, &err) == 0);
    CHECK(parse(&b, &slow, body, &pb, &err) == 0);
    CHECK(a.n == 1 && a.dim == 9 && row_equals(&a, 0, r0));
    CHECK(a.skipped == 1); /* point 2: first non-null named vector is a multivector */
    CHECK(b.n == a.n && b.dim == a.dim && memcmp(a.x, b.x, 9 * sizeof(float)) == 0);
    qdrant_matrix_free(&a);
    qdrant_matrix_free(&b);
}

static void test_growth_past_a_low_estimate_stops_at_the_limit(void)
{
    struct qdrant_matrix m;
    struct qdrant_page pg;
    struct pw_error err;
    struct qdrant_parse_opts o = {.limit = 100, .keep_payload = 1};
    char *body = malloc(1 << 16);
    qdrant_matrix_init(&m);
    CHECK(qdrant_matrix_reserve(&m, 3, 4, &err) == 0); /* points_count said 3 */
    int k = sprintf(body, "{\"result\":{\"points\":[");
    for (int i = 0; i < 150; i++)
        k += sprintf(body + k, "%s{\"id\":%d,\"vector\":[1,2,3,%d]}", i ? "," : "", i, i);
    sprintf(body + k, "]}}");
    CHECK(parse(&m, &o, body, &pg, &err) == 0);
    CHECK(m.n == 100 && m.x[99 * 4 + 3] == 99.0f);
    CHECK(m.cap == 100); /* doubling from 3 would have reached 192 */
    free(body);
    qdrant_matrix_free(&m);
}

static int peek(const char *tail, int *has_next, char *off)
{
    return qdrant_page_peek_next(tail, strlen(tail), has_next, off);
}

static void test_peek_reads_offset_after_the_points_array(void)
{
    char off[QDRANT_OFFSET_TEXT_MAX];
    int has = -1;
    CHECK(peek("1,2]}],\"next_page_offset\":42},\"status\":\"ok\",\"time\":0.1}", &has, off) == 1);
    CHECK(has == 1);
    CHECK_STR(off, "42");
    CHECK(peek("]} ] ,\n \"next_page_offset\" : \"0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\" \n}}",
               &has, off) == 1);
    CHECK(has == 1);
    CHECK_STR(off, "\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\""); /* as the parser writes it */
    CHECK(peek("}],\"next_page_offset\":null},\"status\":\"ok\"}", &has, off) == 1);
    CHECK(has == 0 && off[0] == '\0');
}

static void test_peek_refuses_tails_it_cannot_vouch_for(void)
{
    char off[QDRANT_OFFSET_TEXT_MAX];
    int has = 0;
    /* a payload key of that name inside a point: preceded by { or a scalar */
    CHECK(peek("{\"next_page_offset\":7},\"vector\":[1]}]}}", &has, off) == 0);
    CHECK(peek("\"a\":1,\"next_page_offset\":7},\"vector\":[1]}]}}", &has, off) == 0);
    /* value not followed by the end of "result" */
    CHECK(peek("[1],\"next_page_offset\":7,\"x\":1}", &has, off) == 0);
    /* cut short (truncated bodies) */
    CHECK(peek("}],\"next_page_offset\":4", &has, off) == 0);
    CHECK(peek("}],\"next_page_offset\":\"0f1e2d3c-4b5a", &has, off) == 0);
    CHECK(peek("}],\"next_page_off", &has, off) == 0);
    /* not an id */
    CHECK(peek("}],\"next_page_offset\":-4}}", &has, off) == 0);
    CHECK(peek("}],\"next_page_offset\":018446744073709551616}}", &has, off) == 0);
    CHECK(peek("}],\"next_page_offset\":\"not-a-uuid\"}}", &has, off) == 0);
    CHECK(peek("", &has, off) == 0);
}

/* Body of `count` points with ids first..; every point whose id is a multiple of
 * `null_every` (when > 0) has a null vector. */
static char *page_body(int first, int count, int null_every)
{
    char *body = malloc(200 + (size_t)count * 96);
    int k = sprintf(body, "{\"result\":{\"points\":[");
    for (int i = first; i < first + count; i++) {
        if (null_every && i % null_every == 0)
            k += sprintf(body + k, "%s{\"id\":%d,\"vector\":null,\"payload\":{\"doc_id\":\"d%d\"}}",
                         i > first ? "," : "", i, i);
        else
            k += sprintf(body + k,
                         "%s{\"id\":%d,\"vector\":[%d,%d.25,-1],\"payload\":{\"doc_id\":\"d%d\"}}",
                         i > first ? "," : "", i, i, i, i);
    }
    sprintf(body + k, "],\"next_page_offset\":%d},\"status\":\"ok\"}", first + count);
    return body;
}

static void test_windows_parsed_out_of_order_commit_like_sequential_pages(void)
{
    struct qdrant_matrix seq, m;
    struct qdrant_window win[3];
    struct qdrant_page pg;
    struct pw_error err;
    char *bodies[3];
    int ok = 1;
    qdrant_matrix_init(&seq);
    qdrant_matrix_init(&m);
    memset(win, 0, sizeof win);
    for (int p = 0; p < 3; p++)
        bodies[p] = page_body(p * 50, 50, 7); /* skipped points leave gaps to close */
    for (int p = 0; p < 3; p++)
        CHECK(qdrant_page_parse(&seq, &opts_all, bodies[p], strlen(bodies[p]), &pg, &err) == 0);

    CHECK(qdrant_matrix_reserve(&m, 150, 3, &err) == 0);
    for (int p = 2; p >= 0; p--) { /* the parsers may finish in any order */
        struct qdrant_parse_opts o = opts_all;
        o.limit = 50;
        CHECK(qdrant_window_open(&win[p], &m, (size_t)p * 50, 50, &err) == 0);
        CHECK(qdrant_page_parse(&win[p].w, &o, bodies[p], strlen(bodies[p]), &pg, &err) == 0);
        CHECK(pg.kept < 50 && pg.skipped > 0);
    }
    for (int p = 0; p < 3; p++)
        CHECK(qdrant_window_commit(&win[p], &m, &err) == 0);
    CHECK(m.n == seq.n && m.dim == seq.dim && m.skipped == seq.skipped);
    ok &= memcmp(m.x, seq.x, seq.n * seq.dim * sizeof(float)) == 0;
    for (size_t i = 0; i < seq.n; i++) {
        ok &= m.ids[i].u.num == seq.ids[i].u.num;
        ok &= strcmp(qdrant_matrix_field(&m, i, QDRANT_F_DOC_ID).text,
                     qdrant_matrix_field(&seq, i, QDRANT_F_DOC_ID).text) == 0;
    }
    CHECK(ok);
    for (int p = 0; p < 3; p++) {
        qdrant_window_free(&win[p]);
        free(bodies[p]);
    }
    qdrant_matrix_free(&seq);
    qdrant_matrix_free(&m);
}

static void test_window_refuses_rows_outside_the_matrix_and_late_commits(void)
{
    struct qdrant_matrix m;
    struct qdrant_window a = {0}, b = {0};
    struct qdrant_page pg;
    struct pw_error err;
    char *body = page_body(0, 10, 0);
    qdrant_matrix_init(&m);
    CHECK(qdrant_window_open(&a, &m, 0, 10, &err) == PW_EINVAL); /* no dim yet */
    CHECK(qdrant_matrix_reserve(&m, 20, 3, &err) == 0);
    CHECK(qdrant_window_open(&a, &m, 15, 10, &err) == PW_EINVAL); /* past the capacity */
    CHECK(qdrant_window_open(&a, &m, 0, 10, &err) == 0);
    CHECK(qdrant_window_open(&b, &m, 10, 10, &err) == 0);
    struct qdrant_parse_opts o = opts_all;
    o.limit = 10;
    CHECK(qdrant_page_parse(&a.w, &o, body, strlen(body), &pg, &err) == 0);
    CHECK(qdrant_page_parse(&b.w, &o, body, strlen(body), &pg, &err) == 0);
    CHECK(qdrant_window_commit(&a, &m, &err) == 0);
    CHECK(qdrant_window_commit(&b, &m, &err) == 0);
    CHECK(m.n == 20);
    CHECK(qdrant_window_commit(&a, &m, &err) == PW_EINVAL); /* its rows are behind m->n */
    qdrant_window_free(&a);
    qdrant_window_free(&b);
    free(body);
    qdrant_matrix_free(&m);
}

int main(void)
{
    RUN(test_parses_integer_ids_vectors_and_next_offset);
    RUN(test_peek_reads_offset_after_the_points_array);
    RUN(test_peek_refuses_tails_it_cannot_vouch_for);
    RUN(test_windows_parsed_out_of_order_commit_like_sequential_pages);
    RUN(test_window_refuses_rows_outside_the_matrix_and_late_commits);
    RUN(test_parses_uuid_ids_and_uuid_next_offset);
    RUN(test_keeps_integer_ids_above_2_pow_53_exact);
    RUN(test_rejects_id_that_is_not_u64_or_uuid);
    RUN(test_named_vectors_take_first_non_null);
    RUN(test_named_vectors_take_the_requested_name);
    RUN(test_skips_points_with_null_or_missing_vector);
    RUN(test_skips_multivector_and_sparse_points);
    RUN(test_missing_payload_gives_absent_fields);
    RUN(test_payload_strings_decode_unicode_escapes);
    RUN(test_payload_field_kinds_and_texts);
    RUN(test_metadata_fields_follow_python_dict_semantics);
    RUN(test_parses_exponent_forms_and_big_numbers);
    RUN(test_rejects_mixed_dimensions_naming_the_point);
    RUN(test_rejects_vector_longer_than_reserved_dim);
    RUN(test_rejects_nan_text_naming_the_point);
    RUN(test_rejects_values_outside_float32_naming_the_point);
    RUN(test_rejects_non_numbers_in_vector_naming_the_point);
    RUN(test_rejects_empty_vector);
    RUN(test_reports_truncated_body_as_retryable);
    RUN(test_reports_server_error_status);
    RUN(test_empty_page_has_no_points_and_no_next);
    RUN(test_stops_storing_rows_at_the_limit);
    RUN(test_grows_rows_past_the_reservation_and_appends_pages);
    RUN(test_growth_past_a_low_estimate_stops_at_the_limit);
    RUN(test_streaming_in_small_chunks_matches_whole_parse);
    RUN(test_failed_parser_rolls_back_appended_rows);
    RUN(test_without_keep_payload_stores_no_fields);
    RUN(test_vector_fast_path_matches_yajl_on_whitespace_and_number_forms);
    PW_TEST_MAIN();
}
