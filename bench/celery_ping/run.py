#!/usr/bin/python3
"""run.py - celery.ping round-trip benchmark: projection-worker vs the Python Celery 5 worker.

One command, one private RabbitMQ (tests/harness/services.sh), all systems in the same
run against the same broker:

  ours        projection-worker run -c 1 --prefetch-multiplier 4
  py-prefork  celery worker -P prefork -c 1 (the reference deployment)
  py-solo     celery worker -P solo -c 1 (fastest Python configuration)

Python workers run with --without-gossip --without-mingle --without-heartbeat.  Each
system gets its own queue and runs alone: systems take turns, and every round restarts
every worker (rounds are interleaved ours/prefork/solo/ours/... so load from other
processes on the machine hits all systems alike).  Per system and round:

  startup     time from spawn to the first pong (the first ping is queued before the
              worker starts); RSS right after.
  warmup      --warmup sequential pings, then 1 s idle -> idle RSS (VmRSS; prefork:
              parent + children; PSS too, which does not double-count shared pages).
  sequential  --pings round trips, one at a time (send_task, .get()) -> tasks/s, p50/p99.
  pipelined   --pings pings sent by 1 client, then all results collected -> tasks/s;
              again split over --clients client processes (started and connected
              before the clock starts) -> tasks/s.
  peak RSS    VmHWM at the end (summed over processes for prefork).
  (py-solo stalls for ~10 s at a time once a backlog forms: its main loop sits in
  epoll while ready messages wait, for kombu's hub max poll delay of 10 s -- most
  likely deliveries already read into py-amqp's buffer.  --phase-cap cuts such phases
  off and counts what completed.)
  drain       the worker is stopped, --drain-pings pings are queued with reply_to a
              queue nobody reads, a fresh worker starts and the script polls that
              queue's depth: worker + broker throughput with no Python client in the
              loop (the Python client costs ~0.6 ms CPU per round trip by itself, so it
              caps the client-driven modes).

CPU seconds of the worker (all its processes), the client process(es), the RabbitMQ
node and the whole machine (/proc/stat) are sampled around every timed phase, so the
table can say which side limits the rate.

Writes RESULTS.md next to this file (command, date, machine, versions, table, ratios,
verdict against the issue's targets).  Text below the line
`<!-- notes: kept across runs -->` in an existing RESULTS.md is preserved.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)  # pingapp, also for spawned client processes
sys.path.insert(1, os.path.join(REPO, "bench"))
from common import cpu_model_and_mem_kb  # noqa: E402

PY = "/usr/bin/python3"
NOTES_MARKER = "<!-- notes: kept across runs -->"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

SYSTEMS = ("ours", "py-prefork", "py-solo")


# ---- /proc helpers --------------------------------------------------------------------


def descendants(pid):
    """pid and all its living descendants."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pids):
    """utime+stime of the given processes (their own threads, not reaped children)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def mem(pid):
    pids = descendants(pid)
    return {
        "rss_kb": sum(status_kb(p, "VmRSS") for p in pids),
        "hwm_kb": sum(status_kb(p, "VmHWM") for p in pids),
        "pss_kb": sum(pss_kb(p) for p in pids),
        "nproc": len(pids),
    }


def find_beam(rabbit_home):
    """The beam.smp process of our private node (the harness sets -home STATE/rabbit)."""
    want = os.path.abspath(rabbit_home).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and b"beam" in os.path.basename(cmd[0]):
            for i, a in enumerate(cmd[:-1]):
                if a == b"-home" and os.path.abspath(cmd[i + 1]) == want:
                    return int(name)
    return None


class CpuMeter:
    """CPU seconds of worker / clients / broker / machine over one phase."""

    def __init__(self, worker_pid, broker_pid):
        self.worker_pid, self.broker_pid = worker_pid, broker_pid

    def start(self):
        self.t0 = time.perf_counter()
        self.w0 = cpu_s(descendants(self.worker_pid))
        self.b0 = cpu_s([self.broker_pid]) if self.broker_pid else 0.0
        self.m0 = machine_busy_s()

    def stop(self, client_cpu_s):
        wall = time.perf_counter() - self.t0
        w = cpu_s(descendants(self.worker_pid)) - self.w0
        b = (cpu_s([self.broker_pid]) - self.b0) if self.broker_pid else 0.0
        m = machine_busy_s() - self.m0
        pct = lambda s: 100.0 * s / wall if wall > 0 else 0.0  # noqa: E731
        return {
            "worker_cpu_pct": pct(w),
            "client_cpu_pct": pct(client_cpu_s),
            "broker_cpu_pct": pct(b),
            "machine_busy_pct": pct(m),
            "other_cpu_pct": max(0.0, pct(m - w - b - client_cpu_s)),
            "worker_cpu_s": w,
            "client_cpu_s": client_cpu_s,
            "broker_cpu_s": b,
            "wall_s": wall,
        }


# ---- client side ----------------------------------------------------------------------


def ping_app():
    from pingapp import app

    return app


def sequential(app, queue, n, timeout):
    lat = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        r = app.send_task("celery.ping", queue=queue)
        v = r.get(timeout=timeout)
        lat.append(time.perf_counter() - t)
        if v != "pong":
            raise RuntimeError(f"celery.ping returned {v!r}")
    wall = time.perf_counter() - t0
    return n / wall, lat, time.process_time() - c0


def pipelined_batch(app, queue, n, timeout, deadline):
    """Send n pings, then collect the results until `deadline` (perf_counter).

    Returns (t_start, t_sent, t_done, cpu_s, n_collected)."""
    from celery.exceptions import TimeoutError as ResultTimeout

    c0 = time.process_time()
    t0 = time.perf_counter()
    results = [app.send_task("celery.ping", queue=queue) for _ in range(n)]
    t1 = time.perf_counter()
    done = 0
    for r in results:
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        try:
            v = r.get(timeout=min(timeout, left))
        except ResultTimeout:
            break
        if v != "pong":
            raise RuntimeError(f"celery.ping returned {v!r}")
        done += 1
    t2 = time.perf_counter()
    return t0, t1, t2, time.process_time() - c0, done


def client_process(queue, n, timeout, cap_s, barrier, out):
    """Spawned client: connect and warm up (one round trip), wait for the start, run."""
    try:
        app = ping_app()
        if app.send_task("celery.ping", queue=queue).get(timeout=timeout) != "pong":
            raise RuntimeError("warm-up ping failed")
        barrier.wait(timeout=120)
        out.put(("ok",) + pipelined_batch(app, queue, n, timeout, time.perf_counter() + cap_s))
    except Exception as e:  # reported to the parent, which fails the run
        try:
            barrier.abort()
        except Exception:
            pass
        out.put(("error", f"{type(e).__name__}: {e}"))


def pipelined_parallel(queue, total, clients, timeout, cap_s, meter):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # fresh connections; never fork a connected app
    barrier = ctx.Barrier(clients + 1)
    out = ctx.Queue()
    shares = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    procs = [
        ctx.Process(target=client_process, args=(queue, s, timeout, cap_s, barrier, out),
                    daemon=True)
        for s in shares
    ]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=120)
    except Exception:
        pass
    meter.start()
    got = [out.get(timeout=cap_s + timeout + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [g[1] for g in got if g[0] != "ok"]
    if errors:
        raise RuntimeError("pipelined client failed: " + "; ".join(errors))
    t_start = min(g[1] for g in got)
    t_done = max(g[3] for g in got)
    t_sent = max(g[2] for g in got)
    done = sum(g[5] for g in got)
    cpu = meter.stop(sum(g[4] for g in got))
    # The meter started after the barrier; the clients' own timestamps are the measure.
    return done / (t_done - t_start), total / (t_sent - t_start), cpu, done


def purge(app, queue):
    """After a phase was cut off: drop what is still queued so the next phase starts clean."""
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
    time.sleep(0.5)


def pct(values, q):
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ---- workers --------------------------------------------------------------------------


def worker_command(system, args, queue, node):
    if system == "ours":
        return [
            args.worker_bin, "run", "-c", "1", "--prefetch-multiplier", str(args.prefetch),
            "-Q", queue, "-n", node, "-l", "warning",
        ]
    pool = "prefork" if system == "py-prefork" else "solo"
    return [
        PY, "-m", "celery", "-A", "pingapp", "worker", "-P", pool, "-c", "1",
        "--prefetch-multiplier", str(args.prefetch), "-Q", queue, "-n", node,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
    ]


def stop_worker(proc, timeout=20.0):
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed after SIGTERM timeout"


def bench_one(system, rnd, args, env, log_dir, broker_pid):
    app = ping_app()
    queue = f"bench.ping.{system}.r{rnd}"
    node = f"bench-{system}-r{rnd}@{platform.node()}"
    cmd = worker_command(system, args, queue, node)
    log_path = os.path.join(log_dir, f"{system}.r{rnd}.log")
    res = {"system": system, "round": rnd, "cmd": cmd, "log": log_path, "n": args.pings}

    # Queue the first ping before the worker exists: startup = spawn -> first pong.
    first = app.send_task("celery.ping", queue=queue)
    with open(log_path, "wb") as log:
        t_spawn = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
    try:
        if first.get(timeout=60) != "pong":
            raise RuntimeError("first ping did not return pong")
        res["startup_s"] = time.perf_counter() - t_spawn
        res["startup_mem"] = mem(proc.pid)

        sequential(app, queue, args.warmup, args.timeout)
        time.sleep(1.0)
        res["idle_mem"] = mem(proc.pid)

        meter = CpuMeter(proc.pid, broker_pid)
        meter.start()
        rate, lat, ccpu = sequential(app, queue, args.pings, args.timeout)
        res["seq"] = {
            "rate": rate,
            "p50_ms": 1e3 * pct(lat, 0.50),
            "p99_ms": 1e3 * pct(lat, 0.99),
            "mean_ms": 1e3 * statistics.fmean(lat),
            "cpu": meter.stop(ccpu),
        }

        meter.start()
        t0, t1, t2, ccpu, done = pipelined_batch(app, queue, args.pings, args.timeout,
                                                 time.perf_counter() + args.phase_cap)
        res["pipe1"] = {
            "rate": done / (t2 - t0),
            "send_rate": args.pings / (t1 - t0),
            "cpu": meter.stop(ccpu),
            "done": done,
        }
        if done < args.pings:
            purge(app, queue)

        rate, send_rate, cpu, done = pipelined_parallel(
            queue, args.pings, args.clients, args.timeout, args.phase_cap,
            CpuMeter(proc.pid, broker_pid)
        )
        res["pipeN"] = {"rate": rate, "send_rate": send_rate, "cpu": cpu, "done": done}
        if done < args.pings:
            purge(app, queue)

        res["end_mem"] = mem(proc.pid)
        if proc.poll() is not None:
            raise RuntimeError(f"{system} worker exited early with {proc.returncode}")
    finally:
        res["exit"] = stop_worker(proc)
    with open(log_path, "rb") as f:
        res["log_tail"] = f.read().decode("utf-8", "replace")[-4000:]
    res["drain"] = drain_phase(system, rnd, args, env, log_dir, broker_pid)
    return res


def drain_phase(system, rnd, args, env, log_dir, broker_pid):
    """Worker capacity without a Python client in the loop.

    With no worker running, queue --pings pings whose reply_to is a plain queue nobody
    consumes; start a fresh worker and poll that queue's depth (passive queue.declare
    every 2 ms) until every result is there.  Rate = results / (last - first result)."""
    app = ping_app()
    queue = f"bench.ping.{system}.r{rnd}.drain"
    replies = queue + ".replies"
    n = args.drain_pings
    node = f"bench-{system}-drain-r{rnd}@{platform.node()}"
    cmd = worker_command(system, args, queue, node)
    log_path = os.path.join(log_dir, f"{system}.r{rnd}.drain.log")
    out = {"cmd": cmd, "log": log_path}
    with app.connection_for_write() as conn:
        ch = conn.default_channel
        ch.queue_declare(queue=replies, durable=False, auto_delete=False)
        for _ in range(n):
            app.send_task("celery.ping", queue=queue, reply_to=replies)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
        try:
            meter = CpuMeter(proc.pid, broker_pid)
            t_spawn = time.perf_counter()
            t_first = n_first = None
            last_depth, t_change, max_pause, status = 0, t_spawn, 0.0, "complete"
            paused = 0.0  # sum of pauses > 0.5 s between results
            while True:
                depth = ch.queue_declare(queue=replies, passive=True).message_count
                now = time.perf_counter()
                if depth > 0 and t_first is None:
                    t_first, n_first = now, depth
                    meter.start()
                    c0 = time.process_time()
                if depth != last_depth:
                    if t_first is not None and last_depth > 0:
                        max_pause = max(max_pause, now - t_change)
                        if now - t_change > 0.5:
                            paused += now - t_change
                    last_depth, t_change = depth, now
                if depth >= n:
                    break
                if t_first is None and now - t_spawn > args.timeout * 2:
                    raise RuntimeError(f"{system}: no result within {args.timeout * 2:.0f} s")
                if t_first is not None and now - t_first > args.phase_cap:
                    max_pause = max(max_pause, now - t_change)
                    if now - t_change > 0.5:
                        paused += now - t_change
                    status = f"cut off after {args.phase_cap:.0f} s: {depth}/{n} results"
                    break
                time.sleep(0.002)
            cpu = meter.stop(time.process_time() - c0)
            out["status"] = status
            out["max_pause_s"] = max_pause
            out["rate"] = (depth - n_first) / (now - t_first)
            out["active_rate"] = (depth - n_first) / max(1e-3, now - t_first - paused)
            out["cpu"] = cpu
            out["worker_us_per_task"] = 1e6 * cpu["worker_cpu_s"] / max(1, depth - n_first)
            out["hwm_kb"] = mem(proc.pid)["hwm_kb"]
        finally:
            out["exit"] = stop_worker(proc)
            ch.queue_delete(queue=replies)
            ch.queue_delete(queue=queue)
    return out


# ---- environment ----------------------------------------------------------------------


def sh(cmd, **kw):
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)


def machine_info(worker_bin):
    model, mem_kb = cpu_model_and_mem_kb("?")
    memtotal = mem_kb // 1024
    import amqp
    import celery
    import kombu

    rabbit = sh(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]).stdout.strip()
    rabbitmq_c = sh(["dpkg-query", "-W", "-f=${Version}", "librabbitmq4"]).stdout.strip()
    git = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = sh(["git", "-C", REPO, "status", "--porcelain", "-uno", "--", ".", ":!bench",
                ":!docs"])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "mem_mib": memtotal,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "amqp": amqp.__version__,
        "rabbitmq": rabbit,
        "rabbitmq_c": rabbitmq_c,
        "git": git + (" + uncommitted source changes" if dirty.stdout.strip() else ""),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "bin_mtime": (datetime.datetime.fromtimestamp(os.path.getmtime(worker_bin),
                                                      datetime.timezone.utc)
                      .strftime("%H:%M:%S UTC") if os.path.exists(worker_bin) else "?"),
    }


def build_worker(build_dir):
    # -Wno-error=maybe-uninitialized: at e366fd0, GCC 12 -O2 flagged run_id in
    # worker/tasks.c (a false positive) and -Werror failed the Release build; fixed in
    # 5f72477, kept so older trees still build.  It changes no generated code.
    cfg = ["cmake", "-S", REPO, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
           "-DCMAKE_C_FLAGS=-Wno-error=maybe-uninitialized"]
    subprocess.run(cfg, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build_dir, "-j2", "--target", "projection-worker",
                    "--target", "projection-worker-task"],
                   check=True, stdout=subprocess.DEVNULL)


# ---- report ---------------------------------------------------------------------------


def med(vals):
    return statistics.median(vals) if vals else float("nan")


def fmt_spread(vals, nd=0):
    if not vals:
        return "-"
    m = med(vals)
    if len(vals) == 1:
        return f"{m:.{nd}f}"
    return f"{m:.{nd}f} ({min(vals):.{nd}f}–{max(vals):.{nd}f})"


def collect(results, system, getter):
    out = []
    for r in results:
        if r["system"] == system and "end_mem" in r:
            out.append(getter(r))
    return out


METRICS = [
    ("sequential tasks/s", lambda r: r["seq"]["rate"], 0, "higher"),
    ("sequential p50 ms", lambda r: r["seq"]["p50_ms"], 2, "lower"),
    ("sequential p99 ms", lambda r: r["seq"]["p99_ms"], 2, "lower"),
    ("pipelined 1 client tasks/s", lambda r: r["pipe1"]["rate"], 0, "higher"),
    ("pipelined N clients tasks/s", lambda r: r["pipeN"]["rate"], 0, "higher"),
    ("backlog drain tasks/s (no client in the loop)", lambda r: r["drain"]["rate"], 0, "higher"),
    ("backlog drain tasks/s, pauses > 0.5 s excluded", lambda r: r["drain"]["active_rate"], 0,
     "higher"),
    ("longest pause during drain s", lambda r: r["drain"]["max_pause_s"], 2, "-"),
    ("worker CPU µs/task, sequential", lambda r: 1e6 * r["seq"]["cpu"]["worker_cpu_s"] / r["n"],
     0, "lower"),
    ("worker CPU µs/task, pipelined N", lambda r: 1e6 * r["pipeN"]["cpu"]["worker_cpu_s"] / r["n"],
     0, "lower"),
    ("worker CPU µs/task, drain", lambda r: r["drain"]["worker_us_per_task"], 0, "lower"),
    ("client CPU µs/task, sequential", lambda r: 1e6 * r["seq"]["cpu"]["client_cpu_s"] / r["n"],
     0, "-"),
    ("startup to first pong s", lambda r: r["startup_s"], 2, "lower"),
    ("RSS after startup MiB", lambda r: r["startup_mem"]["rss_kb"] / 1024, 1, "lower"),
    ("idle RSS MiB", lambda r: r["idle_mem"]["rss_kb"] / 1024, 1, "lower"),
    ("idle PSS MiB", lambda r: r["idle_mem"]["pss_kb"] / 1024, 1, "lower"),
    ("peak RSS (VmHWM) MiB", lambda r: r["end_mem"]["hwm_kb"] / 1024, 1, "lower"),
    ("peak RSS during drain MiB", lambda r: r["drain"]["hwm_kb"] / 1024, 1, "lower"),
    ("processes", lambda r: r["idle_mem"]["nproc"], 0, "-"),
    ("phases cut off at --phase-cap (pipe1/pipeN/drain)",
     lambda r: (r["pipe1"]["done"] < r["n"]) + (r["pipeN"]["done"] < r["n"])
     + (r["drain"]["status"] != "complete"), 0, "-"),
]

CPU_PHASES = [("sequential", "seq"), ("pipelined 1 client", "pipe1"),
              ("pipelined N clients", "pipeN"), ("backlog drain (client only polls)", "drain")]
CPU_COLS = [("worker", "worker_cpu_pct"), ("client(s)", "client_cpu_pct"),
            ("RabbitMQ", "broker_cpu_pct"), ("other procs", "other_cpu_pct"),
            ("machine busy", "machine_busy_pct")]


def render(results, args, info, systems, command, started, elapsed):
    n_rounds = max((r["round"] for r in results), default=0)
    L = []
    L.append("# celery.ping round-trip benchmark: projection-worker vs Python Celery 5 worker\n")
    L.append(f"- command: `{command}`")
    L.append(f"- date: {started} (run took {elapsed:.0f} s)")
    L.append(f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['mem_mib']} MiB RAM, "
             f"Linux {info['kernel']}; load average at start {' '.join(info['loadavg'])} "
             "(the 2 cores are shared with other engineers' builds)")
    L.append(f"- versions: projection-worker: tree at git {info['git']} when the run started, "
             f"binary built {info['bin_mtime']} (Release"
             f"{', rebuilt by this run' if args.build else ''}; rabbitmq-c "
             f"{info['rabbitmq_c']}); Python {info['python']}, celery {info['celery']}, "
             f"kombu {info['kombu']}, py-amqp {info['amqp']}; RabbitMQ {info['rabbitmq']} "
             "(private node from tests/harness/services.sh, 127.0.0.1)")
    L.append(f"- parameters: {args.pings} pings per mode, {args.warmup} warm-up pings, "
             f"{args.drain_pings} queued pings for 'backlog drain', "
             f"{args.clients} client processes for 'pipelined N clients', prefetch multiplier "
             f"{args.prefetch} (qos {args.prefetch}) everywhere, concurrency 1, {n_rounds} "
             "round(s); each round restarts every worker, systems interleaved")
    L.append("- client: Python celery (`send_task('celery.ping', queue=...)`, rpc:// "
             "`AsyncResult.get()`), same as the web UI")
    L.append("")
    L.append("Worker commands:")
    L.append("")
    for s in systems:
        r = next((x for x in results if x["system"] == s), None)
        if r:
            L.append(f"- {s}: `{shlex.join(r['cmd'])}`")
    L.append("")
    L.append("## Results (median over rounds, (min–max) when more than one)\n")
    L.append("| metric | " + " | ".join(systems) + " |")
    L.append("|---|" + "---|" * len(systems))
    for name, get, nd, _ in METRICS:
        if name.startswith("phases cut off"):
            cells = [f"{sum(v)} of {3 * len(v)}" for v in (collect(results, s, get)
                                                            for s in systems)]
        else:
            cells = [fmt_spread(collect(results, s, get), nd) for s in systems]
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("RSS = VmRSS summed over the worker's processes (prefork: parent + child); PSS "
             "counts pages shared between processes once. Idle = after startup, "
             f"{args.warmup} warm-up pings and 1 s idle. Peak = VmHWM at the end of the "
             "round (summed per process for prefork).")
    L.append("")
    py = [s for s in systems if s != "ours"]
    if "ours" in systems and py:
        L.append("## Ratios ours / python (medians)\n")
        L.append("| metric | " + " | ".join(f"ours / {s}" for s in py) + " |")
        L.append("|---|" + "---|" * len(py))
        for name, get, nd, better in METRICS:
            if better == "-":
                continue
            o = med(collect(results, "ours", get))
            cells = []
            for s in py:
                p = med(collect(results, s, get))
                cells.append(f"{o / p:.2f}×" if p else "-")
            L.append(f"| {name} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Where the time goes: CPU % during each timed phase (median; 100 % = one core)\n")
    for title, key in CPU_PHASES:
        L.append(f"**{title}**\n")
        L.append("| system | " + " | ".join(c for c, _ in CPU_COLS) + " |")
        L.append("|---|" + "---|" * len(CPU_COLS))
        for s in systems:
            cells = [fmt_spread(collect(results, s, lambda r, k=k: r[key]["cpu"][k]), 0)
                     for _, k in CPU_COLS]
            L.append(f"| {s} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Targets (issue 2)\n")
    L.extend(verdict(results, systems))
    L.append("")
    return "\n".join(L)


def verdict(results, systems):
    out = []
    if "ours" not in systems:
        return ["(ours not measured)"]
    cut = {
        "sequential": lambda r: False,
        "pipelined N clients": lambda r: r["pipeN"]["done"] < r["n"],
        "backlog drain": lambda r: r["drain"]["status"] != "complete",
        "backlog drain, pauses > 0.5 s excluded": lambda r: False,
    }
    for name, get in [("sequential", lambda r: r["seq"]["rate"]),
                      ("pipelined N clients", lambda r: r["pipeN"]["rate"]),
                      ("backlog drain", lambda r: r["drain"]["rate"]),
                      ("backlog drain, pauses > 0.5 s excluded",
                       lambda r: r["drain"]["active_rate"])]:
        o = med(collect(results, "ours", get))
        for s in [x for x in systems if x != "ours"]:
            p = med(collect(results, s, get))
            ratio = o / p if p else float("nan")
            n_cut = sum(collect(results, s, cut[name]))
            note = (f" — {s} was cut off at the phase cap in {n_cut} of "
                    f"{len(collect(results, s, cut[name]))} rounds (stalled), so this ratio "
                    "overstates ours" if n_cut else "")
            out.append(f"- throughput ≥ 5× Python ({name}, vs {s}): {ratio:.2f}× → "
                       f"**{'met' if ratio >= 5 else 'NOT met'}**{note}")
    idle = collect(results, "ours", lambda r: r["idle_mem"]["rss_kb"])
    if idle:
        worst = max(idle) * 1024
        out.append(f"- idle RSS ≤ 10 MB: ours {med(idle) / 1024:.1f} MiB median, worst "
                   f"{worst / 1e6:.1f} MB (10^6 bytes) → "
                   f"**{'met' if worst <= 10e6 else 'NOT met'}**")
    return out


# ---- main -----------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pings", type=int, default=2000, help="pings per timed mode (default 2000)")
    ap.add_argument("--drain-pings", type=int, default=4000,
                    help="pings queued for the backlog-drain mode (default 4000)")
    ap.add_argument("--phase-cap", type=float, default=12.0,
                    help="cut a pipelined/drain phase off after this many seconds and count "
                         "what completed (default 12; py-solo stalls, see RESULTS.md)")
    ap.add_argument("--warmup", type=int, default=100, help="warm-up pings (default 100)")
    ap.add_argument("--clients", type=int, default=3,
                    help="client processes for the parallel pipelined mode (default 3)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    ap.add_argument("--prefetch", type=int, default=4,
                    help="prefetch multiplier for every worker (default 4, Celery's)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="subset of " + ",".join(SYSTEMS))
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per result .get()")
    ap.add_argument("--worker-bin", default=os.path.join(REPO, "build-bench", "worker",
                                                          "projection-worker"))
    ap.add_argument("--build", action="store_true",
                    help="(re)build the worker into build-bench/ first (Release)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "out", "celery_ping", "RESULTS.md"),
                    help="report file ('-' = print only; default git-ignored bench/out/, copy "
                         "the figures into bench/celery_ping/RESULTS.md by hand)")
    ap.add_argument("--work-dir", default=None, help="state/log dir (default /tmp/...)")
    ap.add_argument("--keep-state", action="store_true", help="keep RabbitMQ's data dir")
    args = ap.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s}")
    command = shlex.join(["/usr/bin/python3", os.path.relpath(os.path.abspath(sys.argv[0]), REPO)]
                         + sys.argv[1:])
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    t_begin = time.perf_counter()

    if args.build:
        build_worker(os.path.dirname(os.path.dirname(args.worker_bin)))
    if "ours" in systems and not os.access(args.worker_bin, os.X_OK):
        sys.exit(f"{args.worker_bin} missing: build it (cd {REPO} && cmake -S . -B build-bench "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build-bench -j2) or pass --build")

    work = args.work_dir or f"/tmp/celery_ping_bench.{os.getpid()}"
    state = os.path.join(work, "state")
    log_dir = os.path.join(work, "logs")
    os.makedirs(log_dir, exist_ok=True)
    harness = os.path.join(REPO, "tests", "harness", "services.sh")

    # SIGTERM/SIGHUP -> exception, so the finally below still stops RabbitMQ.
    def bail(signo, _frame):
        raise KeyboardInterrupt(f"signal {signo}")

    signal.signal(signal.SIGTERM, bail)
    signal.signal(signal.SIGHUP, bail)

    results = []
    try:
        print(f"starting RabbitMQ (state {state}) ...", flush=True)
        subprocess.run(["bash", harness, "start", state, "rabbit"], check=True,
                       stdout=subprocess.DEVNULL)
        env_vals = {}
        with open(os.path.join(state, "services.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env_vals[k] = v
        os.environ["CELERY_BROKER_URL"] = env_vals["CELERY_BROKER_URL"]
        broker_pid = find_beam(os.path.join(state, "rabbit"))
        if not broker_pid:
            print("warning: RabbitMQ's beam process not found; its CPU is counted as 'other'")
        env = dict(os.environ, PYTHONPATH=HERE, PYTHONDONTWRITEBYTECODE="1")
        info = machine_info(args.worker_bin)

        for rnd in range(1, args.rounds + 1):
            for system in systems:
                print(f"round {rnd}/{args.rounds}: {system} ...", end=" ", flush=True)
                r = bench_one(system, rnd, args, env, log_dir, broker_pid)
                results.append(r)
                print(f"seq {r['seq']['rate']:.0f}/s p50 {r['seq']['p50_ms']:.2f} ms, "
                      f"pipe1 {r['pipe1']['rate']:.0f}/s, pipe{args.clients} "
                      f"{r['pipeN']['rate']:.0f}/s, drain {r['drain']['rate']:.0f}/s "
                      f"({r['drain']['status']}, longest pause {r['drain']['max_pause_s']:.2f} s), "
                      "idle RSS "
                      f"{r['idle_mem']['rss_kb'] / 1024:.1f} MiB, exit {r['exit']}/"
                      f"{r['drain']['exit']}", flush=True)
    finally:
        subprocess.run(["bash", harness, "stop", state], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not args.keep_state:
            subprocess.run(["rm", "-rf", state], check=False)
        with open(os.path.join(log_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)

    report = render(results, args, info, systems, command, started,
                    time.perf_counter() - t_begin)
    print()
    print(report)
    for r in results:
        if r["exit"] != 0 or r.get("drain", {}).get("exit") != 0:
            print(f"NOTE: {r['system']} round {r['round']} exited {r['exit']} (drain instance: "
                  f"{r.get('drain', {}).get('exit')}); logs {r['log']}")
    print(f"logs and raw numbers: {log_dir}")
    if args.out != "-":
        notes = ""
        page = os.path.join(HERE, "RESULTS.md")  # the hand-written notes live in the page
        if os.path.exists(page):
            with open(page) as f:
                old = f.read()
            if NOTES_MARKER in old:
                notes = old[old.index(NOTES_MARKER):]
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report + "\n" + (notes or NOTES_MARKER + "\n"))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
