#!/usr/bin/env bash
# deploy/quickstart.sh - the README's "run" command: set everything up and run the main
# job end to end on this machine.
#
# Installs the Debian packages (skip with PW_SKIP_INSTALL=1), builds projection-worker,
# starts a private RabbitMQ (and PostgreSQL) on free loopback ports, starts the worker,
# and drives it with the real Python Celery client exactly as the Semantik API does:
# a celery.ping round trip and a webui.tasks.compute_projection request.  Prints the
# results, then stops everything it started.
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
cleanup() {
    [ -n "$WORKER_PID" ] && kill -TERM "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null || true
    tests/harness/services.sh stop "$STATE"
}
trap cleanup EXIT
# shellcheck disable=SC1091
set -a && source "$STATE/services.env" && set +a
echo "RabbitMQ on 127.0.0.1:$PW_AMQP_PORT, PostgreSQL on 127.0.0.1:$PW_PG_PORT (data in $STATE)"

"$BUILD/worker/projection-worker" run -c 2 >"$STATE/worker.log" 2>&1 &
WORKER_PID=$!

/usr/bin/python3 - <<'PY'
import json, os, sys, time
from celery import Celery

app = Celery("webui", broker=os.environ["CELERY_BROKER_URL"], backend="rpc://")
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")

t0 = time.monotonic()
print("celery.ping ->", app.send_task("celery.ping").get(timeout=60),
      f"({(time.monotonic() - t0) * 1000:.1f} ms, includes worker start-up)")
run_id = "d3b07384-d9a0-4c8e-9f1e-2a3b4c5d6e7f"
res = app.send_task("webui.tasks.compute_projection", args=[run_id])
try:
    value = res.get(timeout=60)
    print("compute_projection ->", json.dumps(value, indent=2))
except Exception as exc:  # the worker reports failures as Celery FAILURE results
    print(f"compute_projection -> {res.state}: {type(exc).__name__}: {exc}")
PY

echo
echo "worker log (JSON lines): $STATE/worker.log"
tail -n 5 "$STATE/worker.log"
