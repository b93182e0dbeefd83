/* test_pyjson.c - py_json_dumps corners the random comparison with Python cannot reach through
 * jansson's decoder (NUL in keys, invalid UTF-8, non-finite reals, depth, bad arguments).
 * Expected texts were printed by /usr/bin/python3's json.dumps(v, indent=2, sort_keys=True)
 * (command in each test); the bulk comparison lives in check_pyjson_vs_python.py. */
#include <math.h>
#include <stdlib.h>

#include <jansson.h>

#include "pw_test.h"
#include "pycompat.h"

/* python3 -c 'import json; print(repr(json.dumps({"a\0b":1,"a":[],"":{}}, indent=2,
 * sort_keys=True)))' */
static void test_sorts_keys_with_embedded_nul_and_prints_empty_containers_inline(void)
{
    json_t *v = json_object();
    json_object_setn_new(v, "a\0b", 3, json_integer(1));
    json_object_set_new(v, "a", json_array());
    json_object_set_new(v, "", json_object());
    struct pw_error err = {0};
    char *out = NULL;
    CHECK(py_json_dumps(v, 2, &out, &err) == 0);
    CHECK_STR(out, "{\n  \"\": {},\n  \"a\": [],\n  \"a\\u0000b\": 1\n}");
    free(out);
    json_decref(v);
}

/* python3 -c 'import json; print(repr(json.dumps({"z":[1,{"y":None,"x":True}],"k":False},
 * indent=2, sort_keys=True)))' */
static void test_nested_containers_indent_per_level(void)
{
    json_t *v = json_pack("{s:[i,{s:n,s:b}],s:b}", "z", 1, "y", "x", 1, "k", 0);
    struct pw_error err = {0};
    char *out = NULL;
    CHECK(v != NULL);
    CHECK(py_json_dumps(v, 2, &out, &err) == 0);
    CHECK_STR(out, "{\n  \"k\": false,\n  \"z\": [\n    1,\n    {\n      \"x\": true,\n"
                   "      \"y\": null\n    }\n  ]\n}");
    free(out);
    json_decref(v);
}

/* Python would print NaN / Infinity; jansson cannot hold them, so py_json_dumps never
 * sees one.  If this starts failing, jansson changed and py_json_dumps must handle NaN. */
static void test_jansson_refuses_non_finite_reals(void)
{
    json_t *r = json_real(1.0);
    CHECK(json_real(NAN) == NULL);
    CHECK(json_real(INFINITY) == NULL);
    CHECK(json_real(-INFINITY) == NULL);
    CHECK(json_real_set(r, NAN) < 0);
    CHECK(json_real_value(r) == 1.0);
    json_decref(r);
}

static void test_refuses_invalid_utf8_string(void)
{
    json_t *v = json_array();
    json_array_append_new(v, json_stringn_nocheck("a\xff", 2));
    struct pw_error err = {0};
    char *out = (char *)"untouched";
    CHECK(py_json_dumps(v, 2, &out, &err) == PW_EINVAL);
    CHECK(out == NULL);
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    json_decref(v);

    /* a surrogate encoded in UTF-8 (CESU) is not valid UTF-8 either */
    v = json_stringn_nocheck("\xed\xa0\x80", 3);
    CHECK(py_json_dumps(v, 2, &out, &err) == PW_EINVAL);
    json_decref(v);
}

static void test_refuses_negative_indent_other_than_compact_and_null_value(void)
{
    struct pw_error err = {0};
    char *out = NULL;
    json_t *v = json_integer(1);
    CHECK(py_json_dumps(v, PY_JSON_COMPACT - 1, &out, &err) == PW_EINVAL);
    CHECK(out == NULL);
    CHECK(py_json_dumps(NULL, 2, &out, &err) == PW_EINVAL);
    json_decref(v);
}

static void test_refuses_nesting_beyond_max_depth(void)
{
    json_t *root = json_array(), *cur = root;
    for (int i = 0; i < PY_JSON_MAX_DEPTH + 5; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    struct pw_error err = {0};
    char *out = NULL;
    CHECK(py_json_dumps(root, 2, &out, &err) == PW_EINVAL);
    CHECK(out == NULL);
    CHECK(strstr(err.msg, "deeper") != NULL);
    json_decref(root);
}

int main(void)
{
    RUN(test_sorts_keys_with_embedded_nul_and_prints_empty_containers_inline);
    RUN(test_nested_containers_indent_per_level);
    RUN(test_jansson_refuses_non_finite_reals);
    RUN(test_refuses_invalid_utf8_string);
    RUN(test_refuses_negative_indent_other_than_compact_and_null_value);
    RUN(test_refuses_nesting_beyond_max_depth);
    PW_TEST_MAIN();
}
