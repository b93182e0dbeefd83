#!/usr/bin/python3
"""The reliability campaign (issue 13 items 1, 2, 3, 5, 6): kill -9 at every step, random
chaos, service faults, disk faults, hostile values and secrets, each row reported as
attack -> expected -> observed with counts and a verdict (PASS, FAIL, NOT REACHED).

  campaign.py [--long] [--section kills|chaos|services|disk|hostile|secrets ...]
              [--steps a,b] [--kinds task,worker] [--repeat N]

Short mode (the default, what ctest's `reliability` label runs) uses small counts; --long
runs the full campaign (kills x20 per step, 60 s of chaos over 60 requests, 10^6 distinct
categories, a 100 MB body, 120 s bounds).  Needs the services (ctest's fixture or
tests/harness/services.sh start DIR with PW_SERVICES_ENV=DIR/services.env) and a worker
built with PW_TEST_TASKS (fault points).  Outputs (worker logs, results, run rows,
report-SECTION.md tables) go to $PW_RELIABILITY_OUT or $PW_BUILD_DIR/reliability.
Exit status 1 when any row is not PASS.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relib  # noqa: E402
from relib import CampEnv, Report, queue_settled, record, wait_for  # noqa: E402

# Fault points (worker/runtime/fault.h), in the order a task meets them.
STEPS = ["after_receive", "under_lock", "mid_scroll", "mid_compute", "after_rename", "before_commit",
         "after_commit", "before_ack"]
AFTER_COMMIT = {"after_commit", "before_ack"}  # a kill here must not cause a recompute
TERMINAL = ("completed", "failed", "cancelled")


def unique_q(prefix: str) -> str:
    return f"rel-{prefix}-{uuid.uuid4().hex[:6]}"


def short_text(s: str, n: int = 110) -> str:
    s = (s or "").replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


def wait_terminal(env: CampEnv, run: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    row = env.run_row(run)
    while time.monotonic() < deadline and row.get("status") not in TERMINAL:
        time.sleep(0.25)
        row = env.run_row(run)
    return row


def points_simple(n: int, d: int, seed: int = 1, ids=None, payload=None) -> list[dict]:
    rng = random.Random(seed)
    centres = [[rng.uniform(-4, 4) for _ in range(d)] for _ in range(5)]
    pts = []
    for i in range(n):
        c = centres[i % 5]
        pts.append({"id": ids(i) if ids else 1 + i,
                    "vector": [round(c[k] + rng.gauss(0, 1), 5) for k in range(d)],
                    "payload": payload(i) if payload else {"doc_id": f"doc-{i % 13}",
                                                           "source_path": f"/d{i % 4}/f{i}.txt"}})
    return pts


def secrets_row(rep: Report, env_section: str) -> None:
    files = [f for f in relib.collected_files() if f"/{env_section}/" in f or os.path.basename(f).startswith(env_section)]
    leaks = relib.grep_markers(files)
    rep.check(f"marker secrets in this section's outputs ({len(files)} files)",
              "no broker password, database password or Qdrant API key in any log, result or run row",
              f"{len(leaks)} leaks" + (": " + ", ".join(leaks[:5]) if leaks else ""), not leaks)


# ---- 1. kill -9 at every step ----------------------------------------------------------------

def section_kills(env: CampEnv, rep: Report, args) -> None:
    n = 2500
    standin = env.standin(points_simple(n, 16))
    # baseline: one run without faults, to know how many scroll requests one compute costs
    q = unique_q("kill-base")
    pool = env.pool(q, standin.url, n=1)
    pool.wait_connected()
    cid = env.collection(n=n)
    run = env.create_run(cid)
    s0 = standin.scrolls()
    status, text = env.outcome(env.send(q, run), 90)
    pages = standin.scrolls() - s0
    pool.close()
    if status != "ok" or pages < 1:
        rep.add("baseline run without faults", "completed", f"{status}: {short_text(text)}", "FAIL")
        return
    steps = args.steps.split(",") if args.steps else STEPS
    kinds = args.kinds.split(",")
    repeat = args.repeat or (20 if args.long else 1)
    for kind in kinds:
        for step in steps:
            kill_case(env, rep, standin, n, pages, kind, step, repeat)


def kill_case(env: CampEnv, rep: Report, standin, n: int, pages: int, kind: str, step: str, repeat: int) -> None:
    once = relib.out_path(f"once-{kind}-{step}-{uuid.uuid4().hex[:4]}")
    q = unique_q(f"k-{kind}-{step}")
    pool = env.pool(q, standin.url, n=3, extra={"PW_FAULT_POINT": f"{kind}:{step}", "PW_FAULT_ONCE": once})
    pool.wait_connected()
    fired = completed_once = 0
    extra_scrolls = recomputes = 0
    problems: list[str] = []
    for i in range(repeat):
        if os.path.exists(once):
            os.unlink(once)  # arm the fault point again for this request
        cid = env.collection(n=n)
        run = env.create_run(cid)
        s0 = standin.scrolls()
        res = env.send(q, run)
        status, text = env.outcome(res, 90)
        row = wait_settled(env, run, res, q, time.monotonic(), 20)
        settled = queue_settled(q, 15)
        hit = os.path.exists(once)
        fired += hit
        commits = env.commits(run)
        art = env.artifacts_problem(cid, run, n) if row.get("status") == "completed" else "run not completed"
        extra = standin.scrolls() - s0 - pages
        why = []
        if status != "ok":
            why.append(f"result {status} {short_text(text, 80)}")
        if row.get("status") != "completed" or row.get("op_status") != "completed":
            why.append(f"run {row.get('status')}/op {row.get('op_status')}")
        if commits != (1, 1):
            why.append(f"run/op completed {commits[0]}/{commits[1]} times")
        if art:
            why.append(f"artifacts: {art}")
        if settled != (0, 0):
            why.append(f"queue ready/unacked {settled}")
        if extra and step in AFTER_COMMIT:
            why.append(f"{extra} extra scrolls after the commit")
        extra_scrolls += max(extra, 0)
        recomputes += math.ceil(max(extra, 0) / pages)
        if why:
            problems.append(f"#{i + 1}: " + "; ".join(why))
        else:
            completed_once += 1
    temps = env.temp_dirs()
    deaths = pool.deaths
    pool.close()
    attack = f"kill -9 ({kind}:{step}) x{repeat}, 3 replicas"
    expected = ("completed once, artifacts complete, 0 temp dirs, queue empty"
                + (", no recompute" if step in AFTER_COMMIT else ", recompute allowed"))
    observed = (f"{completed_once}/{repeat} completed once; fired {fired}/{repeat}; {len(temps)} temp dirs; "
                f"recomputes {recomputes} ({extra_scrolls} extra scrolls); replica deaths {deaths}")
    if problems:
        observed += "; " + " | ".join(problems[:3])
    if fired == 0:
        rep.add(attack, expected, f"not reached: PW_FAULT_POINT={kind}:{step} never fired in {repeat} "
                                  f"requests (step not instrumented in this build); {observed}", "NOT REACHED")
        return
    rep.check(attack, expected, observed, completed_once == repeat and fired == repeat and not temps)


# ---- 1b. random chaos ---------------------------------------------------------------------

def section_chaos(env: CampEnv, rep: Report, args) -> None:
    duration, requests, hashes = (60, 60, 20) if args.long else (20, 15, 5)
    n = 3000
    standin = env.standin(points_simple(n, 32))
    standin.faults({"route": "scroll", "kind": "delay", "delay_s": 0.15, "times": -1})  # runs last ~1 s
    q = unique_q("chaos")
    pool = env.pool(q, standin.url, n=3)
    pool.wait_connected()
    cids = [env.collection(n=n) for _ in range(hashes)]
    runs = [(cids[i % hashes], env.create_run(cids[i % hashes])) for i in range(requests)]
    rng = random.Random(args.seed)
    results = []
    start = time.monotonic()
    next_kill = start + rng.uniform(1, 3)
    sent = 0
    while time.monotonic() - start < duration or sent < requests:
        now = time.monotonic()
        if sent < requests and now >= start + sent * (duration * 0.8 / requests):
            results.append(env.send(q, runs[sent][1]))
            sent += 1
        if now - start < duration and now >= next_kill:
            pool.kill_random(rng)
            next_kill = now + rng.uniform(1, 3)
        time.sleep(0.05)
    outcomes = [env.outcome(r, 240) for r in results]
    rows = [wait_terminal(env, run, 60) for _, run in runs]
    settled = queue_settled(q, 30)
    temps = env.temp_dirs()
    completed = sum(1 for r in rows if r.get("status") == "completed" and r.get("op_status") == "completed")
    once = sum(1 for _, run in runs if env.commits(run) == (1, 1))
    arts = [env.artifacts_problem(cid, run, n) for (cid, run), r in zip(runs, rows)]
    art_ok = sum(1 for a in arts if a is None)
    scrolls = standin.scrolls()
    pages = math.ceil(n / 1000)
    computes = scrolls / pages
    ok_results = sum(1 for s, _ in outcomes if s == "ok")
    kills, deaths = pool.kills, pool.deaths
    pool.close()
    observed = (f"{kills} kills; {completed}/{requests} runs completed, {once}/{requests} completed exactly once, "
                f"{art_ok}/{requests} artifacts complete, {ok_results}/{requests} results ok; {len(temps)} temp dirs"
                f"{' ' + str([os.path.basename(t) for t in temps[:2]]) if temps else ''}; "
                f"queue ready/unacked {settled}; {scrolls} scrolls = {computes:.1f} computes for {hashes} hashes "
                f"(recomputes {max(computes - hashes, 0):.1f}); replica restarts {deaths}")
    bad = [f"{run[:8]}: {r.get('status')} {short_text(r.get('error') or '', 60)}"
           for (_, run), r in zip(runs, rows) if r.get("status") != "completed"]
    if bad:
        observed += "; not completed: " + ", ".join(bad[:3])
    rep.check(f"chaos: kill -9 a random replica of 3 every 1-3 s for {duration} s, {requests} requests over "
              f"{hashes} hashes", "every run completed once, artifacts complete, 0 temp dirs, queue empty",
              observed, completed == requests and once == requests and art_ok == requests and not temps
              and settled == (0, 0))


# ---- 2. service faults ----------------------------------------------------------------------

def wait_settled(env: CampEnv, run: str, res, q: str, t0: float, bound: float) -> dict:
    """The run's row once it is terminal, or once the task was answered and its message is
    gone from the queue for 5 s (nothing will finish it any more), or at the bound."""
    answered_at = None
    while True:
        row = env.run_row(run)
        now = time.monotonic()
        if row.get("status") in TERMINAL or now - t0 > bound:
            return row
        if res is not None and res.ready() and relib.queue_counts(q) == (0, 0):
            answered_at = answered_at or now
            if now - answered_at > 5:
                return row
        else:
            answered_at = None
        time.sleep(0.3)


def service_verdict(env: CampEnv, rep: Report, attack: str, pool, q: str, cid: str, run: str, n: int,
                    t0: float, bound: float, expect_completed: bool = False, words: tuple = (),
                    res=None) -> None:
    """The item-2 rule: the worker keeps running, the run ends completed once or failed with a
    clear message, within the bound, and the queue holds nothing (never an ack of a run left
    unfinished)."""
    row = wait_settled(env, run, res, q, t0, bound)
    elapsed = time.monotonic() - t0
    settled = queue_settled(q, 20)
    commits = env.commits(run)
    alive = pool.any_alive() and pool.deaths == 0
    status = row.get("status")
    err = row.get("error") or ""
    why = []
    if status == "completed":
        art = env.artifacts_problem(cid, run, n)
        if commits != (1, 1):
            why.append(f"completed {commits[0]}x (op {commits[1]}x)")
        if art:
            why.append(f"artifacts: {art}")
    elif status == "failed":
        if expect_completed:
            why.append("failed where a retry should have completed it")
        if not err.strip():
            why.append("failed without a message")
        if words and not any(w.lower() in err.lower() for w in words):
            why.append(f"message lacks any of {words}")
        if row.get("op_status") != "failed":
            why.append(f"operation {row.get('op_status')}")
    else:
        why.append(f"run still {status} after {elapsed:.0f} s")
        if settled == (0, 0):
            why.append("message acked although the run did not finish")
        if res is not None and res.ready():
            kind, text = env.outcome(res, 1)
            why.append(f"the client got {kind} '{short_text(text, 90)}'")
    if settled != (0, 0):
        why.append(f"queue ready/unacked {settled}")
    if not alive:
        why.append(f"worker died ({pool.deaths} deaths)")
    temps = env.temp_dirs()
    if temps:
        why.append(f"{len(temps)} temp dirs")
    observed = f"run {status} in {elapsed:.1f} s" + (f" ('{short_text(err, 90)}')" if err else "")
    observed += f"; queue {settled}; worker {'alive' if alive else 'died'}"
    if why:
        observed += "; " + "; ".join(why)
    expected = ("run completed once" if expect_completed else "completed once or failed with a clear message") + \
        f" within {bound:.0f} s, worker alive, nothing acked unfinished"
    rep.check(attack, expected, observed, not why)



def fresh_single_worker_run(env, standin, tag: str, n: int):
    """One supervised-free worker on a new queue, a new run of n points, the stand-in's
    counters and faults reset: the start of each single-fault attack."""
    q = unique_q(tag)
    pool = env.pool(q, standin.url, n=1, supervise=False)
    pool.wait_connected()
    cid = env.collection(n=n)
    run = env.create_run(cid)
    urllib.request.urlopen(urllib.request.Request(standin.url + "/__standin/reset", data=b"{}",
                                                  method="POST"), timeout=10).read()
    return q, pool, cid, run

def section_services(env: CampEnv, rep: Report, args) -> None:
    bound = 120 if args.long else 60
    n = 3000
    standin = env.standin(points_simple(n, 16))

    def slow_run(tag: str, delay: float = 0.6):
        q, pool, cid, run = fresh_single_worker_run(env, standin, tag, n)
        standin.faults({"route": "scroll", "kind": "delay", "delay_s": delay, "times": 2})
        t0 = time.monotonic()
        res = env.send(q, run)
        wait_for(lambda: pool.events("task_started"), 30, what="task_started")
        time.sleep(0.3)
        return q, pool, cid, run, res, t0

    # RabbitMQ restart while the run is fetching
    q, pool, cid, run, res, t0 = slow_run("rabbit", delay=6.0)  # outlasts the broker shutdown
    relib.services("restart-rabbit")
    relib.broker_url_with_marker()  # the user lives in the node's database; re-assert it anyway
    service_verdict(env, rep, "RabbitMQ restarted mid-run", pool, q, cid, run, n, t0, bound + 30,
                    expect_completed=True)  # no res: the client's own connection went with the broker
    try:  # the worker's backoff may still be waiting when the run is already settled
        wait_for(lambda: len(pool.events("broker_connected")) >= 2, 60, what="a reconnection")
    except Exception:  # noqa: BLE001 - reported below as the observed count
        pass
    reconnects = len(pool.events("broker_connected"))
    rep.check("RabbitMQ restarted mid-run: reconnection", "the worker reconnects (broker_connected twice)",
              f"{reconnects} broker_connected events", reconnects >= 2)
    pool.close()

    # PostgreSQL restart while the run is fetching (its session and advisory lock go away)
    q, pool, cid, run, res, t0 = slow_run("pgrestart")
    relib.services("restart-postgres")
    service_verdict(env, rep, "PostgreSQL restarted mid-run", pool, q, cid, run, n, t0, bound, res=res)
    pool.close()

    # pg_terminate_backend of the session that holds the advisory lock
    q, pool, cid, run, res, t0 = slow_run("pgterm", delay=1.0)
    pids = wait_for(lambda: relib.psql(env.admin_url, f"""SELECT l.pid FROM pg_locks l JOIN pg_database d
                        ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted
                        AND d.datname = '{env.db}'"""), 20, what="the advisory lock")
    relib.psql(env.admin_url, "SELECT " + ", ".join(f"pg_terminate_backend({p})" for p in pids.split()))
    service_verdict(env, rep, "pg_terminate_backend of the session holding the advisory lock", pool, q, cid,
                    run, n, t0, bound, res=res)
    pool.close()

    # Qdrant stand-in faults
    malformed = '{"result": {"points": [{"id": 1, "vector": [0.1, 0.2,, "payload": {}}], "next_page_offset": nul'
    cases = [
        ("Qdrant answers 500 twice, then normally", {"kind": "status", "status": 500, "times": 2}, True, ()),
        ("Qdrant answers 503 forever", {"kind": "status", "status": 503, "times": -1}, False, ("503",)),
        ("Qdrant hangs (no answer for 60 s, timeout 3 s)", {"kind": "hang", "delay_s": 60, "times": -1}, False,
         ("time", "3000")),
        ("Qdrant closes the connection mid-body", {"kind": "disconnect", "times": -1}, False, ()),
        ("Qdrant sends truncated JSON", {"kind": "truncate", "times": -1}, False, ()),
        ("Qdrant sends malformed JSON (HTTP 200)", {"kind": "body", "body": malformed, "times": -1}, False, ()),
        ("Qdrant's next_page_offset loops", {"kind": "loop_offset", "times": -1}, False, ()),
    ]
    for attack, fault, expect_ok, words in cases:
        q, pool, cid, run = fresh_single_worker_run(env, standin, "qfault", n)
        standin.faults(dict(fault, route="scroll"))
        t0 = time.monotonic()
        res = env.send(q, run)
        service_verdict(env, rep, attack, pool, q, cid, run, n, t0, bound, expect_completed=expect_ok,
                        words=words, res=res)
        if "loop" in attack:  # a completed looping scroll must not hold the same point twice
            meta = env.run_row(run).get("meta") or {}
            ids = meta.get("original_ids") or []
            rep.check(attack + ": duplicates", "no point twice in a run", f"{len(ids) - len(set(ids))} duplicate "
                      f"ids in {len(ids)}", len(ids) == len(set(ids)))
        pool.close()


# ---- 3. disk --------------------------------------------------------------------------------

def section_disk(env: CampEnv, rep: Report, args) -> None:
    n = 3000
    standin = env.standin(points_simple(n, 16))
    mnt = relib.out_path("tmpfs")
    os.makedirs(mnt, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], capture_output=True, text=True)
    if out.returncode != 0:
        rep.add("disk faults", "a 1 MiB tmpfs as DATA_DIR", f"cannot mount tmpfs: {out.stderr.strip()}", "FAIL")
        return
    try:
        disk_cases(env, rep, standin, n, mnt)
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def disk_cases(env: CampEnv, rep: Report, standin, n: int, mnt: str) -> None:
    env.data_dir = mnt
    q = unique_q("disk")
    pool = env.pool(q, standin.url, n=1, extra={"DATA_DIR": mnt})
    pool.wait_connected()

    def fault_then_fix(attack: str, break_disk, fix_disk, words: tuple) -> None:
        cid = env.collection(n=n)
        run = env.create_run(cid)
        before = len(pool.events("projection_disk_unavailable"))
        break_disk()
        t0 = time.monotonic()
        res = env.send(q, run)
        try:
            wait_for(lambda: res.ready() or len(pool.events("projection_disk_unavailable")) > before, 90,
                     what="a result or a disk report")
        except Exception:  # noqa: BLE001 - what was seen is reported below
            pass
        dt = time.monotonic() - t0
        reports = pool.events("projection_disk_unavailable")[before:]
        msg = (reports[-1].get("msg") if reports else "") or ""
        row = env.run_row(run)
        visible = os.path.exists(env.run_dir(cid, run))
        temps = env.temp_dirs()
        held = bool(reports) and not res.ready() and row.get("status") not in TERMINAL
        clear = any(w in msg.lower() for w in words)
        rep.check(attack, "the disk error reported clearly (projection_disk_unavailable), the run held for "
                  "redelivery (not failed, no result), no run directory visible, 0 temp dirs, worker alive",
                  f"after {dt:.1f} s: {len(reports)} disk reports ('{short_text(msg, 80)}'); run "
                  f"{row.get('status')}; result {'sent' if res.ready() else 'none'}; run dir "
                  f"{'visible' if visible else 'absent'}; {len(temps)} temp dirs; worker "
                  f"{'alive' if pool.deaths == 0 else 'died'}",
                  held and clear and not visible and not temps and pool.deaths == 0)
        fix_disk()
        status, text = env.outcome(res, 90)  # the held message runs again by itself
        row = wait_terminal(env, run, 30)
        art = env.artifacts_problem(cid, run, n)
        commits = env.commits(run)
        rep.check(attack + ", then fixed", "the held message completes the run once, artifacts complete",
                  f"run {row.get('status')} ({commits[0]} completions)"
                  f"{' (' + repr(short_text(text, 90)) + ')' if row.get('status') != 'completed' else ''}; "
                  f"artifacts {art or 'complete'}; "
                  f"{len(env.temp_dirs())} temp dirs", row.get("status") == "completed" and not art
                  and commits == (1, 1) and not env.temp_dirs())

    filler = os.path.join(mnt, "filler")

    def fill():
        os.makedirs(os.path.join(mnt, "semantik/projections"), exist_ok=True)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        st = os.statvfs(mnt)
        record("disk", {"free_after_fill": st.f_bavail * st.f_frsize})

    fault_then_fix("DATA_DIR full (1 MiB tmpfs filled)", fill, lambda: os.unlink(filler),
                   ("space", "enospc", "no space"))

    def ro():
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)

    def rw():
        subprocess.run(["mount", "-o", "remount,rw", mnt], check=True)

    fault_then_fix("DATA_DIR read-only (tmpfs remounted ro)", ro, rw, ("read-only", "erofs", "read only"))

    # the run's directory already exists, with stale files
    cid = env.collection(n=n)
    run = env.create_run(cid)
    d = env.run_dir(cid, run)
    os.makedirs(os.path.join(d, "subdir"))
    for name, data in (("x.f32.bin", b"abc"), ("stale.txt", b"old"), ("meta.json", b"{not json")):
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)
    env.outcome(env.send(q, run), 90)
    row = wait_terminal(env, run, 30)
    art = env.artifacts_problem(cid, run, n)
    rep.check("run directory already exists with stale files", "completed once; the directory holds exactly the "
              "new artifacts; 0 temp dirs", f"run {row.get('status')} ('{short_text(row.get('error') or '', 80)}'); "
              f"artifacts {art or 'complete'}; {len(env.temp_dirs())} temp dirs",
              row.get("status") == "completed" and not art and not env.temp_dirs())
    pool.close()


# ---- 5. hostile values -------------------------------------------------------------------

def section_hostile(env: CampEnv, rep: Report, args) -> None:
    bound = 120 if args.long else 20
    base_points = points_simple(300, 16)
    base = env.standin(base_points)

    def case(attack: str, expected: str, points=None, config=None, raw_config=None, reducer="pca", args_=None,
             cid=None, check=None, faults=(), n=None, publish=None):
        standin = env.standin(points) if points is not None else base
        for f in faults:
            standin.faults(f)
        q = unique_q("hostile")
        pool = env.pool(q, standin.url, n=1, supervise=False)
        pool.wait_connected()
        run = None
        if args_ is None and publish is None:
            cid = cid or env.collection(n=len(points or base_points))
            run = env.create_run(cid, config=config, raw_config=raw_config, reducer=reducer)
        t0 = time.monotonic()
        if publish is not None:
            res = publish(q)
        else:
            res = env.send(q, *(args_ if args_ is not None else [run]))
        status, text = env.outcome(res, bound) if res is not None else ("sent", "")
        row = wait_settled(env, run, res, q, t0, bound) if run else {}
        elapsed = time.monotonic() - t0
        settled = queue_settled(q, 10 if elapsed < bound else 1)
        alive = pool.any_alive() and pool.deaths == 0
        rss_mib = pool.peak_rss_kib / 1024
        pool.close()
        if points is not None:
            standin.stop()
            env.standins.remove(standin)
        err = (row.get("error") or "") if run else text
        why = []
        if elapsed > bound or (run and row.get("status") not in TERMINAL) or status == "timeout":
            why.append(f"did not end within {bound} s")
        if settled != (0, 0):
            why.append(f"queue {settled}")
        if not alive:
            why.append("worker died")
        if len(err) > 2000:
            why.append(f"error message of {len(err)} chars")
        if check:
            problem = check(status, text, row, cid, run)
            if problem:
                why.append(problem)
        observed = (f"{(row.get('status') if run else status)} in {elapsed:.1f} s, peak RSS {rss_mib:.0f} MiB"
                    + (f" ('{short_text(err, 90)}')" if err else ""))
        if run and row.get("status") == "completed":
            meta = file_meta(cid, run)
            if meta.get("fallback_reason"):
                observed += f"; fallback_reason '{short_text(meta['fallback_reason'], 70)}'"
            if meta.get("reducer_params"):
                observed += f"; reducer_params {short_text(json.dumps(meta['reducer_params']), 80)}"
        if why:
            observed += "; " + "; ".join(why)
        rep.check(attack, expected + f"; ends within {bound} s, worker alive, queue empty", observed, not why)

    def file_meta(cid, run) -> dict:
        try:
            return json.load(open(os.path.join(env.run_dir(cid, run), "meta.json")))
        except (OSError, ValueError):
            return {}

    def failed_with(*words):
        def chk(status, text, row, cid, run):
            msg = (row.get("error") or "") if run else text
            if run and row.get("status") != "failed":
                return f"run {row.get('status')}, not failed"
            if not run and status != "error":
                return f"result {status}, not an error"
            if words and not any(w.lower() in msg.lower() for w in words):
                return f"message lacks any of {words}"
            return None
        return chk

    def completed_or_failed(status, text, row, cid, run):
        if row.get("status") == "failed" and not (row.get("error") or "").strip():
            return "failed without a message"
        return None

    def completed(extra=None):
        def chk(status, text, row, cid, run):
            if row.get("status") != "completed":
                return f"run {row.get('status')}: {short_text(row.get('error') or '', 60)}"
            return extra(row, cid, run) if extra else None
        return chk

    # identifiers
    case("run uuid '../../etc/passwd'", "FAILURE 'not a UUID'", args_=["../../etc/passwd"],
         check=failed_with("uuid"))
    case("run uuid with a NUL byte", "FAILURE 'not a UUID'", args_=["0ddba11a-0000-4000-8000-00000000000\u0000/.."],
         check=failed_with("uuid"))
    for bad in ("../../escape", "a/b", "..", "x" * 300)[: None if args.long else 2]:
        def outside(status, text, row, cid, run, bad=bad):
            if row.get("status") != "failed":
                return f"run {row.get('status')}"
            stray = [p for p in (os.path.join(env.data_dir, "escape"), os.path.join(env.data_dir, "semantik/escape"))
                     if os.path.exists(p)]
            return f"created {stray}" if stray else None
        case(f"collection id {short_text(bad, 20)!r}", "run failed before any path is built",
             cid=env.collection(cid=bad), check=outside)
    # payloads
    big = "p" * (10 * 1024 * 1024)
    pts = points_simple(50, 8)
    pts[3]["payload"] = {"doc_id": big, "source_path": "/x/" + big + ".txt"}
    case("payload strings of 10 MB", "completed (labels are data) or a clear error, memory bounded", points=pts,
         config={"color_by": "document_id"}, check=completed_or_failed)
    depth = 10000
    deep = "[" * depth + "]" * depth
    deep_obj = '{"a":' * depth + "1" + "}" * depth
    page_pts = [json.dumps({"id": i + 1, "vector": [float(i % 5), float(i % 3), 1.0, 0.5], "payload": {}})
                for i in range(20)]
    page_pts[0] = ('{"id": 1, "vector": [0.0, 0.0, 1.0, 0.5], "payload": {"metadata": ' + deep
                   + ', "source_path": ' + deep_obj + ', "doc_id": ' + deep + "}}")
    body = '{"result": {"points": [' + ",".join(page_pts) + '], "next_page_offset": null}, "status": "ok", "time": 0}'
    case(f"payload nesting {depth} deep", "completed or a clear error, no stack overflow",
         points=points_simple(20, 4), config={"color_by": "filetype"},
         faults=[{"route": "scroll", "kind": "body", "body": body, "times": -1}], check=completed_or_failed)
    ncat = 10**6 if args.long else 10**5
    many = [{"id": i + 1, "vector": [float(i % 7), float(i % 11), float(i % 13)], "payload": {"doc_id": f"d{i}"}}
            for i in range(ncat)]

    def legend_capped(row, cid, run):
        legend = file_meta(cid, run).get("legend") or []
        return None if 0 < len(legend) <= 256 else f"legend of {len(legend)} entries"
    case(f"{ncat} distinct category values", "completed, legend capped at 255 + Other", points=many,
         config={"color_by": "document_id", "sample_size": ncat}, check=completed(legend_capped))
    del many
    # ids
    mixed = points_simple(40, 8, ids=lambda i: (2**40 + i) if i % 2 else str(uuid.UUID(int=i + 1)))

    def sequential_ids(row, cid, run):
        import numpy as np
        ids = np.fromfile(os.path.join(env.run_dir(cid, run), "ids.i32.bin"), dtype="<i4").tolist()
        orig = file_meta(cid, run).get("original_ids") or []
        if ids != list(range(40)):
            return f"ids.i32 {ids[:5]}..."
        return None if len(orig) == 40 and all(isinstance(x, str) for x in orig) else "original_ids wrong"
    case("ids outside int32 and UUID ids", "completed; ids.i32 sequential, original_ids as text", points=mixed,
         check=completed(sequential_ids))
    # vectors
    nan = points_simple(30, 8)
    nan[5]["vector"][2] = float("nan")
    case("NaN in a vector", "run failed with a clear message (or the point skipped, logged)", points=nan,
         check=completed_or_failed)
    inf = points_simple(30, 8)
    inf[5]["vector"][2] = 1e39
    case("Inf in a vector (1e39 overflows float32)", "run failed with a clear message (or the point skipped)",
         points=inf, check=completed_or_failed)
    dims = points_simple(2500, 16)
    for p in dims[1500:]:
        p["vector"].append(0.5)
    case("dimension changes mid-scroll (page 2)", "run failed, message names the dimension", points=dims,
         check=failed_with("dimension"))
    # config values
    for value in (0, -5, 10**9, "abc"):
        case(f"sample_limit {value!r}", "Python's rule: int(), max(.,1), bad text -> default; a clear error for "
             "fewer than 2 points", config={"sample_size": value}, check=completed_or_failed)
    for raw in ("[1, 2]", '"abc"', "null", "42")[: None if args.long else 2]:
        case(f"config not an object: {raw}", "defaults or a clear error", raw_config=raw, check=completed_or_failed)

    def fallback(row, cid, run):
        return None if "isomap" in (file_meta(cid, run).get("fallback_reason") or "") else "no fallback_reason"
    case("unknown reducer 'isomap'", "PCA with fallback_reason", reducer="isomap", check=completed(fallback))
    def reason_recorded(status, text, row, cid, run):
        if row.get("status") == "failed":
            return None if (row.get("error") or "").strip() else "failed without a message"
        meta = file_meta(cid, run)
        if meta.get("fallback_reason") or any(lim.get("reason") for lim in meta.get("limits_applied") or []):
            return None
        return f"accepted without a recorded reason (reducer_params {short_text(json.dumps(meta.get('reducer_params')), 60)})"
    for reducer, cfg in (("umap", {"n_neighbors": 1}), ("umap", {"n_neighbors": 10**6}),
                         ("tsne", {"perplexity": 10**6}), ("tsne", {"n_iter": 10**9})):
        case(f"{reducer} {cfg} (300 points)", "refused, or clamped with the reason recorded; never spins",
             reducer=reducer, config=cfg, check=reason_recorded)
    # messages
    case("message args []", "FAILURE naming the missing run id", args_=[], check=failed_with("run id"))
    case("message args [123]", "FAILURE naming the run id", args_=[123], check=failed_with("run id"))
    size = (100 if args.long else 10) * 1024 * 1024

    def big_body(status, text, row, cid, run):
        if status == "error" and len(text) < 2000:
            return None
        return f"result {status} ({len(text)} chars)"
    case(f"a {size >> 20} MB message body (the run id)", "FAILURE 'not a UUID' with a bounded message, worker "
         "alive", args_=["0" * size], check=big_body)


# ---- 6. secrets ----------------------------------------------------------------------------

def section_secrets(env: CampEnv, rep: Report, args) -> None:
    """Error paths where a secret could slip into a message, then the grep of every output
    the campaign collected (all sections' logs, results and run rows under OUT_DIR)."""
    pts = points_simple(50, 8)
    standin = env.standin(pts)
    host = env.broker_url.split("@", 1)[1].split("/", 1)[0]
    pg_host = env.url.split("@", 1)[1].rsplit("/", 1)[0]
    good = env.collection(n=50)
    port = standin.url.rsplit(":", 1)[1]
    cases = [  # (label, worker environment, send a task)
        ("broker unreachable", {"CELERY_BROKER_URL": f"amqp://{relib.CAMP_USER}:{relib.MARK_BROKER}@127.0.0.1:1//"},
         False),
        ("broker wrong password", {"CELERY_BROKER_URL": f"amqp://{relib.CAMP_USER}:{relib.MARK_BROKER}x@{host}//"},
         False),
        ("database unreachable", {"DATABASE_URL": f"postgresql://{relib.CAMP_USER}:{relib.MARK_PG}@127.0.0.1:1/x"}, True),
        ("database wrong password",
         {"DATABASE_URL": f"postgresql://{relib.CAMP_USER}:{relib.MARK_PG}x@{pg_host}/{env.db}"}, True),
        ("database password in a keyword string",
         {"DATABASE_URL": f"host=127.0.0.1 port=1 user={relib.CAMP_USER} password={relib.MARK_PG} dbname=x"}, True),
        ("Qdrant wrong API key", {"QDRANT_API_KEY": relib.MARK_QDRANT + "x"}, True),
        ("Qdrant key in the URL's userinfo", {"QDRANT_URL": f"http://u:{relib.MARK_QDRANT}@127.0.0.1:{port}"}, True),
        ("Qdrant unreachable", {"QDRANT_URL": "http://127.0.0.1:1"}, True),
    ]
    # Every case gets its own queue and worker, all at once: each has at least 20 s (4 s
    # without a task) to log what it logs, and the section waits that long only once.
    started = []
    for label, extra, send in cases:
        pool = env.pool(unique_q("secret"), standin.url, n=1, extra=extra, supervise=False)
        run = env.create_run(good) if send else None
        started.append((label, pool, run, env.send(pool.queue, run) if send else None))
    deadline = time.monotonic() + 20
    for label, pool, run, res in started:
        if res is not None:
            env.outcome(res, max(0.5, deadline - time.monotonic()))
            env.run_row(run)
    time.sleep(max(0.0, deadline - 16 - time.monotonic()))  # the broker cases' 4 s
    for label, pool, run, res in started:
        pool.close()
        env.keep("provoked", f"{label}\n")
    env.dump_rows()
    files = relib.collected_files()
    leaks = relib.grep_markers(files)
    sections = sorted({os.path.relpath(f, relib.OUT_DIR).split(os.sep)[0] for f in files})
    rep.check(f"marker passwords / API key over the whole campaign ({len(files)} files from {', '.join(sections)})",
              "no marker in any log line, result or run row", f"{len(leaks)} leaks" +
              (": " + "; ".join(leaks[:6]) if leaks else ""), not leaks)


SECTIONS = {"kills": section_kills, "chaos": section_chaos, "services": section_services, "disk": section_disk,
            "hostile": section_hostile, "secrets": section_secrets}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long", action="store_true", help="the full campaign (default: the short CI version)")
    ap.add_argument("--section", action="append", choices=list(SECTIONS), help="run only these (repeatable)")
    ap.add_argument("--steps", help=f"kills: comma-separated fault steps (default: {','.join(STEPS)})")
    ap.add_argument("--kinds", default="task,worker", help="kills: task,worker")
    ap.add_argument("--repeat", type=int, help="kills: requests per step and kind (short 1, long 20)")
    ap.add_argument("--seed", type=int, default=13, help="chaos: random seed")
    args = ap.parse_args()
    status = 0
    for name in args.section or list(SECTIONS):
        shutil.rmtree(os.path.join(relib.OUT_DIR, name), ignore_errors=True)
        relib.SECTION = name
        rep = Report(name)
        env = CampEnv(name, args.long)
        t0 = time.monotonic()
        try:
            SECTIONS[name](env, rep, args)
        except Exception as e:  # noqa: BLE001 - a crash of the script is a FAIL row, with its reason
            import traceback
            traceback.print_exc()
            rep.add(f"{name} section", "runs to the end", f"the script stopped: {type(e).__name__}: {e}", "FAIL")
        finally:
            env.dump_rows()
            env.close()
        if name != "secrets":
            secrets_row(rep, name)
        print(f"{name}: {time.monotonic() - t0:.0f} s")
        status |= rep.write("long" if args.long else "short")
    return status


if __name__ == "__main__":
    sys.exit(main())
