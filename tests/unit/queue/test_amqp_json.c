/* Every AMQP field kind py-amqp writes into Celery headers converts to the right JSON. */
#include "amqp_json.h"
#include "pw_test.h"

static amqp_table_entry_t entry(const char *key, amqp_field_value_t v)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value = v;
    return e;
}

static void test_converts_celery_header_kinds(void)
{
    amqp_field_value_t limits[3];
    amqp_table_entry_t entries[8];
    amqp_table_t table;
    json_t *j;

    limits[0].kind = AMQP_FIELD_KIND_I32;
    limits[0].value.i32 = 20;
    limits[1].kind = AMQP_FIELD_KIND_F64;
    limits[1].value.f64 = 1.5;
    limits[2].kind = AMQP_FIELD_KIND_VOID;
    entries[0] =
        entry("task", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_UTF8,
                                           .value.bytes = amqp_cstring_bytes("celery.ping")});
    entries[1] =
        entry("retries", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I32, .value.i32 = 3});
    entries[2] =
        entry("big", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I64, .value.i64 = 5000000000LL});
    entries[3] = entry("ignore_result",
                       (amqp_field_value_t){.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1});
    entries[4] = entry("shadow", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_VOID});
    entries[5] = entry("timelimit",
                       (amqp_field_value_t){.kind = AMQP_FIELD_KIND_ARRAY,
                                            .value.array = {.num_entries = 3, .entries = limits}});
    entries[6] = entry("raw", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_BYTES,
                                                   .value.bytes = amqp_cstring_bytes("x")});
    entries[7] = entry("small", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_U8, .value.u8 = 7});
    table.num_entries = 8;
    table.entries = entries;

    j = amqp_table_to_json(&table);
    CHECK_STR(json_string_value(json_object_get(j, "task")), "celery.ping");
    CHECK(json_integer_value(json_object_get(j, "retries")) == 3);
    CHECK(json_integer_value(json_object_get(j, "big")) == 5000000000LL);
    CHECK(json_is_true(json_object_get(j, "ignore_result")));
    CHECK(json_is_null(json_object_get(j, "shadow")));
    CHECK(json_integer_value(json_array_get(json_object_get(j, "timelimit"), 0)) == 20);
    CHECK(json_real_value(json_array_get(json_object_get(j, "timelimit"), 1)) == 1.5);
    CHECK(json_is_null(json_array_get(json_object_get(j, "timelimit"), 2)));
    CHECK_STR(json_string_value(json_object_get(j, "raw")), "x");
    CHECK(json_integer_value(json_object_get(j, "small")) == 7);
    json_decref(j);
}

static void test_empty_and_nested_tables(void)
{
    amqp_table_t empty = {0, NULL};
    amqp_table_entry_t inner_e[1], outer_e[1];
    amqp_table_t inner, outer;
    json_t *j = amqp_table_to_json(&empty);

    CHECK(json_is_object(j) && json_object_size(j) == 0);
    json_decref(j);
    inner_e[0] = entry("k", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_I16, .value.i16 = -2});
    inner.num_entries = 1;
    inner.entries = inner_e;
    outer_e[0] =
        entry("t", (amqp_field_value_t){.kind = AMQP_FIELD_KIND_TABLE, .value.table = inner});
    outer.num_entries = 1;
    outer.entries = outer_e;
    j = amqp_table_to_json(&outer);
    CHECK(json_integer_value(json_object_get(json_object_get(j, "t"), "k")) == -2);
    json_decref(j);
}

/* json -> table -> json gives the object back, with py-amqp's kinds on the way. */
static void test_json_to_table_round_trip(void)
{
    json_t *in = json_loads("{\"task\": \"t\", \"retries\": 0, \"big\": 5000000000,"
                            " \"eta\": null, \"ignore_result\": false, \"limit\": 1.5,"
                            " \"timelimit\": [null, 20], \"nested\": {\"a\": [1, \"x\"]}}",
                            0, NULL);
    amqp_pool_t pool;
    amqp_table_t table;

    init_amqp_pool(&pool, 1024);
    CHECK(in != NULL);
    CHECK(amqp_json_to_table(in, &pool, &table) == 0);
    CHECK(table.num_entries == 8);
    CHECK(table.entries[0].value.kind == AMQP_FIELD_KIND_UTF8);
    CHECK(table.entries[1].value.kind == AMQP_FIELD_KIND_I32);
    CHECK(table.entries[2].value.kind == AMQP_FIELD_KIND_I64);
    CHECK(table.entries[3].value.kind == AMQP_FIELD_KIND_VOID);
    CHECK(table.entries[4].value.kind == AMQP_FIELD_KIND_BOOLEAN);
    CHECK(table.entries[5].value.kind == AMQP_FIELD_KIND_F64);
    CHECK(table.entries[6].value.kind == AMQP_FIELD_KIND_ARRAY);
    CHECK(table.entries[7].value.kind == AMQP_FIELD_KIND_TABLE);
    json_t *back = amqp_table_to_json(&table);
    CHECK(json_equal(back, in));
    json_t *not_object = json_array();
    CHECK(amqp_json_to_table(not_object, &pool, &table) == -1);
    json_decref(not_object);
    json_decref(back);
    json_decref(in);
    empty_amqp_pool(&pool);
}

int main(void)
{
    RUN(test_converts_celery_header_kinds);
    RUN(test_empty_and_nested_tables);
    RUN(test_json_to_table_round_trip);
    PW_TEST_MAIN();
}
