/* celery_send.c - Celery protocol-2 task messages for publishing (see header).
 *
 * The headers are built in the order the capture shows them so a message dump reads
 * like the Python client's; argsrepr and kwargsrepr are Python's repr() (py_str of a
 * list or dict is its repr).  origin is Celery's "gen<pid>@<hostname>". */
#include "celery_send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "pycompat.h"

int celery_send_new_id(char out[CELERY_TASK_ID_LEN + 1], struct pw_error *err)
{
    unsigned char r[16];

    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return pw_error_set(err, PW_EIO, "no random bytes for a task id");
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, CELERY_TASK_ID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
             r[15]);
    return 0;
}

/* Python's repr() of a list or dict; NULL when it does not fit (or no memory). */
static char *py_repr(const json_t *v)
{
    for (size_t cap = 256; cap <= (1u << 20); cap *= 4) {
        char *text = malloc(cap);
        if (!text || py_str(v, text, cap) == 0)
            return text;
        free(text);
    }
    return NULL;
}

static json_t *task_headers(const struct celery_send_task *t, const json_t *args,
                            const json_t *kwargs)
{
    char host[256] = "localhost", origin[300];
    char *argsrepr = py_repr(args), *kwargsrepr = py_repr(kwargs);
    json_t *h = NULL;

    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(origin, sizeof origin, "gen%ld@%s", (long)getpid(), host);
    if (argsrepr && kwargsrepr)
        h = json_pack("{s:s, s:s, s:s, s:n, s:n, s:n, s:n, s:n, s:i, s:[nn], s:s, s:n, s:s, s:s,"
                      " s:s, s:b}",
                      "lang", "py", "task", t->task, "id", t->id, "shadow", "eta", "expires",
                      "group", "group_index", "retries", 0, "timelimit", "root_id", t->id,
                      "parent_id", "argsrepr", argsrepr, "kwargsrepr", kwargsrepr, "origin", origin,
                      "ignore_result", 0);
    free(argsrepr);
    free(kwargsrepr);
    return h;
}

int celery_send_encode(const struct celery_send_task *t, json_t **headers_out, char **body_out,
                       struct pw_error *err)
{
    json_t *args = t->args ? json_incref((json_t *)t->args) : json_array();
    json_t *kwargs = t->kwargs ? json_incref((json_t *)t->kwargs) : json_object();
    json_t *body = NULL;
    int rc = 0;

    *headers_out = NULL;
    *body_out = NULL;
    if (!t->task || !t->id || !json_is_array(args) || !json_is_object(kwargs)) {
        rc = pw_error_set(err, PW_EINVAL,
                          "a task message needs a name, an id, args as an array"
                          " and kwargs as an object");
        goto cleanup;
    }
    body = json_pack("[O, O, {s:n, s:n, s:n, s:n}]", args, kwargs, "callbacks", "errbacks", "chain",
                     "chord");
    *headers_out = task_headers(t, args, kwargs);
    *body_out = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!*headers_out || !*body_out) {
        json_decref(*headers_out);
        free(*body_out);
        *headers_out = NULL;
        *body_out = NULL;
        rc = pw_error_set(err, PW_ENOMEM, "out of memory encoding a task message");
    }
cleanup:
    json_decref(body);
    json_decref(args);
    json_decref(kwargs);
    return rc;
}

int celery_send(struct broker *b, const char *queue, const struct celery_send_task *t,
                struct pw_error *err)
{
    json_t *headers;
    char *body;
    int rc = celery_send_encode(t, &headers, &body, err);

    if (rc)
        return rc;
    struct broker_publish_props props = {
        .correlation_id = t->id, .delivery_mode = 2, .reply_to = t->reply_to, .headers = headers};
    rc = broker_publish(b, "", queue, &props, body, strlen(body), err);
    json_decref(headers);
    free(body);
    return rc;
}
