"""PCA: `projection-worker project --reducer pca` against the Python task's numpy SVD on
the same data: projection and components equal up to sign, explained_variance_ratio
and singular_values equal (relative 1e-3), and trustworthiness / 10-NN preservation not
below numpy's minus 0.01, on sklearn's digits and a synthetic clustered set.
Usage: test_pca_quality.py WORKER"""

import numpy as np

import quality_lib as q


def numpy_pca(x):
    """projection.py's _compute_pca_projection."""
    mean = x.mean(axis=0, keepdims=True)
    centred = x - mean
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = float(np.square(s).sum())
    return centred @ vt[:2].T, s[:2], np.square(s[:2]) / total


def main(worker):
    failures = []
    for name, x in (("digits", q.digits()), ("clustered", q.clustered())):
        ours, meta = q.run_worker(worker, x, "pca")
        ref, sv, evr = numpy_pca(x.astype(np.float64))
        for c in range(2):
            sign = np.sign(np.dot(ours[:, c], ref[:, c]))
            err = np.max(np.abs(ours[:, c] * sign - ref[:, c])) / np.max(np.abs(ref[:, c]))
            print(f"pca {name}: component {c} max relative deviation {err:.2e}")
            if err > 1e-3:
                failures.append(f"pca {name}: projection {c} deviates by {err}")
        if not np.allclose(meta["singular_values"], sv, rtol=1e-3):
            failures.append(f"pca {name}: singular values {meta['singular_values']} != {sv}")
        if not np.allclose(meta["explained_variance_ratio"], evr, rtol=1e-3):
            failures.append(f"pca {name}: explained_variance_ratio {meta['explained_variance_ratio']} != {evr}")
        failures += q.compare(f"pca {name}", q.scores(x, ours), q.scores(x, ref))
    return q.finish(failures)


if __name__ == "__main__":
    q.cli(main)
