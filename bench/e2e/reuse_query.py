#!/usr/bin/python3
"""reuse_query.py - why the reuse decision is slow for big runs (diagnostic for bench/e2e).

Starts its own PostgreSQL (tests/harness/services.sh ... postgres), migrates a database
with `projection-worker migrate`, inserts K completed projection_runs of one collection
with the same metadata_hash whose meta is as big as a 200k-point run's (original_ids as
200k strings + a category_map of 66,667 doc ids, ~3 MB of text, what the worker and the
Python task store), then times the worker's candidate query from db/runs.c
(runs_find_reusable: RUN_COLUMNS incl. meta::text, ORDER BY completed_at DESC NULLS LAST,
id DESC LIMIT 50) for growing K, next to the same query selecting no meta, and prints
EXPLAIN ANALYZE of the largest case.

  /usr/bin/python3 bench/e2e/reuse_query.py [--points 200000] [--counts 1,10,50,100,250]
"""
import argparse
import functools
import importlib.util
import os
import shutil
import subprocess
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SERVICES = os.path.join(REPO, "tests/harness/services.sh")
_spec = importlib.util.spec_from_file_location("e2e_run", os.path.join(HERE, "run.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)  # psql, services_tmpdir
psql = functools.partial(e2e.psql, timeout=900)

EPOCH = ("(extract(epoch from date_trunc('second', created_at))::bigint * 1000000 + "
         "extract(microseconds from created_at)::bigint % 1000000)")
RUN_COLUMNS = ("id, uuid, collection_id, operation_uuid, status::text, dimensionality, reducer, storage_path, "
               "point_count, config::text, meta::text, metadata_hash, " + EPOCH)
WHERE = ("FROM projection_runs WHERE collection_id = '{c}' AND metadata_hash = 'h' AND uuid <> '{x}' "
         "AND status = 'completed' ORDER BY completed_at DESC NULLS LAST, id DESC LIMIT 50")


def timed(url, sql, reps=3):
    best = None
    for _ in range(reps):
        t0 = time.perf_counter()
        psql(url, sql)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200000)
    ap.add_argument("--counts", default="1,10,50,100,250")
    ap.add_argument("--worker", default=os.path.join(REPO, "build-e2e/worker/projection-worker"))
    args = ap.parse_args()
    tmp = e2e.services_tmpdir("pw-reuseq-")
    state = os.path.join(tmp, "services")
    try:
        subprocess.run(["bash", SERVICES, "start", state, "postgres"], check=True, capture_output=True, timeout=300)
        env = dict(line.strip().split("=", 1) for line in open(os.path.join(state, "services.env")) if "=" in line)
        admin = env["DATABASE_URL"]
        db = "pw_rq_" + uuid.uuid4().hex[:8]
        psql(admin, f"CREATE DATABASE {db}")
        url = admin.rsplit("/", 1)[0] + "/" + db
        subprocess.run([args.worker, "migrate", "--database-url", url], check=True, capture_output=True, timeout=120)
        c = str(uuid.uuid4())
        psql(url, f"INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model, vector_count) "
                  f"VALUES ('{c}', 'c', 1, 'v', 'm', {args.points})")
        p = args.points
        psql(url, f"""CREATE TEMP TABLE m AS SELECT jsonb_build_object('projection_artifacts', jsonb_build_object(
                 'original_ids', (SELECT jsonb_agg((100000 + i)::text) FROM generate_series(1, {p}) i),
                 'category_map', (SELECT jsonb_object_agg('doc-' || i, i % 255) FROM generate_series(0, {p} / 3) i),
                 'reducer_used', 'pca')) AS meta;
             CREATE TABLE meta_src AS SELECT * FROM m;""")
        size = psql(url, "SELECT length(meta::text), pg_column_size(meta) FROM meta_src")
        print(f"meta text / stored bytes: {size}")
        made = 0
        exclude = str(uuid.uuid4())
        print("| completed candidates | worker query (meta::text, LIMIT 50) s | same without meta s | "
              "meta of the newest only s |")
        print("| --- | --- | --- | --- |")
        for k in [int(x) for x in args.counts.split(",")]:
            add = k - made
            if add > 0:
                psql(url, f"""INSERT INTO projection_runs (uuid, collection_id, status, dimensionality, reducer,
                         config, meta, metadata_hash, storage_path, point_count, completed_at)
                         SELECT gen_random_uuid()::text, '{c}', 'completed', 2, 'pca', '{{}}', (SELECT meta FROM meta_src),
                                'h', 'x', {p}, now() - (g || ' seconds')::interval
                         FROM generate_series({made}, {k - 1}) g;
                         ANALYZE projection_runs;""")
                made = k
            w = WHERE.format(c=c, x=exclude)
            t_full = timed(url, f"SELECT {RUN_COLUMNS} {w}")
            t_nometa = timed(url, f"SELECT {RUN_COLUMNS.replace('meta::text, ', '')} {w}")
            t_one = timed(url, f"SELECT meta::text FROM projection_runs WHERE id = (SELECT id {w.replace('LIMIT 50', 'LIMIT 1')})")
            print(f"| {k} | {t_full:.3f} | {t_nometa:.3f} | {t_one:.3f} |", flush=True)
        print("\nEXPLAIN (ANALYZE, BUFFERS) of the worker's query at the largest count:\n")
        print(psql(url, f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE) SELECT {RUN_COLUMNS} {WHERE.format(c=c, x=exclude)}"))
    finally:
        subprocess.run(["bash", SERVICES, "stop", state], capture_output=True, timeout=180)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
