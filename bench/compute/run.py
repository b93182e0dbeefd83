"""Benchmark of projection-worker's compute core against the Python references.

    /usr/bin/python3 bench/compute/run.py --worker build-compute/worker/projection-worker \
        [--sizes digits,20000,50000,200000] [--methods pca,umap,tsne] [--threads 2]
        [--ref-timeout 1800] [--skip-ref tsne:50000,rtsne:tsne:20000,...] [--quality-sample 5000]
        [--refs auto | umap-learn,uwot,sklearn,rtsne,numpy] [--uwot-sgd-threads N]
        [--recall build-compute/bench/compute/knn_recall [--recall-queries 2000]]

For each data set (sklearn's digits; n x 768 float32 "embedding-like" vectors: 50
Gaussian clusters around random unit vectors, rows normalised) and each method it runs
`projection-worker project` and the reference (umap-learn / sklearn TSNE / numpy SVD,
exactly as the Python task calls them) on the same file, one after the other, each in
its own process under bench/compute/proc_time (wall from spawn to reaped, rusage), and prints one Markdown table row with wall
seconds, peak RSS, the RSS / input-matrix ratio, trustworthiness (k = 10) and 10-NN
preservation (on a fixed random subsample of --quality-sample points for large n),
and the speed ratio.  With R's uwot and Rtsne installed (bench/compute/install-r.sh),
UMAP is also compared against uwot::umap and t-SNE against Rtsne::Rtsne
(bench/compute/ref.R, the same settings as far as those packages allow); each extra
reference gets its own row, "umap vs uwot" / "tsne vs Rtsne", against the same run of
ours.  CPU seconds (user + system) are printed too: on a shared
machine they are the steadier number.  A reference that exceeds --ref-timeout is killed and reported
as such.  With --recall, a second table gives our approximate k-NN's recall against
brute-force exact neighbours of --recall-queries rows of the same file (UMAP's k = 14
cosine and t-SNE's k = 91 euclidean).  Not a test: nothing is asserted."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

HERE = os.path.dirname(os.path.abspath(__file__))
METRIC = {"umap": "cosine", "tsne": "euclidean", "pca": "euclidean"}
# References per method, in row order; the first is the Python task's own call (ref.py).
REFS = {"umap": ["umap-learn", "uwot"], "tsne": ["sklearn", "rtsne"], "pca": ["numpy"]}
R_PACKAGE = {"uwot": "uwot", "rtsne": "Rtsne"}  # references run by ref.R, and their R package
LABEL = {"uwot": "uwot", "rtsne": "Rtsne"}  # "METHOD vs LABEL" in the method column


def r_missing(ref):
    """Why the R reference cannot run here, or None if it can."""
    if shutil.which("Rscript") is None:
        return "Rscript not found"
    pkg = R_PACKAGE[ref]
    p = subprocess.run(["Rscript", "-e", f"quit(status = !requireNamespace('{pkg}', quietly = TRUE))"],
                       capture_output=True)
    return None if p.returncode == 0 else f"R package {pkg} not installed"


def select_refs(spec):
    """--refs: "auto" = the Python references plus the R ones that are installed (a message
    on stderr for each that is not); an explicit list must be runnable."""
    known = [r for refs in REFS.values() for r in refs]
    if spec == "auto":
        chosen = []
        for r in known:
            why = r_missing(r) if r in R_PACKAGE else None
            if why:
                print(f"note: skipping the {r} reference: {why} (bench/compute/install-r.sh installs it)",
                      file=sys.stderr, flush=True)
            else:
                chosen.append(r)
        return set(chosen)
    chosen = set(filter(None, spec.split(",")))
    for r in chosen:
        if r not in known:
            raise SystemExit(f"--refs: unknown reference {r!r} (known: {', '.join(known)})")
        why = r_missing(r) if r in R_PACKAGE else None
        if why:
            raise SystemExit(f"--refs {r}: {why}; run bench/compute/install-r.sh as root")
    return chosen


def embeddings(n, d=768, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 50000):  # in chunks: keep the generator's memory small
        m = min(50000, n - s)
        lab = rng.integers(0, clusters, size=m)
        x[s:s + m] = centres[lab] + rng.normal(scale=1.2 / np.sqrt(d), size=(m, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def proc_time_path(build_dir):
    """The build's bench/compute/proc_time (see proc_time.c), which every timing goes
    through, ours and the references' alike."""
    path = os.path.join(build_dir, "bench", "compute", "proc_time")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"{path} is missing: build the tree first (cmake --build {build_dir})")
    return path


def timed(cmd, timeout, env=None, *, launcher):
    """Runs cmd under launcher (proc_time); returns (wall s, peak RSS bytes, stdout, CPU s),
    or None when it ran past timeout seconds (then its whole process group is killed, so a
    reference's worker processes do not keep running and skew the next timings).

    Output goes to temporary files, not pipes, so the command never waits for us."""
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out_path, "wb") as out, open(err_path, "wb") as errf:
            p = subprocess.Popen([launcher, result, *cmd], stdout=out, stderr=errf,
                                 start_new_session=True, env=env)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                return None
        with open(out_path, errors="replace") as f:
            stdout = f.read()
        if p.returncode != 0:
            with open(err_path, errors="replace") as f:
                sys.stderr.write(f.read()[-2000:])
            raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
        with open(result) as f:
            r = json.load(f)
    return r["wall_s"], r["maxrss_kb"] * 1024, stdout, r["user_s"] + r["sys_s"]


def quality(x, y, metric, sample, seed=1):
    n = len(x)
    idx = np.random.default_rng(seed).choice(n, sample, replace=False) if n > sample else np.arange(n)
    xs, ys = x[idx], y[idx]
    t = trustworthiness(xs, ys, n_neighbors=10, metric=metric)
    a = NearestNeighbors(n_neighbors=11, metric=metric).fit(xs).kneighbors(return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=11).fit(ys).kneighbors(return_distance=False)[:, 1:]
    kp = np.mean([len(set(a[i]) & set(b[i])) for i in range(len(xs))]) / 10
    return float(t), float(kp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--proc-time", help="proc_time (default: the worker's build, bench/compute/)")
    ap.add_argument("--sizes", default="digits,20000")
    ap.add_argument("--methods", default="pca,umap,tsne")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ref-timeout", type=float, default=1800)
    ap.add_argument("--skip-ref", default="",
                    help="method:size pairs whose references are not run, or ref:method:size for one reference")
    ap.add_argument("--refs", default="auto",
                    help="comma-separated references among umap-learn,uwot,sklearn,rtsne,numpy; "
                         "auto (default): all, the R ones only if Rscript and the package are installed")
    ap.add_argument("--uwot-sgd-threads", type=int,
                    help="uwot's n_sgd_threads (default: --threads; 0 = uwot's single-threaded, "
                         "reproducible SGD)")
    ap.add_argument("--skip-ours", default="", help="method:size pairs we do not run")
    ap.add_argument("--quality-sample", type=int, default=5000)
    ap.add_argument("--json", help="append one JSON object per row to this file")
    ap.add_argument("--recall", metavar="KNN_RECALL",
                    help="the knn_recall binary (build/bench/compute/knn_recall): also measure our "
                         "approximate k-NN's recall against exact neighbours on each data set, "
                         "for UMAP's k-NN (k = 14, cosine) and t-SNE's (k = 91, euclidean)")
    ap.add_argument("--recall-queries", type=int, default=2000,
                    help="rows whose exact neighbours are computed (brute force) for --recall")
    args = ap.parse_args()
    recalls = []
    skip = set(filter(None, args.skip_ref.split(",")))
    skip_ours = set(filter(None, args.skip_ours.split(",")))
    refs = select_refs(args.refs)
    sgd_threads = args.threads if args.uwot_sgd_threads is None else args.uwot_sgd_threads
    print("| data | n x d | method | ours wall s | ref wall s | wall speed-up | ours CPU s | ref CPU s "
          "| ours RSS MiB (x input) | ref RSS MiB | trust ours / ref | 10-NN kept ours / ref |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    launcher = args.proc_time or proc_time_path(os.path.dirname(os.path.dirname(os.path.abspath(args.worker))))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            if size == "digits":
                from sklearn.datasets import load_digits

                x, name = load_digits().data.astype(np.float32), "digits"
            else:
                x, name = embeddings(int(size)), f"emb{int(size) // 1000}k"
            path = os.path.join(tmp, "x.f32")
            x.tofile(path)
            n, d = x.shape
            if args.recall:
                for k, metric in ((14, "cosine"), (91, "euclidean")):
                    out = subprocess.run([args.recall, path, str(d), str(k), metric, "approx",
                                          str(args.recall_queries), str(args.threads)],
                                         capture_output=True, text=True, check=True).stdout
                    recalls.append(dict(json.loads(out), data=name))
            for method in args.methods.split(","):
                key = f"{method}:{size}"
                base = {"data": name, "n": n, "d": d, "method": method}
                if key not in skip_ours:
                    out = os.path.join(tmp, "out")
                    r = timed([args.worker, "project", "--input", path, "--dim", str(d), "--reducer",
                               method, "--threads", str(args.threads), "--out", out], None,
                              launcher=launcher)
                    ours = np.stack([np.fromfile(os.path.join(out, f), dtype="<f4")
                                     for f in ("x.f32.bin", "y.f32.bin")], axis=1)
                    with open(os.path.join(out, "meta.json")) as f:
                        base["ours_timings"] = json.load(f)["timings"]
                    base["ours_s"], base["ours_rss"], base["ours_cpu"] = r[0], r[1], r[3]
                    base["ours_q"] = quality(x, ours, METRIC[method], args.quality_sample)
                # One row per reference, each against the same run of ours.
                for ref in [r for r in REFS[method] if r in refs] or [None]:
                    row = dict(base, ref=ref)
                    if ref is not None and key not in skip and f"{ref}:{key}" not in skip:
                        if ref in R_PACKAGE:
                            refout = os.path.join(tmp, "ref.f32")
                            cmd = ["Rscript", os.path.join(HERE, "ref.R"), ref, path, str(d), refout,
                                   str(args.threads), str(sgd_threads), tmp]
                            row["ref_threads"] = args.threads
                            if ref == "uwot":
                                row["ref_sgd_threads"] = sgd_threads
                            load = lambda: np.fromfile(refout, dtype="<f4").reshape(-1, 2)
                            # R's session directory inside ours: removed with it even when the
                            # reference is killed at --ref-timeout.
                            env = dict(os.environ, TMPDIR=tmp)
                        else:
                            refout = os.path.join(tmp, "ref.npy")
                            cmd = ["/usr/bin/python3", os.path.join(HERE, "ref.py"), method, path, str(d),
                                   refout]
                            load = lambda: np.load(refout)
                            env = None
                        r = timed(cmd, args.ref_timeout, env, launcher=launcher)
                        if r is None:
                            row["ref_s"] = f"> {args.ref_timeout:.0f} (killed)"
                        else:
                            row["ref_s"], row["ref_rss"], row["ref_cpu"] = r[0], r[1], r[3]
                            row["ref_fit_s"] = float(r[2].strip().splitlines()[-1])
                            row["ref_q"] = quality(x, load(), METRIC[method], args.quality_sample)
                    label = f"{method} vs {LABEL[ref]}" if ref in LABEL else method
                    mib = lambda b: f"{b / 2**20:.0f}"
                    inp = x.nbytes
                    ours_s = f"{row['ours_s']:.2f}" if "ours_s" in row else "not run"
                    ref_s = row.get("ref_s", "not run")
                    ref_s = f"{ref_s:.2f}" if isinstance(ref_s, float) else ref_s
                    speed = (f"{row['ref_s'] / row['ours_s']:.1f}x"
                             if isinstance(row.get("ref_s"), float) and "ours_s" in row else "-")
                    ours_rss = (f"{mib(row['ours_rss'])} ({row['ours_rss'] / inp:.2f}x)"
                                if "ours_rss" in row else "-")
                    ref_rss = mib(row["ref_rss"]) if "ref_rss" in row else "-"
                    q = lambda k, i: f"{row[k][i]:.4f}" if k in row else "-"
                    cpu = lambda k: f"{row[k]:.1f}" if k in row else "-"
                    print(f"| {name} | {n} x {d} | {label} | {ours_s} | {ref_s} | {speed} | {cpu('ours_cpu')} | "
                          f"{cpu('ref_cpu')} | {ours_rss} | "
                          f"{ref_rss} | {q('ours_q', 0)} / {q('ref_q', 0)} | {q('ours_q', 1)} / {q('ref_q', 1)} |",
                          flush=True)
                    if args.json:
                        with open(args.json, "a") as f:
                            f.write(json.dumps(row) + "\n")
    if recalls:
        print()
        print("| data | n x d | k | metric | recall (exact queries) | k-NN s | k-NN peak RSS MiB (x input) |")
        print("|---|---|---|---|---|---|---|")
        for r in recalls:
            print(f"| {r['data']} | {r['n']} x {r['d']} | {r['k']} | {r['metric']} | "
                  f"{r['recall']:.4f} ({r['queries']}) | {r['seconds']:.2f} | "
                  f"{r['peak_rss_mib']:.0f} ({r['peak_rss_mib'] * 2**20 / (4 * r['n'] * r['d']):.2f}x) |")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(dict(r, row="recall")) + "\n")


if __name__ == "__main__":
    main()
