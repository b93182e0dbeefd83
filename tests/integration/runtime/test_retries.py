"""Retries as Celery's Task.retry does them (issue 14, item 4), through the real Celery
client against a real RabbitMQ, PostgreSQL and the Qdrant stand-in: a projection whose
Qdrant fails after the client's own retries is published again with retries + 1 and a
backed-off eta, a RETRY state is published, and the retried attempt resumes the same
run; at --max-retries the run fails with the last error."""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "pipeline"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit", "pipeline"))
import pwtest  # noqa: E402
from pwtest import celery_app, queue_counts, unique, wait_for  # noqa: E402
from test_projection import Env  # noqa: E402

# one request and one retry per attempt: a fault of 2 answers outlasts one attempt
CLIENT = {"QDRANT_MAX_RETRIES": "1"}


def states_of(res, timeout: float):
    """Every state message the rpc backend delivered for res, in order, and the outcome
    (the value, or the exception the client raised)."""
    seen = []
    try:
        value = res.get(timeout=timeout, on_message=seen.append, propagate=True)
    except Exception as exc:  # noqa: BLE001 - the failure is part of what the test checks
        value = exc
    return seen, value


def test_transient_qdrant_fault_is_retried_once_then_succeeds():
    with Env() as env:
        q = unique("retry1")
        w = env.worker(q, env=CLIENT)
        run = env.create_run()
        env.standin.faults({"route": "scroll", "kind": "status", "status": 503, "times": 2})
        res = celery_app().send_task("webui.tasks.compute_projection", args=[run], queue=q)
        seen, value = states_of(res, 120)
        statuses = [m["status"] for m in seen]
        assert statuses == ["RETRY", "SUCCESS"], seen
        retry = seen[0]["result"]
        assert retry["exc_type"] == "ConnectionError" and retry["exc_module"] == "builtins", retry
        assert "503" in retry["exc_message"][0], retry
        assert value["status"] == "completed", value
        received = w.find("task_received", task_id=res.id)
        assert [e["retries"] for e in received] == [0, 1], received
        assert [e["retries"] for e in w.find("task_retried", task_id=res.id)] == [1]
        assert len(w.find("projection_completed", task_id=res.id)) == 1
        row = env.run_row(run)
        assert row["status"] == "completed" and row["op_status"] == "completed", row
        assert env.sql("SELECT count(*) FROM projection_runs") == "1", "the retry created another run"
        wait_for(lambda: queue_counts(q) == (0, 0), 20, what="queue drained")


def test_exhausted_retries_fail_the_run_with_the_last_error():
    with Env() as env:
        q = unique("retryx")
        w = env.worker(q, "--max-retries", "1", env=CLIENT)
        run = env.create_run()
        env.standin.faults({"route": "scroll", "kind": "status", "status": 503, "times": -1})
        res = celery_app().send_task("webui.tasks.compute_projection", args=[run], queue=q)
        seen, outcome = states_of(res, 180)
        assert [m["status"] for m in seen] == ["RETRY", "FAILURE"], seen
        assert isinstance(outcome, Exception) and "503" in str(outcome), repr(outcome)
        assert [e["retries"] for e in w.find("task_received", task_id=res.id)] == [0, 1]
        row = env.run_row(run)
        assert row["status"] == "failed" and row["op_status"] == "failed", row
        assert "503" in row["error"] and "503" in row["op_error"], row
        assert type(outcome).__name__ == "ConnectionError", repr(outcome)
        wait_for(lambda: queue_counts(q) == (0, 0), 20, what="queue drained")


if __name__ == "__main__":
    pwtest.main(globals())
