#!/usr/bin/python3
"""The reducers on a CPU without AVX-512: valgrind's simulated CPU has AVX2 but no
AVX-512 (nor VNNI, nor AMX), so every run-time dispatch takes its fallback there: the
k-NN's int8 pre-screen must not be chosen (its kernel is AVX512-VNNI only), the
target_clones pick their AVX2 builds, UMAP's and t-SNE's AVX-512 rounds their portable
ones.  Rows of 256 values, wide enough for the pre-screen on a VNNI CPU.  Each run must
succeed (an AVX-512 instruction would stop it), say it used the reducer asked for, and
give finite coordinates.  usage: test_without_avx512.py PROJECT_BIN"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def main():
    project = sys.argv[1]
    if not shutil.which("valgrind"):
        print("valgrind not installed: skipped")
        return 77
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((4, 256)).astype(np.float32) * 3
    with tempfile.TemporaryDirectory() as tmp:
        for reducer, n, config in (("umap", 1200, "{}"), ("tsne", 600, '{"n_iter": 250}'),
                                   ("pca", 1200, "{}")):
            x = centres[rng.integers(0, 4, n)] + rng.standard_normal((n, 256)).astype(np.float32)
            path = os.path.join(tmp, f"{reducer}.f32")
            x.astype(np.float32).tofile(path)
            out = os.path.join(tmp, reducer)
            cmd = ["valgrind", "-q", "--error-exitcode=3", project, "project", "--input", path,
                   "--dim", "256", "--reducer", reducer, "--config", config, "--threads", "2",
                   "--out", out]
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if run.returncode != 0:
                print(run.stdout[-2000:], run.stderr[-4000:])
                print(f"FAIL {reducer}: exit {run.returncode}")
                return 1
            with open(os.path.join(out, "meta.json")) as f:
                meta = json.load(f)
            xs = np.fromfile(os.path.join(out, "x.f32.bin"), dtype=np.float32)
            ys = np.fromfile(os.path.join(out, "y.f32.bin"), dtype=np.float32)
            ok = (meta["reducer_used"] == reducer and xs.size == n and ys.size == n
                  and np.isfinite(xs).all() and np.isfinite(ys).all())
            print(f"{'ok  ' if ok else 'FAIL'} {reducer} {n} x 256 without AVX-512: "
                  f"used {meta['reducer_used']}, compute {meta['timings']['compute']:.1f} s")
            if not ok:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
