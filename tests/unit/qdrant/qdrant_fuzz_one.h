/* qdrant_fuzz_one.h - one fuzz input through the page parser, with invariant checks.
 *
 * Shared by the deterministic mutation test (test_qdrant_page_fuzz.c, runs in ctest with
 * any compiler) and the libFuzzer target (tests/fuzz/fuzz_qdrant_page.c, clang only).  The
 * input is parsed three ways - yajl only (no vector fast path), with the fast path
 * whole, and with the fast path fed in chunks whose sizes come from `split_seed` - and
 * all results must be identical (neither the fast path nor chunk boundaries may change
 * what comes out).  Returns 0, or -1 after printing which invariant broke. */
#ifndef QDRANT_FUZZ_ONE_H
#define QDRANT_FUZZ_ONE_H

#include <stddef.h>
#include <stdint.h>

int qdrant_fuzz_one(const uint8_t *data, size_t size, uint64_t split_seed);

#endif
