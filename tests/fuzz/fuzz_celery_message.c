/* fuzz_celery_message.c - libFuzzer target: the Celery message decoder
 * (queue/celery_message.h, celery_message_decode), what every delivery from the broker
 * goes through before anything else looks at it.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the seeds this way):
 *   byte 0         selects the AMQP properties: bits 0-2 content_type (CONTENT_TYPES),
 *                  bits 3-4 content_encoding (ENCODINGS), bit 5 correlation_id, bit 6
 *                  reply_to (absent or set)
 *   bytes 1..NUL   the headers table as JSON text (what amqp_json.c makes of the AMQP
 *                  table); passed as parsed, whatever its type; absent or unparsable ->
 *                  no headers
 *   after the NUL  the body; without a NUL byte the whole rest is the body, no headers.
 * Checked beyond ASan/UBSan/LSan: the return code is 0 or one of the CELERY_MSG_E* codes
 * (or PW_ENOMEM), a refused content type never decodes, an error comes with a message,
 * and a decoded message has the shape celery_message.h promises (protocol 1 or 2, a task
 * name and id, args a list, kwargs a dict). */
#include "celery_message.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const CONTENT_TYPES[8] = {
    "application/json",   "APPLICATION/JSON",  NULL,        "", "application/x-python-serialize",
    "application/x-yaml", "application/json ", "text/plain"};
static const char *const ENCODINGS[4] = {"utf-8", NULL, "UTF8", "binary"};

static void fail(const char *what, int rc, const struct pw_error *err)
{
    fprintf(stderr, "fuzz_celery_message: %s (rc %d, \"%s\")\n", what, rc, err->msg);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned sel = data[0];
    const char *rest = (const char *)data + 1;
    size_t rest_len = size - 1;
    const char *nul = memchr(rest, '\0', rest_len);
    json_t *headers = NULL;
    struct celery_delivery_in in = {
        .content_type = CONTENT_TYPES[sel & 7],
        .content_encoding = ENCODINGS[(sel >> 3) & 3],
        .correlation_id = sel & 0x20 ? "c5bf5dda-d644-4667-8392-749ba024d6a6" : NULL,
        .reply_to = sel & 0x40 ? "45c32658-a353-3622-9cda-c6929c978e05" : NULL,
    };
    if (nul) {
        headers = json_loadb(rest, (size_t)(nul - rest), JSON_DECODE_ANY, NULL);
        in.headers = headers;
        in.body = nul + 1;
        in.body_len = rest_len - (size_t)(nul - rest) - 1;
    } else {
        in.body = rest;
        in.body_len = rest_len;
    }

    struct celery_task_msg m;
    struct pw_error err = {0, ""};
    int rc = celery_message_decode(&in, &m, &err);
    int json_type = in.content_type && !strcasecmp(in.content_type, "application/json");
    if (rc != 0 && rc != CELERY_MSG_EREFUSED && rc != CELERY_MSG_EMALFORMED &&
        rc != CELERY_MSG_EUNKNOWN && rc != PW_ENOMEM)
        fail("unexpected return code", rc, &err);
    if (!json_type && rc != CELERY_MSG_EREFUSED)
        fail("a content type other than application/json was not refused", rc, &err);
    if (rc != 0 && err.msg[0] == '\0')
        fail("error without a message", rc, &err);
    if (rc == 0) {
        if (m.protocol != 1 && m.protocol != 2)
            fail("protocol neither 1 nor 2", rc, &err);
        if (!m.task || !*m.task || !m.id || !*m.id)
            fail("decoded message without task name or id", rc, &err);
        if (!json_is_array(m.args) || !json_is_object(m.kwargs))
            fail("args not a list or kwargs not a dict", rc, &err);
        if (m.embed && !json_is_object(m.embed))
            fail("embed not a dict", rc, &err);
        if (m.protocol == 1 && m.embed)
            fail("protocol 1 message with embed", rc, &err);
    }
    celery_message_free(&m);
    json_decref(headers);
    return 0;
}
