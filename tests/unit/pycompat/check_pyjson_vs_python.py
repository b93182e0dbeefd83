"""py_json_dumps against Python's own json.dumps(v, sort_keys=True), with indent=N and
with separators=(",", ":") (the driver's indent -1, PY_JSON_COMPACT).

Generates varied random JSON values (nesting, empty containers, unicode incl. astral and
control characters, NUL, reals of every magnitude incl. float32 values widened to double,
integers across int64), feeds them to the C driver one per line and compares each output
byte-for-byte with json.dumps computed here.

usage: check_pyjson_vs_python.py DRIVER [CASES]   (seed: $PYJSON_SEED, default fixed)
"""

import json
import os
import random
import struct
import subprocess
import sys

import numpy as np

DRIVER = sys.argv[1]
CASES = int(sys.argv[2]) if len(sys.argv) > 2 else 400
SEED = int(os.environ.get("PYJSON_SEED", "20261121"))
rng = random.Random(SEED)

CHAR_POOLS = [
    [chr(c) for c in range(0x20, 0x7F)],  # printable ASCII
    [chr(c) for c in range(0x00, 0x20)] + ["\x7f", '"', "\\", "/"],  # controls + escapes
    [chr(c) for c in range(0x80, 0x800)],  # 2-byte UTF-8
    ["é", "ß", "€", "中", "文", "\u2028", "\u2029", "\ufeff", "\uffff", "\ud7ff", "\ue000"],
    ["😀", "𝄞", "\U00010000", "\U0010ffff", "\U0001f600"],  # astral: surrogate pairs
]


def rand_char():
    pool = rng.choice(CHAR_POOLS)
    if pool is CHAR_POOLS[2] and rng.random() < 0.5:
        c = rng.randrange(0x800, 0x110000)
        if 0xD800 <= c <= 0xDFFF:
            c = 0xE000
        return chr(c)
    return rng.choice(pool)


def rand_string(max_len=12):
    return "".join(rand_char() for _ in range(rng.randrange(0, max_len + 1)))


def rand_key():
    # jansson's decoder refuses NUL inside object keys; NUL in values is covered.
    r = rng.random()
    if r < 0.3:
        return rng.choice(["a", "b", "ab", "a b", "B", "_", "", "aa", "é", "😀", "z", "0", "10"])
    return rand_string(8).replace("\0", "")


def rand_float():
    r = rng.random()
    if r < 0.15:  # float32 values widened to double, as numpy hands them to json
        return float(np.float32(rng.uniform(-10, 10) * 10 ** rng.randrange(-8, 9)))
    if r < 0.25:
        return float(np.float32(rng.choice([0.1, 0.2, 0.3, 1 / 3, 2 / 3, 1e-7, 3.4e38])))
    if r < 0.45:  # random bit patterns: every magnitude, subnormals included
        while True:
            (d,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
            if d == d and d not in (float("inf"), float("-inf")):
                return d
    if r < 0.6:  # around repr's switch between positional and exponent notation
        return rng.choice([1.0, -1.0, 1e-4, 1e-5, 0.0001, 0.00001234, 1e15, 1e16, 9999999999999998.0,
                           1e16 + 2, 123456789012345680.0, 0.1, 0.5, 2.5, 100.0, 1e22, 1e23,
                           5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                           -0.0, 0.0, 0.30000000000000004, 1 / 3, 2 / 3, 1e300, 1e-300])
    if r < 0.8:
        return rng.uniform(-1, 1) * 10 ** rng.randrange(-330, 309)
    return float(rng.randrange(-(10**6), 10**6)) / rng.choice([1, 2, 4, 10, 3, 7, 1000])


def rand_int():
    r = rng.random()
    if r < 0.3:
        return rng.randrange(-300, 300)
    if r < 0.4:
        return rng.choice([0, -1, 2**31 - 1, -(2**31), 2**32, 2**53 + 1, 2**63 - 1, -(2**63)])
    return rng.randrange(-(2**63), 2**63)


def rand_value(depth=0):
    r = rng.random()
    leaf = depth >= 5 or r < 0.45
    if leaf:
        return rng.choice([lambda: None, lambda: True, lambda: False, rand_int, rand_float,
                           rand_float, rand_string, rand_string])()
    if r < 0.72:
        return [rand_value(depth + 1) for _ in range(rng.choice([0, 0, 1, 2, 3, 5]))]
    return {rand_key(): rand_value(depth + 1) for _ in range(rng.choice([0, 0, 1, 2, 4, 7]))}


def fixed_values():
    """Shapes that must be right regardless of the random draw."""
    return [
        {},
        [],
        {"a": [], "b": {}, "c": [{}], "d": [[]]},
        {"b": 1, "a": 2, "B": 3, "aa": 4, "": 5, "é": 6, "😀": 7, "\uffff": 8},
        ["\x00", "\x1f", "\x7f", "\b\f\n\r\t", '"\\/', "é€😀", "\U0010ffff"],
        [0.1, -0.0, 1e16, 1e-5, 5e-324, float(np.float32(0.1)), 2**63 - 1, -(2**63)],
        "top-level string",
        3.5,
        12,
        None,
        # A meta.json shaped like the Python task's payload.
        {
            "projection_id": "0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "collection_id": "9c5d7e2a-4b3c-4d5e-9f6a-7b8c9d0e1f2a",
            "created_at": "2026-11-21T06:40:00.123456+00:00",
            "point_count": 3, "total_count": 3, "shown_count": 3, "sampled": False,
            "reducer_requested": "umap", "reducer_used": "pca",
            "reducer_params": {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"},
            "dimensionality": 2, "source_vector_collection": "col_x", "sample_limit": 200000,
            "files": {"x": "x.f32.bin", "y": "y.f32.bin", "ids": "ids.i32.bin",
                      "categories": "cat.u8.bin"},
            "color_by": "document_id",
            "legend": [{"index": 0, "label": "doc é 😀", "count": 2}],
            "explained_variance_ratio": [float(np.float32(0.62)), 0.2187],
            "singular_values": [12.5, 3.0000000000000004],
            "fallback_reason": "UMAP failed: \"bad\"\n",
            "original_ids": ["1", "2", "abc"],
            "category_map": {"doc-1": 0}, "category_counts": {"0": 2, "255": 1},
        },
    ]


def main():
    values = fixed_values() + [rand_value() for _ in range(CASES)]
    failures = 0
    indents = (2, 0, 4, -1)
    for indent in indents:
        lines = "".join(json.dumps(v) + "\n" for v in values).encode("ascii")
        proc = subprocess.run([DRIVER, str(indent)], input=lines, capture_output=True, check=True)
        outputs = proc.stdout.split(b"\0")[:-1]
        if len(outputs) != len(values):
            print(f"FAIL indent={indent}: {len(outputs)} outputs for {len(values)} values")
            return 1
        for i, (v, got) in enumerate(zip(values, outputs)):
            if indent < 0:
                want = json.dumps(v, sort_keys=True, separators=(",", ":")).encode("ascii")
            else:
                want = json.dumps(v, indent=indent, sort_keys=True).encode("ascii")
            if got != want:
                failures += 1
                if failures <= 5:
                    print(f"FAIL indent={indent} case {i} (seed {SEED}):\n input {json.dumps(v)[:300]}"
                          f"\n want {want[:300]!r}\n got  {got[:300]!r}")
    checked = len(indents) * len(values)
    print(f"{checked - failures}/{checked} outputs identical to json.dumps (seed {SEED})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
