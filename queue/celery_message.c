/* celery_message.c - Celery protocol 1/2 decoder (see header for the contract).
 *
 * Shape: accept_content() decides from properties alone; decode_v2()/decode_v1()
 * pull the same fields from two places (headers+array body, or a dict body) through
 * one set of small field readers, so both protocols share the validation rules. */
#include "celery_message.h"

#include "pycompat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char *dup_string_field(json_t *obj, const char *key)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static double number_or_zero(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* A non-negative integer header, clamped to int; 0 when absent or not an integer. */
static int small_count(json_t *v)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    return n < 0 ? 0 : n > 1000000 ? 1000000 : (int)n;
}

/* Celery 5.3+ reads eta/expires with datetime.fromisoformat (naive = UTC here, as the
 * worker's clock is UTC); seconds since the epoch or PW_EINVAL. */
static int parse_time_field(const char *text, double *out)
{
    int64_t us;
    if (py_fromisoformat(text, &us) < 0)
        return PW_EINVAL;
    *out = (double)us / 1e6;
    return 0;
}

/* Only JSON is deserialized; the type check happens before the body is read. */
static int accept_content(const struct celery_delivery_in *in, struct pw_error *err)
{
    const char *ct = in->content_type;

    if (ct && !strcasecmp(ct, "application/json"))
        goto encoding;
    if (!ct || !*ct)
        return pw_error_set(
            err, CELERY_MSG_EREFUSED,
            "Refusing message without content type (only application/json is accepted)");
    if (!strcasecmp(ct, "application/x-python-serialize"))
        return pw_error_set(err, CELERY_MSG_EREFUSED,
                            "Refusing to deserialize untrusted content of type pickle (%s)", ct);
    return pw_error_set(err, CELERY_MSG_EREFUSED,
                        "Refusing to deserialize content of type %.64s (only application/json is "
                        "accepted)",
                        ct);
encoding:
    if (in->content_encoding && *in->content_encoding &&
        strcasecmp(in->content_encoding, "utf-8") && strcasecmp(in->content_encoding, "utf8"))
        return pw_error_set(err, CELERY_MSG_EREFUSED, "Refusing content encoding %.64s",
                            in->content_encoding);
    return 0;
}

/* Reads the metadata fields shared by v1 bodies and v2 headers from `src`. */
static int read_meta(json_t *src, struct celery_task_msg *out, struct pw_error *err)
{
    json_t *v;

    out->task = dup_string_field(src, "task");
    out->id = dup_string_field(src, "id");
    out->root_id = dup_string_field(src, "root_id");
    out->parent_id = dup_string_field(src, "parent_id");
    out->group = dup_string_field(src, out->protocol == 1 ? "taskset" : "group");
    out->shadow = dup_string_field(src, "shadow");
    out->origin = dup_string_field(src, "origin");
    out->argsrepr = dup_string_field(src, "argsrepr");
    out->kwargsrepr = dup_string_field(src, "kwargsrepr");
    if (!out->task || !*out->task)
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "task name missing or not a string");
    if (!out->id || !*out->id)
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "task id missing or not a string");

    v = json_object_get(src, "retries");
    if (v && !json_is_null(v) && !json_is_integer(v))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "retries is not an integer");
    out->retries = json_is_integer(v) ? (int)json_integer_value(v) : 0;

    v = json_object_get(src, "eta");
    if (json_is_string(v) && parse_time_field(json_string_value(v), &out->eta))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "eta is not an ISO-8601 time: %.64s",
                            json_string_value(v));
    if (v && !json_is_null(v) && !json_is_string(v))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "eta is not a string");

    v = json_object_get(src, "expires");
    if (json_is_string(v) && parse_time_field(json_string_value(v), &out->expires))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "expires is not an ISO-8601 time: %.64s",
                            json_string_value(v));
    if (v && !json_is_null(v) && !json_is_string(v))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "expires is not a string");

    v = json_object_get(src, "timelimit");
    if (json_is_array(v)) {
        out->time_limit_hard = number_or_zero(json_array_get(v, 0));
        out->time_limit_soft = number_or_zero(json_array_get(v, 1));
    } else if (v && !json_is_null(v)) {
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "timelimit is not a [hard, soft] array");
    }
    out->ignore_result = json_is_true(json_object_get(src, "ignore_result"));
    return 0;
}

static int take_args(json_t *args, json_t *kwargs, struct celery_task_msg *out,
                     struct pw_error *err)
{
    if (args && !json_is_null(args) && !json_is_array(args))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "task args are not a list");
    if (kwargs && !json_is_null(kwargs) && !json_is_object(kwargs))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "task kwargs are not a dict");
    out->args = json_is_array(args) ? json_incref(args) : json_array();
    out->kwargs = json_is_object(kwargs) ? json_incref(kwargs) : json_object();
    return 0;
}

static int decode_v2(json_t *headers, json_t *body, struct celery_task_msg *out,
                     struct pw_error *err)
{
    int rc;

    out->protocol = 2;
    if ((rc = read_meta(headers, out, err)))
        return rc;
    if (!json_is_array(body) || json_array_size(body) != 3)
        return pw_error_set(err, CELERY_MSG_EMALFORMED,
                            "protocol 2 body is not a [args, kwargs, embed] list");
    if ((rc = take_args(json_array_get(body, 0), json_array_get(body, 1), out, err)))
        return rc;
    if (json_is_object(json_array_get(body, 2)))
        out->embed = json_incref(json_array_get(body, 2));
    return 0;
}

/* A protocol 1 message a worker published again for a Celery retry carries the new
 * retries and eta as headers, as protocol 2 does: they override the body's. */
static int retry_headers_v1(json_t *headers, struct celery_task_msg *out, struct pw_error *err)
{
    json_t *v = json_object_get(headers, "retries");

    if (json_is_integer(v))
        out->retries = (int)json_integer_value(v);
    v = json_object_get(headers, "eta");
    if (json_is_string(v) && parse_time_field(json_string_value(v), &out->eta))
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "eta is not an ISO-8601 time: %.64s",
                            json_string_value(v));
    return 0;
}

static int decode_v1(json_t *headers, json_t *body, struct celery_task_msg *out,
                     struct pw_error *err)
{
    int rc;

    out->protocol = 1;
    if ((rc = read_meta(body, out, err)) || (rc = retry_headers_v1(headers, out, err)))
        return rc;
    return take_args(json_object_get(body, "args"), json_object_get(body, "kwargs"), out, err);
}

int celery_message_decode(const struct celery_delivery_in *in, struct celery_task_msg *out,
                          struct pw_error *err)
{
    json_t *body = NULL;
    json_error_t jerr;
    json_t *headers = json_is_object(in->headers) ? in->headers : NULL;
    int rc;

    memset(out, 0, sizeof *out);
    pw_error_clear(err);
    out->reply_to = in->reply_to && *in->reply_to ? strdup(in->reply_to) : NULL;
    out->correlation_id =
        in->correlation_id && *in->correlation_id ? strdup(in->correlation_id) : NULL;
    /* Recover the id early so a refused message can still get a FAILURE result. */
    out->id = dup_string_field(headers, "id");
    if (!out->id && out->correlation_id)
        out->id = strdup(out->correlation_id);
    out->task = dup_string_field(headers, "task");

    if ((rc = accept_content(in, err)))
        return rc;
    body =
        json_loadb(in->body ? in->body : "", in->body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!body)
        return pw_error_set(err, CELERY_MSG_EMALFORMED, "Can't decode message body: %s (line %d)",
                            jerr.text, jerr.line);

    free(out->task);
    free(out->id);
    out->task = out->id = NULL;
    if (json_is_string(json_object_get(headers, "task")))
        rc = decode_v2(headers, body, out, err);
    else if (json_is_object(body) && json_is_string(json_object_get(body, "task")))
        rc = decode_v1(headers, body, out, err);
    else
        rc = pw_error_set(err, CELERY_MSG_EUNKNOWN,
                          "Received and deleted unknown message (no task header, body is not a "
                          "protocol 1 task)");
    if (rc && !out->id && out->correlation_id)
        out->id = strdup(out->correlation_id);
    out->deaths = small_count(json_object_get(headers, CELERY_HEADER_DEATHS));
    out->death_signal = small_count(json_object_get(headers, CELERY_HEADER_DEATH_SIGNAL));
    json_decref(body);
    return rc;
}

void celery_message_free(struct celery_task_msg *m)
{
    if (!m)
        return;
    free(m->task);
    free(m->id);
    free(m->root_id);
    free(m->parent_id);
    free(m->group);
    free(m->shadow);
    free(m->origin);
    free(m->argsrepr);
    free(m->kwargsrepr);
    free(m->reply_to);
    free(m->correlation_id);
    json_decref(m->args);
    json_decref(m->kwargs);
    json_decref(m->embed);
    memset(m, 0, sizeof *m);
}
