#!/usr/bin/python3
"""run.py - end-to-end benchmark (issue 3): projection-worker vs the Python task's path.

One command.  It starts its own RabbitMQ + PostgreSQL (tests/harness/services.sh), one
Qdrant stand-in and our worker, and stops all of them on the way out, errors and Ctrl-C
included.  Everything reads the SAME n x dim points from the SAME stand-in process.
The stand-in is tests/qdrant_standin --generate ... --cache-pages (--data pool: a pool of
--pool random vectors repeated, the PCA default), or standin_matrix.py serving the
matrix cell "broad" of bench/compute/matrix.py at n x dim (--data clusters: 5 broad
clusters, rows normalised, every point distinct; the UMAP default - UMAP on repeated
points would measure nothing), pages cached too.  --reducer umap is the API's default
request (config {}); the Python side then runs the task's _compute_umap_projection
(umap-learn), and the outputs are compared by quality (trustworthiness and 10-NN
cluster accuracy, as matrix.py computes them) instead of coordinates.

  0. stand-in warm-up: one untimed raw scroll renders and caches every page (body exactly
     as our worker and the Python path send it), then a second raw scroll (http.client,
     keep-alive, no parsing) measures what the stand-in itself can serve.
  1. C scroll+parse alone (optional, if qdrant_scroll_tool is built): the worker's Qdrant
     client in its own process -> JSON MB/s of scroll+parse without the rest of the task.
  2. ours: a projection run (reducer --reducer, config {}) is created in PostgreSQL and
     webui.tasks.compute_projection is sent with the Celery client; timed from send to
     result.  A thread polls the stand-in's byte counter and the worker's CPU time every
     --poll-s to find the fetch window inside the task (first to last scroll byte served).
  3. reuse: --reuses new runs with the same config are created and sent pipelined; the
     worker's `projection_reused` log lines give the per-task reuse decision time
     (duration_s) -> p50/p99/max; wall time of the batch -> tasks/s.  Then
     --reuse-sequential more, one at a time, for the client-side round trip.
     The worker's peak RSS is the larger of the consumer's VmHWM (read just before it is
     stopped) and the task process's own peak (peak_rss_kb in its projection_completed
     log line; projections run in projection-worker-task, one process per task).
  4. Python: bench/e2e/python_ref.py in its own process (urllib scroll, json.loads,
     per-point np.asarray float32, np.stack, the seed's _compute_pca_projection or
     _compute_umap_projection, the same files), after our worker has been stopped, under
     nice -n --python-nice if given.

Writes bench/out/e2e/results.json and the generated report bench/out/e2e/RESULTS.md
(git-ignored; the hand-written notes below `<!-- notes: kept across runs -->` in
bench/e2e/RESULTS.md are carried over).  Copy the figures into bench/e2e/RESULTS.md by
hand when they become the current ones.

  /usr/bin/python3 bench/e2e/run.py [--n 200000] [--dim 768] [--reuses 1000]
      [--build-dir build-e2e] [--tools-build-dir build-e2e-tools] [--pool 2000]
      [--reducer pca|umap] [--data pool|clusters] [--python-nice 10] [--python-timeout S]

  The API's default request (issue 16), 200,000 x 768 and x 1,536:
  /usr/bin/python3 bench/e2e/run.py --reducer umap --reuses 0 --python-timeout 5400 [--dim 1536]
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench"))
from common import BENCH_PATH_LINE, cpu_model_and_mem_kb  # noqa: E402

OUT = os.path.join(REPO, "bench", "out", "e2e")  # generated outputs: git-ignored (bench/out/)
PY = "/usr/bin/python3"
STANDIN = os.path.join(REPO, "tests/qdrant_standin/qdrant_standin.py")
STANDIN_MATRIX = os.path.join(HERE, "standin_matrix.py")
SERVICES = os.path.join(REPO, "tests/harness/services.sh")
NOTES_MARKER = "<!-- notes: kept across runs -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")
COLLECTION = "bench_vecs"

# targets from issue 3 (PCA) and issue 16 (UMAP, the API's default request)
T_SPEEDUP = {"pca": 10.0, "umap": 15.0}
METRIC_NOTE = {"pca": "euclidean", "umap": "cosine"}
T_PARSE_MBS = 250.0
T_RSS_RATIO = 1.5
T_REUSE_P99_MS = 20.0


def log(msg):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- /proc helpers ------------------------------------------------------------------------


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # utime, stime, plus cutime, cstime: projections run in reaped task processes
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK_TCK


def tree_cpu_s(pid):
    """CPU seconds of the consumer, its reaped children and its live ones: a projection
    runs in a task process, whose time reaches the consumer's cutime only when reaped."""
    total = proc_cpu_s(pid)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = open(f"/proc/{pid}/task/{tid}/children").read().split()
        except OSError:
            continue
        for kid in kids:
            try:
                total += proc_cpu_s(int(kid))
            except OSError:  # exited meanwhile
                pass
    return total


def machine_info():
    model, mem_kb = cpu_model_and_mem_kb()
    return {"nproc": os.cpu_count(), "cpu": model, "mem_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "python": platform.python_version()}


def numpy_blas():
    """numpy's version and the BLAS/LAPACK libraries it really loads (Debian picks them
    through alternatives, so the build config does not say)."""
    code = ("import numpy, numpy.linalg, os, json\n"
            "libs = sorted({os.path.basename(os.path.realpath(l.split()[-1])) for l in open('/proc/self/maps')\n"
            "               if l.split()[-1].startswith('/') and ('blas' in l or 'lapack' in l)})\n"
            "print(json.dumps([numpy.__version__, ' + '.join(libs)]))")
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return ["?", "?"]


# ---- services, database, stand-in -------------------------------------------------------


class Cleanup:
    """Callables run in reverse order on exit, whatever happened."""

    def __init__(self):
        self.items = []

    def push(self, what, fn):
        self.items.append((what, fn))

    def run(self):
        while self.items:
            what, fn = self.items.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                log(f"cleanup {what}: {e}")


def services_tmpdir(prefix):
    """A fresh temporary directory for services.sh: mkdtemp's 0700 is widened to 0755
    because initdb runs as the postgres user and must reach its data dir below it."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    return tmp


def read_env_file(path):
    env = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v.strip("'\"")
    return env


def psql(url, sql, timeout=300):
    out = subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1"], input=sql, capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr[-2000:]}")
    return out.stdout.strip()


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def http_json(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def standin_scroll_bytes(url):
    return http_json(url + "/__standin/stats").get("bytes_sent", {}).get("scroll", 0)


def standin_scrolls(url):
    return http_json(url + "/__standin/stats")["routes"].get("scroll", 0)


RAW_FETCH = r"""
import http.client, json, sys, time
port, coll, limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
offset, fetched, nbytes, pages = None, 0, 0, 0
t0 = time.perf_counter()
while fetched < limit:
    # the body our worker sends (db/qdrant/qdrant.c) and python_ref.py sends: same cache key
    body = {"limit": max(1, min(1000, limit - fetched)), "with_payload": True, "with_vector": True}
    if offset is not None:
        body["offset"] = offset
    conn.request("POST", "/collections/%s/points/scroll" % coll, json.dumps(body),
                 {"Content-Type": "application/json"})
    raw = conn.getresponse().read()
    nbytes += len(raw)
    pages += 1
    n = raw.count(b'{"id":')
    fetched += n
    i = raw.rfind(b'"next_page_offset":')
    offset = json.loads(raw[i + 19:raw.index(b"}", i)])
    if n == 0 or offset is None:
        break
print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": nbytes, "pages": pages, "rows": fetched}))
"""


PY_PARSE = BENCH_PATH_LINE + r"""
import json, sys
import numpy  # noqa: F401 - loaded here, before the clock starts, not in the first rep
from common import collect_vectors, time_page_parses
page = open(sys.argv[1], "rb").read()
reps = int(sys.argv[2])


def parse(doc):
    vectors = []
    collect_vectors(doc["result"]["points"], vectors, named=False)


stats, _ = time_page_parses(page, reps, parse, drop_doc=True)
print(json.dumps({**stats, "bytes": len(page)}))
"""


def build_parse_tool(build_dir, out_dir):
    """bench/qdrant/bench_qdrant_parse (not part of the CMake tree) compiled against the
    worker's own libpw_db.a from build_dir; None if that fails."""
    lib = os.path.join(build_dir, "db/libpw_db.a")
    out = os.path.join(out_dir, "bench_qdrant_parse")
    if not os.path.exists(lib):
        return None
    libs = subprocess.run(["pkg-config", "--libs", "yajl", "libcurl", "jansson", "libpq"], capture_output=True,
                          text=True).stdout.split()
    r = subprocess.run(["gcc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-I", os.path.join(REPO, "db"), "-I",
                        os.path.join(REPO, "compute"), os.path.join(REPO, "bench/qdrant/bench_qdrant_parse.c"), lib,
                        *libs, "-lm", "-o", out], capture_output=True, text=True)
    return out if r.returncode == 0 else None


# ---- the worker ---------------------------------------------------------------------------


class Worker:
    def __init__(self, binary, queue, env, log_path, concurrency):
        self.log_path = log_path
        self.log_fh = open(log_path, "w")
        cmd = [binary, "run", "-Q", queue, "-c", str(concurrency), "-n", "bench@e2e"]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=self.log_fh, stderr=subprocess.STDOUT, env=env)

    def events(self, name=None):
        out = []
        with open(self.log_path) as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        e = json.loads(line)
                    except json.JSONDecodeError:
                        out.append({"event": "__non_json__", "line": line})
                        continue
                    if name is None or e.get("event") == name:
                        out.append(e)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log_fh.closed:
            self.log_fh.close()


def celery_app(broker):
    from celery import Celery

    app = Celery("webui", broker=broker, backend="rpc://")
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                    task_protocol=2, broker_connection_retry_on_startup=True)
    return app


def create_runs(url, collection_id, count, config="{}", reducer="pca"):
    runs = [str(uuid.uuid4()) for _ in range(count)]
    ops = [str(uuid.uuid4()) for _ in range(count)]
    stmts = ["BEGIN;"]
    for run, op in zip(runs, ops):
        stmts.append(f"INSERT INTO operations (uuid, collection_id, user_id, type, status, config) VALUES "
                     f"('{op}', '{collection_id}', 1, 'projection_build', 'pending', '{{}}');")
        stmts.append(f"INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status, dimensionality, "
                     f"reducer, config) VALUES ('{run}', '{collection_id}', '{op}', 'running', 2, '{reducer}', "
                     f"'{config}');")
    stmts.append("COMMIT;")
    psql(url, "\n".join(stmts))
    return runs


class Poller(threading.Thread):
    """Samples (time, stand-in scroll bytes, worker CPU seconds) every `interval` s."""

    def __init__(self, url, pid, interval):
        super().__init__(daemon=True)
        self.url, self.pid, self.interval = url, pid, interval
        self.samples = []
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                b = standin_scroll_bytes(self.url)
                self.samples.append((time.perf_counter(), b, tree_cpu_s(self.pid)))
            except Exception:  # noqa: BLE001 - a missed sample is fine
                pass
            self.stop_ev.wait(self.interval)

    def fetch_window(self, base, total):
        """(seconds, worker CPU seconds) from the last sample with no scroll bytes yet to
        the first sample with all of them: an upper bound of the fetch time, +- one poll."""
        before = [s for s in self.samples if s[1] <= base]
        after = [s for s in self.samples if s[1] >= base + total]
        if not before or not after:
            return None
        s0, s1 = before[-1], after[0]
        first_bytes = [s for s in self.samples if s[1] > base]
        return {"upper_s": s1[0] - s0[0], "cpu_s": s1[2] - s0[2],
                "lower_s": max(0.0, after[0][0] - first_bytes[0][0]) if first_bytes else None,
                "t_start": s0[0], "t_end": s1[0]}


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ---- main ----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="end-to-end benchmark: projection-worker vs the Python task")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--reuses", type=int, default=1000)
    ap.add_argument("--reuse-sequential", type=int, default=100,
                    help="reuse tasks sent one at a time after the pipelined batch (client round trip)")
    ap.add_argument("--reuse-budget-s", type=float, default=600,
                    help="stop waiting for the pipelined reuses after this long (then the worker is stopped)")
    ap.add_argument("--pool", type=int, default=2000,
                    help="stand-in generator pool: distinct vectors (rendering every one of n costs minutes)")
    ap.add_argument("--concurrency", type=int, default=1, help="worker -c")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-e2e"))
    ap.add_argument("--tools-build-dir", default=os.path.join(REPO, "build-e2e-tools"),
                    help="where tests/integration/qdrant/qdrant_scroll_tool is (optional)")
    ap.add_argument("--python-timeout", type=float, default=900)
    ap.add_argument("--poll-s", type=float, default=0.05)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--reducer", choices=("pca", "umap"), default="pca",
                    help="the run's reducer (config {}); umap is the API's default request")
    ap.add_argument("--data", choices=("pool", "clusters"),
                    help="stand-in data (default: pool for pca, clusters for umap; see the docstring)")
    ap.add_argument("--python-nice", type=int, default=0, help="run the Python path under nice -n N")
    ap.add_argument("--no-write", action="store_true", help="do not write the report (bench/out/e2e/RESULTS.md)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--out", default=os.path.join(OUT, "results.json"), help="results JSON path")
    args = ap.parse_args()
    args.data = args.data or ("pool" if args.reducer == "pca" else "clusters")

    worker_bin = os.path.join(args.build_dir, "worker/projection-worker")
    if not os.access(worker_bin, os.X_OK):
        raise SystemExit(f"{worker_bin} not built: cmake -S . -B build-e2e -DCMAKE_BUILD_TYPE=Release "
                         f"-DPW_INTEGRATION_TESTS=OFF && cmake --build build-e2e -j2")
    scroll_tool = os.path.join(args.tools_build_dir, "tests/integration/qdrant/qdrant_scroll_tool")

    def on_signal(signo, _frame):
        raise KeyboardInterrupt(f"signal {signo}")

    signal.signal(signal.SIGTERM, on_signal)
    cleanup = Cleanup()
    tmp = services_tmpdir("pw-e2e-")
    if not args.keep:
        cleanup.push("tmp dir", lambda: shutil.rmtree(tmp, ignore_errors=True))
    res = {"args": vars(args), "command": "/usr/bin/python3 bench/e2e/run.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]), "date": datetime.datetime.now(datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"), "machine": machine_info(), "numpy": numpy_blas(),
        "loadavg_before": os.getloadavg(), "git": subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()}
    res["worker_binary"] = {"path": worker_bin, "built": datetime.datetime.fromtimestamp(
        os.path.getmtime(worker_bin), datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
    n, dim = args.n, args.dim
    raw_bytes = n * dim * 4
    children = {}
    try:
        # -- services
        state = os.path.join(tmp, "services")
        log(f"starting RabbitMQ + PostgreSQL in {state}")
        cleanup.push("services", lambda: subprocess.run(["bash", SERVICES, "stop", state], capture_output=True,
                                                        timeout=180))
        out = subprocess.run(["bash", SERVICES, "start", state, "all"], capture_output=True, text=True,
                             timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"services.sh start failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        senv = read_env_file(os.path.join(state, "services.env"))
        broker, admin_url = senv["CELERY_BROKER_URL"], senv["DATABASE_URL"]
        db = "pw_e2e_" + uuid.uuid4().hex[:8]
        psql(admin_url, f"CREATE DATABASE {db}")
        db_url = admin_url.rsplit("/", 1)[0] + "/" + db
        out = subprocess.run([worker_bin, "migrate", "--database-url", db_url], capture_output=True, text=True,
                             timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"migrate failed: {out.stderr}")
        collection_id = str(uuid.uuid4())
        psql(db_url, f"""INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model, vector_count)
                         VALUES ('{collection_id}', 'bench', 1, '{COLLECTION}', 'bench-model', {n})""")

        # -- stand-in
        port_file = os.path.join(tmp, "standin.port")
        t0 = time.perf_counter()
        if args.data == "clusters":
            spec = f"matrix.py cell broad, n={n}, dim={dim} (standin_matrix.py)"
            vectors = os.path.join(tmp, "vectors.f32")
            cluster_data(n, dim).tofile(vectors)
            cmd = [PY, STANDIN_MATRIX, "--vectors", vectors, "--dim", str(dim)]
        else:
            spec = f"n={n},dim={dim},seed=1,pool={min(args.pool, n)},payload=1"
            cmd = [PY, STANDIN, "--generate", spec, "--port", "0"]
        log(f"starting the Qdrant stand-in: {spec}, pages cached")
        standin = subprocess.Popen(cmd + ["--collection", COLLECTION, "--cache-pages", "--port-file", port_file],
                                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "standin.log"), "w"))
        children["standin"] = standin

        def stop_standin():
            standin.terminate()
            try:
                standin.wait(15)
            except subprocess.TimeoutExpired:
                standin.kill()
                standin.wait()

        cleanup.push("stand-in", stop_standin)
        wait_for(lambda: standin.poll() is not None or (os.path.exists(port_file) and open(port_file).read().strip()),
                 600, "stand-in port")
        if standin.poll() is not None:
            raise RuntimeError("stand-in exited: " + open(os.path.join(tmp, "standin.log")).read()[-2000:])
        port = int(open(port_file).read().strip())
        surl = f"http://127.0.0.1:{port}"
        res["standin"] = {"spec": spec, "startup_s": time.perf_counter() - t0}

        # -- 0. warm-up and the stand-in's own serving rate
        def raw_fetch():
            o = subprocess.run([PY, "-c", RAW_FETCH, str(port), COLLECTION, str(n)], capture_output=True, text=True,
                               timeout=3600)
            if o.returncode != 0:
                raise RuntimeError("raw fetch failed: " + o.stderr[-2000:])
            return json.loads(o.stdout)

        log("warm-up scroll (renders and caches every page)")
        warm = raw_fetch()
        log(f"  warm-up {warm['seconds']:.1f} s, {warm['bytes'] / 1e6:.1f} MB in {warm['pages']} pages")
        serve = raw_fetch()
        serve["mb_per_s"] = serve["bytes"] / serve["seconds"] / 1e6
        log(f"  stand-in serving alone (raw fetch, no parse): {serve['seconds']:.2f} s, {serve['mb_per_s']:.0f} MB/s")
        res["standin"].update(warmup=warm, serve=serve)
        scroll_bytes = serve["bytes"]
        rows = serve["rows"]
        if rows != min(n, 200000):
            log(f"  note: stand-in served {rows} rows")

        # -- 1a. parse from memory, one page as the stand-in serves it (no HTTP, no contention
        # with the stand-in): C parser vs json.loads + np.asarray
        page_path = os.path.join(tmp, "page.json")
        req = urllib.request.Request(f"{surl}/collections/{COLLECTION}/points/scroll", data=json.dumps(
            {"limit": 1000, "with_payload": True, "with_vector": True}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=120) as resp, open(page_path, "wb") as fh:
            fh.write(resp.read())
        mem = {"page_bytes": os.path.getsize(page_path)}
        tool = build_parse_tool(args.build_dir, tmp)
        if tool:
            for mode in ("parse", "chunked"):
                o = subprocess.run([tool, page_path, "30", mode], capture_output=True, text=True, timeout=600)
                if o.returncode == 0:
                    rep = json.loads(o.stdout.strip().splitlines()[-1])
                    rep["best_mb_per_s"] = mem["page_bytes"] / rep["best_s"] / 1e6
                    rep["median_mb_per_s"] = mem["page_bytes"] / rep["median_s"] / 1e6
                    mem["c_" + mode] = rep
        o = subprocess.run([PY, "-c", PY_PARSE, page_path, "8"], capture_output=True, text=True, timeout=600)
        if o.returncode == 0:
            rep = json.loads(o.stdout.strip().splitlines()[-1])
            rep["best_mb_per_s"] = mem["page_bytes"] / rep["best_s"] / 1e6
            rep["median_mb_per_s"] = mem["page_bytes"] / rep["median_s"] / 1e6
            mem["python"] = rep
        res["parse_memory"] = mem
        log("parse from memory, one %.1f MB page: C %s MB/s (chunked %s), Python %s MB/s (median)" % (
            mem["page_bytes"] / 1e6, fmt(mem.get("c_parse", {}).get("median_mb_per_s"), ".0f"),
            fmt(mem.get("c_chunked", {}).get("median_mb_per_s"), ".0f"),
            fmt(mem.get("python", {}).get("median_mb_per_s"), ".0f")))

        # -- 1b. the C client's scroll+parse alone
        if os.access(scroll_tool, os.X_OK):
            b0 = standin_scroll_bytes(surl)
            t0 = time.perf_counter()
            o = subprocess.run([scroll_tool, "--url", surl, "--collection", COLLECTION, "--limit", str(min(n, 200000)),
                                "--no-dump", "--timeout-ms", "600000"], capture_output=True, text=True, timeout=3600)
            wall = time.perf_counter() - t0
            if o.returncode != 0:
                raise RuntimeError("qdrant_scroll_tool failed: " + o.stderr[-2000:])
            rep = json.loads(o.stdout)
            nb = standin_scroll_bytes(surl) - b0
            res["c_scroll"] = {"wall_s": wall, "bytes": nb, "mb_per_s": nb / wall / 1e6, "rc": rep.get("rc"),
                               "rows": rep.get("n"), "maxrss_kb": rep.get("maxrss_kb")}
            log(f"C scroll+parse alone (qdrant_scroll_tool): {wall:.2f} s, {nb / wall / 1e6:.0f} MB/s, "
                f"rc {rep.get('rc')}, VmHWM {rep.get('maxrss_kb')} KiB")
        else:
            log(f"({scroll_tool} not built: skipping the C scroll+parse-alone measurement)")

        # -- 2. ours
        data_dir = os.path.join(tmp, "data-ours")
        os.makedirs(data_dir)
        queue = "e2e-" + uuid.uuid4().hex[:8]
        wenv = dict(os.environ)
        wenv.update(CELERY_BROKER_URL=broker, DATABASE_URL=db_url, DATA_DIR=data_dir, QDRANT_URL=surl,
                    QDRANT_TIMEOUT_MS="600000", QDRANT_MAX_RETRIES="3")
        worker = Worker(worker_bin, queue, wenv, os.path.join(tmp, "worker.log"), args.concurrency)
        children["worker"] = worker.proc
        cleanup.push("worker", worker.stop)
        wait_for(lambda: worker.proc.poll() is not None or worker.events("broker_connected"), 60, "worker connected")
        if worker.proc.poll() is not None:
            raise RuntimeError("worker exited: " + open(worker.log_path).read()[-3000:])
        app = celery_app(broker)
        conn = app.connection_for_write()
        conn.ensure_connection()
        # a warm-up round trip through the broker (celery.ping) so the client's connection,
        # reply queue and the worker's consumer are up before the clock starts
        app.send_task("celery.ping", queue=queue).get(timeout=60)

        run = create_runs(db_url, collection_id, 1, reducer=args.reducer)[0]
        b0 = standin_scroll_bytes(surl)
        cpu0 = proc_cpu_s(worker.proc.pid)
        poller = Poller(surl, worker.proc.pid, args.poll_s)
        poller.start()
        time.sleep(2 * args.poll_s)
        log(f"ours: sending compute_projection({run})")
        t0 = time.perf_counter()
        result = app.send_task("webui.tasks.compute_projection", args=[run], queue=queue).get(timeout=3600)
        ours_s = time.perf_counter() - t0
        time.sleep(2 * args.poll_s)
        poller.stop_ev.set()
        poller.join()
        cpu1 = proc_cpu_s(worker.proc.pid)
        ours_bytes = standin_scroll_bytes(surl) - b0
        hwm_after_run = proc_status_kb(worker.proc.pid, "VmHWM")
        window = poller.fetch_window(b0, ours_bytes)
        done = worker.events("projection_completed")
        ev = done[-1] if done else {}
        res["ours"] = {"result": result, "send_to_result_s": ours_s, "log_duration_s": ev.get("duration_s"),
                       "bytes": ours_bytes, "cpu_s": cpu1 - cpu0, "vmhwm_after_run_kb": hwm_after_run,
                       "fetch_window": window, "completed_event": ev}
        log(f"ours: {result.get('status')} in {ours_s:.2f} s (log duration_s {ev.get('duration_s')}), "
            f"{ours_bytes / 1e6:.1f} MB scrolled, worker CPU {cpu1 - cpu0:.2f} s, VmHWM {hwm_after_run} KiB")
        if window:
            log(f"  fetch window at the stand-in: {window['upper_s']:.2f} s (worker CPU {window['cpu_s']:.2f} s)")
        if result.get("status") != "completed":
            raise RuntimeError(f"our run did not complete: {result}")

        # -- 3. reuse
        reuse = {}
        if args.reuses > 0:
            scrolls0 = standin_scrolls(surl)
            runs = create_runs(db_url, collection_id, args.reuses, reducer=args.reducer)
            log(f"reuse: {len(runs)} runs with the same config, sent pipelined")
            t0 = time.perf_counter()
            pending = [app.send_task("webui.tasks.compute_projection", args=[r], queue=queue) for r in runs]
            t_sent = time.perf_counter()
            deadline = t0 + args.reuse_budget_s
            results = []
            for p in pending:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    results.append(p.get(timeout=left))
                except Exception as e:  # noqa: BLE001 - celery's TimeoutError, or a task failure
                    if "timed out" in str(e).lower() or type(e).__name__ == "TimeoutError":
                        break
                    results.append({"status": "error", "message": str(e)})
            wall = time.perf_counter() - t0
            finished = len(results) == len(runs)
            ok = sum(1 for r in results if r.get("status") == "completed")
            evs = [e for e in worker.events("projection_reused")]
            durs = [float(e["duration_s"]) for e in evs]
            reuse = {"count": len(runs), "answered": len(results), "completed": ok, "finished": finished,
                     "budget_s": args.reuse_budget_s, "reused_events": len(evs), "wall_s": wall,
                     "send_s": t_sent - t0, "tasks_per_s": len(results) / wall,
                     "p50_ms": pct(durs, 50) * 1e3, "p99_ms": pct(durs, 99) * 1e3, "max_ms": max(durs) * 1e3,
                     "mean_ms": statistics.mean(durs) * 1e3, "scrolls_during": standin_scrolls(surl) - scrolls0,
                     "first10_p50_ms": pct(durs[:10], 50) * 1e3, "last10_p50_ms": pct(durs[-10:], 50) * 1e3,
                     "durations_s": durs}
            log(f"  {ok}/{len(runs)} completed{'' if finished else ' (budget of %.0f s spent)' % args.reuse_budget_s}, "
                f"{len(evs)} projection_reused events, {wall:.2f} s -> "
                f"{reuse['tasks_per_s']:.1f} tasks/s; decision p50 {reuse['p50_ms']:.2f} ms, p99 "
                f"{reuse['p99_ms']:.2f} ms, max {reuse['max_ms']:.2f} ms (first 10 p50 {reuse['first10_p50_ms']:.1f}, "
                f"last 10 p50 {reuse['last10_p50_ms']:.1f}); scrolls during: {reuse['scrolls_during']}")
            if args.reuse_sequential > 0 and finished:
                seq_runs = create_runs(db_url, collection_id, args.reuse_sequential, reducer=args.reducer)
                lat = []
                for r in seq_runs:
                    a = time.perf_counter()
                    app.send_task("webui.tasks.compute_projection", args=[r], queue=queue).get(timeout=60)
                    lat.append(time.perf_counter() - a)
                reuse["sequential"] = {"count": len(lat), "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3,
                                       "max_ms": max(lat) * 1e3}
                log(f"  sequential round trips ({len(lat)}): p50 {reuse['sequential']['p50_ms']:.2f} ms, "
                    f"p99 {reuse['sequential']['p99_ms']:.2f} ms")
        res["reuse"] = reuse

        # peak RSS: the projection runs in a task process (projection-worker-task), which
        # reports its own peak (getrusage) in the projection_completed line; the consumer's
        # VmHWM is read just before stopping it.  The worker's peak is the larger.
        res["ours"]["consumer_vmhwm_kb"] = proc_status_kb(worker.proc.pid, "VmHWM")
        res["ours"]["task_peak_rss_kb"] = int(ev.get("peak_rss_kb") or 0)
        res["ours"]["vmhwm_kb"] = max(res["ours"]["consumer_vmhwm_kb"], res["ours"]["task_peak_rss_kb"])
        res["ours"]["vmrss_end_kb"] = proc_status_kb(worker.proc.pid, "VmRSS")
        worker.stop()
        res["ours"]["exit_code"] = worker.proc.returncode
        levels = {}
        for e in worker.events():
            levels[e.get("level", "?")] = levels.get(e.get("level", "?"), 0) + 1
        res["ours"]["log_levels"] = levels
        res["ours"]["log_problems"] = [e for e in worker.events() if e.get("level") in ("warning", "error")
                                      or e.get("event") == "__non_json__"][:20]
        shutil.copy(worker.log_path, os.path.join(tmp, "worker-kept.log"))
        try:
            os.makedirs(OUT, exist_ok=True)
            shutil.copy(worker.log_path, os.path.join(OUT, "worker.log"))
        except OSError:
            pass
        log(f"ours: worker VmHWM {res['ours']['vmhwm_kb']} KiB = "
            f"{res['ours']['vmhwm_kb'] * 1024 / raw_bytes:.2f} x the raw matrix ({raw_bytes / 1e6:.0f} MB)")

        # -- 4. Python
        if not args.skip_python:
            pdata = os.path.join(tmp, "data-python")
            prun = str(uuid.uuid4())
            b0 = standin_scroll_bytes(surl)
            log("python: bench/e2e/python_ref.py")
            t0 = time.perf_counter()
            nice = ["nice", "-n", str(args.python_nice)] if args.python_nice else []
            p = subprocess.Popen([*nice, PY, os.path.join(HERE, "python_ref.py"), "--url", surl, "--collection",
                                  COLLECTION, "--collection-id", collection_id, "--run-id", prun, "--data-dir",
                                  pdata, "--total-count", str(n), "--reducer", args.reducer],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            children["python"] = p
            cleanup.push("python", lambda: p.poll() is None and (p.kill(), p.wait()))
            try:
                pout, perr = p.communicate(timeout=args.python_timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                res["python"] = {"timeout_s": args.python_timeout}
                log(f"python: did not finish in {args.python_timeout} s")
            else:
                wall = time.perf_counter() - t0
                if p.returncode != 0:
                    raise RuntimeError("python_ref failed: " + perr[-3000:])
                py = json.loads(pout.strip().splitlines()[-1])
                py["process_wall_s"] = wall
                py["served_bytes"] = standin_scroll_bytes(surl) - b0
                res["python"] = py
                log(f"python: {py['total_s']:.1f} s (+{py['startup_s']:.1f} s imports), parse "
                    f"{py['bytes'] / (py['loads_s'] + py['arrays_s']) / 1e6:.0f} MB/s, VmHWM {py['vmhwm_kb']} KiB")
                ours_dir = os.path.join(data_dir, "semantik/projections", collection_id, run)
                res["agreement"] = compare_outputs(ours_dir, py["run_dir"], args.reducer)
                if args.data == "clusters":
                    res["quality"] = compare_quality(ours_dir, py["run_dir"], vectors, dim, args.reducer)
                    log(f"quality: {res['quality']}")
                log(f"agreement: {res['agreement']}")
        res["loadavg_after"] = os.getloadavg()
        res["scroll_bytes"] = scroll_bytes
        res["raw_matrix_bytes"] = raw_bytes
        res["rows"] = rows
    finally:
        cleanup.run()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=2, default=str)
    md = render(res)
    print(md)
    if not args.no_write:
        write_results(md)


def cluster_data(n, dim):
    """The matrix cell "broad" of bench/compute/matrix.py at n x dim (same generator and seed)."""
    sys.path.insert(0, os.path.join(REPO, "bench", "compute"))
    from matrix import synthetic

    return synthetic("broad", n, dim)[0]


def compare_quality(ours_dir, py_dir, vectors, dim, reducer):
    """Trustworthiness and 10-NN cluster accuracy of both layouts, as matrix.py scores them
    (the rows of both are the first n points in scroll order, the matrix's rows)."""
    import numpy as np

    sys.path.insert(0, os.path.join(REPO, "bench", "compute"))
    from matrix import STRUCTURES, scores, synthetic

    x = np.fromfile(vectors, dtype="<f4").reshape(-1, dim)
    labels = synthetic("broad", len(x), dim)[1]
    out = {"clusters": STRUCTURES["broad"][0]}
    for side, d in (("ours", ours_dir), ("python", py_dir)):
        y = np.stack([np.fromfile(os.path.join(d, f), "<f4") for f in ("x.f32.bin", "y.f32.bin")], axis=1)
        out[side] = scores(x[:len(y)], y, labels[:len(y)], reducer, 5000)
    return out


def compare_outputs(ours_dir, py_dir, reducer="pca"):
    """Same ids and categories; for PCA x/y and the singular values against each other."""
    import numpy as np

    out = {}
    for name, dt in (("ids.i32.bin", "<i4"), ("cat.u8.bin", "u1")):
        a, b = np.fromfile(os.path.join(ours_dir, name), dt), np.fromfile(os.path.join(py_dir, name), dt)
        out[name] = bool(a.shape == b.shape and (a == b).all())
    mo = json.load(open(os.path.join(ours_dir, "meta.json")))
    mp = json.load(open(os.path.join(py_dir, "meta.json")))
    out["legend_equal"] = mo["legend"] == mp["legend"]
    out["category_counts_equal"] = mo["category_counts"] == mp["category_counts"]
    out["reducer_used"] = [mo.get("reducer_used"), mp.get("reducer_used")]
    if reducer != "pca":
        return out
    out["singular_values_rel"] = float(np.max(np.abs(np.array(mo["singular_values"]) - mp["singular_values"])
                                              / np.abs(mp["singular_values"])))
    for name in ("x.f32.bin", "y.f32.bin"):
        a, b = np.fromfile(os.path.join(ours_dir, name), "<f4"), np.fromfile(os.path.join(py_dir, name), "<f4")
        sign = 1.0 if float(np.dot(a, b)) >= 0 else -1.0
        out[name + "_rel"] = float(np.max(np.abs(a - sign * b)) / max(1e-30, float(np.max(np.abs(b)))))
    return out


def fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


def render(r):
    n, dim = r["args"]["n"], r["args"]["dim"]
    o, py, ru = r.get("ours", {}), r.get("python", {}), r.get("reuse", {})
    raw = r.get("raw_matrix_bytes", n * dim * 4)
    sb = r.get("scroll_bytes", 0)
    m = r["machine"]
    wb = r.get("worker_binary", {})
    reducer = r["args"].get("reducer", "pca")
    lines = [f"## {reducer.upper()}, {n} x {dim}: run of {r['date']} (repository HEAD {r['git']}; worker binary built {wb.get('built', '?')} "
             f"from the working tree of that time)", "",
             f"Machine: {m['nproc']} cores, {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}; "
             f"/usr/bin/python3 {m['python']}, numpy {r['numpy'][0]} ({r['numpy'][1]}); the worker links OpenBLAS + LAPACKE. "
             f"Load average before/after: {' '.join(f'{x:.2f}' for x in r['loadavg_before'])} / "
             f"{' '.join(f'{x:.2f}' for x in r.get('loadavg_after', []))}.", "",
             "```sh", r["command"], "```", "",
             f"Data: {r.get('rows', n)} points x {dim} float32 from one stand-in ({r['standin']['spec']}, "
             f"pages cached), {sb / 1e6:.1f} MB of scroll JSON per full scroll; raw matrix n*dim*4 = "
             f"{raw / 1e6:.1f} MB.", ""]
    ours_total = o.get("send_to_result_s")
    py_total = py.get("total_s")
    fw = o.get("fetch_window") or {}
    py_parse_s = (py.get("loads_s", 0) + py.get("arrays_s", 0)) or None
    py_parse = sb / py_parse_s / 1e6 if py_parse_s else None
    ours_fetch_mbs = sb / fw["upper_s"] / 1e6 if fw.get("upper_s") else None
    ours_fetch_cpu_mbs = sb / fw["cpu_s"] / 1e6 if fw.get("cpu_s") else None
    ours_lb = sb / ours_total / 1e6 if ours_total else None
    cs = r.get("c_scroll", {})
    ours_rss = o.get("vmhwm_kb", 0) * 1024
    py_rss = py.get("vmhwm_kb", 0) * 1024
    lines += ["| measure | ours (C worker) | Python path | ratio |", "| --- | --- | --- | --- |"]
    lines.append(f"| end to end, s (ours: Celery send → result; Python: first request → files written) | "
                 f"{fmt(ours_total)} | {fmt(py_total)} | "
                 f"{fmt(py_total / ours_total if ours_total and py_total else None, '.1f')}× faster |")
    lines.append(f"| CPU seconds of the process for that | {fmt(o.get('cpu_s'))} | {fmt(py.get('cpu_s'))} | "
                 f"{fmt(py['cpu_s'] / o['cpu_s'] if py.get('cpu_s') and o.get('cpu_s') else None, '.1f')}× less |")
    lines.append(f"| fetch (scroll + parse [+ categories for Python]), s | {fmt(fw.get('upper_s'))} (window at the "
                 f"stand-in, ±{r['args']['poll_s']} s) | {fmt(py.get('fetch_s'))} | "
                 f"{fmt(py['fetch_s'] / fw['upper_s'] if fw.get('upper_s') and py.get('fetch_s') else None, '.1f')}× |")
    lines.append(f"| scroll JSON MB/s during the fetch (wall) | {fmt(ours_fetch_mbs, '.0f')} | "
                 f"{fmt(sb / py['fetch_s'] / 1e6 if py.get('fetch_s') else None, '.0f')} | |")
    lines.append(f"| parse MB/s per core (ours: bytes / worker CPU s in the fetch window; Python: bytes / "
                 f"(json.loads + asarray) s) | {fmt(ours_fetch_cpu_mbs, '.0f')} | {fmt(py_parse, '.0f')} | "
                 f"{fmt(ours_fetch_cpu_mbs / py_parse if ours_fetch_cpu_mbs and py_parse else None, '.1f')}× |")
    pm = r.get("parse_memory", {})
    if pm.get("c_parse") or pm.get("python"):
        cpm = pm.get("c_chunked", pm.get("c_parse", {})).get("median_mb_per_s")
        ppm = pm.get("python", {}).get("median_mb_per_s")
        lines.append(f"| parse from memory, one {pm['page_bytes'] / 1e6:.1f} MB page, median MB/s (C: chunked 16 KiB "
                     f"feed as from libcurl; whole-buffer {fmt(pm.get('c_parse', {}).get('median_mb_per_s'), '.0f')}; "
                     f"Python: json.loads + asarray) | {fmt(cpm, '.0f')} | {fmt(ppm, '.0f')} | "
                     f"{fmt(cpm / ppm if cpm and ppm else None, '.1f')}× |")
    if cs:
        lines.append(f"| C client scroll+parse alone (qdrant_scroll_tool, wall) MB/s | {fmt(cs['mb_per_s'], '.0f')} "
                     f"({fmt(cs['wall_s'])} s) | | |")
    lines.append(f"| lower bound: scroll MB / whole task s | {fmt(ours_lb, '.0f')} | "
                 f"{fmt(sb / py_total / 1e6 if py_total else None, '.0f')} | |")
    lines.append(f"| peak RSS (VmHWM), MB | {fmt(ours_rss / 1e6, '.0f')} | {fmt(py_rss / 1e6, '.0f')} "
                 f"(ru_maxrss {fmt(py.get('ru_maxrss_kb', 0) * 1024 / 1e6, '.0f')}) | "
                 f"{fmt(py_rss / ours_rss if ours_rss and py_rss else None, '.1f')}× less |")
    lines.append(f"| peak RSS / raw matrix | {fmt(ours_rss / raw)} | {fmt(py_rss / raw if py_rss else None)} | |")
    if ru:
        lines.append(f"| reuse decision (`projection_reused` duration_s) p50 / p99 / max, ms | "
                     f"{fmt(ru['p50_ms'])} / {fmt(ru['p99_ms'])} / {fmt(ru['max_ms'])} ({ru['reused_events']} "
                     f"events) | — | |")
        lines.append(f"| reuse decision, first 10 / last 10 reuses, p50 ms | {fmt(ru['first10_p50_ms'])} / "
                     f"{fmt(ru['last10_p50_ms'])} | — | |")
        lines.append(f"| reuse path, pipelined {ru['count']} tasks sent, {ru['answered']} answered"
                     f"{'' if ru['finished'] else ' before the %.0f s budget ran out' % ru['budget_s']}: tasks/s | "
                     f"{fmt(ru['tasks_per_s'], '.1f')} ({fmt(ru['wall_s'])} s) | — | |")
        if ru.get("sequential"):
            s = ru["sequential"]
            lines.append(f"| reuse round trip, one at a time ({s['count']}): p50 / p99 ms | {fmt(s['p50_ms'])} / "
                         f"{fmt(s['p99_ms'])} | — | |")
    lines.append(f"| stand-in serving alone (raw keep-alive fetch, no parse) | "
                 f"{fmt(r['standin']['serve']['mb_per_s'], '.0f')} MB/s ({fmt(r['standin']['serve']['seconds'])} s) "
                 f"| | |")
    lines.append("")
    if py:
        lines.append(f"Python steps, s: http {fmt(py.get('http_s'))}, json.loads {fmt(py.get('loads_s'))}, asarray "
                     f"{fmt(py.get('arrays_s'))}, categories {fmt(py.get('categories_s'))}, np.stack "
                     f"{fmt(py.get('stack_s'))}, {reducer} {fmt(py.get(reducer + '_s'))}, write {fmt(py.get('write_s'))}; "
                     f"imports {fmt(py.get('startup_s'))} (not counted).")
        lines.append("")
    if r.get("agreement"):
        lines.append(f"Outputs compared: {json.dumps(r['agreement'])}")
        lines.append("")
    q = r.get("quality")
    if q:
        lines.append(f"Quality (trustworthiness k = 10 on a 5,000-point sample, {METRIC_NOTE[reducer]}; 10-NN accuracy "
                     f"of the {q['clusters']} generating clusters' ids over every point): ours "
                     f"{q['ours']['trust']:.4f} / {q['ours']['acc']:.4f}, Python path {q['python']['trust']:.4f} / "
                     f"{q['python']['acc']:.4f}.")
        lines.append("")
    verdict = []
    if ours_total and py_total:
        sp, goal = py_total / ours_total, T_SPEEDUP[reducer]
        verdict.append(f"- ≥ {goal:.0f}× faster end to end: {sp:.1f}× — **{'met' if sp >= goal else 'NOT met'}**")
    pm_c = (r.get("parse_memory", {}).get("c_chunked") or {}).get("median_mb_per_s")
    if pm_c or ours_fetch_cpu_mbs:
        best = pm_c if pm_c else ours_fetch_cpu_mbs
        verdict.append(f"- parse ≥ {T_PARSE_MBS:.0f} MB/s per core: {fmt(pm_c, '.0f')} MB/s parsing from memory (one "
                       f"thread); inside the worker {fmt(ours_fetch_cpu_mbs, '.0f')} MB per worker CPU-second over the "
                       f"fetch window (HTTP receive included), wall {fmt(ours_fetch_mbs, '.0f')} MB/s — "
                       f"**{'met' if best >= T_PARSE_MBS else 'NOT met'}** (judged on the from-memory number)")
    if ours_rss:
        q = ours_rss / raw
        verdict.append(f"- peak RSS ≤ {T_RSS_RATIO}× raw matrix: {q:.2f}× — **{'met' if q <= T_RSS_RATIO else 'NOT met'}**")
    if ru:
        verdict.append(f"- reuse decision ≤ {T_REUSE_P99_MS:.0f} ms p99 over {ru['reused_events']} reuses: "
                       f"{ru['p99_ms']:.2f} ms — **{'met' if ru['p99_ms'] <= T_REUSE_P99_MS else 'NOT met'}**")
    lines += [f"Targets (issue {16 if reducer == 'umap' else 3}):", ""] + verdict + [""]
    return "\n".join(lines)


def write_results(md):
    page, path = os.path.join(HERE, "RESULTS.md"), os.path.join(OUT, "RESULTS.md")
    notes = ""
    if os.path.exists(page):
        text = open(page).read()
        if NOTES_MARKER in text:
            notes = text.split(NOTES_MARKER, 1)[1]
    head = ("# End-to-end benchmark (issue 3): projection-worker vs the Python task\n\n"
            "Generated by `bench/e2e/run.py` (see its docstring for what is measured and how); "
            "the notes below the marker are written by hand and kept across runs.\n\n")
    os.makedirs(OUT, exist_ok=True)
    with open(path, "w") as fh:
        fh.write(head + md + "\n" + NOTES_MARKER + notes)


if __name__ == "__main__":
    main()
