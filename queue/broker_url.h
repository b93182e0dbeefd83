/* broker_url.h - Celery-style broker URLs: parse for rabbitmq-c, mask for logs.
 *
 * broker_url_parse() accepts amqp:// and amqps:// URLs as Celery/kombu write them
 * (`amqp://user:pass@host:5672//` means vhost "/"; an empty vhost also means "/"),
 * percent-decoding user, password and vhost.  The result owns one heap copy of the
 * URL text; free it with broker_url_free().  broker_url_mask() copies a URL with the
 * password replaced by "***" so it can go into a log line. */
#ifndef PW_BROKER_URL_H
#define PW_BROKER_URL_H

#include <stddef.h>

#include "pw_error.h"

struct broker_url {
    char *user;
    char *password;
    char *host;
    char *vhost;
    int port;
    int tls;    /* amqps:// */
    char *buf_; /* owns the strings above */
};

int broker_url_parse(const char *url, struct broker_url *out, struct pw_error *err);
void broker_url_free(struct broker_url *u);

/* Writes `url` with any password replaced by "***" into out (always NUL-terminated,
 * truncated to outlen).  Works on any scheme://user:pass@host URL, libpq ones too. */
void broker_url_mask(const char *url, char *out, size_t outlen);

#endif
