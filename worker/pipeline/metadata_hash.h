/* metadata_hash.h - the projection metadata hash, contract v1
 * (shared/contracts/METADATA_HASH.md; metadata_hash_reference.py is the definition).
 *
 * metadata_hash_* turns one run's inputs into the canonical JSON text Python's
 * json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True) would print, and
 * into the lower-case hex SHA-256 of that text.  The config arrives as JSON *text*
 * (what PostgreSQL hands us for projection_runs.config) and is parsed here with yajl,
 * which keeps every number's source digits: integers of any size stay exact, floats are
 * printed as Python's repr() prints them.
 *
 * Memory: *canonical_out is malloc'd and owned by the caller (free()).  Nothing else is
 * allocated behind the caller's back; no global state.
 * Errors: PW_EINVAL for input Python would refuse too (bad JSON, NaN/Infinity, a config
 * that is not an object, a timestamp fromisoformat rejects); PW_ENOMEM; PW_EINTERNAL if
 * OpenSSL fails.  err->msg says which field was wrong and never echoes whole values. */
#ifndef PW_METADATA_HASH_H
#define PW_METADATA_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pw_error.h"

#define METADATA_HASH_VERSION        1
#define METADATA_HASH_HEX_LEN        64     /* characters, without the NUL */
#define METADATA_HASH_DEFAULT_SAMPLE 200000 /* DEFAULT_SAMPLE_LIMIT in the reference */

struct metadata_hash_input {
    const char *collection_id;        /* projection_runs.collection_id, UTF-8 */
    const char *reducer;              /* projection_runs.reducer; NULL or "" means "pca" */
    int64_t dimensionality;           /* projection_runs.dimensionality */
    const char *config_json;          /* projection_runs.config as JSON text; NULL means {} */
    const char *embedding_model;      /* collections.embedding_model, UTF-8 */
    int64_t vector_count;             /* collections.vector_count */
    int64_t collection_updated_at_us; /* collections.updated_at, µs since the Unix epoch */
};

/* The request as the contract reads it: the hashed fields the task acts on. */
struct metadata_hash_effective {
    const char *color_by; /* "document_id" | "source_dir" | "filetype" | "age_bucket" (static) */
    double sample_limit;  /* >= 1: the canonical digits as a double (inf beyond its range) */
};

/* Builds the canonical text.  On success *canonical_out is a NUL-terminated ASCII string
 * and *eff (when not NULL) holds the effective fields written into it. */
int metadata_hash_canonical(const struct metadata_hash_input *in, char **canonical_out,
                            struct metadata_hash_effective *eff, struct pw_error *err);

/* Canonical text and its SHA-256.  hex_out receives 64 lower-case hex digits and a NUL.
 * canonical_out may be NULL when the caller only wants the hash. */
int metadata_hash_compute(const struct metadata_hash_input *in, char **canonical_out,
                          char hex_out[METADATA_HASH_HEX_LEN + 1], struct pw_error *err);

/* The hash and the effective fields, for the task that acts on the request. */
int metadata_hash_request(const struct metadata_hash_input *in,
                          char hex_out[METADATA_HASH_HEX_LEN + 1],
                          struct metadata_hash_effective *eff, struct pw_error *err);

/* For callers holding the config as a jansson value: its JSON text (reals with 17
 * significant digits, so they read back to the same double) for config_json.  Integers
 * beyond 64 bits cannot be in a json_t; pass the database's text instead when you have
 * it.  *text_out is malloc'd (free()); config NULL gives NULL. */
int metadata_hash_config_text(const json_t *config, char **text_out, struct pw_error *err);

/* SHA-256 of len bytes as lower-case hex (65 bytes with the NUL). */
int metadata_hash_sha256_hex(const void *data, size_t len, char hex_out[METADATA_HASH_HEX_LEN + 1],
                             struct pw_error *err);

/* py_fromisoformat (Python 3.11 datetime.fromisoformat, no offset means UTC) with the
 * error filled in: microseconds since 1970-01-01T00:00:00Z, or PW_EINVAL. */
int metadata_hash_parse_timestamp(const char *text, int64_t *us_out, struct pw_error *err);

#endif
