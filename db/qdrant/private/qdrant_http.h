/* qdrant_http.h - what qdrant.c offers the other files of the Qdrant client (not a
 * public API): one request with retries whose 200 body streams into a sink, the
 * collection URL, and collection info with request counters.
 *
 * A sink sees each attempt as start, data..., finish: finish(ud, 1, err) when the whole
 * body arrived (return 0, or an error; PW_EUNAVAIL makes the request retry) and
 * finish(ud, 0, NULL) when the attempt failed after start (drop what start began).
 * start/data return 0 or an error (filled into err), which aborts the attempt. */
#ifndef QDRANT_HTTP_H
#define QDRANT_HTTP_H

#include "qdrant.h"

struct qdrant_sink {
    int (*start)(void *ud, struct pw_error *err);
    int (*data)(void *ud, const char *buf, size_t len, struct pw_error *err);
    int (*finish)(void *ud, int complete, struct pw_error *err);
    void *ud;
};

/* POST body to url (GET when body is NULL); counters are added to, not reset. */
int qdrant_http_stream(struct qdrant_client *c, const char *what, const char *url, const char *body,
                       const struct qdrant_sink *sink, size_t *requests, size_t *retries,
                       struct pw_error *err);
/* {base}/collections/{escaped name}{suffix}[?timeout=s when suffix is set]; free() it. */
char *qdrant_http_collection_url(struct qdrant_client *c, const char *collection,
                                 const char *suffix);
int qdrant_http_collection_info(struct qdrant_client *c, const char *collection,
                                struct qdrant_collection_info *out, size_t *requests,
                                size_t *retries, struct pw_error *err);

#endif
