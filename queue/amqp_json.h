/* amqp_json.h - AMQP field tables (message headers) as jansson values.
 *
 * Celery puts protocol-2 metadata in AMQP headers; converting the table to JSON
 * once lets the Celery codec read it the same way it reads a protocol-1 body, and
 * lets tests feed it headers straight from the JSON captures.  Kinds map as
 * py-amqp writes them: S/bytes -> string, I/L/U/i/u/B/b -> integer, t -> boolean,
 * V -> null, d/f -> real, A -> array, F -> object, T (timestamp) -> integer,
 * D (decimal) -> real.  The caller owns the returned reference (json_decref).
 *
 * amqp_json_to_table() goes the other way, as py-amqp encodes a Python dict: strings ->
 * S, integers -> I (L beyond 32 bits), booleans -> t, null -> V, reals -> d, arrays ->
 * A, objects -> F.  Every allocation comes from `pool` (amqp_pool_alloc), so the table
 * lives until the caller empties the pool; strings point into `object`, which must
 * outlive the table too.  Returns 0, or -1 when the pool is out of memory or `object`
 * is not an object. */
#ifndef PW_AMQP_JSON_H
#define PW_AMQP_JSON_H

#include <amqp.h>
#include <jansson.h>

json_t *amqp_table_to_json(const amqp_table_t *table);
json_t *amqp_field_value_to_json(const amqp_field_value_t *value);
int amqp_json_to_table(const json_t *object, amqp_pool_t *pool, amqp_table_t *out);

#endif
