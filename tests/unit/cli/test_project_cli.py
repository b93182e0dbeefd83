"""`projection-worker project` file handling: raw float32 and .npy float32/float64 inputs
give the same layout, meta.json has sorted keys and the reducer's fields, bad input exits
with status 2 and one line on stderr, a reducer that fails (or an unknown one) falls back
to PCA as the task does, with the reason in meta.json and one warning line; the binary the
command runs in gets OpenBLAS's settings (one OpenBLAS thread whatever the caller set, a
kernel type).  Usage: test_project_cli.py WORKER"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def run(worker, args):
    return subprocess.run([worker, "project", *args], capture_output=True, text=True)


def openblas_settings(worker, tmp):
    """What the project binary's OpenBLAS reads when it loads: PW_PROJECT_BIN points the
    command at a script that records its environment instead."""
    seen = os.path.join(tmp, "env.txt")
    script = os.path.join(tmp, "record-env")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nenv > '{seen}'\n")
    os.chmod(script, 0o755)
    env = dict(os.environ, PW_PROJECT_BIN=script, OPENBLAS_NUM_THREADS="4")
    env.pop("OPENBLAS_CORETYPE", None)
    p = subprocess.run([worker, "project", "--help"], capture_output=True, text=True, env=env)
    if p.returncode != 0 or not os.path.exists(seen):
        return [f"project via PW_PROJECT_BIN: exit {p.returncode}, stderr {p.stderr!r}"]
    with open(seen) as f:
        got = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
    failures = []
    if got.get("OPENBLAS_NUM_THREADS") != "1":
        failures.append(f"OPENBLAS_NUM_THREADS {got.get('OPENBLAS_NUM_THREADS')!r} in the project "
                        "binary (want 1: compute/ never uses an OpenBLAS pool)")
    with open("/proc/cpuinfo") as f:
        avx2 = " avx2 " in f.read()
    if avx2 and not got.get("OPENBLAS_CORETYPE"):
        failures.append("OPENBLAS_CORETYPE not set for the project binary")
    return failures


def main(worker):
    failures = []
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        raw, f32, f64 = (os.path.join(tmp, n) for n in ("x.bin", "x32.npy", "x64.npy"))
        x.tofile(raw)
        np.save(f32, x)
        np.save(f64, x.astype(np.float64))
        outs = []
        for args in (["--input", raw, "--dim", "12"], ["--input", f32], ["--input", f64]):
            out = os.path.join(tmp, f"out{len(outs)}")
            p = run(worker, [*args, "--reducer", "pca", "--out", out])
            if p.returncode != 0:
                failures.append(f"{args}: exit {p.returncode}: {p.stderr.strip()}")
                continue
            outs.append(np.fromfile(os.path.join(out, "x.f32.bin"), dtype="<f4"))
            with open(os.path.join(out, "meta.json")) as f:
                text = f.read()
            meta = json.loads(text)
            if list(meta) != sorted(meta) or list(meta["timings"]) != sorted(meta["timings"]):
                failures.append("meta.json keys are not sorted")
            for key in ("explained_variance_ratio", "singular_values", "timings", "reducer_params"):
                if key not in meta:
                    failures.append(f"meta.json lacks {key}")
            if meta.get("point_count") != 300:
                failures.append(f"point_count {meta.get('point_count')}")
        if len(outs) == 3 and not (np.array_equal(outs[0], outs[1]) and np.array_equal(outs[1], outs[2])):
            failures.append("raw, .npy float32 and .npy float64 inputs gave different layouts")

        bad = os.path.join(tmp, "bad.bin")
        np.array([1, 2, 3], dtype=np.float32).tofile(bad)
        nan = os.path.join(tmp, "nan.npy")
        y = x.copy()
        y[7, 3] = np.nan
        np.save(nan, y)
        fortran = os.path.join(tmp, "f.npy")
        np.save(fortran, np.asfortranarray(x))
        one = os.path.join(tmp, "one.npy")
        np.save(one, x[:1])
        cases = [
            (["--input", bad, "--dim", "2"], "not a multiple"),
            (["--input", nan], "NaN"),
            (["--input", fortran], "C-ordered"),
            (["--input", one], "at least 2 points"),
            (["--input", f32, "--reducer", "umap", "--config", "{not json"], "not JSON"),
            (["--input", f32, "--reducer", "umap", "--config", '{"knn_method": "fast"}'], "knn_method"),
            (["--input", os.path.join(tmp, "missing.npy")], "cannot open"),
        ]
        for args, needle in cases:
            p = run(worker, [*args, "--out", os.path.join(tmp, "o")])
            lines = p.stderr.strip().splitlines()
            if p.returncode != 2 or len(lines) != 1 or needle not in lines[0]:
                failures.append(f"{args}: exit {p.returncode}, stderr {p.stderr!r} (want 2 and '{needle}')")
        fallbacks = [
            (["--reducer", "umap", "--config", '{"metric": "hamming"}'], "unsupported metric 'hamming'"),
            (["--reducer", "Nope"], "Unsupported reducer 'nope'"),
        ]
        for args, reason in fallbacks:
            out = os.path.join(tmp, "fallback")
            p = run(worker, ["--input", f32, *args, "--out", out])
            lines = p.stderr.strip().splitlines()
            if p.returncode != 0 or len(lines) != 1 or reason not in lines[0]:
                failures.append(f"{args}: exit {p.returncode}, stderr {p.stderr!r} (want 0 and '{reason}')")
                continue
            with open(os.path.join(out, "meta.json")) as f:
                meta = json.load(f)
            if meta.get("reducer_used") != "pca" or reason not in meta.get("fallback_reason", ""):
                failures.append(f"{args}: reducer_used {meta.get('reducer_used')}, "
                                f"fallback_reason {meta.get('fallback_reason')!r}")
        failures += openblas_settings(worker, tmp)
    for f in failures:
        print("FAIL", f)
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
