/* log.h - one JSON object per line on stderr (or any fd).
 *
 * Every line has "ts" (RFC 3339 UTC, ms), "level" and "event"; callers add fields
 * as a jansson object which the logger steals (pass NULL for none).  A line is
 * written with one write(2) so lines from several threads never interleave.
 * The logger is a plain struct owned by main and passed down; it is read-only
 * after setup, so threads share it without locking.  Never put secrets in fields:
 * mask URLs with broker_url_mask() first.  As a second line of defence every string
 * of a line (msg and fields, nested ones too) is scrubbed of the secrets main hands
 * the logger (secrets.h), so a server's error text that echoes one is written masked. */
#ifndef PW_LOG_H
#define PW_LOG_H

#include <jansson.h>

#include "secrets.h"

enum pw_log_level {
    PW_LOG_DEBUG = 10,
    PW_LOG_INFO = 20,
    PW_LOG_WARNING = 30,
    PW_LOG_ERROR = 40,
    PW_LOG_CRITICAL = 50
};

struct pw_log {
    int fd;                        /* where lines go (2 = stderr) */
    int min_level;                 /* lines below it are dropped */
    const struct secrets *secrets; /* scrubbed from every line; NULL: none */
};

int pw_log_parse_level(const char *name, int *level); /* "debug".."critical"; 0 or PW_EINVAL */

/* Writes {"ts", "level", "event", "msg" (if msg), ...fields}.  Steals `fields`. */
void pw_log_event(const struct pw_log *log, int level, const char *event, json_t *fields,
                  const char *msg);

#endif
