/* backfill_request.h - the projection request a backfill makes, read as the Python API's
 * ProjectionService.start_projection_build reads one (shared/seeds/001_*.txt):
 * reducer = str(reducer or "umap").lower(); the config normalised by
 * _normalise_reducer_config (umap: n_neighbors int >= 2, min_dist float in [0, 1],
 * metric non-empty str, other keys kept; tsne: exactly perplexity > 0, learning_rate > 0,
 * n_iter int >= 250, metric, init pca|random; other reducers: the config as given);
 * then color_by = str(color_by or "document_id").lower().  The backfill's own options
 * add sample_size (the key the web UI sends) and force (the key the worker reads).
 *
 * backfill_request_hash() is the worker's metadata hash (metadata_hash_request) of that
 * request over one collection's current state, so equal hashes mean the worker would
 * reuse.
 *
 * Memory: struct backfill_request owns its strings and JSON (backfill_request_free()).
 * Errors: PW_EINVAL with the API's message for a request it refuses (err->msg); PW_ENOMEM;
 * metadata_hash.h's codes. */
#ifndef PW_BACKFILL_REQUEST_H
#define PW_BACKFILL_REQUEST_H

#include <jansson.h>

#include "collections.h"
#include "metadata_hash.h"
#include "pw_error.h"

#define BACKFILL_DIMENSIONALITY 2 /* the API refuses anything else */

struct backfill_options_in {
    const char *reducer;     /* NULL: "umap" (the API's default) */
    const char *config_json; /* NULL: none; otherwise a JSON object's text */
    const char *color_by;    /* NULL: "document_id" */
    long long sample_limit;  /* <= 0: not set */
    int force;
};

struct backfill_request {
    char *reducer;     /* lower-case */
    json_t *config;    /* the run's config as stored */
    char *config_text; /* metadata_hash_config_text(config): stored and hashed */
};

int backfill_request_build(const struct backfill_options_in *in, struct backfill_request *out,
                           struct pw_error *err);
void backfill_request_free(struct backfill_request *r);

/* The metadata hash of the request over collection c as it is now. */
int backfill_request_hash(const struct backfill_request *r, const struct collection *c,
                          char hex_out[METADATA_HASH_HEX_LEN + 1], struct pw_error *err);

#endif
