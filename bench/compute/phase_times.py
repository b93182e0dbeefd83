"""Per-phase timings of `projection-worker project` for one or more builds on the same
inputs, as a markdown table: wall seconds per phase (meta.json's timings), the whole
process's CPU seconds (user + system, from getrusage), and the load average at the
start of each run.  On a busy machine compare CPU seconds: wall clock then
measures the other processes as much as ours.

    /usr/bin/python3 bench/compute/phase_times.py --bin before=/tmp/build-a/worker/projection-worker \
        --bin after=/tmp/build-b/worker/projection-worker \
        --input fmnist20k=/tmp/fm20k.f32:784 --reducers umap,tsne --threads 2 --repeat 2

Inputs are raw little-endian float32 files (FILE:DIM) or .npy files (FILE)."""
import argparse
import json
import os
import resource
import subprocess
import tempfile


def run_once(binary, path, dim, reducer, threads):
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "project", "--input", path, "--reducer", reducer, "--threads",
               str(threads), "--out", out]
        if dim:
            cmd += ["--dim", str(dim)]
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return meta["timings"], cpu, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", required=True, help="NAME=PATH")
    ap.add_argument("--input", action="append", required=True, help="NAME=FILE[:DIM]")
    ap.add_argument("--reducers", default="umap,tsne")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    print("| data | reducer | build | load | wall s | CPU s | phases (wall s) |")
    print("|---|---|---|---|---|---|---|")
    for spec in a.input:
        name, rest = spec.split("=", 1)
        path, _, dim = rest.partition(":")
        for reducer in a.reducers.split(","):
            for _ in range(a.repeat):
                for b in a.bin:
                    bname, binary = b.split("=", 1)
                    t, cpu, load = run_once(binary, path, dim, reducer, a.threads)
                    phases = ", ".join(f"{k} {v:.2f}" for k, v in t.items()
                                       if k not in ("read", "total", "compute"))
                    print(f"| {name} | {reducer} | {bname} | {load:.1f} | {t['compute']:.2f} "
                          f"| {cpu:.2f} | {phases} |", flush=True)


if __name__ == "__main__":
    main()
