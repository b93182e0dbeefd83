/* qdrant.c - HTTP side of the Qdrant client: one libcurl easy handle (one kept-alive
 * connection for every page), retries with capped exponential backoff, collection info.
 *
 * A scroll response is never buffered here: the write callback hands each chunk of a
 * 200 body to the caller's sink (qdrant_http.h; qdrant_scroll.c parses pages with it).
 * A failed attempt tells the sink to drop what it began, so a retried page starts from
 * a clean state.  Only small bodies (collection info, error bodies) are buffered.  The
 * API key lives in a curl header list and in no message: error texts name the server
 * as scheme://host:port only. */
#include "qdrant.h"
#include "qdrant_http.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#define INFO_BODY_MAX  (8u << 20) /* a collection info is a few KB */
#define ERROR_BODY_MAX 4096

struct qdrant_client {
    CURL *curl;
    struct curl_slist *headers;
    char *base;          /* URL without trailing slash, may hold credentials */
    char safe_base[160]; /* scheme://host[:port] for messages */
    long timeout_ms, connect_timeout_ms, backoff_initial_ms, backoff_max_ms;
    int max_retries;
};

struct xfer {
    struct qdrant_client *c;
    long status;
    int status_known;
    const struct qdrant_sink *sink; /* set: a 200 body streams into it */
    int sink_started, sink_failed;
    struct pw_error perr;
    char *buf; /* other bodies, up to max bytes */
    size_t len, cap, max;
    int truncated;
};

/* ---- client ---------------------------------------------------------------------- */

static void make_safe_base(struct qdrant_client *c)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    snprintf(c->safe_base, sizeof c->safe_base, "qdrant");
    if (u && curl_url_set(u, CURLUPART_URL, c->base, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        curl_url_get(u, CURLUPART_PORT, &port, 0);
        snprintf(c->safe_base, sizeof c->safe_base, "%s://%s%s%s", scheme, host, port ? ":" : "",
                 port ? port : "");
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

int qdrant_client_new(struct qdrant_client **out, const struct qdrant_config *cfg,
                      struct pw_error *err)
{
    struct qdrant_client *c = NULL;
    char *hdr = NULL;
    int rc = 0;

    *out = NULL;
    if (!cfg || !cfg->url || !*cfg->url)
        return pw_error_set(err, PW_EINVAL, "QDRANT_URL is not set");
    if (cfg->api_key) {
        for (const char *k = cfg->api_key; *k; k++)
            if (iscntrl((unsigned char)*k))
                return pw_error_set(err, PW_EINVAL, "QDRANT_API_KEY contains control characters");
    }
    c = calloc(1, sizeof *c);
    if (!c)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    c->base = strdup(cfg->url);
    c->curl = curl_easy_init();
    if (!c->base || !c->curl) {
        rc = pw_error_set(err, PW_ENOMEM, "cannot initialise libcurl");
        goto cleanup;
    }
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/')
        c->base[--bl] = '\0';
    make_safe_base(c);
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 60000;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
    c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : cfg->max_retries < 0 ? 0 : 5;
    c->backoff_initial_ms = cfg->backoff_initial_ms > 0 ? cfg->backoff_initial_ms : 200;
    c->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 5000;

    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    int ok = c->headers && curl_slist_append(c->headers, "Accept: application/json");
    if (ok && cfg->api_key && *cfg->api_key) {
        size_t n = strlen(cfg->api_key) + sizeof "api-key: ";
        hdr = malloc(n);
        ok = hdr != NULL;
        if (ok) {
            snprintf(hdr, n, "api-key: %s", cfg->api_key);
            ok = curl_slist_append(c->headers, hdr) != NULL;
        }
    }
    if (!ok) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory for request headers");
        goto cleanup;
    }
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    if (!cfg->no_compression) /* compressed floats: README §3 */
        curl_easy_setopt(c->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c->curl, CURLOPT_BUFFERSIZE, 256L * 1024); /* fewer, larger feeds */
    *out = c;
    c = NULL;
cleanup:
    if (hdr) {
        memset(hdr, 0, strlen(hdr)); /* the key should not linger in freed memory */
        free(hdr);
    }
    qdrant_client_free(c);
    return rc;
}

void qdrant_client_free(struct qdrant_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    free(c->base);
    free(c);
}

/* ---- one request with retries ------------------------------------------------------ */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (!x->status_known) {
        curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->status);
        x->status_known = 1;
    }
    if (x->status == 200 && x->sink) {
        int rc = 0;
        if (!x->sink_started) {
            rc = x->sink->start(x->sink->ud, &x->perr);
            x->sink_started = rc == 0;
        }
        if (rc == 0)
            rc = x->sink->data(x->sink->ud, ptr, n, &x->perr);
        if (rc < 0) {
            x->sink_failed = 1;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        return n;
    }
    size_t take = n;
    if (x->len + take > x->max) {
        take = x->max - x->len;
        x->truncated = 1;
    }
    if (x->len + take + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + take + 1)
            cap *= 2;
        char *b = realloc(x->buf, cap);
        if (!b)
            return 0;
        x->buf = b;
        x->cap = cap;
    }
    memcpy(x->buf + x->len, ptr, take);
    x->len += take;
    x->buf[x->len] = '\0';
    return n;
}

/* The server's error text: status.error of a JSON body, else the plain text (401/403
 * bodies are plain text), trimmed to printable characters. */
static void server_message(const struct xfer *x, char *out, size_t size)
{
    out[0] = '\0';
    if (!x->buf || !x->len)
        return;
    json_t *root = json_loadb(x->buf, x->len, 0, NULL);
    json_t *st = root ? json_object_get(root, "status") : NULL;
    const char *e = st ? json_string_value(json_object_get(st, "error")) : NULL;
    const char *src = e ? e : x->buf;
    size_t k = 0;
    for (size_t i = 0; src[i] && k + 1 < size && k < 200; i++)
        out[k++] = isprint((unsigned char)src[i]) ? src[i] : ' ';
    out[k] = '\0';
    json_decref(root);
}

static int retryable_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* Turns the outcome of one attempt into 0 or an error; *retry says whether to retry. */
static int classify(struct qdrant_client *c, const char *what, CURLcode cc, struct xfer *x,
                    int *retry, struct pw_error *err)
{
    char msg[210];
    *retry = 0;
    if (cc == CURLE_WRITE_ERROR && x->sink_failed) {
        if (err)
            *err = x->perr;
        *retry = x->perr.code == PW_EUNAVAIL;
        return x->perr.code;
    }
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        *retry = 1;
        return pw_error_set(err, PW_ETIMEOUT, "%s at %s: no complete answer within %ld ms", what,
                            c->safe_base, c->timeout_ms);
    }
    if (cc != CURLE_OK) {
        *retry = retryable_curl(cc);
        return pw_error_set(err, *retry ? PW_EUNAVAIL : PW_EIO, "%s at %s: %s", what, c->safe_base,
                            curl_easy_strerror(cc));
    }
    long st = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &st);
    if (st == 200)
        return 0;
    server_message(x, msg, sizeof msg);
    if (st == 404)
        return pw_error_set(err, PW_ENOTFOUND, "%s at %s: not found (HTTP 404): %s", what,
                            c->safe_base, msg);
    if (st == 401 || st == 403)
        return pw_error_set(err, PW_EDENIED,
                            "%s at %s: refused (HTTP %ld), check QDRANT_API_KEY: %s", what,
                            c->safe_base, st, msg);
    if (st == 400 || st == 422)
        return pw_error_set(err, PW_EINVAL, "%s at %s: request rejected (HTTP %ld): %s", what,
                            c->safe_base, st, msg);
    if (st == 408 || st == 429 || (st >= 500 && st <= 599)) {
        *retry = 1;
        return pw_error_set(err, PW_EUNAVAIL, "%s at %s: server error (HTTP %ld): %s", what,
                            c->safe_base, st, msg);
    }
    return pw_error_set(err, PW_EPROTO, "%s at %s: unexpected HTTP %ld", what, c->safe_base, st);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

struct request {
    const char *what; /* "scroll of `c`" for messages */
    const char *url;
    const char *body;               /* NULL: GET */
    const struct qdrant_sink *sink; /* a 200 body goes here as it arrives */
    char **out;                     /* without sink: the 200 body (caller frees) */
    size_t *out_len;
    size_t requests, retries;
};

static int perform(struct qdrant_client *c, struct request *r, struct pw_error *err)
{
    int rc = 0, retry = 0;
    long backoff = c->backoff_initial_ms;

    for (int attempt = 0; attempt <= c->max_retries; attempt++) {
        struct xfer x = {.c = c, .sink = r->sink, .max = r->sink ? ERROR_BODY_MAX : INFO_BODY_MAX};
        if (attempt > 0) {
            sleep_ms(backoff);
            backoff = backoff * 2 > c->backoff_max_ms ? c->backoff_max_ms : backoff * 2;
            r->retries++;
        }
        curl_easy_setopt(c->curl, CURLOPT_URL, r->url);
        if (r->body) {
            curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
            curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, r->body);
        } else {
            curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
        }
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &x);
        r->requests++;
        CURLcode cc = curl_easy_perform(c->curl);
        rc = classify(c, r->what, cc, &x, &retry, err);
        if (rc == 0 && r->sink) {
            if (!x.sink_started) { /* an empty 200 body */
                rc = r->sink->start(r->sink->ud, err);
                x.sink_started = rc == 0;
            }
            if (rc == 0) {
                x.sink_started = 0; /* finish() ends what start() began, either way */
                rc = r->sink->finish(r->sink->ud, 1, err);
                retry = rc == PW_EUNAVAIL;
            }
        } else if (rc == 0 && x.truncated) {
            rc = pw_error_set(err, PW_EPROTO, "%s at %s: response larger than %u bytes", r->what,
                              c->safe_base, INFO_BODY_MAX);
        } else if (rc == 0) {
            *r->out = x.buf;
            *r->out_len = x.len;
            x.buf = NULL;
        }
        if (rc < 0 && retry) {
            curl_off_t after = 0; /* 429/503 may say when to come back */
            if (curl_easy_getinfo(c->curl, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0 &&
                after * 1000 > backoff)
                backoff = after * 1000 > c->backoff_max_ms ? c->backoff_max_ms : after * 1000;
        }
        if (x.sink_started) /* the attempt failed after the body began: drop it */
            r->sink->finish(r->sink->ud, 0, NULL);
        free(x.buf);
        if (rc == 0 || !retry)
            return rc;
    }
    if (err && c->max_retries > 0) {
        char last[sizeof err->msg];
        memcpy(last, err->msg, sizeof last);
        pw_error_set(err, rc, "gave up after %d attempts: %.200s", c->max_retries + 1, last);
    }
    return rc;
}

int qdrant_http_stream(struct qdrant_client *c, const char *what, const char *url, const char *body,
                       const struct qdrant_sink *sink, size_t *requests, size_t *retries,
                       struct pw_error *err)
{
    struct request r = {.what = what, .url = url, .body = body, .sink = sink};
    int rc = perform(c, &r, err);
    *requests += r.requests;
    *retries += r.retries;
    return rc;
}

char *qdrant_http_collection_url(struct qdrant_client *c, const char *collection,
                                 const char *suffix)
{
    char *esc = curl_easy_escape(c->curl, collection, 0);
    if (!esc)
        return NULL;
    size_t n = strlen(c->base) + strlen(esc) + strlen(suffix) + 64;
    char *url = malloc(n);
    if (url) {
        long t = c->timeout_ms / 1000;
        if (suffix[0]) /* server-side timeout in whole seconds (README §1) */
            snprintf(url, n, "%s/collections/%s%s?timeout=%ld", c->base, esc, suffix,
                     t < 1 ? 1 : t);
        else
            snprintf(url, n, "%s/collections/%s", c->base, esc);
    }
    curl_free(esc);
    return url;
}

/* ---- collection info ------------------------------------------------------------- */

static int is_single_params(json_t *v)
{
    return json_is_integer(json_object_get(v, "size")) &&
           json_is_string(json_object_get(v, "distance"));
}

static int read_vector_params(json_t *v, const char *name, struct qdrant_vector_info *out)
{
    if (strlen(name) >= QDRANT_NAME_MAX)
        return -1;
    snprintf(out->name, sizeof out->name, "%s", name);
    json_int_t size = json_integer_value(json_object_get(v, "size"));
    out->size = size > 0 ? (size_t)size : 0;
    json_t *mv = json_object_get(v, "multivector_config");
    out->multivector = mv && !json_is_null(mv);
    return 0;
}

int qdrant_http_collection_info(struct qdrant_client *c, const char *collection,
                                struct qdrant_collection_info *out, size_t *requests,
                                size_t *retries, struct pw_error *err)
{
    char what[160], *body = NULL, *url = NULL;
    size_t len = 0;
    json_t *root = NULL;
    int rc = 0;

    memset(out, 0, sizeof *out);
    out->points_count = -1;
    if (!collection || !*collection)
        return pw_error_set(err, PW_EINVAL, "no collection name");
    snprintf(what, sizeof what, "collection info of `%.100s`", collection);
    url = qdrant_http_collection_url(c, collection, "");
    if (!url) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto cleanup;
    }
    struct request r = {.what = what, .url = url, .out = &body, .out_len = &len};
    rc = perform(c, &r, err);
    *requests += r.requests;
    *retries += r.retries;
    if (rc < 0)
        goto cleanup;
    json_error_t jerr;
    root = json_loadb(body, len, 0, &jerr);
    json_t *result = json_object_get(root, "result");
    json_t *params = json_object_get(json_object_get(result, "config"), "params");
    json_t *vectors = json_object_get(params, "vectors");
    if (!json_is_object(result) || !json_is_object(vectors)) {
        rc =
            pw_error_set(err, PW_EPROTO, "%s: no result.config.params.vectors in the answer", what);
        goto cleanup;
    }
    json_t *pc = json_object_get(result, "points_count");
    if (json_is_integer(pc) && json_integer_value(pc) >= 0)
        out->points_count = json_integer_value(pc);
    if (is_single_params(vectors)) {
        out->n_vectors = 1;
        read_vector_params(vectors, "", &out->vectors[0]);
    } else {
        const char *name;
        json_t *v;
        out->named = 1;
        json_object_foreach(vectors, name, v)
        {
            if (!json_is_object(v))
                continue;
            if (out->n_vectors == QDRANT_MAX_VECTORS ||
                read_vector_params(v, name, &out->vectors[out->n_vectors]) < 0) {
                rc = pw_error_set(err, PW_EPROTO, "%s: too many or too long vector names", what);
                goto cleanup;
            }
            out->n_vectors++;
        }
    }
    json_t *sparse = json_object_get(params, "sparse_vectors");
    if (json_is_object(sparse))
        out->n_sparse = json_object_size(sparse);
cleanup:
    json_decref(root);
    free(body);
    free(url);
    return rc;
}

int qdrant_collection_info(struct qdrant_client *c, const char *collection,
                           struct qdrant_collection_info *out, struct pw_error *err)
{
    size_t requests = 0, retries = 0;
    return qdrant_http_collection_info(c, collection, out, &requests, &retries, err);
}
