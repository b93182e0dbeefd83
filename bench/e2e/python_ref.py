#!/usr/bin/python3
"""python_ref.py - the Python task's projection path, timed step by step (bench/e2e).

Run by bench/e2e/run.py in its own process, so its peak RSS is its own.  It does what
webui.tasks.compute_projection (tests/fixtures/python_task/projection.py) does between
loading the run and writing the database, against the same Qdrant stand-in as our worker:

  scroll     pages of QDRANT_SCROLL_BATCH (1000) with with_payload + with_vector, over
             urllib (one request per page); the body is the one our worker sends, so the
             stand-in's page cache serves both from the same pre-rendered pages
  parse      json.loads per page, then np.asarray(vector, float32) per record
  categories _derive_category_label + the index/legend/count loop of the task
  stack      np.stack(vectors, axis=0)
  reduce     --reducer pca: _compute_pca_projection (np.linalg.svd of the centred matrix,
             full_matrices=False); --reducer umap: _compute_umap_projection (umap-learn,
             the task's defaults n_neighbors 15, min_dist 0.1, metric cosine,
             random_state 42) - the seed's own functions, loaded from projection.py
  write      x/y/ids/cat binaries with _write_binary, meta.json with _write_meta

Not included (so this reference is, if anything, faster than the real task): qdrant-client's
pydantic models (the task gets Record objects, we get plain dicts), the SQLAlchemy/asyncpg
reads and writes of the run and operation rows, Celery's own overhead.

Prints one JSON object on stdout: per-step seconds, bytes of scroll JSON received, rows,
peak RSS both as VmHWM and as getrusage ru_maxrss (which on Linux can carry the parent's
peak across fork+exec, see bench/qdrant/bench_qdrant.py), CPU seconds.
"""
import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import ast  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import urllib.request  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import collect_vectors  # noqa: E402

TASK = os.path.join(ROOT, "tests/fixtures/python_task/projection.py")
HELPERS = {"_parse_timestamp", "_bucket_age", "_extract_source_dir", "_extract_filetype",
           "_extract_age_bucket", "_derive_category_label", "_ensure_float32",
           "_compute_pca_projection", "_compute_umap_projection", "_write_binary", "_write_meta"}
UMAP_DEFAULTS = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}  # the task's, for config {}


def load_task_helpers(umap_module: Any = None) -> dict[str, Any]:
    """The seed's own pure functions and constants (the module itself imports the webui
    package, which is not here), as tests/unit/pipeline/test_categories.py does."""
    tree = ast.parse(open(TASK).read())
    keep = [n for n in tree.body
            if (isinstance(n, ast.FunctionDef) and n.name in HELPERS)
            or (isinstance(n, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in n.targets))]
    ns: dict[str, Any] = {"Any": Any, "Mapping": Mapping, "Path": Path, "datetime": datetime, "UTC": UTC,
                          "np": np, "json": json, "umap": umap_module}
    exec(compile(ast.Module(body=keep, type_ignores=[]), TASK, "exec"), ns)  # noqa: S102 - our fixture
    missing = HELPERS - set(ns)
    if missing:
        raise SystemExit(f"helpers not found in {TASK}: {missing}")
    return ns


def vmhwm_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--collection", required=True, help="Qdrant collection name")
    ap.add_argument("--collection-id", required=True)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--color-by", default="document_id")
    ap.add_argument("--total-count", type=int, default=0, help="collections.vector_count")
    ap.add_argument("--reducer", choices=("pca", "umap"), default="pca")
    args = ap.parse_args()

    # the task imports umap-learn when its module loads: start-up, not timed
    R = load_task_helpers(__import__("umap") if args.reducer == "umap" else None)
    t_ready = time.perf_counter()
    sample_limit = R["DEFAULT_SAMPLE_LIMIT"]
    batch = R["QDRANT_SCROLL_BATCH"]
    overflow = R["OVERFLOW_CATEGORY_INDEX"]
    color_by = args.color_by
    now = datetime.now(UTC)
    run_dir = Path(args.data_dir) / "semantik" / "projections" / args.collection_id / args.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    scroll_url = f"{args.url}/collections/{args.collection}/points/scroll"

    t = {"http": 0.0, "loads": 0.0, "arrays": 0.0, "categories": 0.0}
    nbytes = pages = 0
    vectors: list[np.ndarray] = []
    original_ids: list[str] = []
    categories: list[int] = []
    category_index_map: dict[str, int] = {}
    label_for_index: dict[int, str] = {}
    category_counts: Counter[int] = Counter()
    doc_category_map: dict[str, int] = {}

    t0 = time.perf_counter()
    offset: Any = None
    while len(vectors) < sample_limit:
        remaining = sample_limit - len(vectors)
        body = {"limit": max(1, min(batch, remaining)), "with_payload": True, "with_vector": True}
        if offset is not None:
            body["offset"] = offset
        a = time.perf_counter()
        req = urllib.request.Request(scroll_url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=300) as resp:
            raw = resp.read()
        b = time.perf_counter()
        doc = json.loads(raw)
        c = time.perf_counter()
        records = doc["result"]["points"]
        offset = doc["result"].get("next_page_offset")
        nbytes += len(raw)
        pages += 1
        if not records:
            break
        kept = []
        collect_vectors(records, vectors, original_ids, kept)  # the task's per-record vector handling
        d = time.perf_counter()
        for record in kept:  # the task's per-record category handling
            payload = record.get("payload") or {}
            category_label, doc_identifier = R["_derive_category_label"](payload, color_by, now)
            if not category_label:
                category_label = R["UNKNOWN_CATEGORY_LABEL"]
            category_idx = category_index_map.get(category_label)
            if category_idx is not None and category_idx != overflow:
                label_for_index.setdefault(category_idx, category_label)
            elif category_idx is None and len(category_index_map) < overflow:
                category_idx = category_index_map[category_label] = len(category_index_map)
                label_for_index[category_idx] = category_label
            elif category_idx is None:
                category_idx = overflow
            if category_idx == overflow:
                label_for_index.setdefault(overflow, R["OVERFLOW_LEGEND_LABEL"])
            categories.append(int(category_idx))
            category_counts[category_idx] += 1
            if color_by == "document_id" and doc_identifier is not None:
                doc_key = str(doc_identifier)
                if doc_key not in doc_category_map:
                    doc_category_map[doc_key] = int(category_idx)
        e = time.perf_counter()
        t["http"] += b - a
        t["loads"] += c - b
        t["arrays"] += d - c
        t["categories"] += e - d
        del doc, records, kept, raw
        if offset is None:
            break
    t_fetch_end = time.perf_counter()

    point_count = len(vectors)
    total_vectors = max(args.total_count, point_count) if args.total_count > 0 else point_count
    vectors_array = np.stack(vectors, axis=0)
    t_stack = time.perf_counter()
    if args.reducer == "umap":
        result = R["_compute_umap_projection"](vectors_array, **UMAP_DEFAULTS)
    else:
        result = R["_compute_pca_projection"](vectors_array)
    t_reduce = time.perf_counter()

    projection_array = result["projection"]
    int32_info = np.iinfo(np.int32)
    ids_list = []
    for idx, point_id in enumerate(original_ids):
        try:
            numeric = int(point_id)
        except (TypeError, ValueError):
            numeric = idx
        else:
            if numeric < int32_info.min or numeric > int32_info.max:
                numeric = idx
        ids_list.append(numeric)
    ids_array = np.asarray(ids_list, dtype=np.int32)
    categories_array = np.array(categories, dtype=np.uint8)
    legend_entries = [{"index": int(i), "label": label, "count": int(category_counts.get(i, 0))}
                      for i, label in sorted(label_for_index.items())]
    R["_write_binary"](run_dir / "x.f32.bin", projection_array[:, 0], np.float32)
    R["_write_binary"](run_dir / "y.f32.bin", projection_array[:, 1], np.float32)
    R["_write_binary"](run_dir / "ids.i32.bin", ids_array, np.int32)
    R["_write_binary"](run_dir / "cat.u8.bin", categories_array, np.uint8)
    meta = {"projection_id": args.run_id, "collection_id": args.collection_id,
            "created_at": datetime.now(UTC).isoformat(), "point_count": point_count,
            "total_count": total_vectors, "shown_count": point_count, "sampled": point_count < total_vectors,
            "reducer_requested": args.reducer, "reducer_used": args.reducer,
            "reducer_params": UMAP_DEFAULTS if args.reducer == "umap" else {}, "dimensionality": 2,
            "source_vector_collection": args.collection, "sample_limit": sample_limit,
            "files": {"x": "x.f32.bin", "y": "y.f32.bin", "ids": "ids.i32.bin", "categories": "cat.u8.bin"},
            "color_by": color_by, "legend": legend_entries, "original_ids": original_ids}
    if args.reducer == "pca":
        meta["explained_variance_ratio"] = result["explained_variance_ratio"].tolist()
        meta["singular_values"] = result["singular_values"].tolist()
    if color_by == "document_id":
        meta["category_map"] = {k: int(v) for k, v in doc_category_map.items()}
    meta["category_counts"] = {str(int(i)): int(c) for i, c in category_counts.items()}
    R["_write_meta"](run_dir / "meta.json", meta)
    t_end = time.perf_counter()

    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "rows": point_count, "dim": int(vectors_array.shape[1]), "pages": pages, "bytes": nbytes,
        "startup_s": t_ready - T_START, "total_s": t_end - t0, "fetch_s": t_fetch_end - t0,
        "http_s": t["http"], "loads_s": t["loads"], "arrays_s": t["arrays"], "categories_s": t["categories"],
        "stack_s": t_stack - t_fetch_end, f"{args.reducer}_s": t_reduce - t_stack, "write_s": t_end - t_reduce,
        "vmhwm_kb": vmhwm_kb(), "ru_maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
        "run_dir": str(run_dir)}))


if __name__ == "__main__":
    main()
