/* amqp_json.c - convert rabbitmq-c field tables to jansson values (see header). */
#include "amqp_json.h"

#include <math.h>
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
