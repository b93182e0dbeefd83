"""Shared helpers of the quality tests: datasets, the worker run, the two scores.

Each test computes the reference layout itself (numpy / umap-learn / sklearn) in the
same process, on the same data, and compares scores; nothing is pasted in.
Run with /usr/bin/python3 (Debian's, which has numpy, sklearn and umap-learn)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors


def digits():
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


def clustered(n=1500, d=50, k=10, seed=0):
    """Gaussian clusters around random centres on the unit sphere, rows normalised:
    a small stand-in for sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, k, size=n)
    x = centres[labels] + rng.normal(scale=0.25 / np.sqrt(d) * 4, size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def run_worker(worker, x, reducer, config=None, seed=42, threads=2, extra=()):
    """Runs `projection-worker project`; returns (layout n x 2, meta dict)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, x)
        out = os.path.join(tmp, "out")
        cmd = [worker, "project", "--input", path, "--reducer", reducer, "--seed", str(seed),
               "--threads", str(threads), "--out", out, *extra]
        if config is not None:
            cmd += ["--config", json.dumps(config)]
        subprocess.run(cmd, check=True)
        xs = np.fromfile(os.path.join(out, "x.f32.bin"), dtype="<f4")
        ys = np.fromfile(os.path.join(out, "y.f32.bin"), dtype="<f4")
        with open(os.path.join(out, "meta.json")) as f:
            meta = json.load(f)
    return np.stack([xs, ys], axis=1), meta


def knn_preservation(x, y, k=10, metric="euclidean"):
    """Mean fraction of each point's k nearest neighbours in x kept among its k in y."""
    a = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(x).kneighbors(return_distance=False)
    b = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(return_distance=False)
    hits = [len(set(a[i][:k]) & set(b[i][:k])) for i in range(len(x))]
    return float(np.mean(hits)) / k


def scores(x, y, metric="euclidean", k=10):
    return {
        "trustworthiness": float(trustworthiness(x, y, n_neighbors=k, metric=metric)),
        "knn_preservation": knn_preservation(x, y, k, metric),
    }


def mean_scores(x, layouts, metric="euclidean", k=10):
    """scores() averaged over several layouts of x (runs with different seeds)."""
    each = [scores(x, y, metric, k) for y in layouts]
    return {key: float(np.mean([e[key] for e in each])) for key in each[0]}


UMAP_SEEDS = (42, 1, 2)
"""UMAP's scores move by about 0.01 from one seed to the next (10-NN preservation on
digits: 0.4817-0.4936 for ours, trustworthiness of a structureless cloud similarly) for
umap-learn and ours alike, so UMAP is compared as the mean over these seeds on both
sides."""


def compare(name, ours, ref, tolerance=0.01, keys=("trustworthiness", "knn_preservation")):
    """Prints the scores named in keys; returns a list of failures (ours < ref - tolerance)."""
    failures = []
    for key in keys:
        ok = ours[key] >= ref[key] - tolerance
        print(f"{name}: {key} ours {ours[key]:.4f} reference {ref[key]:.4f} {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"{name} {key}: {ours[key]:.4f} < {ref[key]:.4f} - {tolerance}")
    return failures


def finish(failures):
    """Prints each failure; the exit status of a quality test (1 if any failed)."""
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


def cli(main):
    """Runs main(WORKER) with the first command-line argument and exits with its status."""
    sys.exit(main(sys.argv[1]))
