/* backfill_request.c - start_projection_build's reading of a request (see header).
 *
 * Each Python conversion goes through pycompat (int(), float(), str()) so a value the
 * API accepts or refuses is accepted or refused here, and the stored config carries the
 * same values the API would store (an int n_neighbors, a float min_dist, ...). */
#include "backfill_request.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pycompat.h"

/* int(cfg.get(key, dflt)) into *out, PW_EINVAL with msg when Python's int() raises. */
static int get_int(const json_t *cfg, const char *key, long long dflt, long long *out,
                   const char *msg, struct pw_error *err)
{
    const json_t *v = json_object_get(cfg, key);
    *out = dflt;
    if (v && py_int(v, out))
        return pw_error_set(err, PW_EINVAL, "%s", msg);
    return 0;
}

static int get_float(const json_t *cfg, const char *key, double dflt, double *out, const char *msg,
                     struct pw_error *err)
{
    const json_t *v = json_object_get(cfg, key);
    *out = dflt;
    if (v && py_float(v, out))
        return pw_error_set(err, PW_EINVAL, "%s", msg);
    return 0;
}

/* str(cfg.get(key, dflt)) into buf. */
static int get_str(const json_t *cfg, const char *key, const char *dflt, char *buf, size_t cap,
                   struct pw_error *err)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v) {
        snprintf(buf, cap, "%s", dflt);
        return 0;
    }
    if (py_str(v, buf, cap))
        return pw_error_set(err, PW_EINVAL, "%s is too long", key);
    return 0;
}

static int normalise_umap(json_t *cfg, struct pw_error *err)
{
    long long n_neighbors;
    double min_dist;
    char metric[256];
    int rc;

    if ((rc = get_int(cfg, "n_neighbors", 15, &n_neighbors, "n_neighbors must be an integer", err)))
        return rc;
    if (n_neighbors < 2)
        return pw_error_set(err, PW_EINVAL, "n_neighbors must be >= 2");
    if ((rc = get_float(cfg, "min_dist", 0.1, &min_dist, "min_dist must be a number", err)))
        return rc;
    if (!(min_dist >= 0.0 && min_dist <= 1.0))
        return pw_error_set(err, PW_EINVAL, "min_dist must be between 0 and 1");
    if ((rc = get_str(cfg, "metric", "cosine", metric, sizeof metric, err)))
        return rc;
    if (!*metric)
        return pw_error_set(err, PW_EINVAL, "metric must be a non-empty string");
    json_object_set_new(cfg, "n_neighbors", json_integer(n_neighbors));
    json_object_set_new(cfg, "min_dist", json_real(min_dist));
    json_object_set_new(cfg, "metric", json_string(metric));
    return 0;
}

/* tsne keeps exactly its five keys: *cfg is replaced. */
static int normalise_tsne(json_t **cfg, struct pw_error *err)
{
    double perplexity, learning_rate;
    long long n_iter;
    char metric[256], init[64];
    int rc;

    if ((rc = get_float(*cfg, "perplexity", 30.0, &perplexity, "perplexity must be a number", err)))
        return rc;
    if (!(perplexity > 0))
        return pw_error_set(err, PW_EINVAL, "perplexity must be > 0");
    if ((rc = get_float(*cfg, "learning_rate", 200.0, &learning_rate,
                        "learning_rate must be a number", err)))
        return rc;
    if (!(learning_rate > 0))
        return pw_error_set(err, PW_EINVAL, "learning_rate must be > 0");
    if ((rc = get_int(*cfg, "n_iter", 1000, &n_iter, "n_iter must be an integer", err)))
        return rc;
    if (n_iter < 250)
        return pw_error_set(err, PW_EINVAL, "n_iter must be >= 250");
    if ((rc = get_str(*cfg, "metric", "euclidean", metric, sizeof metric, err)))
        return rc;
    if (!*metric)
        return pw_error_set(err, PW_EINVAL, "metric must be a non-empty string");
    if ((rc = get_str(*cfg, "init", "pca", init, sizeof init, err)))
        return rc;
    for (char *p = init; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    json_t *out = json_pack("{s:f, s:f, s:I, s:s, s:s}", "perplexity", perplexity, "learning_rate",
                            learning_rate, "n_iter", (json_int_t)n_iter, "metric", metric, "init",
                            strcmp(init, "random") ? "pca" : "random");
    if (!out)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    json_decref(*cfg);
    *cfg = out;
    return 0;
}

static char *lower_dup(const char *s)
{
    char *out = strdup(s);
    for (char *p = out; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

static int parse_config(const char *text, json_t **cfg, struct pw_error *err)
{
    json_error_t jerr;
    *cfg = text ? json_loads(text, 0, &jerr) : json_object();
    if (text && !*cfg)
        return pw_error_set(err, PW_EINVAL, "--config is not valid JSON: %s", jerr.text);
    if (!json_is_object(*cfg))
        return pw_error_set(err, PW_EINVAL, "config must be an object");
    return 0;
}

int backfill_request_build(const struct backfill_options_in *in, struct backfill_request *out,
                           struct pw_error *err)
{
    int rc;
    memset(out, 0, sizeof *out);
    out->reducer = lower_dup(in->reducer && *in->reducer ? in->reducer : "umap");
    char *color_by = lower_dup(in->color_by && *in->color_by ? in->color_by : "document_id");
    if (!out->reducer || !color_by) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = parse_config(in->config_json, &out->config, err)))
        goto done;
    if (!strcmp(out->reducer, "umap"))
        rc = normalise_umap(out->config, err);
    else if (!strcmp(out->reducer, "tsne"))
        rc = normalise_tsne(&out->config, err);
    if (rc)
        goto done;
    json_object_set_new(out->config, "color_by", json_string(color_by));
    if (in->sample_limit > 0)
        json_object_set_new(out->config, "sample_size", json_integer(in->sample_limit));
    if (in->force)
        json_object_set_new(out->config, "force", json_true());
    rc = metadata_hash_config_text(out->config, &out->config_text, err);
done:
    free(color_by);
    if (rc)
        backfill_request_free(out);
    return rc;
}

void backfill_request_free(struct backfill_request *r)
{
    free(r->reducer);
    json_decref(r->config);
    free(r->config_text);
    memset(r, 0, sizeof *r);
}

int backfill_request_hash(const struct backfill_request *r, const struct collection *c,
                          char hex_out[METADATA_HASH_HEX_LEN + 1], struct pw_error *err)
{
    struct metadata_hash_input in = {c->id,
                                     r->reducer,
                                     BACKFILL_DIMENSIONALITY,
                                     r->config_text,
                                     c->embedding_model ? c->embedding_model : "",
                                     c->vector_count,
                                     c->updated_at_us};
    return metadata_hash_request(&in, hex_out, NULL, err);
}
