"""Helpers shared by the bench scripts (stdlib only at import time; numpy is imported
where it is needed, so the scripts that do not use it do not load it).

Import it after putting this directory on sys.path, from the script's own location:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
Code strings run with `python3 -c` get the same line from BENCH_PATH_LINE."""
import json
import os
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# first line of a `python3 -c` code string that imports this module
BENCH_PATH_LINE = "import sys; sys.path.insert(0, %r)\n" % BENCH_DIR


def collect_vectors(records, vectors, ids=None, kept=None, named=True):
    """The Python task's per-record vector handling (projection.py) over the points of
    one Qdrant scroll response (plain dicts): a named-vector dict gives its first value
    that is not None (only if `named`), records without a vector or whose vector is not
    1-D are skipped; the rest go to `vectors` as float32 arrays, their str(id) to `ids`
    and the records themselves to `kept` (each if given)."""
    import numpy as np

    for record in records:
        vector_values = record.get("vector")
        if named and isinstance(vector_values, dict):
            vector_values = next((val for val in vector_values.values() if val is not None), None)
        vector_array = None if vector_values is None else np.asarray(vector_values, dtype=np.float32)
        if vector_array is None or vector_array.ndim != 1:
            continue
        vectors.append(vector_array)
        if ids is not None:
            ids.append(str(record["id"]))
        if kept is not None:
            kept.append(record)


def time_page_parses(page, reps, parse, drop_doc=False):
    """Times `parse(json.loads(page))` reps times.  The document stays referenced until
    the next one replaces it, unless drop_doc (then it is released after the clock
    stops).  Returns ({"best_s", "median_s"} of the wall times, the last parse result)."""
    times = []
    result = None
    for _ in range(reps):
        t0 = time.perf_counter()
        doc = json.loads(page)
        result = parse(doc)
        times.append(time.perf_counter() - t0)
        if drop_doc:
            del doc
    times.sort()
    return {"best_s": times[0], "median_s": times[len(times) // 2]}, result


def cpu_model_and_mem_kb(unknown="unknown"):
    """The first `model name` of /proc/cpuinfo (`unknown` if none) and MemTotal in kB."""
    model = unknown
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = int(fh.readline().split()[1])
    return model, mem_kb
