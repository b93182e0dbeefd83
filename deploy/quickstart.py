"""The quick start's main job, driven like the Semantik API drives it.

Called by deploy/quickstart.sh once RabbitMQ, PostgreSQL (migrated) and the Qdrant
stand-in are up and the worker runs.  Loads a sample collection (rows in PostgreSQL,
points in the stand-in), creates a projection run as the API does, enqueues
webui.tasks.compute_projection through the real Celery client, prints the result and
the artifacts, then asks for the same projection again to show the idempotent reuse.
usage: quickstart.py SAMPLE_POINTS_JSONL   (env: CELERY_BROKER_URL, DATABASE_URL)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np
from celery import Celery


def psql(sql: str) -> str:
    out = subprocess.run(["psql", os.environ["DATABASE_URL"], "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def create_run(collection_id: str, reducer: str, config: dict) -> str:
    run, op = str(uuid.uuid4()), str(uuid.uuid4())
    psql(f"""INSERT INTO operations (uuid, collection_id, user_id, type, status, config)
             VALUES ('{op}', '{collection_id}', 1, 'projection_build', 'pending', '{{}}');
             INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status, dimensionality, reducer, config)
             VALUES ('{run}', '{collection_id}', '{op}', 'pending', 2, '{reducer}', '{json.dumps(config)}')""")
    return run


def main() -> int:
    points_file = sys.argv[1]
    n = sum(1 for _ in open(points_file))
    collection_id = str(uuid.uuid4())
    psql(f"""INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model, vector_count)
             VALUES ('{collection_id}', 'quickstart', 1, 'quickstart_vectors', 'sample-model', {n})""")
    print(f"sample collection {collection_id}: {n} points in Qdrant collection 'quickstart_vectors'")

    app = Celery("webui", broker=os.environ["CELERY_BROKER_URL"], backend="rpc://")
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    config = {"color_by": "source_dir", "n_neighbors": 15, "min_dist": 0.1}
    for attempt, label in ((1, "first request"), (2, "same request again")):
        run = create_run(collection_id, os.environ.get("QUICKSTART_REDUCER", "umap"), config)
        t0 = time.monotonic()
        result = app.send_task("webui.tasks.compute_projection", args=[run]).get(timeout=600)
        took = time.monotonic() - t0
        print(f"\n{label}: run {run} -> {took:.2f} s")
        print(json.dumps(result, indent=2))
        row = json.loads(psql(f"SELECT json_build_object('status', status, 'storage_path', storage_path, "
                              f"'reused_from', meta->>'reused_from') FROM projection_runs WHERE uuid = '{run}'"))
        print("database:", json.dumps(row))
        run_dir = result["storage_path"]
        meta = json.load(open(os.path.join(run_dir, "meta.json")))
        x = np.fromfile(os.path.join(run_dir, "x.f32.bin"), dtype="<f4")
        print(f"artifacts in {run_dir}: {sorted(os.listdir(run_dir))}")
        print(f"  reducer {meta['reducer_used']}, {len(x)} points, x in [{x.min():.2f}, {x.max():.2f}], "
              f"legend: {', '.join(e['label'] + '=' + str(e['count']) for e in meta['legend'][:6])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
