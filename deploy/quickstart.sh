#!/usr/bin/env bash
# deploy/quickstart.sh - the README's "run" command: set everything up and run the main
# job end to end on this machine.
#
# Installs the Debian packages (skip with PW_SKIP_INSTALL=1), builds projection-worker,
# starts a private RabbitMQ and PostgreSQL on free loopback ports, migrates the database,
# loads a sample collection (rows in PostgreSQL, points in the Qdrant stand-in), starts
# the worker and drives it with the real Python Celery client exactly as the Semantik
# API does: a projection run is created and enqueued, computed, its artifacts written
# and the result printed; then the same request again, answered by idempotent reuse.
# Stops everything it started.  QUICKSTART_REDUCER=pca|umap|tsne (default umap).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${PW_QUICKSTART_DIR:-/tmp/projection-worker-quickstart}
BUILD=$ROOT/_build/release

if [ "${PW_SKIP_INSTALL:-0}" != 1 ]; then
    deploy/install-deps.sh
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPW_TEST_TASKS=OFF -DPW_INTEGRATION_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 >/dev/null
echo "built $BUILD/worker/projection-worker"

tests/harness/services.sh start "$STATE" all >/dev/null
WORKER_PID=
STANDIN_PID=
cleanup() {
    [ -n "$WORKER_PID" ] && kill -TERM "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null || true
    [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null || true
    tests/harness/services.sh stop "$STATE"
}
trap cleanup EXIT
# shellcheck disable=SC1091
set -a && source "$STATE/services.env" && set +a
echo "RabbitMQ on 127.0.0.1:$PW_AMQP_PORT, PostgreSQL on 127.0.0.1:$PW_PG_PORT (data in $STATE)"

"$BUILD/worker/projection-worker" migrate >"$STATE/migrate.log" 2>&1
echo "database migrated ($STATE/migrate.log)"

# A sample collection: 5,000 clustered 384-d vectors with Semantik-like payloads,
# served by the Qdrant stand-in (tests/qdrant_standin; Qdrant itself is not packaged).
/usr/bin/python3 - "$STATE/points.jsonl" <<'PY'
import json, sys
import numpy as np
rng = np.random.default_rng(42)
centres = rng.normal(size=(8, 384)).astype(np.float32)
with open(sys.argv[1], "w") as fh:
    for i in range(5000):
        c = i % 8
        v = centres[c] + 0.35 * rng.normal(size=384).astype(np.float32)
        v /= np.linalg.norm(v)
        payload = {"doc_id": f"doc-{i // 20}", "source_path": f"/corpus/topic{c}/file{i // 20}.txt",
                   "mime_type": "text/plain", "ingested_at": 1795000000 - i * 3600}
        fh.write(json.dumps({"id": i + 1, "vector": [round(float(x), 6) for x in v], "payload": payload}) + "\n")
PY
/usr/bin/python3 tests/qdrant_standin/qdrant_standin.py --collection quickstart_vectors \
    --data "$STATE/points.jsonl" --port 0 --port-file "$STATE/qdrant.port" >"$STATE/qdrant.log" 2>&1 &
STANDIN_PID=$!
for _ in $(seq 1 100); do [ -s "$STATE/qdrant.port" ] && break; sleep 0.1; done
export QDRANT_URL="http://127.0.0.1:$(cat "$STATE/qdrant.port")"
export DATA_DIR="$STATE/data"
echo "Qdrant stand-in on $QDRANT_URL"

"$BUILD/worker/projection-worker" run -c 2 >"$STATE/worker.log" 2>&1 &
WORKER_PID=$!

/usr/bin/python3 deploy/quickstart.py "$STATE/points.jsonl"

echo
echo "worker log (JSON lines): $STATE/worker.log"
grep -E '"event":"projection_(completed|reused)"' "$STATE/worker.log" | cut -c1-300
