/* amqp_json.h - AMQP field tables (message headers) as jansson values.
 *
 * Celery puts protocol-2 metadata in AMQP headers; converting the table to JSON
 * once lets the Celery codec read it the same way it reads a protocol-1 body, and
 * lets tests feed it headers straight from the JSON captures.  Kinds map as
 * py-amqp writes them: S/bytes -> string, I/L/U/i/u/B/b -> integer, t -> boolean,
 * V -> null, d/f -> real, A -> array, F -> object, T (timestamp) -> integer,
 * D (decimal) -> real.  The caller owns the returned reference (json_decref). */
#ifndef PW_AMQP_JSON_H
#define PW_AMQP_JSON_H

#include <amqp.h>
#include <jansson.h>

json_t *amqp_table_to_json(const amqp_table_t *table);
json_t *amqp_field_value_to_json(const amqp_field_value_t *value);

#endif
