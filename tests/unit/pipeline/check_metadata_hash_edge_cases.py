"""Edge cases of the metadata hash, with expected values computed here by the Python
reference (tests/fixtures/metadata-hash/metadata_hash_reference.py), piped through
`projection-worker metadata-hash`: big integers, float repr corners, Python int()
parsing of sample values, lower() of color_by/reducer, fromisoformat timestamps, NULs."""
import importlib.util
import json
import random
import struct
import subprocess
import sys
from datetime import datetime

binary, reference = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("ref", reference)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

rng = random.Random(20251121)
cases = []


def add(name, config_json, reducer="umap", ts="2024-06-03T06:46:46.040559+00:00", cid="c"):
    cases.append({"case": name, "collection_id": cid, "reducer": reducer, "dimensionality": 2,
                  "config_json": config_json, "embedding_model": "m", "vector_count": 10,
                  "collection_updated_at": ts})


# integers beyond 64 bits and the "-0" literal
add("bigint", '{"a": 1180591620717411303424, "b": -18446744073709551617, "c": -0, "d": [9223372036854775808]}')
# strings: NUL, DEL, line separators, astral plane, quotes and backslashes, slash
add("strings", json.dumps({"k\u0000ey": "v\u0000", "\u007f\u2028\u2029": "\U0001f600\"\\/", "\x08\x0c": "\u00ff"}))
# nested objects sorted at every depth, duplicate keys (last wins)
add("nested", '{"z": {"b": 1, "a": {"d": [], "c": {}}}, "a": [{"y": 1, "x": 2}], "dup": 1, "dup": 2}')
# float repr corners
for i, x in enumerate([1e16, 1e15, 123456789012345678.0, 1e-4, 9.999e-5, 1e-5, 5e-324, 1.7976931348623157e308,
                       -0.0, 0.1 + 0.2, 2.0 ** 60, 2.0 ** -1022, 1 / 3, 100.0, 1e22, 1e23, 0.3]):
    add(f"float{i}", json.dumps({"x": x}))
for i in range(300):
    x = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    if x != x or x in (float("inf"), float("-inf")):
        continue
    add(f"random_float{i}", json.dumps({"x": x, "y": rng.uniform(-1e6, 1e6)}))
# sample values through int()
for i, v in enumerate([1e300, -1e300, 0.9, -0.0, 2.5, True, False, [], {}, "  \u0661\u0662 ", "1_000", "1__0",
                       "_1", "1_", "\u3000 7\u00a0", "0" * 4301, "1" * 4300, "1" * 4301, "9" * 50, "+5", "-3",
                       "", "0x10", "12.0", "\uff11\uff12", "1\u00002", 123456789012345678901234567890]):
    add(f"sample{i}", json.dumps({"sample_size": v}))
add("sample_order", json.dumps({"sample_n": 5, "sample_limit": None, "sample_size": None}))
add("sample_order2", json.dumps({"sample_n": 5, "sample_limit": "7"}))
# color_by through str().lower()
for i, v in enumerate(["age_buc\u212aet", "\u0130", 1, True, 0, [], "FILETYPE", "Source_Dir", "source_dir ", None]):
    add(f"color{i}", json.dumps({"color_by": v}))
# reducer lower()
for i, r in enumerate(["", "UMAP", "\u00dcMAP", "T\u0130SNE", "PCA\u212a"]):
    add(f"reducer{i}", "{}", reducer=r)
# config that is null or falsy
add("config_null", None)
add("config_empty_list", "[]")
# timestamps as fromisoformat reads them
for i, t in enumerate(["2024-06-03T06:46:46.1234567+00:00", "2024-06-03 06:46:46.04+05:30", "2024-06-03T06:46:46Z",
                       "2024-06-03T06:46+01", "2024-06-03", "20240603T064646", "2024-06-03T06:46:46+0130",
                       "2024-06-03T06:46:46.5+01:00:30.5", "2024-06-03T06", "2024-06-03x06:46:46",
                       "2024-06-03T06:46:46,5", "1969-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00+00:00",
                       "9999-12-31T23:59:59.999999-23:59", "2024-02-29T12:00:00-08:00"]):
    add(f"ts{i}", "{}", ts=t)

expected = {}
for c in cases:
    cfg = json.loads(c["config_json"]) if c["config_json"] is not None else None
    kwargs = dict(collection_id=c["collection_id"], reducer=c["reducer"], dimensionality=c["dimensionality"],
                  config=cfg, embedding_model=c["embedding_model"], vector_count=c["vector_count"],
                  collection_updated_at=datetime.fromisoformat(c["collection_updated_at"]))
    doc = ref.canonical_json(ref.canonical_input(**kwargs))
    expected[c["case"]] = (doc, ref.metadata_hash(**kwargs))

data = "".join(json.dumps(c) + "\n" for c in cases).encode()
proc = subprocess.run([binary, "metadata-hash"], input=data, capture_output=True, timeout=120)
bad = 0
out = [json.loads(line) for line in proc.stdout.splitlines()]
if len(out) != len(cases):
    print(f"{len(out)} output lines for {len(cases)} cases")
    bad += 1
for got in out:
    want = expected.get(got.get("case"))
    if want is None or got.get("canonical") != want[0] or got.get("metadata_hash") != want[1]:
        print(f"case {got.get('case')}: got {got}\n  want {want}")
        bad += 1
if proc.returncode != 0:
    print(f"exit status {proc.returncode}")
    bad += 1
print(f"{len(cases)} cases, {bad} mismatches")
sys.exit(1 if bad else 0)
