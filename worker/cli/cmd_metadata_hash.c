/* cmd_metadata_hash.c - `projection-worker metadata-hash`: hash test cases from stdin.
 *
 * Reads JSON lines in the format of tests/fixtures/metadata-hash/metadata_hash_vectors.jsonl
 * (case, collection_id, reducer, dimensionality, config_json, embedding_model,
 * vector_count, collection_updated_at) and writes one line per case:
 *   {"case":…,"canonical":"…","metadata_hash":"…"}
 * A line that cannot be hashed gets {"case":…,"error":"…"} instead; the command keeps
 * going and exits 1 at the end when any line failed.  It exists so the Python side and
 * CI can check this implementation against the reference without a database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "metadata_hash.h"

static const char *optional_string(json_t *obj, const char *key, int *bad)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* Hashes one parsed case; on failure err says why. */
static int hash_case(json_t *c, char **canonical, char hex[METADATA_HASH_HEX_LEN + 1],
                     struct pw_error *err)
{
    struct metadata_hash_input in = {0};
    int bad = 0;
    if (!json_is_object(c))
        return pw_error_set(err, PW_EINVAL, "line is not a JSON object");
    in.collection_id = optional_string(c, "collection_id", &bad);
    in.reducer = optional_string(c, "reducer", &bad);
    in.config_json = optional_string(c, "config_json", &bad);
    in.embedding_model = optional_string(c, "embedding_model", &bad);
    const char *ts = optional_string(c, "collection_updated_at", &bad);
    json_t *dim = json_object_get(c, "dimensionality");
    json_t *count = json_object_get(c, "vector_count");
    if (bad || !in.collection_id || !in.embedding_model || !ts)
        return pw_error_set(err, PW_EINVAL,
                            "collection_id, embedding_model and collection_updated_at must be "
                            "strings; reducer and config_json strings or null");
    if (!json_is_integer(dim) || !json_is_integer(count))
        return pw_error_set(err, PW_EINVAL, "dimensionality and vector_count must be integers");
    in.dimensionality = json_integer_value(dim);
    in.vector_count = json_integer_value(count);
    int rc = metadata_hash_parse_timestamp(ts, &in.collection_updated_at_us, err);
    if (rc < 0)
        return rc;
    return metadata_hash_compute(&in, canonical, hex, err);
}

int cmd_metadata_hash(int argc, char **argv)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int failures = 0;

    if (argc > 1) {
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        fprintf(help ? stdout : stderr,
                "usage: projection-worker metadata-hash < cases.jsonl\n"
                "reads metadata-hash cases (JSON lines, the format of\n"
                "tests/fixtures/metadata-hash/metadata_hash_vectors.jsonl) on stdin and writes\n"
                "{\"case\":...,\"canonical\":...,\"metadata_hash\":...} per line on stdout\n");
        return help ? 0 : 2;
    }
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        struct pw_error err = {0};
        json_error_t jerr;
        char *canonical = NULL, hex[METADATA_HASH_HEX_LEN + 1];
        if (strspn(line, " \t\r\n") == (size_t)n)
            continue;
        json_t *c = json_loadb(line, (size_t)n, 0, &jerr);
        json_t *out = json_object();
        json_t *case_id = json_is_object(c) ? json_object_get(c, "case") : NULL;
        json_object_set(out, "case", case_id ? case_id : json_null());
        int rc = c ? hash_case(c, &canonical, hex, &err)
                   : pw_error_set(&err, PW_EINVAL, "line is not JSON: %s", jerr.text);
        if (rc == 0) {
            json_object_set_new(out, "canonical", json_string(canonical));
            json_object_set_new(out, "metadata_hash", json_string(hex));
        } else {
            json_object_set_new(out, "error", json_string(err.msg));
            failures++;
        }
        char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        if (text)
            printf("%s\n", text);
        else
            failures++;
        free(text);
        free(canonical);
        json_decref(out);
        json_decref(c);
    }
    free(line);
    if (fflush(stdout) != 0)
        return 1;
    return failures ? 1 : 0;
}
