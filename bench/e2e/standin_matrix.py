#!/usr/bin/python3
"""standin_matrix.py - the Qdrant stand-in (tests/qdrant_standin) serving a float32 matrix.

    standin_matrix.py --vectors FILE.f32 --dim D [--collection NAME] --port-file PATH [--cache-pages]

The stand-in's own --generate repeats a pool of random vectors and its --data reads JSON
(200,000 x 1,536 values as Python lists would take ~10 GB and many minutes); bench/e2e
needs n distinct vectors with structure (UMAP on repeated points measures nothing), fast.
This loads the raw little-endian float32 rows, renders each vector's JSON text at once
with numpy (fixed point, 8 decimals: "-0.01234568"; the values must lie in (-1, 1), as
normalised embeddings do) and hands the stand-in's Collection ids 1..n, those texts and
the payloads its generator gives (doc_id, path, metadata), then serves it with the
stand-in's own State and Handler.  The served values are round(x, 8), so both clients
parse the same numbers; run.py computes quality on x itself (differences <= 5e-9)."""
import argparse
import os
import sys
from http.server import ThreadingHTTPServer

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "qdrant_standin"))
import qdrant_standin as standin  # noqa: E402

DECIMALS = 8


def render_rows(x):
    """JSON array text of every row of x (m x d float32, |x| < 1), as a list of bytes."""
    m, d = x.shape
    q = np.rint(np.abs(x).astype(np.float64) * 10**DECIMALS).astype(np.int32)
    if q.size and q.max() >= 10**DECIMALS:
        raise SystemExit("standin_matrix: values must lie in (-1, 1)")
    width = DECIMALS + 4  # sign, "0", ".", digits, ","
    buf = np.empty((m, d, width), dtype=np.uint8)
    buf[:, :, 0], buf[:, :, 1], buf[:, :, 2], buf[:, :, -1] = ord("-"), ord("0"), ord("."), ord(",")
    for j in range(DECIMALS):  # last digit first; int32 arithmetic (int64 division is slow)
        buf[:, :, 2 + DECIMALS - j] = q % 10 + ord("0")
        q //= 10
    keep = np.ones((m, d, width), dtype=bool)
    keep[:, :, 0] = x < 0
    return [b"[" + buf[i][keep[i]].tobytes()[:-1] + b"]" for i in range(m)]


def payload(i):
    """The stand-in generator's payload for point i (categories by document)."""
    return {"doc_id": "doc-%d" % (i // 3), "path": "/data/dir%d/file%d.txt" % (i % 5, i),
            "metadata": {"mime_type": "text/plain", "created_at": "2024-01-%02dT00:00:00Z" % (1 + i % 28)}}


def collection(name, x):
    c = standin.Collection(name)
    c.size = x.shape[1]
    for s in range(0, len(x), 10000):
        c.vec += render_rows(x[s:s + 10000])
    c.ids = list(range(1, len(x) + 1))
    c.keys = [standin.id_sort_key(i) for i in c.ids]
    c.payload = [payload(i) for i in range(len(x))]
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--collection", default="test")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cache-pages", action="store_true")
    args = ap.parse_args()
    x = np.memmap(args.vectors, dtype="<f4", mode="r").reshape(-1, args.dim)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), standin.Handler)
    srv.daemon_threads = True
    srv.state = standin.State(collection(args.collection, x), None, [], args.cache_pages)
    del x
    with open(args.port_file + ".tmp", "w") as fh:
        fh.write("%d\n" % srv.server_address[1])
    os.replace(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
