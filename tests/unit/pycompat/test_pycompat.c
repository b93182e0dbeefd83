/* test_pycompat.c - pycompat corners check_pycompat_vs_python.py does not reach: bool()
 * of the payload values Qdrant hands over (the `a or b` chains of the category rules),
 * NULL as None, and str() truncation.  Expected values are Python's: bool(0) is False,
 * bool(123456789012345678901234) is True, and so on. */
#include <string.h>

#include <jansson.h>

#include "pw_test.h"
#include "pycompat.h"

static void test_truthiness_of_payload_values_follows_python_bool(void)
{
    json_t *p = json_loads(
        "{\"doc_id\":0,\"document_id\":123456789012345678901234,\"chunk_id\":\"\","
        "\"source_id\":0.0,\"path\":false,\"mime_type\":null,\"ingested_at\":1.7e12,"
        "\"created_at\":{},\"updated_at\":[1],\"timestamp\":true,\"other\":{\"doc_id\":\"n\"}}",
        JSON_DECODE_INT_AS_REAL, NULL);
    CHECK(p != NULL);
    CHECK(!py_truthy(json_object_get(p, "doc_id")));
    CHECK(py_truthy(json_object_get(p, "document_id")));
    CHECK(!py_truthy(json_object_get(p, "chunk_id")));
    CHECK(!py_truthy(json_object_get(p, "source_id")));
    CHECK(!py_truthy(json_object_get(p, "path")));
    CHECK(!py_truthy(json_object_get(p, "mime_type")));
    CHECK(py_truthy(json_object_get(p, "ingested_at")));
    CHECK(!py_truthy(json_object_get(p, "created_at")));
    CHECK(py_truthy(json_object_get(p, "updated_at")));
    CHECK(py_truthy(json_object_get(p, "timestamp")));
    CHECK(py_truthy(json_object_get(p, "other")));
    CHECK(!py_truthy(NULL));
    json_decref(p);
}

static void test_str_of_null_pointer_is_none_and_truncation_is_refused(void)
{
    char out[8];
    json_t *v = json_string("0123456789");
    CHECK(py_str(NULL, out, sizeof out) == 0);
    CHECK_STR(out, "None");
    CHECK(py_str(v, out, sizeof out) == PW_EINVAL);
    CHECK_STR(out, "0123456");
    CHECK(py_str(v, out, 0) == PW_EINVAL);
    json_decref(v);
}

int main(void)
{
    RUN(test_truthiness_of_payload_values_follows_python_bool);
    RUN(test_str_of_null_pointer_is_none_and_truncation_is_refused);
    PW_TEST_MAIN();
}
