/* celery_send: the protocol-2 message it encodes against the one real Celery 5.2.6
 * published for send_task(name, args=[uuid]) (tests/fixtures/celery-wire/
 * 01_send_p2_args.json), and read back by our own decoder. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "celery_message.h"
#include "celery_send.h"
#include "pw_test.h"

#define CAPTURE "tests/fixtures/celery-wire/01_send_p2_args.json"
#define RUN_ID  "d3b07384-d9a0-4c8e-9f1e-2a3b4c5d6e7f"

static json_t *captured_publish(void)
{
    json_t *cap = json_load_file(CAPTURE, 0, NULL);
    json_t *pub = json_array_get(json_object_get(cap, "published_as_seen_by_broker_firehose"), 0);
    json_t *out = json_deep_copy(json_object_get(pub, "trace_headers"));
    json_object_set(out, "body_json", json_object_get(pub, "body_json"));
    json_decref(cap);
    return out;
}

static void test_headers_and_body_match_the_celery_capture(void)
{
    json_t *cap = captured_publish(), *headers = NULL, *args = json_pack("[s]", RUN_ID);
    json_t *want = json_object_get(json_object_get(cap, "properties"), "headers");
    char *body = NULL;
    struct celery_send_task t = {"webui.tasks.compute_projection",
                                 "3b8f8eb1-b420-4da4-b26e-09f4e3d6bf2a", args, NULL, NULL};
    struct pw_error err;

    CHECK(celery_send_encode(&t, &headers, &body, &err) == 0);
    /* same keys in the same order, same values except the sender's origin */
    CHECK(json_object_size(headers) == json_object_size(want));
    const char *key;
    json_t *v;
    void *it = json_object_iter(headers);
    json_object_foreach(want, key, v)
    {
        CHECK_STR(json_object_iter_key(it), key);
        if (strcmp(key, "origin"))
            CHECK(json_equal(json_object_iter_value(it), v));
        it = json_object_iter_next(headers, it);
    }
    CHECK(!strncmp(json_string_value(json_object_get(headers, "origin")), "gen", 3));
    json_t *parsed = json_loads(body, 0, NULL);
    CHECK(json_equal(parsed, json_object_get(cap, "body_json")));
    json_decref(parsed);
    json_decref(headers);
    json_decref(args);
    json_decref(cap);
    free(body);
}

static void test_our_decoder_reads_what_it_encodes(void)
{
    json_t *headers = NULL, *args = json_pack("[s]", RUN_ID), *kwargs = json_pack("{s:i}", "n", 3);
    char *body = NULL, id[CELERY_TASK_ID_LEN + 1];
    struct celery_task_msg msg;
    struct pw_error err;

    CHECK(celery_send_new_id(id, &err) == 0);
    CHECK(strlen(id) == 36 && id[14] == '4' && strchr("89ab", id[19]));
    struct celery_send_task t = {"webui.tasks.compute_projection", id, args, kwargs, NULL};
    CHECK(celery_send_encode(&t, &headers, &body, &err) == 0);
    struct celery_delivery_in in = {"application/json", "utf-8", id, NULL, headers, body,
                                    strlen(body)};
    CHECK(celery_message_decode(&in, &msg, &err) == 0);
    CHECK(msg.protocol == 2);
    CHECK_STR(msg.task, "webui.tasks.compute_projection");
    CHECK_STR(msg.id, id);
    CHECK_STR(msg.root_id, id);
    CHECK(json_equal(msg.args, args) && json_equal(msg.kwargs, kwargs));
    CHECK_STR(msg.argsrepr, "['" RUN_ID "']");
    CHECK_STR(msg.kwargsrepr, "{'n': 3}");
    CHECK(msg.eta == 0 && msg.expires == 0 && msg.retries == 0 && !msg.ignore_result);
    celery_message_free(&msg);
    json_decref(headers);
    json_decref(args);
    json_decref(kwargs);
    free(body);
}

static void test_refuses_args_that_are_not_a_list(void)
{
    json_t *headers = NULL, *args = json_string(RUN_ID);
    char *body = NULL;
    struct celery_send_task t = {"webui.tasks.compute_projection", RUN_ID, args, NULL, NULL};
    struct pw_error err;

    CHECK(celery_send_encode(&t, &headers, &body, &err) == PW_EINVAL);
    CHECK(headers == NULL && body == NULL);
    json_decref(args);
}

int main(void)
{
    RUN(test_headers_and_body_match_the_celery_capture);
    RUN(test_our_decoder_reads_what_it_encodes);
    RUN(test_refuses_args_that_are_not_a_list);
    PW_TEST_MAIN();
}
