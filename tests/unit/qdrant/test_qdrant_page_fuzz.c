/* test_qdrant_page_fuzz.c - deterministic mutation fuzzing of the page parser.
 *
 * Mutates the seed pages in tests/fixtures/qdrant/ (byte flips, deleted/duplicated
 * ranges, inserted JSON fragments, truncation) and runs each result through
 * qdrant_fuzz_one(): no crash, no leak (under the ASan build), identical results for
 * whole and chunked input, rollback on failure.  QDRANT_FUZZ_ITERS sets the count
 * (default 20000); the libFuzzer target explores further when built with clang. */
#include "pw_test.h"
#include "qdrant_fuzz_one.h"

#include <stdint.h>
#include <stdlib.h>

static const char *seeds[] = {
    "tests/fixtures/qdrant/page_int_ids.json", "tests/fixtures/qdrant/page_uuid_named.json",
    "tests/fixtures/qdrant/page_error.json", "tests/fixtures/qdrant/page_empty.json",
    "tests/fixtures/qdrant/page_vectors_whitespace.json"};
#define NSEEDS (sizeof seeds / sizeof *seeds)

static const char *fragments[] = {"[",
                                  "]",
                                  "{",
                                  "}",
                                  ",",
                                  ":",
                                  "\"",
                                  "null",
                                  "true",
                                  "1e999",
                                  "-0",
                                  "NaN",
                                  "\\u00e9",
                                  "\\ud83d",
                                  "[[1]]",
                                  "{}",
                                  "\"vector\"",
                                  "\"id\"",
                                  "\"payload\"",
                                  "\"metadata\"",
                                  "\"points\"",
                                  "1.5",
                                  "18446744073709551616",
                                  "\"550e8400-e29b-41d4-a716-446655440000\"",
                                  "\xff"};

static uint64_t state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
    return pw_test_rand(&state);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* One random edit of buf[0..*len) in place; cap bounds the buffer. */
static void mutate(char *buf, size_t *len, size_t cap)
{
    size_t n = *len;
    size_t pos = n ? (size_t)(rnd() % n) : 0;
    switch (rnd() % 6) {
    case 0: /* flip a byte */
        if (n)
            buf[pos] = (char)(rnd() & 0xff);
        break;
    case 1: { /* delete a range */
        size_t k = 1 + (size_t)(rnd() % 16);
        if (pos + k > n)
            k = n - pos;
        memmove(buf + pos, buf + pos + k, n - pos - k);
        *len = n - k;
        break;
    }
    case 2: { /* duplicate a range */
        size_t k = 1 + (size_t)(rnd() % 64);
        if (pos + k > n)
            k = n - pos;
        if (n + k <= cap) {
            memmove(buf + pos + k, buf + pos, n - pos);
            *len = n + k;
        }
        break;
    }
    case 3:
    case 4: { /* insert a JSON fragment */
        const char *f = fragments[rnd() % (sizeof fragments / sizeof *fragments)];
        size_t k = strlen(f);
        if (n + k <= cap) {
            memmove(buf + pos + k, buf + pos, n - pos);
            memcpy(buf + pos, f, k);
            *len = n + k;
        }
        break;
    }
    default: /* truncate */
        *len = pos;
        break;
    }
}

static void test_mutated_pages_never_crash_and_stream_like_whole_parses(void)
{
    const char *env = getenv("QDRANT_FUZZ_ITERS");
    long iters = env ? atol(env) : 20000;
    size_t seed_len[NSEEDS];
    char *seed[NSEEDS];
    for (size_t i = 0; i < NSEEDS; i++) {
        seed[i] = read_file(seeds[i], &seed_len[i]);
        CHECK(seed[i] != NULL);
        if (!seed[i])
            return;
    }
    /* unmutated seeds must parse the same whole and chunked as well */
    for (size_t i = 0; i < NSEEDS; i++)
        CHECK(qdrant_fuzz_one((const uint8_t *)seed[i], seed_len[i], (uint64_t)i) == 0);
    size_t cap = 8192;
    char *buf = malloc(cap);
    long failures = 0;
    for (long it = 0; it < iters && failures < 5; it++) {
        int s = (int)(rnd() % NSEEDS);
        size_t len = seed_len[s];
        memcpy(buf, seed[s], len);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++)
            mutate(buf, &len, cap);
        if (qdrant_fuzz_one((const uint8_t *)buf, len, rnd()) != 0) {
            fprintf(stderr, "fuzz iteration %ld failed on: %.*s\n", it, (int)len, buf);
            failures++;
        }
    }
    CHECK(failures == 0);
    free(buf);
    for (size_t i = 0; i < NSEEDS; i++)
        free(seed[i]);
}

int main(void)
{
    RUN(test_mutated_pages_never_crash_and_stream_like_whole_parses);
    PW_TEST_MAIN();
}
