/* fuzz_metadata_hash.c - libFuzzer target: the metadata-hash canonicaliser
 * (worker/pipeline/metadata_hash.h), which parses projection_runs.config text with yajl
 * and prints it back the way Python's json.dumps does.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the seeds this way): NUL-separated fields
 *   config_json \0 collection_id \0 reducer \0 embedding_model \0 dimensionality
 *   \0 vector_count \0 collection_updated_at (ISO-8601, read with
 *   metadata_hash_parse_timestamp)
 * A missing trailing field keeps a default (config and reducer NULL, ids "c"/"m", numbers 0).
 * Checked beyond ASan/UBSan/LSan: only 0, PW_EINVAL or PW_ENOMEM come back, with a message
 * on error; canonical, compute and request agree on the result; the canonical text is
 * printable ASCII, one JSON object; the hash is the SHA-256 of that text; the effective
 * fields are in range; and a config jansson reads as an object, printed back by
 * metadata_hash_config_text, canonicalises as well (when the other fields are valid and it
 * nests less deeply than the canonicaliser's Python-like limit of 1000 levels). */
#include "metadata_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_FIELDS 7

static void fail(const char *what, int rc, const struct pw_error *err)
{
    fprintf(stderr, "fuzz_metadata_hash: %s (rc %d, \"%s\")\n", what, rc, err ? err->msg : "");
    abort();
}

static void check(const struct metadata_hash_input *in)
{
    struct pw_error e1 = {0, ""}, e2 = {0, ""}, e3 = {0, ""};
    struct metadata_hash_effective eff, eff3;
    char *canon = NULL, *canon2 = NULL, hex[METADATA_HASH_HEX_LEN + 1], hex2[sizeof hex],
         hex3[sizeof hex];
    int r1 = metadata_hash_canonical(in, &canon, &eff, &e1);
    int r2 = metadata_hash_compute(in, &canon2, hex, &e2);
    int r3 = metadata_hash_request(in, hex3, &eff3, &e3);

    if (r1 != 0 && r1 != PW_EINVAL && r1 != PW_ENOMEM)
        fail("unexpected return code", r1, &e1);
    if (r1 != r2 || r1 != r3)
        fail("canonical, compute and request disagree", r1, &e1);
    if (r1 != 0 && (!e1.msg[0] || !e2.msg[0] || !e3.msg[0]))
        fail("error without a message", r1, &e1);
    if (r1 == 0) {
        size_t len = strlen(canon);
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)canon[i] < 0x20 || (unsigned char)canon[i] > 0x7e)
                fail("canonical text is not printable ASCII", r1, &e1);
        if (len < 2 || canon[0] != '{' || canon[len - 1] != '}')
            fail("canonical text is not an object", r1, &e1);
        if (strcmp(canon, canon2) != 0)
            fail("canonical and compute print different texts", r1, &e1);
        if (metadata_hash_sha256_hex(canon, len, hex2, &e1) != 0 || strcmp(hex, hex2) != 0 ||
            strcmp(hex, hex3) != 0)
            fail("hash is not the SHA-256 of the canonical text", r1, &e1);
        if (!(eff.sample_limit >= 1) || !eff.color_by || eff3.sample_limit != eff.sample_limit ||
            strcmp(eff.color_by, eff3.color_by) != 0)
            fail("effective fields out of range or inconsistent", r1, &e1);
    }
    free(canon);
    free(canon2);
}

static size_t depth(const json_t *v)
{
    size_t d = 0, sub;
    const char *key;
    json_t *item;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, item)
        {
            if ((sub = depth(item)) > d)
                d = sub;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if ((sub = depth(item)) > d)
                d = sub;
        }
    } else {
        return 0;
    }
    return d + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a NUL-terminated copy; NUL bytes in it separate the fields */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *field[N_FIELDS] = {NULL};
    size_t nf = 0;
    for (char *p = buf; nf < N_FIELDS;) {
        field[nf++] = p;
        p += strlen(p);
        if (p == buf + size)
            break;
        p++;
    }

    struct metadata_hash_input in = {
        .config_json = field[0],
        .collection_id = field[1] ? field[1] : "c",
        .reducer = field[2],
        .embedding_model = field[3] ? field[3] : "m",
        .dimensionality = field[4] ? strtoll(field[4], NULL, 10) : 0,
        .vector_count = field[5] ? strtoll(field[5], NULL, 10) : 0,
    };
    struct pw_error err = {0, ""};
    if (field[6] && metadata_hash_parse_timestamp(field[6], &in.collection_updated_at_us, &err))
        in.collection_updated_at_us = 0;
    check(&in);

    /* the jansson route (metadata_hash_config_text) must give text the canonicaliser takes */
    json_t *config = json_loads(field[0], JSON_DECODE_ANY, NULL);
    struct metadata_hash_input no_config = in;
    char *base = NULL;
    no_config.config_json = NULL;
    int base_ok = metadata_hash_canonical(&no_config, &base, NULL, &err) == 0;
    free(base);
    if (base_ok && json_is_object(config) && depth(config) < 1000) {
        char *text = NULL, *canon = NULL;
        int rc = metadata_hash_config_text(config, &text, &err);
        if (rc == 0) {
            struct metadata_hash_input again = in;
            again.config_json = text;
            rc = metadata_hash_canonical(&again, &canon, NULL, &err);
            if (rc != 0 && rc != PW_ENOMEM)
                fail("config printed by metadata_hash_config_text is refused", rc, &err);
        } else if (rc != PW_ENOMEM) {
            fail("metadata_hash_config_text failed on a jansson object", rc, &err);
        }
        free(text);
        free(canon);
    }
    json_decref(config);
    free(buf);
    return 0;
}
