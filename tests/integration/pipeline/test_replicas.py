"""Replicas: three worker processes (two slots each) on one queue, 60 tasks over 20
distinct requests (one collection, 20 sample limits) with the duplicates interleaved.  Each distinct request is computed
once across the processes (the Qdrant stand-in counts the scrolls: one page per
compute), every run completes with its artifacts, and the duplicates reuse the one
computation (PostgreSQL advisory lock, then the completed run).  Once on a classic queue,
once on a quorum queue (the first worker declares it with --queue-type quorum, the
others consume it as it is).
"""
from __future__ import annotations

import json
import os
import random
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import pwtest  # noqa: E402
from pwtest import celery_app, unique  # noqa: E402
from test_projection import Env, make_points  # noqa: E402

DISTINCT, COPIES, POINTS = 20, 3, 200
FILES = {"x.f32.bin": 4, "y.f32.bin": 4, "ids.i32.bin": 4, "cat.u8.bin": 1}


def create_runs(env: Env, limits: list[int]) -> list[tuple[int, str]]:
    """One pending run (and its operation) per sample limit, in one psql call."""
    runs, sql = [], []
    cid = env.collection_id
    for limit in limits:
        run, op = str(uuid.uuid4()), str(uuid.uuid4())
        runs.append((limit, run))
        sql.append(f"""INSERT INTO operations (uuid, collection_id, user_id, type, status, config, created_at)
                       VALUES ('{op}', '{cid}', 1, 'projection_build', 'pending', '{{}}', now());
                       INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status, dimensionality,
                         reducer, config)
                       VALUES ('{run}', '{cid}', '{op}', 'running', 2, 'pca',
                         '{{"color_by": "filetype", "sample_limit": {limit}}}');""")
    env.sql("\n".join(sql))
    return runs


def run_rows(env: Env) -> dict[str, dict]:
    text = env.sql("""SELECT json_agg(json_build_object('uuid', r.uuid, 'collection_id', r.collection_id,
                        'status', r.status, 'storage_path', r.storage_path, 'point_count', r.point_count,
                        'meta', r.meta, 'metadata_hash', r.metadata_hash, 'op_status', o.status))
                      FROM projection_runs r JOIN operations o ON o.uuid = r.operation_uuid""")
    return {r["uuid"]: r for r in json.loads(text)}


def replicas_case(quorum: bool) -> None:
    with Env(points=make_points(n=POINTS, d=16)) as env:
        q = unique("replicas")
        first = ("--queue-type", "quorum") if quorum else ()
        for i in range(3):
            env.worker(q, "-c", "2", *(first if i == 0 else ()), name=f"replica{i}")
        # distinct requests: the sample limit is part of the metadata hash; every limit
        # is above the point count, so each request projects all the points
        limits = [1000 + k for k in range(DISTINCT)]
        order = limits * COPIES
        random.Random(15).shuffle(order)
        runs = create_runs(env, order)
        if quorum:
            from kombu import Exchange, Queue

            app = celery_app(task_queues=[Queue(q, Exchange(q, "direct"), routing_key=q,
                                                queue_arguments={"x-queue-type": "quorum"})])
            kind = pwtest.rabbitmqctl("list_queues", "name", "type")
            assert f"{q}\tquorum" in kind, kind
        else:
            app = celery_app()
        # each scroll page waits 0.2 s, so duplicates arrive while the first one computes
        env.standin.faults({"route": "scroll", "kind": "delay", "delay_s": 0.2, "times": -1})
        pending = [app.send_task("webui.tasks.compute_projection", args=[run], queue=q) for _, run in runs]
        results = pwtest.results_of(pending, 180)
        assert all(r["status"] == "completed" and r["point_count"] == POINTS for r in results), results

        assert env.standin.scrolls() == DISTINCT, env.standin.stats()
        computed = sum(len(w.find("projection_completed")) for w in env.workers)
        assert computed == DISTINCT, computed
        assert all(w.find("task_received") for w in env.workers), "a replica took no task"
        threads = str(max(1, os.cpu_count() // 2))
        assert all(w.find("worker_starting")[0]["compute_threads"] == threads for w in env.workers)

        rows = run_rows(env)
        assert len(rows) == DISTINCT * COPIES
        for limit in limits:
            mine = [rows[run] for lim, run in runs if lim == limit]
            assert len({r["metadata_hash"] for r in mine}) == 1, mine
            assert sum(1 for r in mine if not r["meta"].get("idempotent_reuse")) == 1, mine
        cid = env.collection_id
        for limit, run in runs:
            row = rows[run]
            assert row["status"] == "completed" and row["op_status"] == "completed", row
            assert row["point_count"] == POINTS and row["collection_id"] == cid
            assert row["storage_path"] == f"semantik/projections/{cid}/{run}"
            run_dir = os.path.join(env.data_dir, row["storage_path"])
            assert sorted(os.listdir(run_dir)) == sorted([*FILES, "meta.json"]), os.listdir(run_dir)
            for name, width in FILES.items():
                assert os.path.getsize(os.path.join(run_dir, name)) == width * POINTS, (run, name)
            meta = json.load(open(os.path.join(run_dir, "meta.json")))
            art = row["meta"].get("projection_artifacts")
            assert art == meta, (run, row["meta"].get("reused_from"),
                                 {k for k in set(meta) | set(art or {}) if (art or {}).get(k) != meta.get(k)})
            assert meta["point_count"] == POINTS and meta["sample_limit"] == limit, run


def test_three_replicas_compute_each_distinct_request_once():
    replicas_case(quorum=False)


def test_three_replicas_on_a_quorum_queue_compute_each_distinct_request_once():
    replicas_case(quorum=True)


if __name__ == "__main__":
    pwtest.main(globals())
