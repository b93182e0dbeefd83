"""Quality on every structure of the benchmark matrix (bench/compute), at a small size:
trustworthiness (k = 10) of `projection-worker project` is at least the reference's
(UMAP: both averaged over three seeds, see references()),
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


def isotropic(n=1500, d=16, seed=3):
    """One Gaussian cloud.  16-d: in 64-d, 1500 points' neighbourhoods are close to noise
    (trustworthiness ~0.70 for every method) and both t-SNEs' scores move by 0.01 with
    the init alone."""
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
    """reducer -> (reference fit(x, seed), metric, seeds).  UMAP: both sides averaged
    over quality_lib's UMAP_SEEDS (a structureless cloud's trustworthiness moves by up to
    0.01 from one seed to the next for either implementation).  t-SNE's PCA
    init leaves ours one layout whatever the seed; sklearn's seed only picks the
    randomized SVD's start."""
    import umap
    from test_tsne_quality import sklearn_tsne

    def pca(x, seed):
        c = x - x.mean(axis=0)
        return c @ np.linalg.svd(c, full_matrices=False)[2][:2].T

    def umap_learn(x, seed):
        return umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine",
                         random_state=seed).fit_transform(x)

    return {
        "pca": (pca, "euclidean", (42,)),
        "umap": (umap_learn, "cosine", q.UMAP_SEEDS),
        "tsne": (lambda x, seed: sklearn_tsne(x)[0], "euclidean", (42,)),
    }


def check(worker, name, x):
    failures = []
    for reducer, (ref_fit, metric, seeds) in references().items():
        ours = [q.run_worker(worker, x, reducer, seed=s)[0] for s in seeds]
        if not all(np.all(np.isfinite(y)) for y in ours):
            failures.append(f"{reducer} {name}: non-finite output")
            continue
        refs = [ref_fit(x, s) for s in seeds]
        failures += q.compare(f"{reducer} {name}", q.mean_scores(x, ours, metric),
                              q.mean_scores(x, refs, metric), keys=("trustworthiness",))
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
