#!/usr/bin/python3
"""run.py - operating the worker the Celery way (issue 14): what events and remote
control cost at idle, how fast `revoke --terminate` stops a projection, and whether
`inspect` is answered while a 200k x 768 projection computes.

One command.  It starts its own RabbitMQ + PostgreSQL (tests/harness/services.sh) and a
Qdrant stand-in generating n x dim points (tests/qdrant_standin --generate), and stops
them on the way out.

  1. idle: projection-worker run -E (task events, worker heartbeats every 2 s, pidbox
     consumer, mingle) left alone for --idle-s after a 5 s settle: CPU seconds of the
     process over the window (/proc utime+stime) -> % of one core, VmRSS at the end and
     VmHWM.  The same for the Python reference, `celery worker -P solo -c 1 -E` (with
     its default heartbeat, gossip and mingle), against the same broker.
  2. burst: a 200k x 768 PCA projection (config {"force": true}: computed, never reused;
     one untimed run first renders the stand-in's page cache) is sent; once it has started, --inspects
     `inspect` calls (ping and stats alternating, app.control.inspect with the worker as
     destination, 5 s timeout each) are made one after the other from this process.
     Reports how many were answered, their latency p50/p99/max, how many of them were
     answered while the task was still running, and the projection's wall time beside
     one run of the same projection without the burst.
  3. terminate: --terminates projections of the same collection, each revoked with
     terminate=True at a different delay after task-started (so different phases are
     hit): the time from sending the revoke to (a) the REVOKED result at the client and
     (b) the task process gone from /proc, the run's status and whether its artifacts
     directory exists afterwards.

Writes bench/out/operate/results.json; the RESULTS.md beside this script is written by
hand from it.

  /usr/bin/python3 bench/operate/run.py [--n 200000] [--dim 768] [--idle-s 60]
      [--inspects 100] [--terminates 3] [--build-dir /tmp/build-control]
"""
import argparse
import datetime
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
_spec = importlib.util.spec_from_file_location("e2e_run", os.path.join(REPO, "bench", "e2e", "run.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)  # its helpers: services, psql, stand-in, /proc readers

PY = "/usr/bin/python3"
OUT = os.path.join(REPO, "bench", "out", "operate")
NODE = "bench@operate"
COLLECTION = "bench_vecs"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FORCE = '{"force": true}'  # every run computes (no reuse of the previous run's artifacts)
log = e2e.log


def own_cpu_s(pid):
    """utime + stime of the process itself (threads included, children not)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def measure_idle(pid, settle_s, idle_s):
    time.sleep(settle_s)
    c0, t0 = own_cpu_s(pid), time.monotonic()
    time.sleep(idle_s)
    c1, t1 = own_cpu_s(pid), time.monotonic()
    return {"cpu_pct": 100.0 * (c1 - c0) / (t1 - t0), "cpu_s": c1 - c0, "window_s": t1 - t0,
            "rss_kib": e2e.proc_status_kb(pid, "VmRSS"), "hwm_kib": e2e.proc_status_kb(pid, "VmHWM")}


class Ours:
    def __init__(self, binary, queue, env, log_path, *extra):
        self.log_path = log_path
        self.fh = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "run", "-Q", queue, "-c", "1", "-n", NODE, "-E", *extra],
                                     stdout=self.fh, stderr=subprocess.STDOUT, env=env)

    def has(self, event, **fields):
        with open(self.log_path) as fh:
            for line in fh:
                if line.startswith("{"):
                    e = json.loads(line)
                    if e.get("event") == event and all(e.get(k) == v for k, v in fields.items()):
                        return e
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.fh.close()


def python_idle(broker, tmp, settle_s, idle_s):
    q = "pyidle"
    proc = subprocess.Popen([PY, "-m", "celery", "-b", broker, "worker", "-P", "solo", "-c", "1", "-E", "-Q", q,
                             "-n", "pyref@operate", "--loglevel", "WARNING"], cwd=tmp,
                            stdout=open(os.path.join(tmp, "pyidle.log"), "w"), stderr=subprocess.STDOUT)
    try:
        return measure_idle(proc.pid, settle_s + 5, idle_s)
    finally:
        proc.terminate()
        proc.wait(60)


def inspect_burst(app, count, task_done):
    lat, answered, during = [], 0, 0
    for i in range(count):
        method = "ping" if i % 2 == 0 else "stats"
        t0 = time.perf_counter()
        reply = getattr(app.control.inspect(destination=[NODE], timeout=5), method)()
        lat.append(time.perf_counter() - t0)
        if reply and NODE in reply:
            answered += 1
            during += 0 if task_done() else 1
    lat.sort()
    return {"sent": count, "answered": answered, "answered_while_running": during,
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max_ms": 1000 * lat[-1], "total_s": sum(lat)}


def run_projection(app, db_url, collection_id, queue, worker_pid, burst=0):
    run = e2e.create_runs(db_url, collection_id, 1, FORCE)[0]
    t0 = time.perf_counter()
    res = app.send_task("webui.tasks.compute_projection", args=[run], queue=queue)
    out = {}
    if burst:
        e2e.wait_for(lambda: children(worker_pid) or res.ready(), 120, "task process")
        out["burst"] = inspect_burst(app, burst, res.ready)
    value = res.get(timeout=1800)
    out["wall_s"] = time.perf_counter() - t0
    out["status"] = value.get("status") if isinstance(value, dict) else value
    return out


def terminate_once(app, worker, db_url, collection_id, data_dir, queue, delay_s):
    run = e2e.create_runs(db_url, collection_id, 1, FORCE)[0]
    res = app.send_task("webui.tasks.compute_projection", args=[run], queue=queue)
    e2e.wait_for(lambda: children(worker.proc.pid), 60, "task process")
    time.sleep(delay_s)
    phase = e2e.psql(db_url, f"SELECT meta->'progress'->>'phase' FROM projection_runs WHERE uuid = '{run}'")
    t0 = time.perf_counter()
    app.control.revoke(res.id, terminate=True, destination=[NODE])
    gone = {}

    def watch():
        while children(worker.proc.pid):
            time.sleep(0.005)
        gone["s"] = time.perf_counter() - t0

    th = threading.Thread(target=watch)
    th.start()
    try:
        res.get(timeout=60)
        outcome = "SUCCESS (finished before the revoke)"
    except Exception as exc:  # noqa: BLE001 - Celery's TaskRevokedError
        outcome = f"{type(exc).__name__}({exc})"
    result_s = time.perf_counter() - t0
    th.join(60)
    status = e2e.psql(db_url, f"SELECT status FROM projection_runs WHERE uuid = '{run}'")
    art = os.path.join(data_dir, "semantik/projections", collection_id, run)
    return {"delay_s": delay_s, "phase_at_revoke": phase or None, "result_s": result_s,
            "process_gone_s": gone.get("s"), "outcome": outcome, "run_status": status,
            "artifacts_left": os.path.exists(art)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--pool", type=int, default=2000, help="stand-in generator pool (distinct vectors)")
    ap.add_argument("--idle-s", type=float, default=60)
    ap.add_argument("--inspects", type=int, default=100)
    ap.add_argument("--terminates", type=int, default=3)
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    args = ap.parse_args()

    def on_signal(signo, _frame):
        raise KeyboardInterrupt(f"signal {signo}")

    signal.signal(signal.SIGTERM, on_signal)
    binary = os.path.join(args.build_dir, "worker/projection-worker")
    cleanup = e2e.Cleanup()
    tmp = e2e.services_tmpdir("pw-operate-")
    cleanup.push("tmp", lambda: shutil.rmtree(tmp, ignore_errors=True))
    res = {"command": "/usr/bin/python3 bench/operate/run.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
           "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "machine": e2e.machine_info(), "loadavg_before": os.getloadavg(),
           "git": subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()}
    try:
        state = os.path.join(tmp, "services")
        log("starting RabbitMQ + PostgreSQL")
        cleanup.push("services", lambda: subprocess.run(["bash", e2e.SERVICES, "stop", state],
                                                        capture_output=True, timeout=180))
        out = subprocess.run(["bash", e2e.SERVICES, "start", state, "all"], capture_output=True, text=True,
                             timeout=300)
        if out.returncode:
            raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
        senv = e2e.read_env_file(os.path.join(state, "services.env"))
        broker, admin = senv["CELERY_BROKER_URL"], senv["DATABASE_URL"]
        db = "pw_op_" + uuid.uuid4().hex[:8]
        e2e.psql(admin, f"CREATE DATABASE {db}")
        db_url = admin.rsplit("/", 1)[0] + "/" + db
        subprocess.run([binary, "migrate", "--database-url", db_url], check=True, capture_output=True)
        collection_id = str(uuid.uuid4())
        e2e.psql(db_url, f"""INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model,
                             vector_count) VALUES ('{collection_id}', 'bench', 1, '{COLLECTION}', 'm', {args.n})""")
        port_file = os.path.join(tmp, "standin.port")
        spec = f"n={args.n},dim={args.dim},seed=1,pool={min(args.pool, args.n)},payload=1"
        standin = subprocess.Popen([PY, e2e.STANDIN, "--collection", COLLECTION, "--generate", spec,
                                    "--cache-pages", "--port", "0", "--port-file", port_file],
                                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "standin.log"), "w"))
        cleanup.push("stand-in", lambda: (standin.terminate(), standin.wait(30)))
        e2e.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 600, "stand-in")
        data_dir = os.path.join(tmp, "data")
        env = dict(os.environ, CELERY_BROKER_URL=broker, DATABASE_URL=db_url, DATA_DIR=data_dir,
                   QDRANT_URL=f"http://127.0.0.1:{int(open(port_file).read())}")
        app = e2e.celery_app(broker)

        log(f"1. idle, ours (-E), {args.idle_s:.0f} s")
        w = Ours(binary, "operate", env, os.path.join(tmp, "worker.log"))
        cleanup.push("worker", w.stop)
        e2e.wait_for(lambda: w.has("broker_connected"), 60, "worker connected")
        res["idle_ours"] = measure_idle(w.proc.pid, 5, args.idle_s)
        log(f"   {res['idle_ours']}")
        if not args.skip_python:
            log(f"   idle, Python celery worker -P solo -E, {args.idle_s:.0f} s")
            res["idle_python"] = python_idle(broker, tmp, 5, args.idle_s)
            log(f"   {res['idle_python']}")

        log("2. projection without, then with the inspect burst (after an untimed warm-up run)")
        res["projection_warmup"] = run_projection(app, db_url, collection_id, "operate", w.proc.pid)
        res["projection_alone"] = run_projection(app, db_url, collection_id, "operate", w.proc.pid)
        log(f"   alone: {res['projection_alone']}")
        res["projection_burst"] = run_projection(app, db_url, collection_id, "operate", w.proc.pid, burst=args.inspects)
        log(f"   with burst: {res['projection_burst']}")

        log("3. revoke --terminate")
        delays = [0.3 + 1.2 * i for i in range(args.terminates)]
        res["terminate"] = [terminate_once(app, w, db_url, collection_id, data_dir, "operate", d) for d in delays]
        for t in res["terminate"]:
            log(f"   {t}")
        res["worker_rss_end_kib"] = e2e.proc_status_kb(w.proc.pid, "VmRSS")
    finally:
        cleanup.run()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    log(f"wrote {os.path.join(OUT, 'results.json')}")


if __name__ == "__main__":
    main()
