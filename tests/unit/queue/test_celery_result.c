/* Result bodies match what Celery 5.2.6's rpc backend publishes (02_result_*.json). */
#include <stdlib.h>

#include "celery_result.h"
#include "pw_test.h"

static void test_success_body_has_five_keys_in_celery_order(void)
{
    json_t *res = json_pack("{s:s}", "status", "done");
    char *body =
        celery_result_body("1ad0be72-f459-47f0-b4e1-bafb3ddfd6cf", CELERY_SUCCESS, res, NULL);

    CHECK_STR(body, "{\"task_id\":\"1ad0be72-f459-47f0-b4e1-bafb3ddfd6cf\",\"status\":\"SUCCESS\","
                    "\"result\":{\"status\":\"done\"},\"traceback\":null,\"children\":[]}");
    CHECK(strstr(body, "date_done") == NULL);
    free(body);
    json_decref(res);
}

static void test_failure_result_is_exception_with_message_list(void)
{
    json_t *exc = celery_exception("NotRegistered", "celery.exceptions", "webui.tasks.x");
    char *body = celery_result_body("t", CELERY_FAILURE, exc, NULL);
    json_t *parsed = json_loads(body, 0, NULL);
    json_t *result = json_object_get(parsed, "result");

    CHECK_STR(json_string_value(json_object_get(parsed, "status")), "FAILURE");
    CHECK_STR(json_string_value(json_object_get(result, "exc_type")), "NotRegistered");
    CHECK_STR(json_string_value(json_object_get(result, "exc_module")), "celery.exceptions");
    CHECK(json_is_array(json_object_get(result, "exc_message")));
    CHECK_STR(json_string_value(json_array_get(json_object_get(result, "exc_message"), 0)),
              "webui.tasks.x");
    free(body);
    json_decref(parsed);
    json_decref(exc);
}

static void test_exception_without_module_sends_null(void)
{
    json_t *exc = celery_exception("ProjectionError", NULL, "boom");

    CHECK(json_is_null(json_object_get(exc, "exc_module")));
    json_decref(exc);
}

/* The capture of a real failure result: our encoder produces the same keys/values. */
static void test_matches_captured_rpc_failure_shape(void)
{
    json_t *cap = json_load_file("tests/fixtures/celery-wire/02_result_rpc_failure.json", 0, NULL);
    json_t *records = json_object_get(cap, "broker_view_published_messages_for_this_task_firehose");
    json_t *captured = NULL;
    size_t i;
    json_t *rec;

    CHECK(cap != NULL);
    json_array_foreach(records, i, rec)
    {
        json_t *body = json_loads(json_string_value(json_object_get(rec, "body_raw")), 0, NULL);
        if (json_is_object(body) && json_object_get(body, "status")) {
            captured = body;
            break;
        }
        json_decref(body);
    }
    CHECK(captured != NULL);
    if (captured) {
        json_t *cres = json_object_get(captured, "result");
        json_t *exc = celery_exception(
            json_string_value(json_object_get(cres, "exc_type")),
            json_string_value(json_object_get(cres, "exc_module")),
            json_string_value(json_array_get(json_object_get(cres, "exc_message"), 0)));
        char *ours = celery_result_body(json_string_value(json_object_get(captured, "task_id")),
                                        CELERY_FAILURE, exc, NULL);
        json_t *parsed = json_loads(ours, 0, NULL);
        const char *key;
        json_t *v;

        CHECK(json_object_size(parsed) == json_object_size(captured));
        json_object_foreach(captured, key, v)
        {
            CHECK(json_object_get(parsed, key) != NULL);
            if (strcmp(key, "traceback"))
                CHECK(json_equal(json_object_get(parsed, key), v));
        }
        json_decref(parsed);
        json_decref(exc);
        free(ours);
        json_decref(captured);
    }
    json_decref(cap);
}

int main(void)
{
    RUN(test_success_body_has_five_keys_in_celery_order);
    RUN(test_failure_result_is_exception_with_message_list);
    RUN(test_exception_without_module_sends_null);
    RUN(test_matches_captured_rpc_failure_shape);
    PW_TEST_MAIN();
}
