"""End to end: the Python Celery client enqueues webui.tasks.compute_projection, our
worker loads the run from PostgreSQL, scrolls the Qdrant stand-in over HTTP, computes
and writes the artifacts; the test checks files and database against references it
computes itself (numpy PCA; the seed's own category helpers).

Each test gets its own database (migrated by `projection-worker migrate`), its own
stand-in process, data directory, queue and worker.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit", "pipeline"))
import pwtest  # noqa: E402
from pwtest import Worker, celery_app, unique, wait_for  # noqa: E402
from test_categories import reference_case  # noqa: E402  (the seed's own helpers)

STANDIN = os.path.join(pwtest.ROOT, "tests/qdrant_standin/qdrant_standin.py")
NOW = time.time()


# ---- fixtures ---------------------------------------------------------------------------

def make_points(n: int = 300, d: int = 24, seed: int = 7, uuid_ids: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, d)).astype(np.float32) * 4
    pts = []
    for i in range(n):
        v = centres[i % 5] + rng.normal(size=d).astype(np.float32)
        pid = str(uuid.UUID(int=rng.integers(1 << 62) << 64 | i)) if uuid_ids else 1000 + i
        payload = {"doc_id": f"doc-{i % 17}", "source_path": f"/data/dir{i % 4}/file{i}.{['txt', 'pdf', 'md'][i % 3]}",
                   "mime_type": None if i % 2 else "Text/Plain", "ingested_at": int(NOW - (i % 9) * 86400 * 20)}
        if i % 11 == 0:
            payload = {"chunk_id": i, "metadata": {"source_path": "x/y", "created_at": "2020-01-01T00:00:00Z"}}
        pts.append({"id": pid, "vector": [float(x) for x in v], "payload": payload})
    return pts


class Standin:
    """The Qdrant stand-in (tests/qdrant_standin) as a subprocess serving `points`."""

    def __init__(self, collection: str, points: list[dict], api_key: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="standin-")
        data = os.path.join(self.dir, "points.jsonl")
        with open(data, "w") as fh:
            for p in points:
                fh.write(json.dumps(p) + "\n")
        port_file = os.path.join(self.dir, "port")
        cmd = ["/usr/bin/python3", STANDIN, "--collection", collection, "--data", data, "--port", "0",
               "--port-file", port_file]
        if api_key:
            cmd += ["--api-key", api_key]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 20, what="stand-in port")
        self.url = f"http://127.0.0.1:{int(open(port_file).read().strip())}"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/__standin/stats", timeout=10) as r:
            return json.load(r)

    def scrolls(self) -> int:
        return sum(v for k, v in self.stats()["routes"].items() if "scroll" in k)

    def faults(self, *faults: dict) -> None:
        req = urllib.request.Request(self.url + "/__standin/faults", data=json.dumps({"faults": list(faults)}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Env:
    """A migrated database, a data dir, a stand-in and helpers to create runs."""

    def __init__(self, points: list[dict] | None = None, api_key: str | None = None, qdrant_name: str = "vecs_main",
                 alembic_schema: bool = False):
        self.db = unique("pw").replace("-", "_")
        base = pwtest.ENV["DATABASE_URL"]
        self.admin_url = base
        self.url = base.rsplit("/", 1)[0] + "/" + self.db
        self.psql_admin(f"CREATE DATABASE {self.db}")
        if alembic_schema:  # the tables as the Python app's Alembic history leaves them
            fixture = os.path.join(pwtest.ROOT, "tests/fixtures/db/semantik_alembic_schema.sql")
            out = subprocess.run(["psql", self.url, "-q", "-v", "ON_ERROR_STOP=1", "-f", fixture],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            self.sql("INSERT INTO users (id, username, email, hashed_password, created_at) "
                     "VALUES (1, 'u', 'u@example.com', 'x', now())")
        out = subprocess.run([pwtest.WORKER_BIN, "migrate", "--database-url", self.url], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        self.data_dir = tempfile.mkdtemp(prefix="pw-data-")
        self.points = points if points is not None else make_points()
        self.qdrant_name = qdrant_name
        self.standin = Standin(qdrant_name, self.points, api_key)
        self.collection_id = str(uuid.uuid4())
        self.insert_collection(self.collection_id, qdrant_name, len(self.points))
        self.workers: list[Worker] = []

    def insert_collection(self, cid: str, vector_store_name: str, vector_count: int = 0) -> None:
        # every NOT NULL column spelled out: the app's schema has no server defaults
        self.sql(f"""INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model,
                       quantization, chunk_size, chunk_overlap, is_public, created_at, updated_at, status,
                       document_count, vector_count, total_size_bytes, chunks_total_count)
                     VALUES ('{cid}', 'c-{cid[:8]}', 1, '{vector_store_name}', 'test-model', 'float16', 1000, 200,
                       false, now(), now(), 'READY', 1, {vector_count}, 0, 0)""")

    def psql_admin(self, sql: str) -> str:
        return self._psql(self.admin_url, sql)

    def sql(self, sql: str) -> str:
        return self._psql(self.url, sql)

    @staticmethod
    def _psql(url: str, sql: str) -> str:
        out = subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def create_run(self, config: dict | None = None, reducer: str = "pca", collection_id: str | None = None) -> str:
        run, op = str(uuid.uuid4()), str(uuid.uuid4())
        cid = collection_id or self.collection_id
        cfg = json.dumps(config or {}).replace("'", "''")
        self.sql(f"""INSERT INTO operations (uuid, collection_id, user_id, type, status, config, created_at)
                     VALUES ('{op}', '{cid}', 1, 'projection_build', 'pending', '{{}}', now());
                     INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status, dimensionality, reducer, config)
                     VALUES ('{run}', '{cid}', '{op}', 'running', 2, '{reducer}', '{cfg}')""")
        return run

    def run_row(self, run: str) -> dict:
        row = self.sql(f"""SELECT json_build_object('status', r.status, 'storage_path', r.storage_path,
                             'point_count', r.point_count, 'meta', r.meta, 'metadata_hash', r.metadata_hash,
                             'error', r.error_message, 'op_status', o.status, 'op_error', o.error_message)
                           FROM projection_runs r LEFT JOIN operations o ON o.uuid = r.operation_uuid
                           WHERE r.uuid = '{run}'""")
        return json.loads(row)

    def worker(self, queue: str, *args: str, env: dict | None = None, name: str | None = None) -> Worker:
        e = {"DATABASE_URL": self.url, "DATA_DIR": self.data_dir, "QDRANT_URL": self.standin.url,
             "QDRANT_TIMEOUT_MS": "3000", "QDRANT_MAX_RETRIES": "3"}
        e.update(env or {})
        w = Worker(queue, *args, env=e, name=name)
        self.workers.append(w)
        w.wait_connected()
        return w

    def queue_with_worker(self, tag: str) -> str:
        """A new queue with one worker consuming it (Env's settings), ready for tasks."""
        q = unique(tag)
        self.worker(q)
        return q

    def send_slowly(self, queue: str, run: str, delay_s: float, times: int, **options):
        """Sends the run's task with each scroll page delayed by delay_s (times pages, -1:
        all), so the run is still fetching when the test acts on it."""
        self.standin.faults({"route": "scroll", "kind": "delay", "delay_s": delay_s, "times": times})
        return celery_app().send_task("webui.tasks.compute_projection", args=[run], queue=queue, **options)

    def __enter__(self) -> "Env":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.standin.stop()
        try:
            self.psql_admin(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        except AssertionError:
            pass


TASK_BIN = os.path.join(os.path.dirname(pwtest.WORKER_BIN), "projection-worker-task")


def run_task_process(env: Env, message: dict, extra_env: dict | None = None) -> tuple[dict, str]:
    """One `projection-worker-task task` run, as the consumer starts it: the message as
    JSON on stdin, the outcome as JSON on stdout, the log on stderr."""
    e = dict(os.environ)
    e.update({"DATABASE_URL": env.url, "DATA_DIR": env.data_dir, "QDRANT_URL": env.standin.url,
              "QDRANT_TIMEOUT_MS": "3000", "QDRANT_MAX_RETRIES": "3"})
    e.update(extra_env or {})
    msg = {"id": str(uuid.uuid4()), "task": "webui.tasks.compute_projection", **message}
    out = subprocess.run([TASK_BIN, "task"], input=json.dumps(msg), capture_output=True, text=True, timeout=180,
                         env=e)
    lines = out.stdout.strip().splitlines()
    assert lines, f"no outcome; stderr: {out.stderr}"
    return json.loads(lines[-1]), out.stderr


def send(queue: str, run: str, timeout: float = 60):
    return celery_app().send_task("webui.tasks.compute_projection", args=[run], queue=queue).get(timeout=timeout)


def plant_temp_dirs(*dirs: str) -> None:
    """Temp directories as a publish killed half way leaves them: one partial file."""
    for d in dirs:
        os.makedirs(d)
        with open(os.path.join(d, "x.f32.bin"), "wb") as fh:
            fh.write(b"\0" * 16)


def read_f32(path: str) -> np.ndarray:
    return np.fromfile(path, dtype="<f4")


def expect_failure(queue: str, run_or_arg, words: str, exc: type = Exception):
    res = celery_app().send_task("webui.tasks.compute_projection", args=[run_or_arg], queue=queue)
    try:
        res.get(timeout=60)
    except exc as e:  # noqa: BLE001
        assert words in str(e), f"{words!r} not in {e!r}"
        return str(e)
    raise AssertionError("task did not fail")


# ---- tests ---------------------------------------------------------------------------------

def test_full_pca_run_matches_numpy_and_the_python_rules():
    with Env() as env:
        q = env.queue_with_worker("proj")
        run = env.create_run({"color_by": "document_id"})
        result = send(q, run)
        run_dir = os.path.join(env.data_dir, "semantik/projections", env.collection_id, run)
        assert result == {"projection_id": run, "status": "completed", "reducer": "pca", "message": None,
                          "point_count": len(env.points), "storage_path": run_dir}, result
        assert sorted(os.listdir(run_dir)) == ["cat.u8.bin", "ids.i32.bin", "meta.json", "x.f32.bin", "y.f32.bin"]
        # x/y: numpy's PCA of the same vectors, up to sign
        vecs = np.asarray([p["vector"] for p in env.points], dtype=np.float32)
        centred = vecs - vecs.mean(axis=0, keepdims=True)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        ref = centred @ vt[:2].T
        for col, name in enumerate(("x.f32.bin", "y.f32.bin")):
            ours = read_f32(os.path.join(run_dir, name))
            sign = np.sign(np.dot(ours, ref[:, col])) or 1.0
            rel = np.max(np.abs(ours - sign * ref[:, col])) / np.max(np.abs(ref[:, col]))
            assert rel < 1e-4, (name, rel)
        ids = np.fromfile(os.path.join(run_dir, "ids.i32.bin"), dtype="<i4")
        assert ids.tolist() == [p["id"] for p in env.points]
        meta = json.load(open(os.path.join(run_dir, "meta.json")))
        ref_cats = reference_case([p["payload"] for p in env.points], "document_id", NOW)
        cat = np.fromfile(os.path.join(run_dir, "cat.u8.bin"), dtype=np.uint8)
        assert cat.tolist() == ref_cats["categories"]
        assert meta["legend"] == ref_cats["legend"]
        assert meta["category_map"] == ref_cats["category_map"]
        assert meta["category_counts"] == ref_cats["category_counts"]
        assert meta["original_ids"] == [str(p["id"]) for p in env.points]
        expected_keys = {"projection_id", "collection_id", "created_at", "point_count", "total_count", "shown_count",
                         "sampled", "reducer_requested", "reducer_used", "reducer_params", "dimensionality",
                         "source_vector_collection", "sample_limit", "files", "color_by", "legend",
                         "explained_variance_ratio", "singular_values", "original_ids", "category_map",
                         "category_counts"}
        assert set(meta) == expected_keys, set(meta) ^ expected_keys
        assert meta["files"] == {"x": "x.f32.bin", "y": "y.f32.bin", "ids": "ids.i32.bin", "categories": "cat.u8.bin"}
        assert meta["sampled"] is False and meta["sample_limit"] == 200000 and meta["dimensionality"] == 2
        ratio = np.square(s[:2]) / np.square(s).sum()
        assert np.allclose(meta["explained_variance_ratio"], ratio, rtol=1e-4)
        assert np.allclose(meta["singular_values"], s[:2], rtol=1e-4)
        # meta.json is written like json.dumps(indent=2, sort_keys=True)
        text = open(os.path.join(run_dir, "meta.json")).read()
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True)
        row = env.run_row(run)
        assert row["status"] == "completed" and row["op_status"] == "completed"
        assert row["storage_path"] == f"semantik/projections/{env.collection_id}/{run}"
        assert row["point_count"] == len(env.points)
        assert len(row["metadata_hash"]) == 64
        assert row["meta"]["projection_artifacts"] == meta
        assert row["meta"]["legend"] == meta["legend"] and row["meta"]["shown_count"] == len(env.points)
        assert not [d for d in os.listdir(os.path.dirname(run_dir)) if d.startswith(".tmp")]


def test_same_request_twice_is_reused_without_fetching_vectors():
    with Env() as env:
        q = unique("reuse")
        w = env.worker(q)
        first = env.create_run({"color_by": "filetype"})
        send(q, first)
        scrolls = env.standin.scrolls()
        second = env.create_run({"color_by": "filetype"})
        result = send(q, second)
        assert env.standin.scrolls() == scrolls, "a reuse fetched vectors"
        assert result["status"] == "completed" and result["point_count"] == len(env.points)
        row = env.run_row(second)
        assert row["status"] == "completed" and row["op_status"] == "completed"
        assert row["meta"]["reused_from"] == first and row["meta"]["idempotent_reuse"] is True
        d1 = os.path.join(env.data_dir, "semantik/projections", env.collection_id, first)
        d2 = os.path.join(env.data_dir, "semantik/projections", env.collection_id, second)
        for f in ("x.f32.bin", "y.f32.bin", "ids.i32.bin", "cat.u8.bin", "meta.json"):
            assert os.stat(os.path.join(d1, f)).st_ino == os.stat(os.path.join(d2, f)).st_ino  # hard link
        # what the API shows for the reused run: the legend and view keys of the source
        first_meta = env.run_row(first)["meta"]
        for key in ("color_by", "legend", "sampled", "shown_count", "total_count"):
            assert row["meta"][key] == first_meta[key], key
        assert w.find("projection_reused")
        # the collection changed: recomputed
        env.sql(f"UPDATE collections SET updated_at = now() + interval '1 second' WHERE id = '{env.collection_id}'")
        third = env.create_run({"color_by": "filetype"})
        send(q, third)
        assert env.standin.scrolls() > scrolls
        assert "reused_from" not in env.run_row(third)["meta"]
        # force: recomputed, with the parent reference
        scrolls = env.standin.scrolls()
        forced = env.create_run({"color_by": "filetype", "force": True})
        send(q, forced)
        assert env.standin.scrolls() > scrolls
        row = env.run_row(forced)
        assert row["meta"].get("parent_run_id") == third, row["meta"].get("parent_run_id")


def test_two_workers_same_hash_compute_once():
    with Env(points=make_points(n=3000, d=64)) as env:
        q = unique("dup")
        env.worker(q, name="dup-a")
        env.worker(q, name="dup-b")
        runs = [env.create_run({"color_by": "source_dir"}) for _ in range(2)]
        # 0.3 s per page: the first compute still holds the lock when the second arrives
        env.standin.faults({"route": "scroll", "kind": "delay", "delay_s": 0.3, "times": -1})
        app = celery_app()
        results = [app.send_task("webui.tasks.compute_projection", args=[r], queue=q) for r in runs]
        values = [r.get(timeout=120) for r in results]
        assert all(v["status"] == "completed" for v in values)
        metas = [env.run_row(r)["meta"] for r in runs]
        assert sum(1 for m in metas if m.get("idempotent_reuse")) == 1, metas
        computed = sum(len(w.find("projection_completed")) for w in env.workers)
        assert computed == 1, computed
        # one scroll session: 3000 points in pages of 1000 = 3 scroll requests
        assert env.standin.scrolls() == 3, env.standin.stats()


def test_redelivered_completed_run_returns_its_result():
    with Env() as env:
        q = env.queue_with_worker("again")
        run = env.create_run()
        first = send(q, run)
        scrolls = env.standin.scrolls()
        again = send(q, run)
        assert again == first and env.standin.scrolls() == scrolls


def test_pipeline_runs_on_the_python_apps_alembic_schema():
    with Env(alembic_schema=True) as env:
        q = env.queue_with_worker("alembic")
        first = env.create_run({"color_by": "source_dir"})
        assert send(q, first)["status"] == "completed"
        second = env.create_run({"color_by": "source_dir"})
        send(q, second)
        row = env.run_row(second)
        assert row["status"] == "completed" and row["meta"]["reused_from"] == first
        assert row["op_status"] == "completed"


def services(command: str) -> None:
    subprocess.run([os.path.join(pwtest.ROOT, "tests/harness/services.sh"), command, pwtest.ENV["PW_SERVICES_DIR"]],
                   check=True, timeout=180)


def test_database_refusing_the_worker_asks_for_redelivery_without_leaking_password():
    with Env() as env:
        run = env.create_run()
        bad_url = env.url.replace("pw-test-secret", "sup3r-s3cret")  # wrong password: not transient, still retried
        outcome, log = run_task_process(env, {"args": [run]}, {"DATABASE_URL": bad_url})
        assert outcome["ok"] is False and outcome["retry"] is True, outcome
        assert "PostgreSQL" in outcome["message"], outcome
        assert "sup3r-s3cret" not in json.dumps(outcome) and "sup3r-s3cret" not in log
        assert env.run_row(run)["status"] == "running", "a run whose state could not be written was touched"


def test_postgres_down_when_the_task_arrives_pauses_the_worker_until_it_returns():
    with Env() as env:
        q = env.queue_with_worker("pgdown")
        w = env.workers[0]
        run = env.create_run()
        services("stop-postgres")
        try:
            res = celery_app().send_task("webui.tasks.compute_projection", args=[run], queue=q)
            w.wait_event("service_unavailable", timeout=90)
            assert not res.ready(), "a task whose run could not be loaded was answered"
        finally:
            services("start-postgres")
        value = res.get(timeout=180)
        assert value["status"] == "completed", value
        row = env.run_row(run)
        assert row["status"] == "completed" and row["op_status"] == "completed", row
        assert not w.find("task_failed")


def finishes_despite(db_fault) -> None:
    """A projection of 4 slow pages (1 s each) during which db_fault(env) hits the task's
    PostgreSQL session: the run completes on a new session."""
    with Env(points=make_points(n=4000, d=32)) as env:
        q = unique("pgfault")
        w = env.worker(q)
        run = env.create_run()
        res = env.send_slowly(q, run, 1.0, -1)
        db_fault(env)
        value = res.get(timeout=120)
        assert value["status"] == "completed" and value["point_count"] == 4000, value
        row = env.run_row(run)
        assert row["status"] == "completed" and row["op_status"] == "completed", row
        assert w.find("projection_db_reconnect")


def test_postgres_restarted_mid_run_is_finished_on_a_new_session():
    def restart(env: Env) -> None:
        env.workers[0].wait_event("task_started")
        time.sleep(1.0)
        services("restart-postgres")

    finishes_despite(restart)


def test_terminated_session_holding_the_lock_is_replaced_before_commit():
    def terminate_lock_holder(env: Env) -> None:
        holders = wait_for(lambda: env.sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND database = "
                                           "(SELECT oid FROM pg_database WHERE datname = current_database())"),
                           30, what="the task's advisory lock")
        env.sql(f"SELECT pg_terminate_backend({int(holders.split()[0])})")

    finishes_despite(terminate_lock_holder)


def test_mixed_dimensions_fail_the_run_clearly():
    pts = make_points(n=20)
    pts[7]["vector"] = pts[7]["vector"][:10]
    with Env(points=pts) as env:
        q = env.queue_with_worker("mixed")
        run = env.create_run()
        msg = expect_failure(q, run, "dimension")
        assert str(pts[7]["id"]) in msg, msg
        row = env.run_row(run)
        assert row["status"] == "failed" and "dimension" in row["error"]


def test_worker_killed_mid_projection_is_finished_by_redelivery():
    with Env(points=make_points(n=20000, d=96)) as env:
        q = unique("kill")
        w1 = env.worker(q, name="kill-a")
        run = env.create_run()
        # slow pages keep the projection running when the kill lands, however fast the
        # worker is (the first 4 of 20 pages take 1 s each; the redelivery finds none)
        res = env.send_slowly(q, run, 1.0, 4)
        w1.wait_event("task_started")
        time.sleep(0.5)
        w1.proc.kill()
        w1.wait_exit()
        assert not w1.find("projection_completed")
        env.worker(q, name="kill-b")
        value = res.get(timeout=120)
        assert value["status"] == "completed" and value["point_count"] == 20000
        coll_dir = os.path.join(env.data_dir, "semantik/projections", env.collection_id)
        assert sorted(os.listdir(os.path.join(coll_dir, run))) == sorted(
            ["cat.u8.bin", "ids.i32.bin", "meta.json", "x.f32.bin", "y.f32.bin"])
        assert env.run_row(run)["status"] == "completed"


def test_task_process_killed_mid_projection_is_requeued_and_completes():
    """The OOM killer ends the task process alone: the worker requeues the message
    (counting the death) and the next attempt completes the run."""
    with Env(points=make_points(n=2000, d=32)) as env:
        q = unique("oomkill")
        w = env.worker(q)
        run = env.create_run()
        # a slow first page keeps the task process alive until the kill lands
        res = env.send_slowly(q, run, 2.0, 1)
        child = wait_for(lambda: pwtest.task_processes(w.proc.pid), 20, what="the task process")
        os.kill(child[0], signal.SIGKILL)
        value = res.get(timeout=120)
        assert value["status"] == "completed" and value["point_count"] == 2000, value
        assert [e["signal"] for e in w.find("task_process_died")] == [9]
        assert env.run_row(run)["status"] == "completed"


def test_progress_is_visible_in_the_database_while_running():
    with Env(points=make_points(n=3000, d=32)) as env:
        q = env.queue_with_worker("progress")
        run = env.create_run({"n_neighbors": 10}, reducer="umap")
        # 0.5 s per page (3 pages): the run lasts long enough to be watched on any machine
        res = env.send_slowly(q, run, 0.5, -1)
        seen = []
        deadline = time.monotonic() + 120
        while not res.ready() and time.monotonic() < deadline:
            meta = env.run_row(run)["meta"] or {}
            if meta.get("progress"):
                seen.append(meta["progress"])
            time.sleep(0.1)
        value = res.get(timeout=120)
        assert value["reducer"] == "umap", value
        assert seen, "no progress was ever visible in projection_runs.meta"
        assert all("phase" in p for p in seen)
        row = env.run_row(run)
        assert row["status"] == "completed" and row["meta"]["progress"] is None


def test_hard_time_limit_stops_the_projection_and_fails_the_run():
    with Env(points=make_points(n=4000, d=48)) as env:
        q = env.queue_with_worker("limit")
        run = env.create_run({"n_neighbors": 15}, reducer="umap")
        # 0.4 s per page (4 pages): still fetching when the 1 s limit fires, whatever the
        # machine; the task sees the cancel after the page in hand
        res = env.send_slowly(q, run, 0.4, -1, time_limit=1)
        try:
            res.get(timeout=60)
        except Exception as exc:  # noqa: BLE001 - synthesised class
            assert type(exc).__name__ == "TimeLimitExceeded", repr(exc)
        else:
            raise AssertionError("time limit not enforced")
        row = wait_for(lambda: (r := env.run_row(run))["status"] == "failed" and r, 30, what="run marked failed")
        assert row["op_status"] == "failed" and "cancel" in row["error"], row
        assert not os.path.exists(os.path.join(env.data_dir, "semantik/projections", env.collection_id, run))


def test_sigterm_lets_a_running_projection_finish():
    """Graceful shutdown: the consumer stops taking work but the task process (which
    ignores SIGTERM sent to the whole group, as systemd does) completes the run."""
    with Env(points=make_points(n=3000, d=32)) as env:
        q = unique("graceful")
        w = env.worker(q)
        run = env.create_run({"n_neighbors": 10}, reducer="umap")
        # 0.6 s per page (3 pages): the SIGTERM lands while the task is still fetching
        res = env.send_slowly(q, run, 0.6, -1)
        w.wait_event("task_started")
        time.sleep(0.5)
        assert not w.find("projection_completed")
        w.signal(signal.SIGTERM)
        # the worker's task processes only (as systemd signals the unit's cgroup): other
        # workers on the machine, such as other ctest lanes', are not this test's
        subprocess.run(["pkill", "-TERM", "-P", str(w.proc.pid), "-f", "projection-worker-task task"], check=False)
        assert w.wait_exit(120) == 0
        value = res.get(timeout=30)
        assert value["status"] == "completed", value
        assert env.run_row(run)["status"] == "completed"


def test_stale_temp_dirs_of_killed_tasks_are_swept():
    with Env() as env:
        q = env.queue_with_worker("sweep")
        coll_dir = os.path.join(env.data_dir, "semantik/projections", env.collection_id)
        old = os.path.join(coll_dir, f".tmp-{uuid.uuid4()}-123-abcdef")
        young = os.path.join(coll_dir, f".tmp-{uuid.uuid4()}-124-abcdef")
        plant_temp_dirs(old, young)
        two_hours_ago = time.time() - 7200
        os.utime(old, (two_hours_ago, two_hours_ago))
        assert send(q, env.create_run())["status"] == "completed"
        assert not os.path.exists(old), "an hour-old temp dir survived"
        assert os.path.exists(young), "a fresh temp dir (maybe a running publish) was removed"


def test_temp_dirs_of_an_earlier_attempt_of_the_run_are_removed_at_once():
    with Env() as env:
        q = env.queue_with_worker("owntmp")
        run = env.create_run()
        coll_dir = os.path.join(env.data_dir, "semantik/projections", env.collection_id)
        own = os.path.join(coll_dir, f".tmp-{run}-123-abcdef")  # left by an attempt killed mid-publish
        other = os.path.join(coll_dir, f".tmp-{uuid.uuid4()}-124-abcdef")  # maybe a publish in progress
        plant_temp_dirs(own, other)
        assert send(q, run)["status"] == "completed"
        assert not os.path.exists(own), "the run's own temp dir survived its next attempt"
        assert os.path.exists(other), "a fresh temp dir of another run was removed"


def test_temp_dirs_of_an_earlier_attempt_are_removed_when_the_run_is_reused():
    # an attempt killed while it published a reuse leaves its temp dir; the next attempt
    # reuses again (nothing to compute) and must sweep it all the same
    with Env() as env:
        q = env.queue_with_worker("reusetmp")
        assert send(q, env.create_run())["status"] == "completed"
        run = env.create_run()
        coll_dir = os.path.join(env.data_dir, "semantik/projections", env.collection_id)
        own = os.path.join(coll_dir, f".tmp-{run}-123-abcdef")
        other = os.path.join(coll_dir, f".tmp-{uuid.uuid4()}-124-abcdef")
        plant_temp_dirs(own, other)
        assert send(q, run)["status"] == "completed"
        assert env.run_row(run)["meta"]["idempotent_reuse"] is True
        assert not os.path.exists(own), "the reused run's own temp dir survived its next attempt"
        assert os.path.exists(other), "a fresh temp dir of another run was removed"


def test_qdrant_5xx_is_retried_then_succeeds():
    with Env() as env:
        q = env.queue_with_worker("q5xx")
        env.standin.faults({"route": "scroll", "kind": "status", "status": 503, "times": 2})
        result = send(q, env.create_run())
        assert result["status"] == "completed"


def test_qdrant_5xx_forever_fails_run_with_clear_message():
    with Env() as env:
        q = env.queue_with_worker("q5xxf")
        env.standin.faults({"route": "any", "kind": "status", "status": 503, "times": -1})
        run = env.create_run()
        msg = expect_failure(q, run, "503")
        row = env.run_row(run)
        assert row["status"] == "failed" and row["op_status"] == "failed" and "503" in row["error"], row
        assert msg


def test_qdrant_timeout_fails_after_retries():
    with Env() as env:
        q = unique("qslow")
        # no Celery retry (test_retries.py has those): the client's own retries, then failure
        env.worker(q, "--max-retries", "0")
        env.standin.faults({"route": "any", "kind": "delay", "delay_s": 5, "times": -1})
        run = env.create_run()
        expect_failure(q, run, "no complete answer within 3000 ms", exc=TimeoutError)
        assert env.run_row(run)["status"] == "failed"


def test_qdrant_unknown_collection_fails_with_404_message():
    with Env() as env:
        q = env.queue_with_worker("q404")
        env.sql(f"UPDATE collections SET vector_store_name = 'nope' WHERE id = '{env.collection_id}'")
        run = env.create_run()
        expect_failure(q, run, "nope")
        assert env.run_row(run)["status"] == "failed"


def test_qdrant_wrong_api_key_fails_without_leaking_it():
    with Env(api_key="right-key") as env:
        q = unique("q401")
        w = env.worker(q, env={"QDRANT_API_KEY": "wrong-key-123"})
        run = env.create_run()
        msg = expect_failure(q, run, "")
        row = env.run_row(run)
        assert row["status"] == "failed"
        assert "wrong-key-123" not in msg and "wrong-key-123" not in (row["error"] or "")
        assert "wrong-key-123" not in w.dump_log()
        assert "401" in msg or "api key" in msg.lower() or "denied" in msg.lower(), msg


def test_api_key_echoed_by_qdrant_never_reaches_log_result_or_run():
    marker = "pw-key-marker-" + uuid.uuid4().hex[:12]
    env = Env(api_key=marker)
    q = unique("echokey")
    try:
        w = env.worker(q, env={"QDRANT_API_KEY": marker})
        env.standin.faults({"route": "any", "kind": "echo_key", "status": 403, "times": -1})
        run = env.create_run()
        msg = expect_failure(q, run, "api-key *** is not valid", exc=PermissionError)
        row = env.run_row(run)
        assert row["status"] == "failed" and "api-key *** is not valid" in row["error"], row
        assert marker not in msg and marker not in row["error"] and marker not in (row["op_error"] or ""), row
        assert marker not in w.dump_log()
    finally:
        env.close()

def test_unknown_run_and_bad_ids_are_refused():
    with Env() as env:
        q = env.queue_with_worker("badid")
        missing = str(uuid.uuid4())
        expect_failure(q, missing, "not found", exc=ValueError)
        expect_failure(q, "../../etc/passwd", "not a UUID", exc=ValueError)
        # a collection id that is not a plain id: refused before any path is built
        bad_cid = "../../escape"
        env.insert_collection(bad_cid, "vecs_other")
        run = env.create_run(collection_id=bad_cid)
        expect_failure(q, run, "collection")
        assert env.run_row(run)["status"] == "failed"
        assert not os.path.exists(os.path.join(env.data_dir, "semantik/projections/../../escape"))
        assert not os.path.exists(os.path.join(env.data_dir, "escape"))


def test_fewer_than_two_vectors_fails_clearly():
    with Env(points=make_points(n=1)) as env:
        q = env.queue_with_worker("tiny")
        run = env.create_run()
        expect_failure(q, run, "need at least 2")
        assert env.run_row(run)["status"] == "failed"


def test_uuid_ids_use_sequential_indexes_and_keep_originals():
    with Env(points=make_points(n=50, uuid_ids=True)) as env:
        q = env.queue_with_worker("uuids")
        run = env.create_run({"color_by": "age_bucket", "sample_size": 40})
        result = send(q, run)
        assert result["point_count"] == 40
        run_dir = result["storage_path"]
        ids = np.fromfile(os.path.join(run_dir, "ids.i32.bin"), dtype="<i4")
        assert ids.tolist() == list(range(40))
        meta = json.load(open(os.path.join(run_dir, "meta.json")))
        # scroll order is the stand-in's id order; the first 40 of it
        assert len(meta["original_ids"]) == 40 and all(len(i) == 36 for i in meta["original_ids"])
        assert meta["sampled"] is True and meta["total_count"] == 50 and meta["sample_limit"] == 40
        order = {str(p["id"]): p for p in env.points}
        payloads = [order[i]["payload"] for i in meta["original_ids"]]
        ref = reference_case(payloads, "age_bucket", NOW)
        cat = np.fromfile(os.path.join(run_dir, "cat.u8.bin"), dtype=np.uint8).tolist()
        assert cat == ref["categories"] and meta["legend"] == ref["legend"]


def test_huge_sample_limit_with_unknown_vector_count_completes():
    with Env() as env:
        q = env.queue_with_worker("bigsample")
        # vector_count 0 is the column's default: the collection's size is unknown
        env.sql(f"UPDATE collections SET vector_count = 0 WHERE id = '{env.collection_id}'")
        run = env.create_run({"sample_size": 1_000_000_000})
        result = send(q, run)
        assert result["status"] == "completed" and result["point_count"] == len(env.points), result
        meta = json.load(open(os.path.join(result["storage_path"], "meta.json")))
        assert meta["sample_limit"] == 1_000_000_000 and meta["sampled"] is False


def test_run_row_whose_id_is_not_a_uuid_is_marked_failed():
    with Env() as env:
        q = env.queue_with_worker("notuuid")
        run = env.create_run()
        bad = "not-a-uuid-" + uuid.uuid4().hex[:8]
        env.sql(f"UPDATE projection_runs SET uuid = '{bad}', status = 'pending' WHERE uuid = '{run}'")
        expect_failure(q, bad, "not a UUID", exc=ValueError)
        row = env.run_row(bad)
        assert row["status"] == "failed" and row["op_status"] == "failed", row
        assert "not a UUID" in row["error"] and "not a UUID" in row["op_error"], row


def test_give_up_fails_run_and_operation_without_computing():
    with Env() as env:
        run = env.create_run()
        reason = "killed by signal 9, likely out of memory"
        outcome, _ = run_task_process(env, {"args": [run], "give_up": reason})
        assert outcome["ok"] is False and reason in outcome["message"], outcome
        assert outcome["exc_type"] == "WorkerLostError", outcome
        row = env.run_row(run)
        assert row["status"] == "failed" and row["op_status"] == "failed", row
        assert reason in row["error"] and reason in row["op_error"], row
        assert env.standin.scrolls() == 0, "a given-up run fetched vectors"
        assert not os.path.exists(os.path.join(env.data_dir, "semantik/projections", env.collection_id, run))


def test_give_up_sweeps_the_temp_dirs_of_the_attempts_that_died():
    # attempts killed mid-publish (the reason the message is given up) leave their temp
    # dirs; the attempt that gives up takes the lock and sweeps them like any other
    with Env() as env:
        run = env.create_run()
        coll_dir = os.path.join(env.data_dir, "semantik/projections", env.collection_id)
        own = os.path.join(coll_dir, f".tmp-{run}-123-abcdef")
        other = os.path.join(coll_dir, f".tmp-{uuid.uuid4()}-124-abcdef")
        plant_temp_dirs(own, other)
        outcome, _ = run_task_process(env, {"args": [run], "give_up": "killed by signal 9, likely out of memory"})
        assert outcome["ok"] is False and outcome["exc_type"] == "WorkerLostError", outcome
        assert env.run_row(run)["status"] == "failed"
        assert not os.path.exists(own), "a given-up run's own temp dir survived"
        assert os.path.exists(other), "a fresh temp dir of another run was removed"


def test_give_up_leaves_a_cancelled_run_cancelled():
    with Env() as env:
        run = env.create_run()
        env.sql(f"UPDATE projection_runs SET status = 'cancelled' WHERE uuid = '{run}'")
        outcome, _ = run_task_process(env, {"args": [run], "give_up": "killed by signal 9, likely out of memory"})
        assert outcome["ok"] is False and outcome.get("exc_type") != "WorkerLostError", outcome
        assert env.run_row(run)["status"] == "cancelled"


def test_give_up_keeps_a_run_an_earlier_attempt_completed():
    with Env() as env:
        run = env.create_run()
        first, _ = run_task_process(env, {"args": [run]})
        assert first["ok"] is True, first
        outcome, _ = run_task_process(env, {"args": [run], "give_up": "killed by signal 9, likely out of memory"})
        assert outcome["ok"] is True and outcome["result"] == first["result"], outcome
        assert env.run_row(run)["status"] == "completed"


def test_unsupported_reducer_falls_back_to_pca_with_reason():
    with Env() as env:
        q = env.queue_with_worker("fallback")
        run = env.create_run({"foo": 1}, reducer="isomap")
        result = send(q, run)
        assert result["reducer"] == "pca"
        meta = json.load(open(os.path.join(result["storage_path"], "meta.json")))
        assert meta["fallback_reason"] == "Unsupported reducer 'isomap'"
        assert meta["reducer_requested"] == "isomap" and meta["reducer_used"] == "pca"
        assert meta["reducer_params"] == {"foo": 1}


def limited_run(reducer: str, config: dict) -> tuple[dict, list[dict], dict]:
    """One run of an oversized request: its meta.json, the worker's
    projection_request_limited lines, and the run's meta row."""
    env = Env()
    q = unique("limits")
    try:
        w = env.worker(q)
        run = env.create_run(config, reducer=reducer)
        result = send(q, run, timeout=120)
        assert result["status"] == "completed" and result["reducer"] == reducer, result
        meta = json.load(open(os.path.join(result["storage_path"], "meta.json")))
        return meta, w.find("projection_request_limited", run=run), env.run_row(run)["meta"]
    finally:
        env.close()


def test_umap_n_neighbors_of_a_million_runs_at_the_bound_with_the_reason_recorded():
    meta, warnings, row_meta = limited_run("umap", {"n_neighbors": 1_000_000})
    want = [{"param": "n_neighbors", "requested": 1_000_000, "used": 200,
             "reason": "n_neighbors above PW_MAX_N_NEIGHBORS (200)"}]
    assert meta["limits_applied"] == want, meta.get("limits_applied")
    assert meta["reducer_params"]["n_neighbors"] == 200, meta["reducer_params"]
    assert row_meta["limits_applied"] == want, row_meta
    assert len(warnings) == 1 and warnings[0]["level"] == "warning", warnings
    assert warnings[0]["limits_applied"] == want and want[0]["reason"] in warnings[0]["msg"], warnings


def test_tsne_n_iter_of_a_billion_runs_at_the_bound_instead_of_spinning():
    meta, warnings, row_meta = limited_run("tsne", {"n_iter": 1_000_000_000})
    want = [{"param": "n_iter", "requested": 1_000_000_000, "used": 5000,
             "reason": "n_iter above PW_MAX_N_ITER (5000)"}]
    assert meta["limits_applied"] == want, meta.get("limits_applied")
    assert meta["reducer_params"]["n_iter"] <= 5000, meta["reducer_params"]
    assert row_meta["limits_applied"] == want, row_meta
    assert len(warnings) == 1, warnings


if __name__ == "__main__":
    pwtest.main(globals())
