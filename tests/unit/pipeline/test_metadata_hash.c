/* test_metadata_hash.c - the metadata hash against the published vectors. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

static struct metadata_hash_input input_with_config(const char *config_json)
{
    struct metadata_hash_input in = {.collection_id = "c",
                                     .reducer = "pca",
                                     .dimensionality = 2,
                                     .config_json = config_json,
                                     .embedding_model = "m",
                                     .vector_count = 1,
                                     .collection_updated_at_us = 0};
    return in;
}

static void test_refuses_config_with_infinite_number(void)
{
    struct metadata_hash_input in = input_with_config("{\"a\": 1e400}");
    struct pw_error err = {0};
    char hex[METADATA_HASH_HEX_LEN + 1];
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "not finite") != NULL);
}

static void test_refuses_config_that_is_not_json(void)
{
    struct metadata_hash_input in = input_with_config("{\"a\": NaN}");
    struct pw_error err = {0};
    char hex[METADATA_HASH_HEX_LEN + 1];
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == PW_EINVAL);
}

static void test_refuses_config_that_is_a_non_empty_list(void)
{
    struct metadata_hash_input in = input_with_config("[1]");
    struct pw_error err = {0};
    char hex[METADATA_HASH_HEX_LEN + 1];
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == PW_EINVAL);
}

static void test_refuses_lone_surrogate_escape_instead_of_hashing_a_substitute(void)
{
    struct metadata_hash_input in = input_with_config("{\"a\": \"\\ud800x\"}");
    struct pw_error err = {0};
    char hex[METADATA_HASH_HEX_LEN + 1];
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == PW_EINVAL);
    in.config_json = "{\"a\": \"\\ud83d\\ude00\"}";
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == 0);
}

/* Found by tests/fuzz (fuzz_metadata_hash): the surrogate scan skipped 5 bytes after a
 * \u without four hex digits, past the end of a text ending in "\u0".  The text sits
 * right before an inaccessible page, so reading past it faults even without ASan. */
static void test_refuses_config_ending_in_a_short_unicode_escape_without_reading_past_it(void)
{
    static const char text[] = "{\"a\": \"\\u0";
    long page = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED)
        return;
    CHECK(mprotect(map + page, (size_t)page, PROT_NONE) == 0);
    char *copy = map + page - sizeof text;
    memcpy(copy, text, sizeof text);
    struct metadata_hash_input in = input_with_config(copy);
    struct pw_error err = {0};
    char hex[METADATA_HASH_HEX_LEN + 1];
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == PW_EINVAL);
    munmap(map, 2 * (size_t)page);
}

static void test_refuses_timestamp_fromisoformat_rejects(void)
{
    int64_t us;
    struct pw_error err = {0};
    CHECK(metadata_hash_parse_timestamp("2024-02-30T00:00:00+00:00", &us, &err) == PW_EINVAL);
    CHECK(metadata_hash_parse_timestamp("2024-06-03T25:00:00", &us, &err) == PW_EINVAL);
    CHECK(metadata_hash_parse_timestamp("2024-06-03T06:46:46+00:00junk", &us, &err) == PW_EINVAL);
    CHECK(metadata_hash_parse_timestamp("", &us, &err) == PW_EINVAL);
}

static void test_sha256_hex_of_abc_is_the_fips_180_value(void)
{
    char hex[METADATA_HASH_HEX_LEN + 1];
    struct pw_error err = {0};
    CHECK(metadata_hash_sha256_hex("abc", 3, hex, &err) == 0);
    /* FIPS 180-2 appendix B.1 */
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* A config held as a json_t hashes like its text (published case 2, floats included). */
static void test_config_from_jansson_value_hashes_like_its_text(void)
{
    const char *text = "{\"euclideana\": [\"cosine\", -0.019142381229528806, 55167529991.993034],"
                       " \"slash/ok_x\": \"euclidean\", \"\\u00e9a\": \"na\\u00efve\"}";
    json_error_t jerr;
    json_t *config = json_loads(text, 0, &jerr);
    char *dumped = NULL, hex[METADATA_HASH_HEX_LEN + 1] = "";
    struct pw_error err = {0};
    CHECK(config != NULL);
    CHECK(metadata_hash_config_text(config, &dumped, &err) == 0);
    struct metadata_hash_input in = {
        "col-\xc3\xa9", "Pca", 2, dumped, "sentence-transformers/all-MiniLM-L6-v2", 6603506, 0};
    CHECK(metadata_hash_parse_timestamp("2021-09-10T11:29:27.070026+00:00",
                                        &in.collection_updated_at_us, &err) == 0);
    CHECK(metadata_hash_compute(&in, NULL, hex, &err) == 0);
    CHECK_STR(hex, "55c26799c5c1460c46618fd43fb9ce4e454dfeb2a4b5b8ebc65c06f4c57209c6");
    free(dumped);
    json_decref(config);
}

int main(void)
{
    RUN(test_reproduces_all_published_vectors);
    RUN(test_refuses_config_with_infinite_number);
    RUN(test_refuses_config_that_is_not_json);
    RUN(test_refuses_config_that_is_a_non_empty_list);
    RUN(test_refuses_lone_surrogate_escape_instead_of_hashing_a_substitute);
    RUN(test_refuses_config_ending_in_a_short_unicode_escape_without_reading_past_it);
    RUN(test_refuses_timestamp_fromisoformat_rejects);
    RUN(test_sha256_hex_of_abc_is_the_fips_180_value);
    RUN(test_config_from_jansson_value_hashes_like_its_text);
    PW_TEST_MAIN();
}
