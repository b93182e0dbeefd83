"""Colour categories: the C module against the Python task's own helpers.

The reference is the seed's packages/webui/tasks/projection.py (copied verbatim into
tests/fixtures/python_task/): its pure helpers `_derive_category_label` & co. are
loaded from that file with `ast` and run on the same random payloads as our
categories_driver.  The index/legend/count loop is re-stated from the same file.
usage: test_categories.py PATH_TO_categories_driver
"""
from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TASK = os.path.join(ROOT, "tests/fixtures/python_task/projection.py")
HELPERS = {"_parse_timestamp", "_bucket_age", "_extract_source_dir", "_extract_filetype",
           "_extract_age_bucket", "_derive_category_label"}


def load_reference() -> dict[str, Any]:
    tree = ast.parse(open(TASK).read())
    keep = [n for n in tree.body
            if (isinstance(n, ast.FunctionDef) and n.name in HELPERS)
            or (isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in n.targets))]
    module = ast.Module(body=keep, type_ignores=[])
    ns: dict[str, Any] = {"Any": Any, "Mapping": Mapping, "Path": Path, "datetime": datetime, "UTC": UTC}
    exec(compile(module, TASK, "exec"), ns)  # noqa: S102 - our own fixture
    missing = HELPERS - set(ns)
    assert not missing, f"helpers not found in the seed: {missing}"
    return ns


REF = load_reference()


def reference_case(payloads: list, color_by: str, now_s: float) -> dict:
    """The loop of _compute_projection_async that assigns indexes, counts and legend."""
    now = datetime.fromtimestamp(now_s, tz=UTC)
    overflow = REF["OVERFLOW_CATEGORY_INDEX"]
    index_map: dict[str, int] = {}
    label_for_index: dict[int, str] = {}
    counts: Counter[int] = Counter()
    doc_map: dict[str, int] = {}
    labels, categories = [], []
    for payload in payloads:
        label, doc = REF["_derive_category_label"](payload, color_by, now)
        if not label:
            label = REF["UNKNOWN_CATEGORY_LABEL"]
        idx = index_map.get(label)
        if idx is None:
            if len(index_map) < overflow:
                idx = len(index_map)
                index_map[label] = idx
                label_for_index[idx] = label
            else:
                idx = overflow
        else:
            if idx != overflow:
                label_for_index.setdefault(idx, label)
        if idx == overflow:
            label_for_index.setdefault(overflow, REF["OVERFLOW_LEGEND_LABEL"])
        labels.append(label)
        categories.append(idx)
        counts[idx] += 1
        if color_by == "document_id" and doc is not None and str(doc) not in doc_map:
            doc_map[str(doc)] = idx
    legend = [{"index": i, "label": l, "count": counts.get(i, 0)} for i, l in sorted(label_for_index.items())]
    return {"labels": labels, "categories": categories, "legend": legend,
            "category_counts": {str(i): c for i, c in counts.items()},
            "category_map": doc_map if color_by == "document_id" else {}}


NOW = 1795238400  # 2026-11-21T00:00:00Z


def random_value(rng: random.Random, kind: str):
    ids = ["doc-1", "doc-2", "Doc-1", "", 0, 7, 12345678901, 1.0, 2.5, 1e20, True, False, None,
           ["a", 1], {"k": "v"}, "naïve ünicode", "quote'd", 'dq"x', "tab\tx"]
    paths = ["a/b/c.txt", "/x/y/", "c.txt", "//net/share/f.pdf", ".hidden", "a/.bashrc", "dir.d/",
             "x/y.", "", "/", "a/./b.TXT", "ü/ñ.Md", "a//b///c.tar.gz", "/only", "rel", "..", "a/..",
             "x/y/z.", 5, None, "  spaced /p q.doc"]
    mimes = ["Text/PLAIN", "", None, "application/PDF", 5, "image/png", "ÄÖ/x"]
    offsets = [0, 3600, 86399, 86401, 6 * 86400, 8 * 86400, 29 * 86400, 31 * 86400, 89 * 86400,
               91 * 86400, 179 * 86400, 181 * 86400, 364 * 86400, 366 * 86400, 4000 * 86400, -3600]
    if kind == "id":
        return rng.choice(ids)
    if kind == "path":
        return rng.choice(paths)
    if kind == "mime":
        return rng.choice(mimes)
    # timestamps in every form the task accepts (and some it does not)
    ts = NOW - rng.choice(offsets)
    form = rng.randrange(12)
    if form == 0:
        return ts
    if form == 1:
        return ts * 1000
    if form == 2:
        return ts * 1_000_000
    if form == 3:
        return ts + 0.25
    if form == 4:
        return datetime.fromtimestamp(ts, UTC).isoformat()
    if form == 5:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 6:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    if form == 7:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
    if form == 8:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")
    if form == 9:
        return rng.choice(["not a date", "", "2024-13-01", True, 0, None, "  2024-01-02T03:04  "])
    if form == 10:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M-05:30")
    return -ts


def random_payload(rng: random.Random):
    if rng.random() < 0.03:
        return rng.choice([None, [], "str", 5])
    p: dict[str, Any] = {}
    for key, kind in (("doc_id", "id"), ("document_id", "id"), ("chunk_id", "id"), ("source_id", "id"),
                      ("source_path", "path"), ("path", "path"), ("mime_type", "mime"),
                      ("ingested_at", "ts"), ("created_at", "ts"), ("updated_at", "ts"), ("timestamp", "ts")):
        if rng.random() < 0.3:
            p[key] = random_value(rng, kind)
    if rng.random() < 0.4:
        meta = {}
        for key, kind in (("source_path", "path"), ("mime_type", "mime"), ("ingested_at", "ts"),
                          ("created_at", "ts"), ("updated_at", "ts"), ("timestamp", "ts")):
            if rng.random() < 0.4:
                meta[key] = random_value(rng, kind)
        p["metadata"] = meta if rng.random() < 0.9 else "not a mapping"
    return p


def main() -> int:
    driver = sys.argv[1]
    rng = random.Random(20261121)
    cases = []
    for color_by in ("document_id", "source_dir", "filetype", "age_bucket", "bogus", None):
        for _ in range(4):
            cases.append({"now": NOW, "color_by": color_by, "payloads": [random_payload(rng) for _ in range(300)]})
    # More than 255 distinct documents: the overflow bucket and its legend entry.
    cases.append({"now": NOW, "color_by": "document_id",
                  "payloads": [{"doc_id": f"d{i % 400}"} for i in range(1000)]})
    # Labels longer than any fixed buffer: Python keeps them whole.
    long_dir, long_id, long_mime = "d" * 1500, "é" * 700, "Text/" + "X" * 900
    for color_by in ("document_id", "source_dir", "filetype"):
        cases.append({"now": NOW, "color_by": color_by,
                      "payloads": [{"doc_id": long_id, "source_path": f"/{long_dir}/f.txt", "mime_type": long_mime},
                                   {"doc_id": long_id + "2", "source_path": f"/a/{long_dir}.{long_dir}"}]})
    inp = "".join(json.dumps(c) + "\n" for c in cases)
    out = subprocess.run([driver], input=inp, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        print(out.stderr)
        return 1
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == len(cases)
    passed = failed = 0
    for n, (case, ours) in enumerate(zip(cases, results)):
        color_by = str(case["color_by"] or "document_id").lower()
        if color_by not in REF["ALLOWED_COLOR_BY"]:
            color_by = "document_id"
        ref = reference_case(case["payloads"], color_by, case["now"])
        problems = []
        for i, (a, b) in enumerate(zip(ours["labels"], ref["labels"])):
            if a != b:
                problems.append(f"point {i}: ours {a!r} python {b!r} payload {case['payloads'][i]!r}")
        for key in ("categories", "legend", "category_counts", "category_map"):
            if ours[key] != ref[key]:
                problems.append(f"{key} differs")
        if ours["color_by"] != color_by:
            problems.append(f"color_by {ours['color_by']} != {color_by}")
        if problems:
            failed += 1
            print(f"FAIL case {n} ({case['color_by']}): {len(problems)} differences")
            for p in problems[:10]:
                print("   ", p)
        else:
            passed += 1
    overflow = results[-4]
    assert any(e["index"] == 255 and e["label"] == "Other" for e in overflow["legend"]), "no overflow bucket"
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
