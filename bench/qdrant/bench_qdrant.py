#!/usr/bin/python3
"""Benchmark: the C Qdrant client against the Python reference, in the same run.

  /usr/bin/python3 bench/qdrant/bench_qdrant.py --build-dir build-q [--n 200000]
         [--dim 768] [--reps 20] [--skip-e2e]

1. Parse from memory, one scroll page of 1000 x dim:
   - C: bench_qdrant_parse (yajl tokenizer alone; our parser whole; fed in 16 KiB
     chunks; whole without the vector fast path)
   - Python: json.loads + np.asarray(vector, float32) per record + np.stack, which is
     what projection.py does per page (without qdrant-client's pydantic models, so the
     real Python task is slower than this reference)
   for two number formats: Qdrant-like float32 shortest text (<= 9 digits), and Python
   float repr (17 digits, json.dumps of doubles), which takes the strtod slow path.
2. End to end, n x dim points served by the Qdrant stand-in with pre-rendered pages
   (--cache-pages, warmed by one untimed scroll): scroll of the whole collection by
   qdrant_scroll_tool (C) vs a Python loop doing projection.py's scroll with http.client
   (keep-alive) + json.loads + numpy; plus a raw fetch without parsing to show what the
   stand-in itself costs.
MB/s is 1e6 bytes of response JSON per second of wall time; MB/CPU-s divides by the
client process's own user+sys CPU time, which is the per-core figure on a shared machine
(the wall figure also waits for the stand-in and for other tenants' processes).  Peak RSS is each process's VmHWM
(ru_maxrss is not used: Linux carries the parent's peak across fork+exec).
Results go to stdout (markdown) and bench/out/qdrant_results.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "bench", "out")
sys.path.insert(0, os.path.join(ROOT, "tests", "qdrant_standin"))
import qdrant_standin as standin  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import BENCH_PATH_LINE  # noqa: E402

PY_PARSE = BENCH_PATH_LINE + r"""
import json, sys
import numpy as np
from common import collect_vectors, time_page_parses
page = open(sys.argv[1], "rb").read()
reps = int(sys.argv[2])


def parse(doc):
    vectors = []
    ids = []
    collect_vectors(doc["result"]["points"], vectors, ids)
    return np.stack(vectors, axis=0)


stats, x = time_page_parses(page, reps, parse)
print(json.dumps({**stats, "rows": x.shape[0],
                  "dim": x.shape[1],
                  "maxrss_kb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]}))
"""

PY_SCROLL = BENCH_PATH_LINE + r"""
import http.client, json, os, sys, time
import numpy as np
from common import collect_vectors
port, limit, parse = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "parse"
conn = http.client.HTTPConnection("127.0.0.1", port)
vectors, ids = [], []
offset = None
nbytes = 0
fetched = 0
t0 = time.perf_counter()
while fetched < limit:
    body = {"limit": max(1, min(1000, limit - fetched)), "with_payload": True, "with_vector": True}
    if offset is not None:
        body["offset"] = offset
    conn.request("POST", "/collections/bench/points/scroll?timeout=60", json.dumps(body),
                 {"Content-Type": "application/json"})
    raw = conn.getresponse().read()
    nbytes += len(raw)
    if not parse:
        doc_len = raw.count(b'{"id":')
        fetched += doc_len
        i = raw.rfind(b'"next_page_offset":')
        tail = raw[i + 19:raw.index(b"}", i)]
        offset = json.loads(tail)
        if doc_len == 0 or offset is None:
            break
        continue
    doc = json.loads(raw)
    records = doc["result"]["points"]
    offset = doc["result"].get("next_page_offset")
    if not records:
        break
    collect_vectors(records, vectors, ids)
    fetched = len(vectors)
    if offset is None:
        break
rows = fetched
if parse:
    x = np.stack(vectors, axis=0)
    rows = x.shape[0]
cpu = os.times()
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": rows, "bytes": nbytes,
                  "cpu_s": cpu.user + cpu.system,
                  "maxrss_kb": [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]}))
"""


def run_measured(cmd, env=None):
    """Runs cmd, returns (stdout, wall seconds); each tool reports its own peak RSS."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError("%s failed: %s" % (cmd[0], err.decode()[-2000:]))
    return out.decode(), wall


def render_page(dim, fmt):
    c = standin.Collection("bench")
    c.generate({"n": "1000", "dim": str(dim), "seed": "1"})
    if fmt == "f64repr":  # re-render vectors as Python float repr (17 significant digits)
        import random
        rng = random.Random(2)
        c.vec = [("[" + ",".join(repr(rng.uniform(-1, 1)) for _ in range(dim)) + "]").encode()
                 for _ in c.ids]
    return standin.scroll_page(c, {"limit": 1000, "with_payload": True, "with_vector": True})


def bench_parse(build, dim, reps, results):
    tool = os.path.join(build, "bench", "qdrant", "bench_qdrant_parse")
    for fmt in ("f32", "f64repr"):
        path = os.path.join(OUT, "page_%s_%d.json" % (fmt, dim))
        page = render_page(dim, fmt)
        with open(path, "wb") as fh:
            fh.write(page)
        row = {"format": fmt, "bytes": len(page)}
        for mode in ("yajl", "parse", "chunked", "nofast"):
            out, _ = run_measured([tool, path, str(reps), mode])
            row["c_" + mode] = json.loads(out)
        out, _ = run_measured(["/usr/bin/python3", "-c", PY_PARSE, path, str(max(3, reps // 4))])
        py = json.loads(out)
        py["mb_per_s"] = len(page) / py["best_s"] / 1e6
        py["median_mb_per_s"] = len(page) / py["median_s"] / 1e6
        row["python"] = py
        results["parse"].append(row)
        print("parse %-8s %6.1f MB  yajl-only %6.1f MB/s | C %6.1f MB/s (median %6.1f), "
              "chunked %6.1f, no fast path %6.1f, RSS %d KiB | Python %6.1f MB/s (median %6.1f), "
              "RSS %d KiB | x%.1f"
              % (fmt, len(page) / 1e6, row["c_yajl"]["mb_per_s"], row["c_parse"]["mb_per_s"],
                 row["c_parse"]["median_mb_per_s"], row["c_chunked"]["mb_per_s"],
                 row["c_nofast"]["mb_per_s"],
                 row["c_parse"]["maxrss_kb"], py["mb_per_s"], py["median_mb_per_s"],
                 py["maxrss_kb"], row["c_parse"]["mb_per_s"] / py["mb_per_s"]), flush=True)


def bench_e2e(build, n, dim, results):
    tool = os.path.join(build, "tests", "integration", "qdrant", "qdrant_scroll_tool")
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "qdrant_standin",
                                                              "qdrant_standin.py"),
                             "--collection", "bench", "--cache-pages",
                             "--generate", "n=%d,dim=%d,seed=1,pool=1000" % (n, dim)],
                            stdout=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline().split()[1])
        url = "http://127.0.0.1:%d" % port
        c_cmd = [tool, "--url", url, "--collection", "bench", "--limit", str(n), "--no-dump",
                 "--timeout-ms", "120000"]
        t0 = time.perf_counter()
        run_measured(c_cmd)  # warm-up: renders and caches every page
        warm = time.perf_counter() - t0
        row = {"n": n, "dim": dim, "warmup_s": warm}
        for label, cmd in (("python_raw_fetch", ["/usr/bin/python3", "-c", PY_SCROLL, str(port),
                                                  str(n), "raw"]),
                           ("c", c_cmd),
                           ("python", ["/usr/bin/python3", "-c", PY_SCROLL, str(port), str(n),
                                       "parse"]),
                           ("c_again", c_cmd)):
            before = json.loads(subprocess.run(["curl", "-s", url + "/__standin/stats"],
                                               capture_output=True).stdout)["bytes_sent"]
            out, wall = run_measured(cmd)
            after = json.loads(subprocess.run(["curl", "-s", url + "/__standin/stats"],
                                              capture_output=True).stdout)["bytes_sent"]
            rep = json.loads(out)
            nbytes = after.get("scroll", 0) - before.get("scroll", 0)
            r = {"wall_s": wall, "bytes": nbytes, "mb_per_s": nbytes / wall / 1e6,
                 "cpu_s": rep["cpu_s"], "mb_per_cpu_s": nbytes / rep["cpu_s"] / 1e6,
                 "rows": rep.get("n", rep.get("rows")), "maxrss_kb": rep.get("maxrss_kb")}
            if label.startswith("c"):
                r["rc"] = rep["rc"]
                r["requests"] = rep["requests"]
            row[label] = r
            print("e2e %-17s %7.2f s wall %7.1f MB/s | %6.2f CPU-s %7.1f MB/CPU-s | rows %d  "
                  "RSS %s KiB" % (label, wall, r["mb_per_s"], r["cpu_s"], r["mb_per_cpu_s"],
                                  r["rows"], r["maxrss_kb"]), flush=True)
        results["e2e"] = row
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-q"))
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = {"parse": [], "loadavg_before": os.getloadavg()}
    bench_parse(args.build_dir, args.dim, args.reps, results)
    if not args.skip_e2e:
        bench_e2e(args.build_dir, args.n, args.dim, results)
    results["loadavg_after"] = os.getloadavg()
    with open(os.path.join(OUT, "qdrant_results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print("load average before/after: %s / %s" % (results["loadavg_before"], results["loadavg_after"]))


if __name__ == "__main__":
    main()
