/* The Celery decoder against every task message captured from real Celery 5.2.6
 * (tests/fixtures/celery-wire, copied from shared/celery-wire/captures).
 *
 * The walker finds every published or delivered message in every capture file whose
 * destination is a task queue (default exchange, routing key celery/projection).  The
 * expected outcome of each is read off the capture itself - content type, header
 * `task`, body shape - and compared with what the decoder makes of it.  Specific
 * captures then pin exact field values (eta, expires, time limits, kwargs, v1). */
#include <dirent.h>
#include <stdlib.h>

#include "celery_message.h"
#include "pycompat.h"
#include "pw_test.h"

#define CAPTURES "tests/fixtures/celery-wire"

struct walk_stats {
    int messages, v2, v1, refused, malformed, unknown;
};

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Decodes one captured message and checks it against the capture's own fields. */
static void check_captured_message(const char *file, json_t *props, json_t *body_raw,
                                   struct walk_stats *st)
{
    struct celery_delivery_in in;
    struct celery_task_msg m;
    struct pw_error err;
    json_t *headers = json_object_get(props, "headers");
    const char *ct = str(props, "content_type");
    const char *body = json_string_value(body_raw);
    json_t *parsed = body ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    int rc;

    memset(&in, 0, sizeof in);
    in.content_type = ct;
    in.content_encoding = str(props, "content_encoding");
    in.correlation_id = str(props, "correlation_id");
    in.reply_to = str(props, "reply_to");
    in.headers = headers;
    in.body = body ? body : "\x80\x04binary";
    in.body_len = strlen(in.body);
    rc = celery_message_decode(&in, &m, &err);
    st->messages++;

    if (!ct || strcmp(ct, "application/json")) {
        if (rc != CELERY_MSG_EREFUSED)
            fprintf(stderr, "%s: %s body accepted\n", file, ct ? ct : "(no type)");
        CHECK(rc == CELERY_MSG_EREFUSED);
        st->refused++;
    } else if (!parsed) {
        CHECK(rc == CELERY_MSG_EMALFORMED);
        st->malformed++;
    } else if (json_is_string(json_object_get(headers, "task"))) {
        if (rc)
            fprintf(stderr, "%s: v2 message refused: %s\n", file, err.msg);
        CHECK(rc == 0);
        if (rc == 0) {
            CHECK(m.protocol == 2);
            CHECK_STR(m.task, str(headers, "task"));
            CHECK_STR(m.id, str(headers, "id"));
            CHECK(json_equal(m.args, json_array_get(parsed, 0)));
            CHECK(json_equal(m.kwargs, json_array_get(parsed, 1)));
            CHECK(m.retries == json_integer_value(json_object_get(headers, "retries")));
            CHECK((m.eta != 0) == json_is_string(json_object_get(headers, "eta")));
            CHECK((m.expires != 0) == json_is_string(json_object_get(headers, "expires")));
            if (str(props, "reply_to"))
                CHECK_STR(m.reply_to, str(props, "reply_to"));
            st->v2++;
        }
    } else if (json_is_object(parsed) && json_is_string(json_object_get(parsed, "task"))) {
        CHECK(rc == 0);
        if (rc == 0) {
            CHECK(m.protocol == 1);
            CHECK_STR(m.task, str(parsed, "task"));
            CHECK_STR(m.id, str(parsed, "id"));
            CHECK(json_equal(m.args, json_object_get(parsed, "args")));
            CHECK(json_equal(m.kwargs, json_object_get(parsed, "kwargs")));
            st->v1++;
        }
    } else {
        CHECK(rc == CELERY_MSG_EUNKNOWN);
        st->unknown++;
    }
    celery_message_free(&m);
    json_decref(parsed);
}

static int is_task_destination(json_t *exchange, json_t *routing_key)
{
    const char *rk = json_string_value(routing_key);
    return json_is_string(exchange) && !strcmp(json_string_value(exchange), "") && rk &&
           (!strcmp(rk, "celery") || !strcmp(rk, "projection"));
}

/* Recursively finds {properties|trace_headers.properties, body_raw} records. */
static void walk(const char *file, json_t *node, struct walk_stats *st)
{
    size_t i;
    json_t *v;
    const char *k;

    if (json_is_array(node)) {
        json_array_foreach(node, i, v) walk(file, v, st);
        return;
    }
    if (!json_is_object(node))
        return;
    if (json_object_get(node, "body_raw")) {
        json_t *th = json_object_get(node, "trace_headers");
        json_t *props = json_object_get(th ? th : node, "properties");
        json_t *exchange = json_object_get(th ? th : node, th ? "exchange_name" : "exchange");
        json_t *rks = json_object_get(th ? th : node, "routing_keys");
        json_t *rk = json_array_get(rks, 0);
        json_t *delivery = json_object_get(node, "delivery");

        if (delivery) {
            exchange = json_object_get(delivery, "exchange");
            rk = json_object_get(delivery, "routing_key");
        }
        if (props && is_task_destination(exchange, rk))
            check_captured_message(file, props, json_object_get(node, "body_raw"), st);
        return;
    }
    json_object_foreach(node, k, v) walk(file, v, st);
}

static void test_decodes_every_captured_task_message(void)
{
    struct walk_stats st = {0};
    DIR *dir = opendir(CAPTURES);
    struct dirent *de;
    int files = 0;

    CHECK(dir != NULL);
    while (dir && (de = readdir(dir))) {
        char path[512];
        json_t *cap;
        if (!strstr(de->d_name, ".json"))
            continue;
        snprintf(path, sizeof path, "%s/%s", CAPTURES, de->d_name);
        cap = json_load_file(path, 0, NULL);
        CHECK(cap != NULL);
        walk(de->d_name, cap, &st);
        json_decref(cap);
        files++;
    }
    if (dir)
        closedir(dir);
    printf("     %d capture files, %d task messages: %d v2, %d v1, %d refused, %d malformed, "
           "%d unknown\n",
           files, st.messages, st.v2, st.v1, st.refused, st.malformed, st.unknown);
    /* The captures hold dozens of task messages of every kind; finding none of a kind
     * means the walker broke, not that the decoder passed. */
    CHECK(files >= 40);
    CHECK(st.v2 >= 20);
    CHECK(st.v1 >= 2);
    CHECK(st.refused >= 1);
    CHECK(st.malformed >= 1);
    CHECK(st.unknown >= 1);
}

/* Loads the first delivered (or published) message of a capture. */
static int decode_capture(const char *name, struct celery_task_msg *m, struct pw_error *err)
{
    char path[512];
    json_t *cap, *rec, *props;
    struct celery_delivery_in in;
    int rc;

    snprintf(path, sizeof path, "%s/%s", CAPTURES, name);
    cap = json_load_file(path, 0, NULL);
    rec = json_array_get(json_object_get(cap, "delivered_to_consumer_basic_get"), 0);
    if (!rec) {
        rec = json_array_get(json_object_get(cap, "published_as_seen_by_broker_firehose"), 0);
        props = json_object_get(json_object_get(rec, "trace_headers"), "properties");
    } else {
        props = json_object_get(rec, "properties");
    }
    memset(&in, 0, sizeof in);
    in.content_type = str(props, "content_type");
    in.content_encoding = str(props, "content_encoding");
    in.correlation_id = str(props, "correlation_id");
    in.reply_to = str(props, "reply_to");
    in.headers = json_object_get(props, "headers");
    in.body = str(rec, "body_raw");
    in.body_len = in.body ? strlen(in.body) : 0;
    rc = celery_message_decode(&in, m, err);
    json_decref(cap);
    return rc;
}

/* eta/expires as the decoder reads them: py_fromisoformat, in seconds. */
static int iso_seconds(const char *text, double *out)
{
    int64_t us;
    int rc = py_fromisoformat(text, &us);
    if (rc == 0)
        *out = (double)us / 1e6;
    return rc;
}

static void test_p2_full_reads_eta_expires_and_time_limits(void)
{
    struct celery_task_msg m;
    struct pw_error err;
    double eta_expected = 0.0, expires_expected = 0.0; /* 0 if iso_seconds fails: no match */

    CHECK(decode_capture("01_send_p2_full.json", &m, &err) == 0);
    /* 2026-11-21T04:27:54.921899+00:00 and 04:29:24.921899 (90 s later) */
    CHECK(iso_seconds("2026-11-21T04:27:54.921899+00:00", &eta_expected) == 0);
    CHECK(iso_seconds("2026-11-21T04:29:24.921899+00:00", &expires_expected) == 0);
    CHECK(m.eta > 1795000000.0 && m.eta == eta_expected);
    CHECK(m.expires - m.eta > 89.99 && m.expires - m.eta < 90.01);
    CHECK(m.expires == expires_expected);
    CHECK(m.time_limit_hard == 20 && m.time_limit_soft == 10);
    CHECK_STR(json_string_value(json_object_get(m.kwargs, "metric")), "cosine");
    CHECK_STR(m.correlation_id, m.id);
    CHECK(m.root_id && !strcmp(m.root_id, m.id));
    CHECK(m.parent_id == NULL);
    celery_message_free(&m);
}

static void test_p1_full_reads_body_fields(void)
{
    struct celery_task_msg m;
    struct pw_error err;

    CHECK(decode_capture("01_send_p1_full.json", &m, &err) == 0);
    CHECK(m.protocol == 1);
    CHECK_STR(m.task, "webui.tasks.compute_projection");
    CHECK(m.eta > 0 && m.expires > m.eta);
    CHECK(m.time_limit_hard == 20 && m.time_limit_soft == 10);
    CHECK(json_array_size(m.args) == 1);
    celery_message_free(&m);
}

static void test_kwargs_only_message(void)
{
    struct celery_task_msg m;
    struct pw_error err;

    CHECK(decode_capture("01_send_p2_kwargs.json", &m, &err) == 0);
    CHECK(json_array_size(m.args) == 0);
    CHECK(json_object_size(m.kwargs) >= 1);
    celery_message_free(&m);
}

static void test_rejects_pickle_body_without_parsing(void)
{
    struct celery_delivery_in in = {
        "application/x-python-serialize", "binary", "id-1", "q", NULL, "\x80\x04\x95", 3};
    struct celery_task_msg m;
    struct pw_error err;

    CHECK(celery_message_decode(&in, &m, &err) == CELERY_MSG_EREFUSED);
    CHECK(strstr(err.msg, "pickle") != NULL);
    CHECK_STR(m.id, "id-1"); /* kept so a FAILURE result can be addressed */
    celery_message_free(&m);
}

static void test_reads_death_count_headers_and_defaults_to_zero(void)
{
    const char *body = "[[], {}, {}]";
    json_t *counted = json_pack("{s:s, s:s, s:i, s:i}", "task", "celery.ping", "id", "abc",
                                CELERY_HEADER_DEATHS, 2, CELERY_HEADER_DEATH_SIGNAL, 9);
    json_t *plain =
        json_pack("{s:s, s:s, s:s}", "task", "celery.ping", "id", "abc", CELERY_HEADER_DEATHS, "2");
    struct celery_delivery_in in = {"application/json", "utf-8", NULL, NULL, counted, body,
                                    strlen(body)};
    struct celery_task_msg m;
    struct pw_error err;

    CHECK(celery_message_decode(&in, &m, &err) == 0);
    CHECK(m.deaths == 2 && m.death_signal == 9);
    celery_message_free(&m);
    in.headers = plain; /* a count that is not an integer is no count */
    CHECK(celery_message_decode(&in, &m, &err) == 0);
    CHECK(m.deaths == 0 && m.death_signal == 0);
    celery_message_free(&m);
    json_decref(counted);
    json_decref(plain);
}

static void test_refuses_yaml_msgpack_and_missing_type(void)
{
    const char *types[] = {"application/x-yaml", "application/x-msgpack", "text/plain", NULL};
    for (int i = 0; i < 4; i++) {
        struct celery_delivery_in in = {types[i], NULL, NULL, NULL, NULL, "[]", 2};
        struct celery_task_msg m;
        struct pw_error err;
        CHECK(celery_message_decode(&in, &m, &err) == CELERY_MSG_EREFUSED);
        celery_message_free(&m);
    }
}

static void test_rejects_wrong_shapes(void)
{
    static const char *bodies[] = {
        "[[1], {}]",      /* two items */
        "[{}, {}, {}]",   /* args not a list */
        "[[], [], {}]",   /* kwargs not a dict */
        "{\"args\": []}", /* not a v2 body either */
        "[[], {}, {}",    /* truncated */
        "",               /* empty */
    };
    json_t *headers = json_pack("{s:s, s:s}", "task", "celery.ping", "id", "abc");

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct celery_delivery_in in = {"application/json", "utf-8",          NULL, NULL, headers,
                                        bodies[i],          strlen(bodies[i])};
        struct celery_task_msg m;
        struct pw_error err;
        int rc = celery_message_decode(&in, &m, &err);
        CHECK(rc == CELERY_MSG_EMALFORMED);
        CHECK_STR(m.id, "abc");
        celery_message_free(&m);
    }
    json_decref(headers);
}

static void test_missing_task_header_is_unknown_message(void)
{
    const char *body = "[[\"x\"], {}, {}]";
    json_t *headers = json_object();
    struct celery_delivery_in in = {"application/json", "utf-8", NULL, NULL, headers, body,
                                    strlen(body)};
    struct celery_task_msg m;
    struct pw_error err;

    CHECK(celery_message_decode(&in, &m, &err) == CELERY_MSG_EUNKNOWN);
    celery_message_free(&m);
    json_decref(headers);
}

static void test_bad_header_types_are_malformed(void)
{
    json_t *h1 = json_pack("{s:s, s:s, s:s}", "task", "t", "id", "i", "eta", "yesterday");
    json_t *h2 = json_pack("{s:s, s:s, s:s}", "task", "t", "id", "i", "retries", "3");
    json_t *h3 = json_pack("{s:s, s:i}", "task", "t", "id", 5);
    json_t *hs[] = {h1, h2, h3};

    for (int i = 0; i < 3; i++) {
        struct celery_delivery_in in = {"application/json", NULL, NULL, NULL, hs[i],
                                        "[[], {}, {}]",     12};
        struct celery_task_msg m;
        struct pw_error err;
        CHECK(celery_message_decode(&in, &m, &err) == CELERY_MSG_EMALFORMED);
        celery_message_free(&m);
        json_decref(hs[i]);
    }
}

static void test_iso8601_forms(void)
{
    double t;

    CHECK(iso_seconds("1970-01-01T00:00:00+00:00", &t) == 0 && t == 0);
    CHECK(iso_seconds("1970-01-01T01:00:00+01:00", &t) == 0 && t == 0);
    CHECK(iso_seconds("1970-01-01T00:00:10.5Z", &t) == 0 && t == 10.5);
    CHECK(iso_seconds("1970-01-01T00:00:10", &t) == 0 && t == 10);
    CHECK(iso_seconds("1969-12-31T23:00:00-01:00", &t) == 0 && t == 0);
    /* date only: datetime.fromisoformat("2026-11-21") is midnight (Python wins) */
    CHECK(iso_seconds("2026-11-21", &t) == 0 && t == 1795219200);
    CHECK(iso_seconds("2026-11-21T04:27:54+00:00junk", &t) == PW_EINVAL);
    CHECK(iso_seconds("2026-13-21T04:27:54", &t) == PW_EINVAL);
}

int main(void)
{
    RUN(test_decodes_every_captured_task_message);
    RUN(test_p2_full_reads_eta_expires_and_time_limits);
    RUN(test_p1_full_reads_body_fields);
    RUN(test_kwargs_only_message);
    RUN(test_rejects_pickle_body_without_parsing);
    RUN(test_refuses_yaml_msgpack_and_missing_type);
    RUN(test_rejects_wrong_shapes);
    RUN(test_missing_task_header_is_unknown_message);
    RUN(test_bad_header_types_are_malformed);
    RUN(test_iso8601_forms);
    RUN(test_reads_death_count_headers_and_defaults_to_zero);
    PW_TEST_MAIN();
}
