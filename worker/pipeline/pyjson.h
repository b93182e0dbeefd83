/* pyjson.h - jansson values printed byte-for-byte as Python's json.dumps prints them with
 * indent=N, sort_keys=True and the other defaults (ensure_ascii=True, allow_nan=True).
 *
 * This is the text the Python projection task writes as meta.json
 * (json.dumps(payload, indent=2, sort_keys=True)): keys sorted by code point, "," at line
 * ends, ": " after keys, N spaces per level, empty [] / {} inline, every non-ASCII or
 * control character as a lower-case \uXXXX escape (astral code points as surrogate
 * pairs), reals as Python's repr(float) (1.0, 1e-05, 1e+16, -0.0), integers as integers,
 * no trailing newline.
 *
 * NaN and infinities: Python prints NaN / Infinity / -Infinity, but jansson refuses to hold
 * them (json_real(NAN) returns NULL), so a json_t never contains one and this module can
 * never print one.  A pipeline whose payload may carry NaN must decide before building the
 * json_t (Python would have written the bare token NaN, which is not valid JSON).
 *
 * Memory: *out is malloc'd, NUL-terminated, owned by the caller (free()); it is NULL on
 * failure.  The value is only read.  No global state.
 * Errors: PW_EINVAL for a NULL value, indent < 0, a string that is not valid UTF-8 (only
 * possible through json_stringn_nocheck), or nesting deeper than PYJSON_MAX_DEPTH;
 * PW_ENOMEM. */
#ifndef PW_PYJSON_H
#define PW_PYJSON_H

#include <jansson.h>

#include "pw_error.h"

/* Deeper values are refused rather than risking the stack (jansson's parser stops at 2048,
 * Python's encoder at its recursion limit, 1000 by default). */
#define PYJSON_MAX_DEPTH 2048

int pyjson_dumps_indent(const json_t *v, int indent, char **out, struct pw_error *err);

#endif
