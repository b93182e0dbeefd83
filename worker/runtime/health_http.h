/* health_http.h - the metrics and health endpoints over HTTP (libmicrohttpd).
 *
 * health_http_start() listens on HOST:PORT (IPv4, or [IPv6]:PORT; PORT 0 picks a free
 * port, written to *port_out) and serves, from libmicrohttpd's own thread:
 *   GET /metrics  Prometheus text (metrics_render)
 *   GET /healthz  200 "ok" while the main loop turned within max_loop_age_s, else 503
 *   GET /readyz   200 "ready" while the broker is connected and consuming, else 503
 * anything else 404 (405 for other methods).  It only reads struct metrics, whose
 * mutex makes that safe.  health_http_stop() stops the thread and frees the server;
 * the metrics stay the caller's.
 * Errors: PW_EINVAL (address not HOST:PORT), PW_EIO (cannot listen). */
#ifndef PW_HEALTH_HTTP_H
#define PW_HEALTH_HTTP_H

#include "metrics.h"
#include "pw_error.h"

struct health_http;

int health_http_start(struct health_http **out, const char *address, struct metrics *m,
                      double max_loop_age_s, int *port_out, struct pw_error *err);
void health_http_stop(struct health_http *h);

#endif
