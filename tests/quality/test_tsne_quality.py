"""t-SNE quality: trustworthiness and 10-NN preservation of `projection-worker project
--reducer tsne` are at least sklearn TSNE's (same data, the Python task's parameters:
perplexity 30, learning_rate 200, n_iter 1000, init pca, euclidean) minus 0.01, on
sklearn's digits and two synthetic clustered sets - 1500 points (exact repulsion) and
6000 points (FFT-interpolated repulsion, used above 3000 points); the reported KL
divergence is finite and not worse than sklearn's by more than 10 %.
Usage: test_tsne_quality.py WORKER"""
import inspect

import numpy as np
from sklearn.manifold import TSNE

import quality_lib as q


def sklearn_tsne(x):
    kw = dict(n_components=2, perplexity=30.0, learning_rate=200.0, metric="euclidean",
              init="pca", random_state=42)
    params = inspect.signature(TSNE.__init__).parameters
    kw["n_iter" if "n_iter" in params else "max_iter"] = 1000
    t = TSNE(**kw)
    return t.fit_transform(x), float(t.kl_divergence_)


def main(worker):
    failures = []
    sets = (("digits", q.digits()), ("clustered", q.clustered()),
            ("clustered6k", q.clustered(n=6000, d=50, k=20, seed=1)))
    for name, x in sets:
        ours, meta = q.run_worker(worker, x, "tsne")
        ref, ref_kl = sklearn_tsne(x)
        failures += q.compare(f"tsne {name}", q.scores(x, ours), q.scores(x, ref))
        kl = meta["kl_divergence"]
        print(f"tsne {name}: kl ours {kl:.4f} reference {ref_kl:.4f}")
        if not np.isfinite(kl) or kl > ref_kl * 1.10:
            failures.append(f"tsne {name}: KL {kl} vs sklearn {ref_kl}")
        if meta["reducer_params"]["n_iter"] != 999 or meta["reducer_params"]["perplexity"] != 30.0:
            failures.append(f"tsne {name}: reducer_params {meta['reducer_params']}")
    return q.finish(failures)


if __name__ == "__main__":
    q.cli(main)
