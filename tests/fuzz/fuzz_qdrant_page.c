/* qdrant_page_libfuzzer.c - libFuzzer entry point for the page parser (clang only).
 *   CC=clang cmake -S . -B build-fuzz && cmake --build build-fuzz --target qdrant_page_libfuzzer
 *   build-fuzz/tests/unit/qdrant/qdrant_page_libfuzzer -max_total_time=60 tests/fixtures/qdrant
 */
#include "qdrant_fuzz_one.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (qdrant_fuzz_one(data, size, size) != 0)
        abort();
    return 0;
}
