"""shapes_sweep.py - shapes outside the benchmark matrix, for robustness, not speed.

    /usr/bin/python3 bench/compute/shapes_sweep.py BUILD/worker/projection-worker-project [NAME,...]

Tiny inputs, duplicated rows, low rank in a wide space, many tight clusters, a few rows
scaled x100, sparse non-negative rows, a wide isotropic cloud: every reducer with
--threads 1 and 2.  Prints per run the seconds, whether every coordinate is finite, the
reducer that produced the layout and any fall-back reason, and whether the two thread
counts gave the same bytes.  Exit status 1 when a run failed, fell back or differed."""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
BIN = sys.argv[1]
rng = np.random.default_rng(7)
def lowrank(n, d, r):
    return (rng.normal(size=(n, r)) @ rng.normal(size=(r, d)) + 0.01 * rng.normal(size=(n, d)))
def dup(n, d):
    base = rng.normal(size=(n // 10, d)); return np.repeat(base, 10, axis=0)[:n]
def manyclusters(n, d, k):
    c = rng.normal(scale=20, size=(k, d)); return c[rng.integers(0, k, n)] + rng.normal(size=(n, d))
def skewed(n, d):
    x = rng.normal(size=(n, d)); x[: n // 100] *= 100; return x
shapes = {
    "tiny-20x8": rng.normal(size=(20, 8)),
    "small-300x3": rng.normal(size=(300, 3)),
    "dup-5000x64": dup(5000, 64),
    "lowrank-8000x512-r5": lowrank(8000, 512, 5),
    "clusters200-10000x128": manyclusters(10000, 128, 200),
    "skewed-8000x256": skewed(8000, 256),
    "nonneg-sparse-6000x300": (rng.random((6000, 300)) < 0.05) * rng.random((6000, 300)),
    "iso-12000x2048": rng.normal(size=(12000, 2048)),
}
only = sys.argv[2].split(",") if len(sys.argv) > 2 else None
bad = 0
for name, x in shapes.items():
    if only and name not in only: continue
    x = np.ascontiguousarray(x, dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "x.f32"); x.tofile(f)
        for red in ("pca", "umap", "tsne"):
            outs = []
            for t in (1, 2):
                o = os.path.join(d, f"{red}{t}")
                t0 = time.time()
                p = subprocess.run([BIN, "project", "--input", f, "--dim", str(x.shape[1]), "--reducer", red,
                                    "--threads", str(t), "--out", o], capture_output=True, text=True)
                dt = time.time() - t0
                if p.returncode:
                    print(f"{name:24s} {red:5s} t{t} rc={p.returncode} {p.stderr.strip()[-200:]}")
                    outs.append(None)
                    bad += 1
                    continue
                m = json.load(open(os.path.join(o, "meta.json")))
                xy = np.fromfile(os.path.join(o, "x.f32.bin"), np.float32)
                fb = m.get("fallback_reason") or ""
                bad += bool(fb) or not np.isfinite(xy).all()
                outs.append(open(os.path.join(o, "x.f32.bin"), "rb").read() + open(os.path.join(o, "y.f32.bin"), "rb").read())
                print(f"{name:24s} {red:5s} t{t} {dt:7.2f}s finite={np.isfinite(xy).all()} reducer={m.get('reducer', m.get('reducer_used'))} {('FALLBACK ' + str(fb)) if fb else ''}", flush=True)
            if None not in outs:
                bad += outs[0] != outs[1]
                print(f"{name:24s} {red:5s} identical 1/2 threads: {outs[0] == outs[1]}", flush=True)
sys.exit(1 if bad else 0)
