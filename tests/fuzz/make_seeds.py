#!/usr/bin/python3
"""make_seeds.py OUTDIR - seed inputs for the libFuzzer targets, from the fixtures.

Writes OUTDIR/<target>/<sha1 of the content> in the input layout each target's .c file
describes:
  celery_message   one selector byte (content type, encoding, correlation_id, reply_to),
                   the AMQP headers as JSON, a NUL, the body - for every message captured
                   in tests/fixtures/celery-wire/*.json, plus protocol-1 and edge variants
  qdrant_page      tests/fixtures/qdrant/*.json and synthetic scroll pages
  metadata_hash    config, collection id, reducer, model, dimensionality, vector count,
                   updated_at, NUL-separated, from tests/fixtures/metadata-hash's vectors
  reducer_config   reducer name (with the harness's '#'/'!' flags), newline, config JSON: the
                   vectors' configs under several names, plus parameter edges
run.sh calls it before fuzzing and merging; the minimised corpus that CI replays is
tests/fuzz/corpus/<target>/ (checked in)."""
import glob
import hashlib
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIX = os.path.join(ROOT, "tests", "fixtures")

# must match CONTENT_TYPES / ENCODINGS in fuzz_celery_message.c
CONTENT_TYPES = {"application/json": 0, None: 2, "": 3, "application/x-python-serialize": 4,
                 "application/x-yaml": 5}
ENCODINGS = {"utf-8": 0, None: 1, "binary": 3}


def write(outdir, target, data):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def celery_input(props, body):
    sel = CONTENT_TYPES.get(props.get("content_type"), 7)
    sel |= ENCODINGS.get(props.get("content_encoding"), 0) << 3
    sel |= 0x20 if props.get("correlation_id") else 0
    sel |= 0x40 if props.get("reply_to") else 0
    headers = props.get("headers")
    head = json.dumps(headers).encode() + b"\0" if headers else b""
    return bytes([sel]) + head + body


def celery_messages():
    """(properties, body bytes) of every message the captures hold."""
    def walk(o):
        if isinstance(o, dict):
            if "body_raw" in o:
                props = o.get("properties") or (o.get("trace_headers") or {}).get("properties")
                body = o["body_raw"]
                if isinstance(body, dict) and "__bytes_b64__" in body:
                    import base64
                    body = base64.b64decode(body["__bytes_b64__"])
                elif isinstance(body, str):
                    body = body.encode()
                if props is not None and isinstance(body, bytes):
                    yield props, body
            for v in o.values():
                yield from walk(v)
        elif isinstance(o, list):
            for v in o:
                yield from walk(v)
    for path in sorted(glob.glob(os.path.join(FIX, "celery-wire", "*.json"))):
        with open(path) as f:
            yield from walk(json.load(f))


def celery_seeds(outdir):
    for props, body in celery_messages():
        write(outdir, "celery_message", celery_input(props, body))
    # protocol 1 (no headers, the metadata in the body) and edges of the metadata fields
    uid = "c5bf5dda-d644-4667-8392-749ba024d6a6"
    v1 = {"task": "webui.tasks.compute_projection", "id": uid, "args": ["r1"], "kwargs": {},
          "retries": 0, "eta": "2026-11-21T04:27:54.921899+00:00", "expires": None,
          "taskset": None, "timelimit": [20, 10], "utc": True}
    p = {"content_type": "application/json", "content_encoding": "utf-8", "correlation_id": uid,
         "reply_to": uid}
    write(outdir, "celery_message", celery_input(p, json.dumps(v1).encode()))
    head = {"lang": "py", "task": "t", "id": uid, "eta": "2026-11-21T04:27:54",
            "expires": "2026-11-21 04:27:54.9+05:30", "timelimit": [1.5, None], "retries": 3,
            "ignore_result": True, "group": "g", "shadow": "s", "origin": "o"}
    write(outdir, "celery_message", celery_input(dict(p, headers=head), b'[[], {}, {"chain": null}]'))
    write(outdir, "celery_message", celery_input(dict(p, headers=head), b'[null, null, null]'))
    write(outdir, "celery_message", celery_input(dict(p, headers={"task": "t"}), b'"\\u0000"'))


def qdrant_seeds(outdir):
    for path in sorted(glob.glob(os.path.join(FIX, "qdrant", "*.json"))):
        with open(path, "rb") as f:
            write(outdir, "qdrant_page", f.read())
    point = lambda pid, vec, payload: {"id": pid, "vector": vec, "payload": payload}
    pages = [
        {"result": {"points": [point(1, [0.5, -1e-45, 3.4028235e38], {"document_id": "d", "x": [1, {"y": None}]}),
                               point(2, [1e39, 0, -0.0], None)], "next_page_offset": 3},
         "status": "ok", "time": 0.001},
        {"result": {"points": [point("5c56c793-69f3-4fbf-87e6-c4bf54c28c26", {"image": [1, 2], "text": [3]},
                                     {"source_dir": "a\u00e9\u0000b", "filetype": "pdf"})],
                    "next_page_offset": "0b8a2a04-2b8d-4c29-9d1b-5e2b1c0f4d1a"}, "status": "ok"},
        {"result": {"points": [point(18446744073709551615, [1.0e-7, 2.5e+3, 12345678901234567890],
                                     {"age_bucket": 1})], "next_page_offset": None}},
        {"status": {"error": "Not found: Collection `x` doesn't exist!"}, "time": 0},
    ]
    for page in pages:
        write(outdir, "qdrant_page", json.dumps(page).encode())
    write(outdir, "qdrant_page", b'{"result":{"points":[{"id":1,"vector":[NaN,1]}],"next_page_offset":null}}')
    write(outdir, "qdrant_page", b'{"result":{"points":[{"id":1,"vector":[1,2]},{"id":2,"vector":[1]}]}}')


def vectors():
    with open(os.path.join(FIX, "metadata-hash", "metadata_hash_vectors.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def metadata_seeds(outdir):
    for v in vectors():
        fields = [v.get("config_json"), v.get("collection_id"), v.get("reducer"),
                  v.get("embedding_model"), v.get("dimensionality"), v.get("vector_count"),
                  v.get("collection_updated_at")]
        text = ["" if x is None else str(x) for x in fields]
        if v.get("config_json") is None and len(text) > 1:
            text[0] = "{}"
        write(outdir, "metadata_hash", "\0".join(text).encode("utf-8", "surrogatepass"))


def reducer_seeds(outdir):
    configs = sorted({v["config_json"] for v in vectors() if isinstance(v.get("config_json"), str)})
    names = ["pca", "umap", "tsne", "UMAP", "TSne", "", "pca-x", "#umap", "#tsne", "!umap", "!tsne",
             "!#tsne"]
    for i, c in enumerate(configs):  # each vector config under a few names
        write(outdir, "reducer_config", (names[i % len(names)] + "\n" + c).encode("utf-8", "surrogatepass"))
    extra = [
        ("umap", {"n_neighbors": "5", "min_dist": "0.5", "metric": "manhattan"}),
        ("umap", {"n_neighbors": 1, "min_dist": -1, "metric": "euclidean"}),
        ("umap", {"n_neighbors": 10 ** 30, "metric": None}),
        ("!tsne", {"perplexity": 2, "learning_rate": "auto", "n_iter": 250, "init": "random"}),
        ("!tsne", {"perplexity": "nan", "learning_rate": 1e308, "n_iter": "300", "metric": "cosine"}),
        ("!umap", {"n_neighbors": 3, "min_dist": 0.001, "metric": "correlation"}),
        ("tsne", {"n_iter": 10 ** 12}),
        ("pca", [1, 2]),
        (None, {"n_neighbors": True}),
    ]
    for name, config in extra:
        prefix = "" if name is None else name + "\n"
        write(outdir, "reducer_config", (prefix + json.dumps(config)).encode())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    celery_seeds(out)
    qdrant_seeds(out)
    metadata_seeds(out)
    reducer_seeds(out)
    for t in sorted(os.listdir(out)):
        print(t, len(os.listdir(os.path.join(out, t))))


if __name__ == "__main__":
    main()
