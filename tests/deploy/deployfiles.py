"""Shared by the tests in tests/deploy/: loading deploy/'s files, README.md's configuration
table, and running one test function by name (how pw_python_tests calls a test file:
`/usr/bin/python3 FILE [ARGS...] test_name`)."""
import os
import re
import sys
import traceback

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "k8s")


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as f:
        return f.read()


def yaml_files():
    """Every YAML file under deploy/, relative to the repository root."""
    found = []
    for dirpath, _, names in os.walk(DEPLOY):
        for n in names:
            if n.endswith((".yaml", ".yml")):
                found.append(os.path.relpath(os.path.join(dirpath, n), ROOT))
    return sorted(found)


def load_all(rel):
    with open(path(rel), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def k8s_objects():
    """(file, object) for every Kubernetes object in deploy/k8s/ (kustomization included)."""
    objs = []
    for rel in yaml_files():
        if rel.startswith(os.path.join("deploy", "k8s") + os.sep):
            objs.extend((rel, d) for d in load_all(rel))
    return objs


def objects_of(kind):
    return [o for _, o in k8s_objects() if o.get("kind") == kind]


def the(kind):
    found = objects_of(kind)
    assert len(found) == 1, f"expected one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def readme_variables():
    """The variable names of README.md's configuration table (first column, in backticks)."""
    names = set()
    for line in read("README.md").splitlines():
        m = re.match(r"^\| `([A-Z][A-Z0-9_]*)` \|", line)
        if m:
            names.add(m.group(1))
    assert len(names) > 10, "README.md's configuration table was not found"
    return names


def mib(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", str(quantity))
    assert m, f"cannot read the quantity {quantity}"
    return float(m.group(1)) * units.get(m.group(2), 1 / 2**20)


def measured_peak_mib():
    """The largest peak RSS bench/ recorded for a 200k x 768 projection, in MiB."""
    e2e = re.search(r"^\| peak RSS \(VmHWM\), MB \| (\d+) ", read("bench", "e2e", "RESULTS.md"), re.M)
    assert e2e, "bench/e2e/RESULTS.md: the peak RSS row (the sizing's source) was not found"
    peaks = [int(e2e.group(1)) * 1e6 / 2**20]
    for m in re.finditer(r"^\| emb200k \| 200000 x 768 \|[^|]*\|(?:[^|]*\|){5} (\d+) \(", read("bench", "compute", "RESULTS.md"), re.M):
        peaks.append(float(m.group(1)))
    for m in re.finditer(r"^\| emb200k \| 200000 x 768 \| \d+ \| \w+ \|[^|]*\|[^|]*\| (\d+) \(", read("bench", "compute", "RESULTS.md"), re.M):
        peaks.append(float(m.group(1)))
    assert len(peaks) >= 3, f"bench/compute/RESULTS.md: 200k rows not found ({peaks})"
    return max(peaks)


def main(tests):
    """Runs the test named by the last argument (all of them with none); exit 1 on failure."""
    names = [a for a in sys.argv[1:] if a.startswith("test_")]
    if not names:
        names = sorted(n for n in tests if n.startswith("test_") and callable(tests[n]))
    failed = 0
    for n in names:
        try:
            tests[n]()
            print(f"ok   {n}")
        except Exception:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print(f"FAIL {n}")
            traceback.print_exc()
    sys.exit(1 if failed else 0)
