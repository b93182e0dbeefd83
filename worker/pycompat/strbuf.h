/* strbuf.h - a growable NUL-terminated byte buffer for building text.
 *
 * Appends never fail loudly: an allocation failure sets `nomem` and later appends do
 * nothing, so a writer checks once at the end.  `data` is malloc'd and owned by the
 * caller once building is done (free()). */
#ifndef PW_STRBUF_H
#define PW_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
    char *data;
    size_t len, cap;
    bool nomem;
};

void strbuf_put(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);

#endif
