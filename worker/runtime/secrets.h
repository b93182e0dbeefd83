/* secrets.h - the secrets a process holds, and scrubbing them out of what it writes.
 *
 * A server's error text may echo what it was sent (a proxy quoting the api-key header,
 * a driver quoting its connection string), and such texts travel into log lines, task
 * results and the database.  So every message the worker writes goes through
 * secrets_scrub(), which knows the secret values themselves rather than the places
 * they usually appear in.
 *
 * main owns one struct secrets: secrets_from_env() fills it once with QDRANT_API_KEY,
 * PGPASSWORD and the passwords of DATABASE_URL (libpq URI, its ?password= parameter, or the
 * password= keyword form) and CELERY_BROKER_URL, each as written and, where it
 * differs, percent-decoded or unquoted; main adds flag values with
 * secrets_add_url_password().  After setup the struct is read-only and threads share
 * it without locking.
 *
 * Values shorter than SECRETS_MIN_LEN are not held: replacing every "pw" or "abc" in
 * every message would mangle ordinary words and field names while protecting nothing
 * that a few thousand guesses would not find.
 * Memory: the struct owns copies of the values; secrets_free() releases them.
 * Errors: PW_ENOMEM when a copy fails or more than SECRETS_MAX values are held. */
#ifndef PW_SECRETS_H
#define PW_SECRETS_H

#include <jansson.h>
#include <stddef.h>

#include "pw_error.h"

#define SECRETS_MAX     16
#define SECRETS_MIN_LEN 4

struct secrets {
    char *values[SECRETS_MAX]; /* longest first, no duplicates */
    size_t n;
};

void secrets_init(struct secrets *s);
void secrets_free(struct secrets *s);

/* Holds a copy of value (ignored when NULL, shorter than SECRETS_MIN_LEN or held). */
int secrets_add(struct secrets *s, const char *value, struct pw_error *err);

/* The password of a URL or libpq keyword string: "scheme://user:PASSWORD@host",
 * "?password=PASSWORD" and "password=PASSWORD" (single-quoted with backslash escapes
 * in keyword strings); url may be NULL. */
int secrets_add_url_password(struct secrets *s, const char *url, struct pw_error *err);

/* secrets_init, then QDRANT_API_KEY, PGPASSWORD, DATABASE_URL and CELERY_BROKER_URL.
 * On an error s holds what was added before it (secrets_free it). */
int secrets_from_env(struct secrets *s, struct pw_error *err);

/* Replaces each occurrence of each secret in text by "***", in place (the text never
 * grows, since every secret is longer than the mask).  s or text may be NULL. */
void secrets_scrub(const struct secrets *s, char *text);

/* v (stolen) with secrets_scrub applied to every string inside it (objects and arrays
 * walked; keys left as they are): v itself when no secret is held, else a scrubbed
 * deep copy, since v's parts may be shared with the caller's data.  NULL when the
 * copy fails (or v is NULL). */
json_t *secrets_scrub_json(const struct secrets *s, json_t *v);

#endif
