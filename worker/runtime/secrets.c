/* secrets.c - the secret values a process holds, scrubbed out of its messages (see header).
 *
 * Passwords are read from the URL text here rather than through libpq's or rabbitmq-c's
 * parsers: the consumer binary does not link libpq, amqp_parse_url reads amqp URLs
 * only, and one small reader serves the three spellings a password takes.  The values
 * are kept longest first so that scrubbing a secret that contains another replaces it
 * whole instead of leaving its ends around a "***". */
#include "secrets.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void secrets_init(struct secrets *s)
{
    memset(s, 0, sizeof *s);
}

void secrets_free(struct secrets *s)
{
    for (size_t i = 0; i < s->n; i++) {
        memset(s->values[i], 0, strlen(s->values[i]));
        free(s->values[i]);
    }
    secrets_init(s);
}

int secrets_add(struct secrets *s, const char *value, struct pw_error *err)
{
    size_t len = value ? strlen(value) : 0, i;
    char *copy;

    if (len < SECRETS_MIN_LEN)
        return 0;
    for (i = 0; i < s->n; i++)
        if (!strcmp(s->values[i], value))
            return 0;
    if (s->n == SECRETS_MAX || !(copy = strdup(value)))
        return pw_error_set(err, PW_ENOMEM, "cannot hold another secret (at most %d)", SECRETS_MAX);
    for (i = s->n; i > 0 && strlen(s->values[i - 1]) < len; i--)
        s->values[i] = s->values[i - 1];
    s->values[i] = copy;
    s->n++;
    return 0;
}

static int hex_value(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

/* The len bytes at p as written and decoded: backslash escapes when quoted (libpq's
 * keyword values), percent escapes otherwise (URIs). */
static int add_written_and_decoded(struct secrets *s, const char *p, size_t len, int quoted,
                                   struct pw_error *err)
{
    char raw[512], plain[512];
    size_t k = 0;
    int rc;

    if (len >= sizeof raw) /* a prefix of a longer secret still scrubs its start */
        len = sizeof raw - 1;
    memcpy(raw, p, len);
    raw[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (quoted && raw[i] == '\\' && i + 1 < len) {
            plain[k++] = raw[++i];
        } else if (!quoted && raw[i] == '%' && isxdigit((unsigned char)raw[i + 1]) &&
                   isxdigit((unsigned char)raw[i + 2])) {
            plain[k++] = (char)(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
            i += 2;
        } else {
            plain[k++] = raw[i];
        }
    }
    plain[k] = '\0';
    if (!(rc = secrets_add(s, raw, err)))
        rc = secrets_add(s, plain, err);
    memset(raw, 0, sizeof raw);
    memset(plain, 0, sizeof plain);
    return rc;
}

/* "scheme://user:PASSWORD@host...": the last '@' before the path ends the userinfo. */
static int add_userinfo_password(struct secrets *s, const char *url, struct pw_error *err)
{
    const char *scheme = strstr(url, "://"), *auth, *end, *at = NULL, *colon;

    if (!scheme)
        return 0;
    auth = scheme + 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at || !(colon = memchr(auth, ':', (size_t)(at - auth))))
        return 0;
    return add_written_and_decoded(s, colon + 1, (size_t)(at - colon - 1), 0, err);
}

/* Every "password=VALUE": a URI query parameter or a keyword (spaces allowed around
 * '=', the value single-quoted or ending at whitespace). */
static int add_keyword_passwords(struct secrets *s, const char *url, struct pw_error *err)
{
    int rc;

    for (const char *p = strstr(url, "password"); p; p = strstr(p + 8, "password")) {
        const char *v = p + 8, *q;
        if (p > url && !strchr("?& \t\r\n", p[-1]))
            continue;
        v += strspn(v, " \t\r\n");
        if (*v != '=')
            continue;
        v += 1 + strspn(v + 1, " \t\r\n");
        if (*v == '\'') {
            for (q = v + 1; *q && *q != '\''; q += q[0] == '\\' && q[1] ? 2 : 1)
                ;
            rc = add_written_and_decoded(s, v + 1, (size_t)(q - v - 1), 1, err);
        } else {
            rc = add_written_and_decoded(s, v, strcspn(v, "& \t\r\n"), 0, err);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int secrets_add_url_password(struct secrets *s, const char *url, struct pw_error *err)
{
    int rc;

    if (!url)
        return 0;
    if ((rc = add_userinfo_password(s, url, err)))
        return rc;
    return add_keyword_passwords(s, url, err);
}

int secrets_from_env(struct secrets *s, struct pw_error *err)
{
    int rc;

    secrets_init(s);
    if ((rc = secrets_add(s, getenv("QDRANT_API_KEY"), err)) ||
        (rc = secrets_add(s, getenv("PGPASSWORD"), err)) || /* libpq's fallback password */
        (rc = secrets_add_url_password(s, getenv("DATABASE_URL"), err)) ||
        (rc = secrets_add_url_password(s, getenv("CELERY_BROKER_URL"), err)))
        return rc;
    return 0;
}

void secrets_scrub(const struct secrets *s, char *text)
{
    if (!s || !text)
        return;
    for (size_t i = 0; i < s->n; i++) {
        const char *v = s->values[i];
        size_t len = strlen(v);
        for (char *p = strstr(text, v); p; p = strstr(p + 3, v)) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + len, strlen(p + len) + 1);
        }
    }
}

static void scrub_strings(const struct secrets *s, json_t *v)
{
    const char *key;
    json_t *child;
    size_t i;
    char *copy;

    if (json_is_object(v)) {
        json_object_foreach(v, key, child) scrub_strings(s, child);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child) scrub_strings(s, child);
    } else if (json_is_string(v) && (copy = strdup(json_string_value(v)))) {
        secrets_scrub(s, copy);
        if (strcmp(copy, json_string_value(v)))
            json_string_set(v, copy);
        free(copy);
    }
}

json_t *secrets_scrub_json(const struct secrets *s, json_t *v)
{
    json_t *copy;

    if (!v || !s || !s->n)
        return v;
    copy = json_deep_copy(v); /* v's parts may be shared with the caller's data */
    json_decref(v);
    scrub_strings(s, copy);
    return copy;
}
