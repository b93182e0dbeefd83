"""One reference run, in its own process so its peak RSS is its own:
    ref.py METHOD INPUT.f32 DIM OUT.npy
METHOD: umap (umap-learn, the Python task's call), tsne (sklearn TSNE, the Python task's
call), pca (the Python task's numpy SVD), pca-sklearn (sklearn PCA, its default solver).  Prints the fit seconds on stdout."""
import inspect
import sys
import time

import numpy as np


def main(method, path, dim, out):
    x = np.fromfile(path, dtype="<f4").reshape(-1, int(dim))
    t = time.perf_counter()
    if method == "umap":
        import umap

        y = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", n_components=2,
                      random_state=42).fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        kw = dict(n_components=2, perplexity=30.0, learning_rate=200.0, metric="euclidean",
                  init="pca", random_state=42)
        kw["n_iter" if "n_iter" in inspect.signature(TSNE.__init__).parameters else "max_iter"] = 1000
        y = TSNE(**kw).fit_transform(x)
    elif method == "pca-sklearn":
        from sklearn.decomposition import PCA

        y = PCA(n_components=2, random_state=42).fit_transform(x)
    elif method == "pca":
        centred = x - x.mean(axis=0, keepdims=True)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        y = centred @ vt[:2].T
    else:
        raise SystemExit(f"unknown method {method}")
    print(f"{time.perf_counter() - t:.3f}")
    np.save(out, np.asarray(y, dtype=np.float32))


if __name__ == "__main__":
    main(*sys.argv[1:])
