/* fuzz_qdrant_page.c - libFuzzer target: the Qdrant scroll-page parser (db/qdrant/qdrant.h).
 *
 * The input is one scroll response body.  qdrant_fuzz_one (tests/unit/qdrant/, shared with
 * the deterministic unit test) parses it with qdrant_page_parse three ways - yajl only,
 * with the float fast path, and through the streaming parser fed in chunks whose sizes
 * derive from a hash of the input, so every input is cut differently - and aborts unless
 * all three agree and the stored matrix holds only finite values and well-formed ids and
 * payload fields.  See tests/fuzz/run.sh. */
#include "qdrant_fuzz_one.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t seed = 1469598103934665603ull; /* FNV-1a of the input: the chunking seed */
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    if (qdrant_fuzz_one(data, size, seed) != 0)
        abort();
    return 0;
}
