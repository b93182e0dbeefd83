"""UMAP quality: trustworthiness and 10-NN preservation of `projection-worker project
--reducer umap` are at least umap-learn's own (same data, same parameters; both the mean
over quality_lib's UMAP_SEEDS) minus 0.01,
on sklearn's digits and on a synthetic clustered set; also checks the a/b curve fit
against umap-learn's find_ab_params.  Usage: test_umap_quality.py WORKER_BINARY"""

import numpy as np

import quality_lib as q


def main(worker):
    import umap
    from umap.umap_ import find_ab_params

    failures = []
    for name, x in (("digits", q.digits()), ("clustered", q.clustered())):
        runs = [q.run_worker(worker, x, "umap", seed=s) for s in q.UMAP_SEEDS]
        refs = [umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", n_components=2,
                          random_state=s).fit_transform(x) for s in q.UMAP_SEEDS]
        failures += q.compare(f"umap {name}", q.mean_scores(x, [y for y, _ in runs], "cosine"),
                              q.mean_scores(x, refs, "cosine"))
        ours, meta = runs[0]
        a, b = find_ab_params(1.0, 0.1)
        if abs(meta["umap"]["a"] - a) > 1e-3 * a or abs(meta["umap"]["b"] - b) > 1e-3 * b:
            failures.append(f"a/b fit {meta['umap']['a']}, {meta['umap']['b']} != umap-learn {a}, {b}")
        if not np.all(np.isfinite(ours)):
            failures.append(f"umap {name}: non-finite output")
    return q.finish(failures)


if __name__ == "__main__":
    q.cli(main)
