/* amqp_json.c - convert rabbitmq-c field tables to jansson values (see header). */
#include "amqp_json.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static json_t *bytes_to_json(amqp_bytes_t b)
{
    return json_stringn_nocheck(b.bytes ? (const char *)b.bytes : "", b.len);
}

json_t *amqp_field_value_to_json(const amqp_field_value_t *v)
{
    json_t *arr;

    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
        return json_boolean(v->value.boolean);
    case AMQP_FIELD_KIND_I8:
        return json_integer(v->value.i8);
    case AMQP_FIELD_KIND_U8:
        return json_integer(v->value.u8);
    case AMQP_FIELD_KIND_I16:
        return json_integer(v->value.i16);
    case AMQP_FIELD_KIND_U16:
        return json_integer(v->value.u16);
    case AMQP_FIELD_KIND_I32:
        return json_integer(v->value.i32);
    case AMQP_FIELD_KIND_U32:
        return json_integer(v->value.u32);
    case AMQP_FIELD_KIND_I64:
        return json_integer(v->value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return json_integer((json_int_t)v->value.u64);
    case AMQP_FIELD_KIND_F32:
        return json_real(v->value.f32);
    case AMQP_FIELD_KIND_F64:
        return json_real(v->value.f64);
    case AMQP_FIELD_KIND_DECIMAL:
        return json_real((double)v->value.decimal.value / pow(10.0, v->value.decimal.decimals));
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return bytes_to_json(v->value.bytes);
    case AMQP_FIELD_KIND_ARRAY:
        arr = json_array();
        for (int i = 0; arr && i < v->value.array.num_entries; i++)
            json_array_append_new(arr, amqp_field_value_to_json(&v->value.array.entries[i]));
        return arr;
    case AMQP_FIELD_KIND_TABLE:
        return amqp_table_to_json(&v->value.table);
    case AMQP_FIELD_KIND_VOID:
    default:
        return json_null();
    }
}

json_t *amqp_table_to_json(const amqp_table_t *table)
{
    json_t *obj = json_object();

    if (!obj || !table)
        return obj;
    for (int i = 0; i < table->num_entries; i++) {
        const amqp_table_entry_t *e = &table->entries[i];
        json_t *val = amqp_field_value_to_json(&e->value);
        char key[256];
        size_t n = e->key.len < sizeof key - 1 ? e->key.len : sizeof key - 1;

        memcpy(key, e->key.bytes, n);
        key[n] = '\0';
        json_object_set_new_nocheck(obj, key, val ? val : json_null());
    }
    return obj;
}

static int json_to_field_value(const json_t *v, amqp_pool_t *pool, amqp_field_value_t *out);

static int json_to_array(const json_t *arr, amqp_pool_t *pool, amqp_array_t *out)
{
    size_t n = json_array_size(arr);

    out->num_entries = (int)n;
    out->entries = n ? amqp_pool_alloc(pool, n * sizeof *out->entries) : NULL;
    if (n && !out->entries)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (json_to_field_value(json_array_get(arr, i), pool, &out->entries[i]))
            return -1;
    return 0;
}

static int json_to_field_value(const json_t *v, amqp_pool_t *pool, amqp_field_value_t *out)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(v)) {
    case JSON_STRING:
        out->kind = AMQP_FIELD_KIND_UTF8;
        out->value.bytes.bytes = (void *)json_string_value(v);
        out->value.bytes.len = json_string_length(v);
        return 0;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        out->kind = i >= INT32_MIN && i <= INT32_MAX ? AMQP_FIELD_KIND_I32 : AMQP_FIELD_KIND_I64;
        if (out->kind == AMQP_FIELD_KIND_I32)
            out->value.i32 = (int32_t)i;
        else
            out->value.i64 = (int64_t)i;
        return 0;
    }
    case JSON_REAL:
        out->kind = AMQP_FIELD_KIND_F64;
        out->value.f64 = json_real_value(v);
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        out->kind = AMQP_FIELD_KIND_BOOLEAN;
        out->value.boolean = json_is_true(v);
        return 0;
    case JSON_ARRAY:
        out->kind = AMQP_FIELD_KIND_ARRAY;
        return json_to_array(v, pool, &out->value.array);
    case JSON_OBJECT:
        out->kind = AMQP_FIELD_KIND_TABLE;
        return amqp_json_to_table(v, pool, &out->value.table);
    case JSON_NULL:
    default:
        out->kind = AMQP_FIELD_KIND_VOID;
        return 0;
    }
}

int amqp_json_to_table(const json_t *object, amqp_pool_t *pool, amqp_table_t *out)
{
    const char *key;
    json_t *val;
    size_t n = json_object_size(object), i = 0;

    out->num_entries = 0;
    out->entries = NULL;
    if (!json_is_object(object))
        return -1;
    if (n && !(out->entries = amqp_pool_alloc(pool, n * sizeof *out->entries)))
        return -1;
    json_object_foreach((json_t *)object, key, val)
    {
        out->entries[i].key = amqp_cstring_bytes(key);
        if (json_to_field_value(val, pool, &out->entries[i].value))
            return -1;
        i++;
    }
    out->num_entries = (int)n;
    return 0;
}
