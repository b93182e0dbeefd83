#!/usr/bin/python3
"""Qdrant stand-in for tests: a small HTTP server that answers the read subset of the
Qdrant 1.19 REST API described in shared/qdrant/README.md (scroll, collection info,
count, exists) from a data file or from a deterministic generator.

It is a test double, not a Qdrant: it holds one collection in memory, supports no
filters and no writes, and exists so the C client can be tested against real HTTP
(keep-alive, status codes, plain-text 401 bodies, slow and broken responses).

Test hooks (not part of Qdrant):
  GET  /__standin/stats   -> {"routes": {route: count}, "total": n, "bytes_sent": {..},
                              "gzip_responses": n, "scroll_bodies": [...]}
  POST /__standin/faults  -> body {"faults": [fault, ...]} appended to the fault queue
  POST /__standin/reset   -> clears counters and faults
A fault is {"route": "scroll"|"info"|"any", "kind": "status"|"delay"|"disconnect"|
"truncate"|"hang"|"body"|"loop_offset"|"echo_key", "times": n (-1 = forever), "status": 503,
"delay_s": 1.5, "after_bytes": 100, "body": "..."}.
Faults fire in queue order on matching requests; "delay" delays then answers normally;
"hang" sleeps delay_s (default 3600) and closes the connection without an answer;
"body" answers `status` (default 200) with the raw text `body` (malformed JSON, a
hand-built page); "loop_offset" answers a scroll normally except that next_page_offset
is the request's own offset (the first id for the first page), so a client that follows
it blindly loops forever; "echo_key" answers "status" (403) with a plain-text body
quoting the request's api-key header, as a careless proxy does.

Usage:
  qdrant_standin.py [--collection NAME] (--data FILE | --generate n=..,dim=..,seed=..)
--collection PREFIX* serves the same points under every name starting with PREFIX
(many collections at the cost of one, for backfill tests and benchmarks).
                    [--api-key KEY] [--port 0] [--port-file PATH] [--fault k=v,...]
--data reads JSON lines (or one JSON array) of {"id":..., "vector":..., "payload":...}.
--generate keys: n, dim, seed, ids=int|uuid|mixed, id_start, id_step, named=a:4,b:8
(named vectors instead of one unnamed vector), null_every=k (every k-th point has no
vector), pool=K (vectors repeat with period K, so big collections cost little memory),
payload=1|0.  --cache-pages keeps rendered pages (benchmarks); --gzip compresses bodies
for clients that accept gzip; --offset-first writes next_page_offset before the points.  The chosen port is
printed as "PORT <n>" on stdout and written to --port-file when given.
"""

import argparse
import gzip
import json
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def id_sort_key(pid):
    """Qdrant orders every numeric id before every UUID (enum variant order)."""
    if isinstance(pid, int):
        return (0, pid, b"")
    return (1, 0, uuid.UUID(pid).bytes)


def parse_offset(value):
    """Returns a sort key for an offset, or raises ValueError for a bad one."""
    if isinstance(value, bool):
        raise ValueError("offset must be an unsigned integer or a UUID")
    if isinstance(value, int):
        if value < 0 or value >= 2**64:
            raise ValueError("offset out of range for u64")
        return id_sort_key(value)
    if isinstance(value, str) and UUID_RE.match(value):
        return id_sort_key(str(uuid.UUID(value)))
    raise ValueError("offset must be an unsigned integer or a UUID")


def fmt_float(v):
    """Shortest-ish text of a float32 value, like Qdrant's f32 output (<= 9 digits)."""
    f = struct.unpack("f", struct.pack("f", v))[0]
    for p in (6, 7, 8, 9):
        s = "%.*g" % (p, f)
        if struct.unpack("f", struct.pack("f", float(s)))[0] == f:
            return s
    return "%.9g" % f


def render_vector(vec):
    """JSON bytes of a vector value (list, multivector, sparse dict, or None)."""
    return json.dumps(vec, separators=(",", ":")).encode()


class Collection:
    """One collection: points sorted by id, each vector pre-rendered to bytes."""

    def __init__(self, name):
        self.name = name
        self.ids = []        # sorted ids
        self.keys = []       # sort keys parallel to ids
        self.vec = []        # per point: bytes (unnamed), dict name->bytes (named), or None
        self.payload = []    # per point: dict or None
        self.named = None    # list of (name, size) for named collections
        self.size = None     # size for an unnamed collection
        self.sparse = []     # names of sparse vectors
        self.multi = set()   # names ("" = unnamed) whose values are multivectors
        self.pool = None     # generator mode: (period, rendered vectors)
        self.generated = None

    # -- loading -------------------------------------------------------------------
    def load_points(self, records):
        records = sorted(records, key=lambda r: id_sort_key(r["id"]))
        for r in records:
            pid = r["id"]
            self.ids.append(pid)
            self.keys.append(id_sort_key(pid))
            v = r.get("vector")
            if isinstance(v, dict):
                self.vec.append({k: render_vector(x) for k, x in v.items()})
                if self.named is None:
                    self.named = []
                for k, x in v.items():
                    if isinstance(x, dict):
                        if k not in self.sparse:
                            self.sparse.append(k)
                    elif isinstance(x, list) and x and k not in [n for n, _ in self.named]:
                        size = len(x[0]) if isinstance(x[0], list) else len(x)
                        self.named.append((k, size))
                        if isinstance(x[0], list):
                            self.multi.add(k)
            elif v is None:
                self.vec.append(None)
            else:
                self.vec.append(render_vector(v))
                if self.size is None and v:
                    self.size = len(v[0]) if isinstance(v[0], list) else len(v)
                    if isinstance(v[0], list):
                        self.multi.add("")
            self.payload.append(r.get("payload"))

    def generate(self, spec):
        n = int(spec.get("n", 100))
        dim = int(spec.get("dim", 4))
        seed = int(spec.get("seed", 1))
        ids = spec.get("ids", "int")
        id_start = int(spec.get("id_start", 1))
        id_step = int(spec.get("id_step", 1))
        null_every = int(spec.get("null_every", 0))
        pool = int(spec.get("pool", 0))
        with_payload = spec.get("payload", "1") != "0"
        named = None
        if spec.get("named"):
            named = [(p.split(":")[0], int(p.split(":")[1])) for p in spec["named"].split("+")]
        rng = random.Random(seed)

        def make_vec(d):
            return b"[" + b",".join(fmt_float(rng.uniform(-1, 1)).encode() for _ in range(d)) + b"]"

        def make_id(i):
            if ids == "uuid" or (ids == "mixed" and i % 2):
                return str(uuid.UUID(int=random.Random(seed * 1000003 + i).getrandbits(128), version=4))
            return id_start + i * id_step

        if named:
            self.named = named
        else:
            self.size = dim
        period = pool if pool > 0 else n
        rendered = []
        for i in range(period):
            if named:
                rendered.append({k: make_vec(d) for k, d in named})
            else:
                rendered.append(make_vec(dim))
        records = []
        for i in range(n):
            v = rendered[i % period]
            if null_every and i % null_every == null_every - 1:
                v = None if not named else {}
            pl = None
            if with_payload:
                pl = {"doc_id": "doc-%d" % (i // 3), "path": "/data/dir%d/file%d.txt" % (i % 5, i),
                      "metadata": {"mime_type": "text/plain", "created_at": "2024-01-%02dT00:00:00Z" % (1 + i % 28)}}
            records.append((make_id(i), v, pl))
        records.sort(key=lambda r: id_sort_key(r[0]))
        for pid, v, pl in records:
            self.ids.append(pid)
            self.keys.append(id_sort_key(pid))
            self.vec.append(v)
            self.payload.append(pl)

    # -- answering -----------------------------------------------------------------
    def vector_names(self):
        if self.named is not None:
            return [n for n, _ in self.named] + self.sparse
        return [""] + self.sparse if self.sparse else [""]

    def info(self):
        def params(name, size):
            p = {"size": size, "distance": "Cosine"}
            if name in self.multi:
                p["multivector_config"] = {"comparator": "max_sim"}
            return p

        if self.named is not None:
            vectors = {n: params(n, s) for n, s in self.named}
        else:
            vectors = params("", self.size or 0)
        params = {"vectors": vectors, "shard_number": 1, "replication_factor": 1,
                  "write_consistency_factor": 1, "on_disk_payload": True}
        if self.sparse:
            params["sparse_vectors"] = {n: {} for n in self.sparse}
        return {"status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
                "points_count": len(self.ids), "segments_count": 1,
                "config": {"params": params,
                           "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000},
                           "optimizer_config": {}, "wal_config": {}, "quantization_config": None},
                "payload_schema": {}}

    def start_index(self, offset_key):
        lo, hi = 0, len(self.keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.keys[mid] < offset_key:
                lo = mid + 1
            else:
                hi = mid
        return lo


def select_payload(payload, sel):
    if sel is False:
        return None
    payload = payload or {}
    if sel is True:
        return payload
    if isinstance(sel, list):
        return {k: v for k, v in payload.items() if k in sel}
    if "include" in sel:
        return {k: v for k, v in payload.items() if k in sel["include"]}
    return {k: v for k, v in payload.items() if k not in sel["exclude"]}


class BadRequest(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


class State:
    def __init__(self, collection, api_key, faults, cache_pages=False):
        self.c = collection
        self.api_key = api_key
        self.lock = threading.Lock()
        self.faults = list(faults)
        self.routes = {}
        self.bytes_sent = {}
        self.total = 0
        self.page_cache = {} if cache_pages else None
        self.gzip = False
        self.offset_first = False
        self.gzip_responses = 0
        self.scroll_bodies = []

    def count(self, route, body=None):
        with self.lock:
            self.routes[route] = self.routes.get(route, 0) + 1
            self.total += 1
            if route == "scroll" and body is not None and len(self.scroll_bodies) < 1000:
                self.scroll_bodies.append(body)

    def take_fault(self, route):
        with self.lock:
            for f in self.faults:
                if f.get("route", "any") in (route, "any") and f.get("times", 1) != 0:
                    if f.get("times", 1) > 0:
                        f["times"] = f.get("times", 1) - 1
                    return dict(f)
        return None


def scroll_page(c, req, offset_first=False):
    if not isinstance(req, dict):
        raise BadRequest(400, "Format error in JSON body: expected a JSON object")
    limit = req.get("limit", 10)
    if limit is None:
        limit = 10
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise BadRequest(400, "Format error in JSON body: invalid type for `limit`, expected usize")
    if limit == 0:
        raise BadRequest(422, "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]")
    if req.get("filter") is not None:
        raise BadRequest(400, "Bad request: the test stand-in does not implement filters")
    start_key = None
    if req.get("offset") is not None:
        try:
            start_key = parse_offset(req["offset"])
        except ValueError as e:
            raise BadRequest(400, "Format error in JSON body: %s" % e)
    wp = req.get("with_payload", True)
    if wp is None:
        wp = True
    if not (isinstance(wp, bool) or (isinstance(wp, list) and all(isinstance(x, str) for x in wp))
            or (isinstance(wp, dict) and (isinstance(wp.get("include"), list) or isinstance(wp.get("exclude"), list)))):
        raise BadRequest(400, "Format error in JSON body: invalid with_payload")
    wv = req.get("with_vector", req.get("with_vectors", False))
    if wv is None:
        wv = False
    if not (isinstance(wv, bool) or (isinstance(wv, list) and all(isinstance(x, str) for x in wv))):
        raise BadRequest(400, "Format error in JSON body: invalid with_vector")
    if isinstance(wv, list):
        for name in wv:
            if name not in c.vector_names():
                raise BadRequest(400, "Wrong input: Not existing vector name error: %s" % name)

    order_by = req.get("order_by")
    if order_by is not None:
        key = order_by if isinstance(order_by, str) else order_by.get("key")
        desc = isinstance(order_by, dict) and order_by.get("direction") == "desc"
        idx = [i for i in range(len(c.ids)) if isinstance((c.payload[i] or {}).get(key), (int, float))]
        idx.sort(key=lambda i: c.payload[i][key], reverse=desc)
        idx = idx[:limit]
        next_off = None
    else:
        start = 0 if start_key is None else c.start_index(start_key)
        idx = range(start, min(start + limit, len(c.ids)))
        nxt = start + limit
        next_off = c.ids[nxt] if nxt < len(c.ids) else None

    parts = []
    for i in idx:
        p = [b'{"id":', json.dumps(c.ids[i]).encode()]
        pl = select_payload(c.payload[i], wp)
        if pl is not None:
            p += [b',"payload":', json.dumps(pl, separators=(",", ":"), ensure_ascii=False).encode()]
        v = c.vec[i]
        if wv is not False and v is not None:
            if isinstance(v, dict):
                names = [k for k in v if wv is True or k in wv]
                p += [b',"vector":{', b",".join(json.dumps(k).encode() + b":" + v[k] for k in names), b"}"]
            elif wv is True or "" in wv:
                p += [b',"vector":', v]
        p.append(b"}")
        parts.append(b"".join(p))
    if offset_first:  # same JSON object, keys in another order (a client must not care)
        return (b'{"result":{"next_page_offset":' + json.dumps(next_off).encode() + b',"points":['
                + b",".join(parts) + b']},"status":"ok","time":0.001}')
    return (b'{"result":{"points":[' + b",".join(parts) + b'],"next_page_offset":'
            + json.dumps(next_off).encode() + b'},"status":"ok","time":0.001}')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qdrant-standin"

    def log_message(self, fmt, *args):  # quiet: tests read stdout for the port only
        pass

    def send_bytes(self, code, body, ctype="application/json", fault=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if self.server.state.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
            with self.server.state.lock:
                self.server.state.gzip_responses += 1
        if fault and fault.get("kind") == "truncate":
            body = body[: int(fault.get("after_bytes", len(body) // 2))]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault and fault.get("kind") == "disconnect":
            self.wfile.write(body[: int(fault.get("after_bytes", len(body) // 2))])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def send_error_json(self, code, msg):
        body = json.dumps({"status": {"error": msg}, "time": 0.0}).encode()
        self.send_bytes(code, body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authorized(self):
        key = self.server.state.api_key
        if not key:
            return True
        given = self.headers.get("api-key")
        if given is None:
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[7:]
        if given is None:
            self.send_bytes(401, b"Must provide an API key or an Authorization bearer token", "text/plain")
            return False
        if given != key:
            self.send_bytes(401, b"Invalid API key or JWT", "text/plain")
            return False
        return True

    def route(self, method, path):
        st = self.server.state
        if path.startswith("/__standin/"):
            return "control"
        m = re.match(r"^/collections/([^/?]+)(/points/scroll|/points/count|/exists)?$", path)
        if not m:
            return None
        if method == "GET" and m.group(2) is None:
            return "info"
        if method == "GET" and m.group(2) == "/exists":
            return "exists"
        if method == "POST" and m.group(2) == "/points/scroll":
            return "scroll"
        if method == "POST" and m.group(2) == "/points/count":
            return "count"
        _ = st
        return None

    def handle_any(self, method):
        st = self.server.state
        path, _, query = self.path.partition("?")
        body = self.read_body() if method == "POST" else b""
        route = self.route(method, path)
        if route == "control":
            return self.control(method, path, body)
        if route is None:
            st.count("unknown")
            return self.send_error_json(404, "Not found: no route %s %s" % (method, path))
        req = None
        if route == "scroll":
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                req = None
        st.count(route, req)
        fault = st.take_fault(route)
        if fault and fault["kind"] == "delay":
            time.sleep(float(fault.get("delay_s", 1.0)))
        if fault and fault["kind"] == "hang":
            time.sleep(float(fault.get("delay_s", 3600)))
            self.close_connection = True
            return None
        if fault and fault["kind"] == "body":
            return self.send_bytes(int(fault.get("status", 200)), str(fault.get("body", "")).encode())
        if fault and fault["kind"] == "echo_key":
            given = self.headers.get("api-key", "")
            body = ("Forbidden: api-key %s is not valid here" % given).encode()
            return self.send_bytes(int(fault.get("status", 403)), body, "text/plain")
        if fault and fault["kind"] == "status":
            code = int(fault.get("status", 503))
            if code in (401, 403):
                return self.send_bytes(code, b"Forbidden: injected by the test stand-in", "text/plain")
            return self.send_error_json(code, "Injected HTTP %d by the test stand-in" % code)
        if not self.authorized():
            return
        name = re.match(r"^/collections/([^/?]+)", path).group(1)
        c = st.c
        if name != c.name and not (c.name.endswith("*") and name.startswith(c.name[:-1])):
            return self.send_error_json(404, "Not found: Collection `%s` doesn't exist!" % name)
        for kv in query.split("&") if query else []:
            k, _, v = kv.partition("=")
            if k == "timeout" and not (v.isdigit() and int(v) >= 1):
                return self.send_error_json(400, "Format error in query: invalid timeout")
        if route == "info":
            out = json.dumps({"result": c.info(), "status": "ok", "time": 0.0001}).encode()
            return self.send_bytes(200, out, fault=fault)
        if route == "exists":
            return self.send_bytes(200, json.dumps({"result": {"exists": True}, "status": "ok", "time": 0.0}).encode())
        if route == "count":
            return self.send_bytes(200, json.dumps({"result": {"count": len(c.ids)}, "status": "ok", "time": 0.0}).encode())
        if req is None:
            return self.send_error_json(400, "Format error in JSON body: expected value at line 1 column 1")
        key = json.dumps(req, sort_keys=True)
        out = st.page_cache.get(key) if st.page_cache is not None else None
        if out is None:
            try:
                out = scroll_page(c, req, st.offset_first)
            except BadRequest as e:
                return self.send_error_json(e.code, e.msg)
            if st.page_cache is not None:
                st.page_cache[key] = out
        if fault and fault["kind"] == "loop_offset":
            doc = json.loads(out)
            own = req.get("offset")
            doc["result"]["next_page_offset"] = own if own is not None else (c.ids[0] if c.ids else None)
            out = json.dumps(doc, separators=(",", ":")).encode()
        with st.lock:
            st.bytes_sent["scroll"] = st.bytes_sent.get("scroll", 0) + len(out)
        return self.send_bytes(200, out, fault=fault)

    def control(self, method, path, body):
        st = self.server.state
        if method == "GET" and path == "/__standin/stats":
            with st.lock:
                out = {"routes": dict(st.routes), "total": st.total, "bytes_sent": dict(st.bytes_sent),
                       "gzip_responses": st.gzip_responses,
                       "scroll_bodies": list(st.scroll_bodies)}
            return self.send_bytes(200, json.dumps(out).encode())
        if method == "POST" and path == "/__standin/faults":
            faults = json.loads(body or b"{}").get("faults", [])
            with st.lock:
                st.faults.extend(faults)
            return self.send_bytes(200, b'{"ok":true}')
        if method == "POST" and path == "/__standin/reset":
            with st.lock:
                st.faults.clear()
                st.routes.clear()
                st.total = 0
                st.scroll_bodies.clear()
                st.bytes_sent.clear()
            return self.send_bytes(200, b'{"ok":true}')
        return self.send_error_json(404, "unknown control route")

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")


def parse_kv(text):
    out = {}
    for part in text.split(","):
        if part:
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
    return out


def parse_fault(text):
    f = parse_kv(text)
    out = {"kind": f.get("kind", "status"), "route": f.get("route", "any"), "times": int(f.get("times", "1"))}
    for k, conv in (("status", int), ("delay_s", float), ("after_bytes", int)):
        if k in f:
            out[k] = conv(f[k])
    return out


def load_records(path):
    with open(path, "rb") as fh:
        text = fh.read().decode()
    stripped = text.lstrip()
    if stripped.startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", default="test")
    ap.add_argument("--data")
    ap.add_argument("--generate")
    ap.add_argument("--api-key")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--gzip", action="store_true",
                    help="gzip bodies when the client sends Accept-Encoding: gzip (as actix does)")
    ap.add_argument("--cache-pages", action="store_true",
                    help="keep every rendered scroll page, so repeated scrolls cost only the send")
    ap.add_argument("--offset-first", action="store_true",
                    help="write result.next_page_offset before result.points (Qdrant writes it after)")
    args = ap.parse_args(argv)

    c = Collection(args.collection)
    if args.data:
        c.load_points(load_records(args.data))
    else:
        c.generate(parse_kv(args.generate or ""))
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(c, args.api_key, [parse_fault(f) for f in args.fault], args.cache_pages)
    srv.state.gzip = args.gzip
    srv.state.offset_first = args.offset_first
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write("%d\n" % port)
        import os
        os.replace(tmp, args.port_file)
    print("PORT %d" % port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
