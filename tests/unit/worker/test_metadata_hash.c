/* test_metadata_hash.c - the metadata hash against the published vectors. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "metadata_hash.h"
#include "pw_test.h"

#define VECTORS "tests/fixtures/metadata-hash/metadata_hash_vectors.jsonl"

static void test_reproduces_all_published_vectors(void)
{
    FILE *f = fopen(VECTORS, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    int cases = 0, canon_ok = 0, hash_ok = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *c = json_loads(line, 0, &jerr);
        CHECK(c != NULL);
        if (!c)
            continue;
        struct metadata_hash_input in = {
            .collection_id = json_string_value(json_object_get(c, "collection_id")),
            .reducer = json_string_value(json_object_get(c, "reducer")),
            .dimensionality = json_integer_value(json_object_get(c, "dimensionality")),
            .config_json = json_string_value(json_object_get(c, "config_json")),
            .embedding_model = json_string_value(json_object_get(c, "embedding_model")),
            .vector_count = json_integer_value(json_object_get(c, "vector_count")),
        };
        struct pw_error err = {0};
        char *canon = NULL, hex[METADATA_HASH_HEX_LEN + 1] = "";
        int rc = metadata_hash_parse_timestamp(
            json_string_value(json_object_get(c, "collection_updated_at")),
            &in.collection_updated_at_us, &err);
        if (rc == 0)
            rc = metadata_hash_compute(&in, &canon, hex, &err);
        const char *want_canon = json_string_value(json_object_get(c, "canonical"));
        const char *want_hash = json_string_value(json_object_get(c, "metadata_hash"));
        if (rc == 0 && !strcmp(canon, want_canon))
            canon_ok++;
        else
            fprintf(stderr, "case %d: rc=%d %s\n  got  %s\n  want %s\n", cases, rc, err.msg,
                    canon ? canon : "", want_canon);
        if (rc == 0 && !strcmp(hex, want_hash))
            hash_ok++;
        cases++;
        free(canon);
        json_decref(c);
    }
    free(line);
    fclose(f);
    CHECK(cases == 300);
    CHECK(canon_ok == cases);
    CHECK(hash_ok == cases);
}

int main(void)
{
    RUN(test_reproduces_all_published_vectors);
    PW_TEST_MAIN();
}
