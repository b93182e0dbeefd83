/* health_http.c - /metrics, /healthz, /readyz on libmicrohttpd (see header).
 *
 * One internal polling thread answers every request; each answer is built from the
 * metrics under their mutex, so a scrape never waits on the consumer loop. */
#include "health_http.h"

#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct health_http {
    struct MHD_Daemon *daemon;
    struct metrics *m;
    double max_loop_age_s;
};

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, char *text,
                                   const char *type)
{
    struct MHD_Response *r;
    enum MHD_Result rc;

    if (!text)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    struct health_http *h = cls;
    const char *plain = "text/plain; charset=utf-8";
    int ok;

    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET only\n"), plain);
    if (!strcmp(url, "/metrics"))
        return answer_text(conn, MHD_HTTP_OK, metrics_render(h->m),
                           "text/plain; version=0.0.4; charset=utf-8");
    if (!strcmp(url, "/healthz")) {
        ok = metrics_alive(h->m, h->max_loop_age_s);
        return answer_text(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                           strdup(ok ? "ok\n" : "main loop stalled\n"), plain);
    }
    if (!strcmp(url, "/readyz")) {
        ok = metrics_ready(h->m);
        return answer_text(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                           strdup(ok ? "ready\n" : "not consuming\n"), plain);
    }
    return answer_text(conn, MHD_HTTP_NOT_FOUND, strdup("not found\n"), plain);
}

/* "HOST:PORT" or "[V6]:PORT" resolved to one address. */
static int resolve(const char *address, struct addrinfo **ai, struct pw_error *err)
{
    struct addrinfo hints;
    const char *colon = strrchr(address, ':');
    char host[256];
    size_t n;
    int rc;

    if (!colon || colon == address || !colon[1])
        return pw_error_set(err, PW_EINVAL, "metrics address '%.100s' is not HOST:PORT", address);
    n = (size_t)(colon - address);
    if (address[0] == '[' && n >= 2 && address[n - 1] == ']')
        address++, n -= 2;
    if (n >= sizeof host)
        return pw_error_set(err, PW_EINVAL, "metrics address host is too long");
    memcpy(host, address, n);
    host[n] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host, colon + 1, &hints, ai)))
        return pw_error_set(err, PW_EINVAL, "metrics address '%.100s': %s", host, gai_strerror(rc));
    return 0;
}

int health_http_start(struct health_http **out, const char *address, struct metrics *m,
                      double max_loop_age_s, int *port_out, struct pw_error *err)
{
    struct health_http *h = calloc(1, sizeof *h);
    struct addrinfo *ai = NULL;
    const union MHD_DaemonInfo *info;
    int rc;

    if (!h)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    if ((rc = resolve(address, &ai, err))) {
        free(h);
        return rc;
    }
    h->m = m;
    h->max_loop_age_s = max_loop_age_s;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL,
        NULL, on_request, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)32, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        free(h);
        return pw_error_set(err, PW_EIO, "cannot listen on %.100s for metrics", address);
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info ? info->port : 0;
    *out = h;
    return 0;
}

void health_http_stop(struct health_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
