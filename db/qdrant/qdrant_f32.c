/* qdrant_f32.c - the slow path of qdrant_f32_parse(): strtod on a NUL-terminated copy.
 *
 * Reached only for text the exact fast path in qdrant_f32.h cannot handle (more than 19
 * significant digits, |exponent| beyond what stays exact).  It re-checks the JSON
 * grammar first, because strtod also accepts hex, "inf", "nan" and leading spaces. */
#include "qdrant_f32.h"

#include <stdlib.h>
#include <string.h>

/* End of the JSON number at p (the longest text the grammar allows), or NULL when the
 * text at p does not start with a complete number. */
static const char *json_number_end(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p == end)
        return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && (unsigned)(*p - '0') < 10)
            p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end || (unsigned)(*p - '0') >= 10)
            return NULL;
        while (p < end && (unsigned)(*p - '0') < 10)
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || (unsigned)(*p - '0') >= 10)
            return NULL;
        while (p < end && (unsigned)(*p - '0') < 10)
            p++;
    }
    return p;
}

int qdrant_f32_parse_slow_prefix(const char *s, const char *end, float *out, const char **stop)
{
    const char *e = json_number_end(s, end);
    if (!e)
        return -1;
    *stop = e;
    return qdrant_f32_parse_slow(s, (size_t)(e - s), out);
}

int qdrant_f32_parse_slow(const char *s, size_t len, float *out)
{
    char stackbuf[256];
    char *buf = stackbuf;
    char *endp;
    double d;

    if (json_number_end(s, s + len) != s + len)
        return -1;
    if (len >= sizeof stackbuf) { /* only absurdly long numbers get here */
        buf = malloc(len + 1);
        if (!buf)
            return -1;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    d = strtod(buf, &endp);
    if (buf != stackbuf)
        free(buf);
    *out = (float)d;
    return 0;
}
