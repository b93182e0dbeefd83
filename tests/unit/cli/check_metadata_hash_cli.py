"""Pipes the metadata-hash vectors through `projection-worker metadata-hash` and checks
that every output line carries the fixture's canonical text and hash for its case."""
import json
import subprocess
import sys

binary, vectors = sys.argv[1], sys.argv[2]
with open(vectors, "rb") as f:
    data = f.read()
cases = [json.loads(line) for line in data.splitlines() if line.strip()]
proc = subprocess.run([binary, "metadata-hash"], input=data, capture_output=True, timeout=120)
out = [json.loads(line) for line in proc.stdout.splitlines()]
bad = 0
if proc.returncode != 0:
    print(f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    bad += 1
if len(out) != len(cases):
    print(f"{len(out)} output lines for {len(cases)} cases")
    bad += 1
for want, got in zip(cases, out):
    for key in ("case", "canonical", "metadata_hash"):
        if got.get(key) != want[key]:
            print(f"case {want['case']}: {key} differs: {got.get(key)!r} != {want[key]!r}")
            bad += 1
print(f"{len(cases)} cases, {bad} mismatches")
sys.exit(1 if bad else 0)
