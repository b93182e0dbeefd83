/* pycompat.h - Python 3.11 semantics for the values the Python projection task touches,
 * in one place so every C caller follows the same rules (module prefix py_).
 *
 * Offers, on jansson values (NULL stands for None) and on UTF-8 text:
 *   py_truthy        bool(v)
 *   py_str           str(v) (strings as-is, containers as Python prints them)
 *   py_int/py_float  int(v) / float(v) as the config path coerces values
 *   py_float_repr    repr(float)
 *   py_fromisoformat datetime.fromisoformat(text), naive = UTC, as µs since the epoch
 *   py_utf8_next     strict UTF-8 decoding (what bytes.decode("utf-8") accepts)
 *   py_json_put_*    json.dumps string escaping with ensure_ascii=True
 *   py_json_dumps    json.dumps(v, sort_keys=True) with indent=N, or the compact
 *                    separators=(",", ":") form
 *
 * This library depends on jansson and libc only (and compute/pw_error.h), so pw_queue may
 * link it without depending on the rest of worker/; nothing here may include a header
 * from queue/, db/ or worker/pipeline/.
 *
 * Memory: py_json_dumps's *out is malloc'd and owned by the caller (free()); everything
 * else writes into caller buffers.  No global mutable state.
 * Errors: PW_EINVAL where Python raises (ValueError / TypeError), where a value does not
 * fit the C result (an int beyond 64 bits, a truncated str()), and for text that is not
 * valid UTF-8; PW_ENOMEM from py_json_dumps. */
#ifndef PW_PYCOMPAT_H
#define PW_PYCOMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pw_error.h"
#include "strbuf.h"

/* bool(v): "", 0, 0.0, -0.0, [], {}, false, null and NULL are false. */
int py_truthy(const json_t *v);

/* str(v) into out (NUL-terminated): strings as-is; ints; floats as repr (nan, inf);
 * True/False/None; lists and dicts as Python prints them, with strings inside as repr()
 * (quotes chosen as Python does; ASCII and C1 controls escaped as \n, \r, \t, \xNN;
 * other non-ASCII characters are copied, so the few non-printable ones beyond U+00A0
 * that Python escapes are not).  Returns 0, or PW_EINVAL when out[cap] was too small
 * (out then holds the truncated text) or cap is 0. */
int py_str(const json_t *v, char *out, size_t cap);

/* int(v): ints; floats truncated toward zero; bools; strings holding an integer with
 * optional sign, surrounding whitespace, Unicode decimal digits and single underscores
 * between digits.  PW_EINVAL for anything Python refuses (None, lists, dicts, "15.5",
 * NaN, infinities) and for results outside long long. */
int py_int(const json_t *v, long long *out);

/* float(v): numbers; bools; strings holding a Python float literal (sign, digits with
 * single underscores, fraction, exponent, inf/infinity/nan in any case) with
 * surrounding whitespace.  PW_EINVAL otherwise. */
int py_float(const json_t *v, double *out);

/* int() of a str, exactly: digits receives the absolute value as ASCII decimal without
 * leading zeros ("0" for zero) and *negative the sign.  Unbounded size up to Python's
 * 4300-digit limit.  PW_EINVAL where int() raises ValueError; the caller checks
 * digits->nomem. */
int py_int_digits(const char *s, size_t len, struct strbuf *digits, bool *negative);

/* str.isspace() for one code point. */
bool py_isspace(long cp);

/* repr(float) of a finite double: shortest round-trip digits, positional for decimal
 * exponents in [-4, 16) ("1e-05", "1e+16", "-0.0").  buf needs PY_FLOAT_REPR_MAX bytes.
 * PW_EINVAL for NaN and infinities (their repr is the caller's choice of spelling). */
#define PY_FLOAT_REPR_MAX 32
int py_float_repr(double value, char *buf, size_t bufsize);

/* datetime.fromisoformat(text) of Python 3.11 (every form it accepts: YYYY-MM-DD,
 * YYYYMMDD and ISO week dates, any one character between date and time, HH[:MM[:SS]]
 * with or without colons, a fraction of any length truncated to µs, Z or a ±HH[:MM[:SS
 * [.ffffff]]] offset under 24 h), as µs since 1970-01-01T00:00:00Z; no offset means UTC.
 * PW_EINVAL where Python raises ValueError. */
int py_fromisoformat(const char *text, int64_t *us_out);

/* Decodes the code point at s[*i] and advances *i; returns -1 (and leaves *i) for bytes
 * that are not strict UTF-8: overlong forms, surrogates, beyond U+10FFFF, truncation. */
long py_utf8_next(const char *s, size_t len, size_t *i);

/* Appends one code point / a quoted UTF-8 string as json.dumps(ensure_ascii=True) writes
 * it: \" \\ \n \r \t \b \f, other controls and all non-ASCII as lower-case \uXXXX,
 * beyond U+FFFF as a surrogate pair.  py_json_put_string returns PW_EINVAL for invalid
 * UTF-8 (the buffer then holds a partial string). */
void py_json_put_codepoint(struct strbuf *b, long cp);
int py_json_put_string(struct strbuf *b, const char *s, size_t len);

/* json.dumps(v, sort_keys=True, indent=indent) when indent >= 0 (", " never appears:
 * "," at line ends, ": " after keys, empty [] / {} inline, no trailing newline), or for
 * indent == PY_JSON_COMPACT the canonical json.dumps(v, sort_keys=True,
 * separators=(",", ":")).
 * ensure_ascii=True; reals as repr(float); keys sorted by code point.  jansson cannot
 * hold NaN or infinities, so they never occur.  PW_EINVAL for a NULL value or output,
 * another negative indent,
 * invalid UTF-8 (only possible through json_stringn_nocheck) or nesting deeper than
 * PY_JSON_MAX_DEPTH; PW_ENOMEM.  *out is NULL on failure. */
#define PY_JSON_COMPACT   (-1)
#define PY_JSON_MAX_DEPTH 2048 /* jansson's parser stops at 2048 too */
int py_json_dumps(const json_t *v, int indent, char **out, struct pw_error *err);

#endif
