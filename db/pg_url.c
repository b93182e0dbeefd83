/* pg_url.c - password masking for libpq connection strings (see pg_url.h).
 *
 * The masking is done on the text itself rather than through PQconninfoParse so that
 * the output keeps the user's spelling of everything but the secret, and so that a
 * string libpq would reject is still shown safely. */
#include "pg_url.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && o->len + 1 < o->cap; i++)
        o->buf[o->len++] = s[i];
    o->buf[o->len] = '\0';
}

static bool is_uri(const char *s)
{
    return !strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11);
}

/* URI form: scheme://[user[:password]@]host[:port][,...][/db][?k=v&...] */
static void mask_uri(struct out *o, const char *url)
{
    const char *rest = strstr(url, "://") + 3;
    put(o, url, (size_t)(rest - url));
    const char *end_authority = rest + strcspn(rest, "/?");
    /* the last '@' before the path: a password may itself contain '@' if unescaped */
    const char *at = NULL;
    for (const char *p = rest; p < end_authority; p++)
        if (*p == '@')
            at = p;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (colon) {
            put(o, rest, (size_t)(colon - rest));
            put(o, ":***", 4);
        } else {
            put(o, rest, (size_t)(at - rest));
        }
        rest = at;
    }
    const char *q = strchr(rest, '?');
    if (!q) {
        put(o, rest, strlen(rest));
        return;
    }
    put(o, rest, (size_t)(q - rest) + 1);
    for (const char *p = q + 1; *p;) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        if (eq && (size_t)(eq - p) == 8 && !strncasecmp(p, "password", 8)) {
            put(o, p, 9);
            put(o, "***", 3);
        } else {
            put(o, p, n);
        }
        p += n;
        if (*p == '&') {
            put(o, "&", 1);
            p++;
        }
    }
}

/* key=value form; values may be single-quoted with backslash escapes. */
static bool mask_keyvalue(struct out *o, const char *s)
{
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            put(o, p++, 1);
        if (!*p)
            break;
        const char *key = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t')
            p++;
        size_t klen = (size_t)(p - key);
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '=')
            return false;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *val = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p != '\'')
                return false;
            p++;
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\n')
                p++;
        }
        put(o, key, klen);
        put(o, "=", 1);
        if (klen == 8 && !strncasecmp(key, "password", 8))
            put(o, "***", 3);
        else if (klen == 6 && !strncasecmp(key, "dbname", 6) && (val[0] != '\'') && is_uri(val)) {
            /* dbname may hold a whole URI, password included */
            char inner[1024];
            struct out io = {inner, sizeof inner, 0};
            inner[0] = '\0';
            char tmp[1024];
            size_t n = (size_t)(p - val) < sizeof tmp - 1 ? (size_t)(p - val) : sizeof tmp - 1;
            memcpy(tmp, val, n);
            tmp[n] = '\0';
            mask_uri(&io, tmp);
            put(o, inner, io.len);
        } else
            put(o, val, (size_t)(p - val));
    }
    return true;
}

char *pg_url_mask(const char *url, char *out, size_t outsz)
{
    struct out o = {out, outsz, 0};
    if (!out || outsz == 0)
        return out;
    out[0] = '\0';
    if (!url) {
        put(&o, "(none)", 6);
        return out;
    }
    if (is_uri(url)) {
        mask_uri(&o, url);
        return out;
    }
    if (!mask_keyvalue(&o, url)) {
        o.len = 0;
        put(&o, "***", 3);
    }
    return out;
}

void pg_url_scrub_secret(char *msg, const char *secret)
{
    size_t slen = secret ? strlen(secret) : 0;
    if (!msg || slen == 0)
        return;
    size_t mask = slen < 3 ? slen : 3;
    for (char *p = strstr(msg, secret); p; p = strstr(p + mask, secret)) {
        memset(p, '*', mask);
        memmove(p + mask, p + slen, strlen(p + slen) + 1);
    }
}

/* Length of the password in "scheme://user:PASSWORD@" starting at p (just after "://"),
 * or 0 when there is none before the end of the authority. */
static size_t userinfo_password(const char *p, size_t *user_len)
{
    size_t n = strcspn(p, "/?# \t\r\n\"'");
    const char *at = NULL;
    for (const char *q = p; q < p + n; q++)
        if (*q == '@')
            at = q;
    if (!at)
        return 0;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (!colon)
        return 0;
    *user_len = (size_t)(colon - p);
    return (size_t)(at - colon - 1);
}

char *pg_url_sanitize_error(const char *in, char *out, size_t outsz)
{
    struct out o = {out, outsz, 0};
    if (!out || outsz == 0)
        return out;
    out[0] = '\0';
    if (!in)
        return out;
    for (const char *p = in; *p;) {
        size_t user_len = 0, pw_len;
        if (p[0] == ':' && p[1] == '/' && p[2] == '/' &&
            (pw_len = userinfo_password(p + 3, &user_len)) > 0) {
            put(&o, p, 3 + user_len);
            put(&o, ":***", 4);
            p += 3 + user_len + 1 + pw_len;
            continue;
        }
        if (!strncasecmp(p, "password=", 9)) {
            put(&o, p, 9);
            put(&o, "***", 3);
            p += 9;
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p++)
                    if (*p == '\\' && p[1])
                        p++;
                p += *p == '\'';
            } else {
                p += strcspn(p, " \t\r\n&;,");
            }
            continue;
        }
        unsigned char c = (unsigned char)*p;
        put(&o, (c < 0x20 || c == 0x7f) ? " " : p, 1);
        p++;
    }
    /* do not end inside a UTF-8 sequence */
    size_t len = o.len;
    size_t start = len;
    while (start > 0 && ((unsigned char)out[start - 1] & 0xC0) == 0x80)
        start--;
    if (start > 0 && ((unsigned char)out[start - 1] & 0x80)) {
        unsigned char lead = (unsigned char)out[start - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (len - (start - 1) < need)
            out[start - 1] = '\0';
    }
    return out;
}
