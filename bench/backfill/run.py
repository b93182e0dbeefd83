#!/usr/bin/python3
"""run.py - backfill benchmark (issue 15): `projection-worker backfill` over many small
collections.

One command.  It starts its own RabbitMQ + PostgreSQL (tests/harness/services.sh) unless
--services-env names a running pair, one Qdrant stand-in serving the same --points x --dim
vectors under every collection name starting with "bfb-" (--generate ... --cache-pages),
creates --collections collections in a fresh database (one INSERT ... generate_series),
and then:

  1. compute: for each worker count in --workers (default 1,2,4), that many
     `projection-worker run -c 1` processes on one queue and one timed
     `backfill --all --reducer pca --wait` (the first round plain, the next ones with
     --force so every run is computed again): wall time of the backfill command and
     runs/s = completed runs / wall time.
  2. reuse decisions: `backfill --all --reducer pca --dry-run` over the same collections,
     now all up to date: every collection's decision is the worker's reuse lookup
     (runs_find_reusable).  Decisions/s from the backfill's own JSON lines (its
     backfill_start line, written once the collections are selected, to the last
     collection line: hashing, the one presence query per 1000 collections, the
     per-collection lookups) and from the wall time of the whole command.
  3. planning: the same with a request no run has made yet (--reducer tsne), so every
     collection is hashed, looked up and found stale (would_enqueue); and the non-dry-run
     backfill of case 2, which takes the lock, connects to the broker and enqueues nothing.

Prints a JSON document and the Markdown rows for bench/backfill/RESULTS.md.

  /usr/bin/python3 bench/backfill/run.py [--build-dir build] [--collections 1000]
      [--points 1000] [--dim 384] [--workers 1,2,4] [--services-env FILE]
"""
import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
_spec = importlib.util.spec_from_file_location("e2e_run", os.path.join(REPO, "bench", "e2e", "run.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)  # Cleanup, Worker, psql, read_env_file, wait_for, log

T_REUSE_PER_S = 500.0
T_PLAN_PER_S = 5000.0


def parse_ts(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def backfill(binary, env, *args, timeout=3600):
    t0 = time.monotonic()
    out = subprocess.run([binary, "backfill", *args], capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        raise RuntimeError(f"backfill {args} exited {out.returncode}: {out.stderr[-2000:]}")
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    coll = [e for e in lines if e.get("event") == "backfill_collection"]
    start = [e for e in lines if e.get("event") == "backfill_start"]
    span = parse_ts(coll[-1]["ts"]) - parse_ts(start[0]["ts"]) if coll and start else 0.0
    return {"args": list(args), "wall_s": wall, "summary": summary, "collection_lines": len(coll),
            "start_to_last_collection_s": span}


def setup(args, cleanup, tmp):
    if args.services_env:
        senv = e2e.read_env_file(args.services_env)
    else:
        state = os.path.join(tmp, "services")
        cleanup.push("services", lambda: subprocess.run(["bash", e2e.SERVICES, "stop", state], capture_output=True))
        subprocess.run(["bash", e2e.SERVICES, "start", state], check=True, capture_output=True)
        senv = e2e.read_env_file(os.path.join(state, "services.env"))
    db = f"bfbench_{os.getpid()}"
    admin = senv["DATABASE_URL"]
    url = admin.rsplit("/", 1)[0] + "/" + db
    e2e.psql(admin, f"CREATE DATABASE {db}")
    cleanup.push("database", lambda: e2e.psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
    worker_bin = os.path.join(args.build_dir, "worker", "projection-worker")
    subprocess.run([worker_bin, "migrate", "--database-url", url], check=True, capture_output=True)
    e2e.psql(url, f"""INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model, quantization,
                        chunk_size, chunk_overlap, is_public, created_at, updated_at, status, document_count,
                        vector_count, total_size_bytes, chunks_total_count)
                      SELECT 'bfb-' || lpad(i::text, 5, '0'), 'bfb-' || i, 1, 'bfb-' || lpad(i::text, 5, '0'),
                        'bench-model', 'float16', 1000, 200, false, now(), now(), 'READY', 1, {args.points}, 0, 0
                      FROM generate_series(1, {args.collections}) AS i""")
    port_file = os.path.join(tmp, "standin.port")
    sp = subprocess.Popen([e2e.PY, e2e.STANDIN, "--collection", "bfb-*", "--generate",
                           f"n={args.points},dim={args.dim},seed=1,payload=1", "--cache-pages", "--port", "0",
                           "--port-file", port_file], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cleanup.push("stand-in", lambda: (sp.terminate(), sp.wait(10)))
    e2e.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 30, "stand-in port")
    env = dict(os.environ, DATABASE_URL=url, CELERY_BROKER_URL=senv["CELERY_BROKER_URL"],
               PROJECTION_QUEUE=f"bfbench-{os.getpid()}", DATA_DIR=os.path.join(tmp, "data"),
               QDRANT_URL=f"http://127.0.0.1:{int(open(port_file).read().strip())}")
    os.makedirs(env["DATA_DIR"], exist_ok=True)
    return env, worker_bin


def compute_rounds(args, env, worker_bin, tmp):
    rounds = []
    for i, n in enumerate(int(x) for x in args.workers.split(",")):
        workers = [e2e.Worker(worker_bin, env["PROJECTION_QUEUE"], env, os.path.join(tmp, f"w{n}-{k}.log"), 1)
                   for k in range(n)]
        try:
            for w in workers:
                e2e.wait_for(lambda w=w: w.events("broker_connected"), 60, "worker connected")
            flags = ["--force"] if i else []
            e2e.log(f"compute round: {n} worker process(es), {args.collections} collections {flags}")
            r = backfill(worker_bin, env, "--all", "--reducer", "pca", "--wait", *flags)
        finally:
            for w in workers:
                w.stop()
        r["workers"] = n
        r["runs_per_s"] = r["summary"]["completed"] / r["wall_s"]
        rounds.append(r)
        e2e.log(f"  {r['wall_s']:.1f} s, {r['runs_per_s']:.1f} runs/s, summary {r['summary']}")
    return rounds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    ap.add_argument("--collections", type=int, default=1000)
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--services-env")
    args = ap.parse_args()
    cleanup = e2e.Cleanup()
    tmp = e2e.services_tmpdir("bfbench-")
    try:
        load_before = open("/proc/loadavg").read().split()[:3]
        env, worker_bin = setup(args, cleanup, tmp)
        rounds = compute_rounds(args, env, worker_bin, tmp)
        e2e.log("reuse decisions and planning")
        reuse = [backfill(worker_bin, env, "--all", "--reducer", "pca", "--dry-run") for _ in range(3)]
        stale = [backfill(worker_bin, env, "--all", "--reducer", "tsne", "--dry-run") for _ in range(3)]
        real = backfill(worker_bin, env, "--all", "--reducer", "pca")
        load_after = open("/proc/loadavg").read().split()[:3]
    finally:
        cleanup.run()
    report(args, rounds, reuse, stale, real, load_before, load_after)


def rate(r):
    n = r["summary"]["considered"]
    return {"per_s_lines": n / r["start_to_last_collection_s"] if r["start_to_last_collection_s"] else None,
            "per_s_wall": n / r["wall_s"]}


def report(args, rounds, reuse, stale, real, load_before, load_after):
    best = lambda rs: max(rs, key=lambda r: rate(r)["per_s_wall"])  # noqa: E731
    doc = {"args": vars(args), "load_before": load_before, "load_after": load_after, "compute": rounds,
           "reuse_dry_run": reuse, "stale_dry_run": stale, "up_to_date_real": real}
    os.makedirs(os.path.join(REPO, "bench", "out", "backfill"), exist_ok=True)
    with open(os.path.join(REPO, "bench", "out", "backfill", "results.json"), "w") as fh:
        json.dump(doc, fh, indent=2)
    print(json.dumps(doc, indent=2))
    print("\n| measure | value | target |\n| --- | --- | --- |")
    for r in rounds:
        print(f"| {args.collections} collections computed, {r['workers']} worker process(es): wall s / runs/s "
              f"| {r['wall_s']:.1f} / {r['runs_per_s']:.1f} | |")
    for name, rs, target in (("reuse decisions (all up to date, --dry-run)", reuse, T_REUSE_PER_S),
                             ("planning, all stale (--reducer tsne --dry-run)", stale, T_PLAN_PER_S)):
        b = rate(best(rs))
        print(f"| {name}: per s from the start line to the last collection line / per s of the whole command "
              f"| {b['per_s_lines']:.0f} / {b['per_s_wall']:.0f} | ≥ {target:.0f} |")
    b = rate(real)
    print(f"| up-to-date backfill without --dry-run (lock, broker, nothing enqueued) "
          f"| {b['per_s_lines']:.0f} / {b['per_s_wall']:.0f} | ≥ {T_PLAN_PER_S:.0f} |")
    print(f"\nload average before / after: {' '.join(load_before)} / {' '.join(load_after)}")


if __name__ == "__main__":
    main()
