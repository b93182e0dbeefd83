/* pg_url.h - making PostgreSQL connection strings safe to print.
 *
 * pg_url_mask() copies a libpq connection string (URI "postgresql://user:pw@host/db?..."
 * or key=value "host=... password=...") with every password replaced by "***": the
 * userinfo password, a "password" query parameter, a password= keyword.  Anything it
 * cannot parse is replaced whole by "***", never echoed.
 * pg_url_sanitize_error() prepares any error text for a database column or a log line.
 * pg_url_scrub_secret() blanks every occurrence of a secret inside a message (libpq error
 * texts), in place.  No allocation, no global state. */
#ifndef PW_PG_URL_H
#define PW_PG_URL_H

#include <stddef.h>

/* Writes the masked form of url into out (always NUL-terminated when outsz > 0).
 * Returns out. */
char *pg_url_mask(const char *url, char *out, size_t outsz);

/* Replaces each occurrence of secret (when non-empty) in msg by "***", in place.
 * The result never grows; a secret shorter than 3 characters is replaced by as many '*'. */
void pg_url_scrub_secret(char *msg, const char *secret);

/* Copies an error text into out for storage or display: every "scheme://user:pw@"
 * password and "password=..." value masked, control characters turned into spaces, and
 * the text cut at outsz - 1 bytes on a UTF-8 character boundary.  Returns out. */
char *pg_url_sanitize_error(const char *in, char *out, size_t outsz);

#endif
