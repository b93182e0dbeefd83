"""Quality on every structure of the benchmark matrix (bench/compute), at a small size:
trustworthiness (k = 10) of `projection-worker project` is at least the reference's,
computed here on the same data, minus 0.01 - umap-learn for UMAP (cosine, as the
Python task), sklearn TSNE for t-SNE (the task's parameters), numpy's SVD for PCA.
Structures: an isotropic Gaussian, a few broad overlapping clusters, many tight
well-separated clusters (wider than t-SNE's 3000-point switch to the FFT repulsion, so
its layout spreads), and sklearn's digits.  `fashion` runs the same on the first 2000
rows of Debian's dataset-fashion-mnist and exits 77 (skipped) when the package is not
installed: it is not among the tests' required packages.
Usage: test_structures_quality.py WORKER [all|fashion]"""
import gzip
import os
import sys

import numpy as np

import quality_lib as q

FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def isotropic(n=1500, d=64, seed=3):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def gaussian_mixture(n, d, k, spread, seed):
    """k clusters, centres N(0, spread^2) per coordinate, unit noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(k, d))
    x = centres[rng.integers(0, k, size=n)] + rng.normal(size=(n, d))
    return x.astype(np.float32)


def fashion(n=2000):
    with gzip.open(FASHION) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    return (pixels[:n] / 255.0).astype(np.float32)


def references():
    import umap
    from test_tsne_quality import sklearn_tsne

    def pca(x):
        c = x - x.mean(axis=0)
        return c @ np.linalg.svd(c, full_matrices=False)[2][:2].T

    return {
        "pca": (pca, "euclidean"),
        "umap": (lambda x: umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine",
                                     random_state=42).fit_transform(x), "cosine"),
        "tsne": (lambda x: sklearn_tsne(x)[0], "euclidean"),
    }


def check(worker, name, x):
    failures = []
    for reducer, (ref_fit, metric) in references().items():
        ours, _ = q.run_worker(worker, x, reducer)
        if not np.all(np.isfinite(ours)):
            failures.append(f"{reducer} {name}: non-finite output")
            continue
        failures += q.compare(f"{reducer} {name}", q.scores(x, ours, metric),
                              q.scores(x, ref_fit(x), metric), keys=("trustworthiness",))
    return failures


def main(worker):
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    if which == "fashion":
        if not os.path.exists(FASHION):
            print(f"skipped: {FASHION} not installed (Debian package dataset-fashion-mnist)")
            return 77
        return q.finish(check(worker, "fashion2k", fashion()))
    failures = []
    sets = (("isotropic", isotropic()),
            ("broad", gaussian_mixture(1500, 64, 4, 1.0, seed=4)),
            ("tight", gaussian_mixture(3500, 96, 12, 10.0, seed=5)),
            ("digits", q.digits()))
    for name, x in sets:
        failures += check(worker, name, x)
    return q.finish(failures)


if __name__ == "__main__":
    q.cli(main)
