/* broker_url.c - parse and mask broker URLs.
 *
 * Parsing is rabbitmq-c's amqp_parse_url(); this file adds kombu's conventions on
 * top (empty vhost = "/") and keeps the parsed strings alive in one buffer. */
#include "broker_url.h"

#include <amqp.h>
#include <stdlib.h>
#include <string.h>

/* kombu takes the vhost as everything after the first '/' of the path, slashes
 * included ("amqp://h//" is vhost "/"); amqp_parse_url() wants them encoded. */
static char *encode_vhost_slashes(const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *path = strchr(scheme_end ? scheme_end + 3 : url, '/');
    size_t slashes = 0, len = strlen(url);
    char *out, *w;

    if (path)
        for (const char *p = path + 1; *p; p++)
            slashes += *p == '/';
    out = malloc(len + 2 * slashes + 1);
    if (!out)
        return NULL;
    if (!path) {
        memcpy(out, url, len + 1);
        return out;
    }
    w = out;
    memcpy(w, url, (size_t)(path - url) + 1);
    w += path - url + 1;
    for (const char *p = path + 1; *p; p++) {
        if (*p == '/') {
            memcpy(w, "%2F", 3);
            w += 3;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return out;
}

int broker_url_parse(const char *url, struct broker_url *out, struct pw_error *err)
{
    struct amqp_connection_info info;
    char masked[512];

    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return pw_error_set(err, PW_EINVAL, "broker URL is empty");
    out->buf_ = encode_vhost_slashes(url);
    if (!out->buf_)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    amqp_default_connection_info(&info);
    if (amqp_parse_url(out->buf_, &info) != AMQP_STATUS_OK) {
        broker_url_mask(url, masked, sizeof masked);
        free(out->buf_);
        out->buf_ = NULL;
        return pw_error_set(
            err, PW_EINVAL,
            "invalid broker URL '%s' (expected amqp://user:password@host:port/vhost)", masked);
    }
    out->user = info.user;
    out->password = info.password;
    out->host = info.host;
    out->vhost = (info.vhost && *info.vhost) ? info.vhost : "/";
    out->port = info.port;
    out->tls = info.ssl ? 1 : 0;
    return 0;
}

void broker_url_free(struct broker_url *u)
{
    if (u) {
        free(u->buf_);
        memset(u, 0, sizeof *u);
    }
}

void broker_url_mask(const char *url, char *out, size_t outlen)
{
    const char *scheme_end, *authority, *at, *colon, *end;
    size_t n;

    if (!out || outlen == 0)
        return;
    out[0] = '\0';
    if (!url)
        return;
    scheme_end = strstr(url, "://");
    authority = scheme_end ? scheme_end + 3 : url;
    end = authority + strcspn(authority, "/?#");
    /* The last '@' before the path ends the userinfo: passwords may contain '@'
     * only percent-encoded, but be generous. */
    at = NULL;
    for (const char *p = authority; p < end; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    colon = memchr(authority, ':', (size_t)(at - authority));
    if (!colon) {
        snprintf(out, outlen, "%s", url);
        return;
    }
    n = (size_t)(colon - url) + 1;
    snprintf(out, outlen, "%.*s***%s", (int)n, url, at);
}
