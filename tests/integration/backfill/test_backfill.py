"""`projection-worker backfill`: which collections it enqueues, what it writes, that a
second run and a re-run after a crash add nothing, and that the messages it publishes
are run by our worker and by a Python Celery worker.

Each test gets its own database (migrated by `projection-worker migrate`) and queue;
tests whose runs are computed also get our worker and a Qdrant stand-in serving the same
points under every collection name starting with "bf-".  The backfill runs as
`projection-worker backfill` with DATABASE_URL, CELERY_BROKER_URL and PROJECTION_QUEUE.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "pipeline"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit", "pipeline"))
import pwtest  # noqa: E402
from pwtest import needs_test_tasks, unique, wait_for  # noqa: E402
from test_projection import Env, Standin, make_points  # noqa: E402

# The contract's reference implementation, copied verbatim into the repository so a
# clone without ../shared runs the test.
HASH_REFERENCE = os.path.join(pwtest.ROOT, "tests", "fixtures", "metadata-hash", "metadata_hash_reference.py")
# What the API's start_projection_build stores for a request with no config
# (_normalise_reducer_config in shared/seeds/001_*.txt), written out here by hand.
API_PCA_CONFIG = {"color_by": "document_id"}
API_UMAP_CONFIG = {"n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "color_by": "document_id"}
API_TSNE_CONFIG = {"perplexity": 12.0, "learning_rate": 200.0, "n_iter": 500, "metric": "euclidean",
                   "init": "random", "color_by": "filetype"}


def reference_hash_module():
    spec = importlib.util.spec_from_file_location("mh_ref", HASH_REFERENCE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Backfill:
    """A migrated database with `n` collections (status READY unless given), a queue, and
    on demand (worker()) the stand-in and our worker.  The database side borrows
    test_projection.Env's methods; the stand-in starts only for tests that run tasks."""

    sql = Env.sql
    psql_admin = Env.psql_admin
    _psql = staticmethod(Env._psql)
    insert_collection = Env.insert_collection

    def __init__(self, n: int, points: int = 200, statuses: dict[int, str] | None = None):
        self.db = unique("pwbf").replace("-", "_")
        self.admin_url = pwtest.ENV["DATABASE_URL"]
        self.url = self.admin_url.rsplit("/", 1)[0] + "/" + self.db
        self.psql_admin(f"CREATE DATABASE {self.db}")
        out = subprocess.run([pwtest.WORKER_BIN, "migrate", "--database-url", self.url], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        self.points, self.standin, self.workers = points, None, []
        self.data_dir = tempfile.mkdtemp(prefix="pw-data-")
        self.ids = [f"bf-{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(n)]
        for i, cid in enumerate(self.ids):
            self.insert_collection(cid, cid, points)
            if statuses and i in statuses:
                self.sql(f"UPDATE collections SET status = '{statuses[i]}' WHERE id = '{cid}'")
        self.queue = unique("backfill")

    def run(self, *args: str, env: dict | None = None, timeout: float = 120) -> tuple[int, dict | None, str]:
        out = subprocess.run([pwtest.WORKER_BIN, "backfill", *args], capture_output=True, text=True,
                             env=self.process_env(env), timeout=timeout)
        return out.returncode, summary_of(out.stdout), out.stderr

    def start(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([pwtest.WORKER_BIN, "backfill", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.process_env(env))

    def process_env(self, extra: dict | None) -> dict:
        e = dict(os.environ, DATABASE_URL=self.url, CELERY_BROKER_URL=pwtest.BROKER_URL,
                 PROJECTION_QUEUE=self.queue)
        e.update(extra or {})
        return e

    def worker(self, *args: str):
        if self.standin is None:  # the same points under every name starting with "bf-"
            self.standin = Standin("bf-*", make_points(self.points, d=16))
        return Env.worker(self, self.queue, *args)

    def runs(self) -> list[dict]:
        rows = self.sql("""SELECT coalesce(json_agg(json_build_object('uuid', r.uuid,
                                 'collection', r.collection_id, 'status', r.status, 'hash', r.metadata_hash,
                                 'config', r.config, 'meta', r.meta, 'reducer', r.reducer,
                                 'operation', r.operation_uuid, 'op_status', o.status, 'op_type', o.type,
                                 'op_user', o.user_id, 'op_config', o.config, 'op_meta', o.meta,
                                 'task_id', o.task_id) ORDER BY r.id), '[]')
                               FROM projection_runs r LEFT JOIN operations o ON o.uuid = r.operation_uuid""")
        return json.loads(rows)

    def dump(self) -> str:
        return self.sql("SELECT coalesce(json_agg(t ORDER BY t.id), '[]') FROM projection_runs t") + \
            self.sql("SELECT coalesce(json_agg(t ORDER BY t.id), '[]') FROM operations t") + \
            self.sql("SELECT coalesce(json_agg(t ORDER BY t.id), '[]') FROM collections t")

    def close(self):
        for w in self.workers:
            w.stop()
        if self.standin:
            self.standin.stop()
        self.psql_admin(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def summary_of(stdout: str) -> dict | None:
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    summary = json.loads(lines[-1])
    assert list(summary) == ["event", "considered", "up_to_date", "enqueued", "completed", "failed"], summary
    assert summary["event"] == "backfill_summary"
    return summary


def counts(summary: dict) -> tuple:
    return (summary["considered"], summary["up_to_date"], summary["enqueued"], summary["completed"],
            summary["failed"])


def progress_lines(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


# ---- tests ---------------------------------------------------------------------------------

def test_second_backfill_over_50_collections_enqueues_nothing():
    with Backfill(50) as bf:
        bf.worker("-c", "2")
        rc, first, err = bf.run("--all", "--reducer", "pca", "--wait", timeout=280)
        assert rc == 0, err
        assert counts(first) == (50, 0, 50, 50, 0), first
        runs = bf.runs()
        assert len(runs) == 50 and {r["collection"] for r in runs} == set(bf.ids)
        assert all(r["status"] == "completed" and r["op_status"] == "completed" for r in runs), runs
        # the worker recomputed the hash the backfill stored and found it equal
        assert all("requested_metadata_hash" not in r["meta"] for r in runs)
        rc, second, err = bf.run("--all", "--reducer", "pca", "--wait")
        assert rc == 0, err
        assert counts(second) == (50, 50, 0, 0, 0), second
        assert len(bf.runs()) == 50


def test_rows_are_those_the_api_creates():
    with Backfill(2) as bf:
        rc, summary, err = bf.run("--collection", bf.ids[0], "--reducer", "UMAP")
        assert rc == 0, err
        assert counts(summary) == (1, 0, 1, 0, 0), summary
        [run] = bf.runs()
        owner = int(bf.sql(f"SELECT owner_id FROM collections WHERE id = '{bf.ids[0]}'"))
        assert run["status"] == "pending" and run["reducer"] == "umap"
        assert run["config"] == API_UMAP_CONFIG
        assert run["meta"] == {"initiated_by": owner, "backfill": True}
        assert run["op_type"] == "projection_build" and run["op_status"] == "pending" and run["op_user"] == owner
        assert run["op_config"] == {"projection_run_id": run["uuid"], "reducer": "umap", "dimensionality": 2,
                                    "config": API_UMAP_CONFIG}
        assert run["op_meta"] == {"projection_run_uuid": run["uuid"]}
        assert run["task_id"] and pwtest.queue_counts(bf.queue) == (1, 0)


def test_metadata_hash_matches_the_contract_reference():
    ref = reference_hash_module()
    with Backfill(3) as bf:
        for args, config, reducer in ((["--reducer", "pca"], API_PCA_CONFIG, "pca"),
                                      ([], API_UMAP_CONFIG, "umap"),
                                      (["--reducer", "tsne", "--color-by", "FileType", "--config",
                                        '{"perplexity": 12, "n_iter": "500", "init": "RANDOM", "x": 1}'],
                                       API_TSNE_CONFIG, "tsne")):
            rc, summary, err = bf.run("--all", "--dry-run", *args)
            assert rc == 0, err
            lines = [e for e in progress_lines(err) if e["event"] == "backfill_collection"]
            assert len(lines) == 3
            for line in lines:
                model, count, updated = bf.sql(
                    f"SELECT embedding_model, vector_count, to_char(updated_at AT TIME ZONE 'UTC',"
                    f" 'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM collections WHERE id = '{line['collection']}'").split("|")
                expected = ref.metadata_hash(collection_id=line["collection"], reducer=reducer, dimensionality=2,
                                             config=config, embedding_model=model, vector_count=int(count),
                                             collection_updated_at=datetime.fromisoformat(updated + "+00:00"))
                assert line["metadata_hash"] == expected, (args, line)


def test_dry_run_leaves_database_and_queue_unchanged():
    with Backfill(10) as bf:
        w = bf.worker()  # declares the queue, so its depth can be read
        rc, summary, err = bf.run("--collection", bf.ids[0], "--reducer", "pca", "--wait")
        assert rc == 0 and counts(summary) == (1, 0, 1, 1, 0), (summary, err)
        w.stop()
        before = bf.dump()
        rc, summary, err = bf.run("--all", "--reducer", "pca", "--dry-run")
        assert rc == 0, err
        assert counts(summary) == (10, 1, 9, 0, 0), summary
        actions = sorted(e["action"] for e in progress_lines(err) if e["event"] == "backfill_collection")
        assert actions == ["up_to_date"] + ["would_enqueue"] * 9
        assert bf.dump() == before
        assert pwtest.queue_counts(bf.queue) == (0, 0)


def test_killed_backfill_and_rerun_leave_one_run_per_collection():
    with Backfill(30) as bf:
        proc = bf.start("--all", "--reducer", "pca")
        enqueued = 0
        for line in proc.stderr:
            if '"action":"enqueued"' in line.replace(" ", ""):
                enqueued += 1
                if enqueued == 10:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        first = bf.runs()
        assert 10 <= len(first) < 30, len(first)
        bf.worker("-c", "2")
        rc, summary, err = bf.run("--all", "--reducer", "pca", "--wait", timeout=280)
        assert rc == 0, err
        runs = bf.runs()
        assert sorted(r["collection"] for r in runs) == sorted(bf.ids)  # exactly one run each
        assert all(r["status"] == "completed" for r in runs), runs
        assert summary["considered"] == 30 and summary["failed"] == 0
        # only collections the killed backfill had not reached (and at most the one it was
        # on) are enqueued again
        assert summary["enqueued"] <= 30 - len(first) + 1, summary


@needs_test_tasks
def test_crash_between_rows_and_message_is_republished_not_duplicated():
    with Backfill(5) as bf:
        rc, summary, err = bf.run("--all", "--reducer", "pca",
                                  env={"PW_FAULT_POINT": "task:backfill_rows_committed"})
        assert rc == -signal.SIGKILL and summary is None, (rc, err)
        [orphan] = bf.runs()
        assert orphan["status"] == "pending" and orphan["task_id"] is None
        w = bf.worker()
        rc, summary, err = bf.run("--all", "--reducer", "pca", "--wait", timeout=200)
        assert rc == 0, err
        assert counts(summary) == (5, 0, 5, 5, 0), summary
        republished = [e for e in progress_lines(err) if e.get("action") == "republished"]
        assert [e["run"] for e in republished] == [orphan["uuid"]]
        runs = bf.runs()
        assert sorted(r["collection"] for r in runs) == sorted(bf.ids)
        assert all(r["status"] == "completed" and r["task_id"] for r in runs)
        assert len(w.find("task_succeeded")) == 5


def test_summary_counts_up_to_date_in_flight_enqueued_and_failed():
    with Backfill(5) as bf:
        bf.sql(f"UPDATE collections SET vector_store_name = 'elsewhere' WHERE id = '{bf.ids[4]}'")
        bf.worker()
        rc, summary, err = bf.run("--collection", bf.ids[0], "--reducer", "pca", "--wait")
        assert rc == 0 and counts(summary) == (1, 0, 1, 1, 0), (summary, err)
        # a run in flight: enqueued to a queue nobody consumes
        rc, summary, err = bf.run("--collection", bf.ids[1], "--reducer", "pca",
                                  env={"PROJECTION_QUEUE": unique("nobody")})
        assert rc == 0 and counts(summary) == (1, 0, 1, 0, 0), (summary, err)
        rc, summary, err = bf.run("--collection", bf.ids[0], "--collection", bf.ids[2],
                                  "--collection", bf.ids[3], "--collection", bf.ids[4],
                                  "--collection", bf.ids[1], "--reducer", "pca", "--max-in-flight", "8")
        assert rc == 0, err
        assert counts(summary) == (5, 1, 3, 0, 0), summary
        in_flight = [e for e in progress_lines(err) if e.get("action") == "in_flight"]
        assert [e["collection"] for e in in_flight] == [bf.ids[1]]
        # the collection whose Qdrant collection does not exist: its run (enqueued just
        # above, found in flight or failed now) fails, and the backfill exits 1
        rc, summary, err = bf.run("--collection", bf.ids[4], "--reducer", "pca", "--wait")
        assert rc == 1, err
        assert summary["considered"] == 1 and summary["up_to_date"] == 0 and summary["completed"] == 0
        assert summary["failed"] == 1, summary
        assert {r["status"] for r in bf.runs() if r["collection"] == bf.ids[4]} == {"failed"}


def test_selection_by_collection_and_status():
    with Backfill(6, statuses={1: "DEGRADED", 4: "DEGRADED", 5: "ERROR"}) as bf:
        rc, summary, err = bf.run("--all", "--status", "degraded", "--reducer", "pca", "--dry-run")
        assert rc == 0, err
        assert counts(summary) == (2, 0, 2, 0, 0), summary
        chosen = [e["collection"] for e in progress_lines(err) if e["event"] == "backfill_collection"]
        assert sorted(chosen) == [bf.ids[1], bf.ids[4]]
        rc, summary, err = bf.run("--collection", bf.ids[2], "--collection", bf.ids[5], "--reducer", "pca",
                                  "--dry-run")
        assert rc == 0 and counts(summary) == (2, 0, 2, 0, 0), (summary, err)
        rc, summary, err = bf.run("--collection", bf.ids[2], "--collection", bf.ids[5], "--status", "READY",
                                  "--dry-run")
        assert rc == 0 and counts(summary) == (1, 0, 1, 0, 0), (summary, err)
        rc, summary, err = bf.run("--collection", "no-such-collection", "--dry-run")
        assert rc == 1 and counts(summary) == (0, 0, 0, 0, 1), (summary, err)
        assert "collection not found" in err


def test_max_in_flight_holds_back_until_runs_finish():
    with Backfill(6) as bf:
        proc = bf.start("--all", "--reducer", "pca", "--max-in-flight", "2", "--wait")
        wait_for(lambda: len(bf.runs()) >= 2, 30, what="two runs enqueued")
        time.sleep(1.5)  # with nothing consuming, a third would have been enqueued by now
        assert len(bf.runs()) == 2 and proc.poll() is None
        # meanwhile a second backfill on the same database refuses to start
        rc, summary, err = bf.run("--all", "--reducer", "pca")
        assert rc == 1 and counts(summary) == (0, 0, 0, 0, 0), (summary, err)
        assert "another backfill is running" in err
        bf.worker()
        out, err = proc.communicate(timeout=200)
        assert proc.returncode == 0, err
        assert counts(summary_of(out)) == (6, 0, 6, 6, 0)


def test_python_celery_worker_runs_the_published_message():
    with Backfill(3) as bf:
        record = os.path.join(tempfile.mkdtemp(prefix="bf-py-"), "record.jsonl")
        env = dict(os.environ, CELERY_BROKER_URL=pwtest.BROKER_URL, PYTHONPATH=HERE, PW_RECORD_FILE=record)
        log = open(os.path.join(pwtest.LOG_DIR, f"{bf.queue}-python.log"), "w")
        py = subprocess.Popen(["/usr/bin/python3", "-m", "celery", "-A", "pyworker_projection", "worker", "-Q",
                               bf.queue, "-c", "1", "-P", "solo", "--without-gossip", "--without-mingle",
                               "--without-heartbeat", "-n", f"py-{bf.queue}@test", "-l", "info"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "ready" in open(log.name).read(), 30, what="python worker ready")
            rc, summary, err = bf.run("--all", "--reducer", "pca")
            assert rc == 0 and counts(summary) == (3, 0, 3, 0, 0), (summary, err)
            wait_for(lambda: os.path.exists(record) and len(open(record).readlines()) == 3, 30,
                     what="three tasks run by the Python worker")
            seen = [json.loads(line) for line in open(record)]
            runs = bf.runs()
            assert sorted(s["projection_id"] for s in seen) == sorted(r["uuid"] for r in runs)
            assert sorted(s["task_id"] for s in seen) == sorted(r["task_id"] for r in runs)
            assert all(s["retries"] == 0 for s in seen)
        finally:
            py.terminate()
            py.wait(20)
            log.close()


def test_bad_arguments_exit_2_with_a_message():
    cases = [([], "either --all or --collection"),
             (["--all", "--collection", "c1"], "either --all or --collection"),
             (["--all", "--max-in-flight", "0"], "bad value for --max-in-flight"),
             (["--all", "--sample-limit", "ten"], "bad value for --sample-limit"),
             (["--all", "--frobnicate"], "unknown option '--frobnicate'"),
             (["--collection"], "--collection needs a value"),
             (["--all", "--config", "[1, 2]"], "config must be an object"),
             (["--all", "--config", "{nope"], "--config is not valid JSON"),
             (["--all", "--config", '{"n_neighbors": 1}'], "n_neighbors must be >= 2"),
             (["--all", "--reducer", "tsne", "--config", '{"n_iter": 10}'], "n_iter must be >= 250")]
    # a database URL nothing listens on: arguments are checked before any connection
    env = dict(os.environ, DATABASE_URL="postgresql://pw@127.0.0.1:1/none", CELERY_BROKER_URL=pwtest.BROKER_URL)
    for args, message in cases:
        out = subprocess.run([pwtest.WORKER_BIN, "backfill", *args], capture_output=True, text=True, env=env,
                             timeout=30)
        assert out.returncode == 2, (args, out.returncode, out.stderr)
        assert out.stdout == "", (args, out.stdout)
        assert message in out.stderr, (args, out.stderr)
    # the queue type is read as `run` reads it: a typo is refused, never declared as classic
    out = subprocess.run([pwtest.WORKER_BIN, "backfill", "--all"], capture_output=True, text=True,
                         env=dict(env, PW_QUEUE_TYPE="quorom"), timeout=30)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == "", out.stdout
    assert "PW_QUEUE_TYPE: queue type 'quorom' is not classic or quorum" in out.stderr, out.stderr


if __name__ == "__main__":
    pwtest.main(globals())
