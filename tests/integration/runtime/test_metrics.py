"""Metrics and health over HTTP (issue 14, item 6): /metrics in Prometheus text format,
parsed with Debian's python3-prometheus-client and compared with what the test did;
/healthz stays up while /readyz follows the broker; the heartbeat file advances."""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import urllib.error
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "pipeline"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit", "pipeline"))
import pwtest  # noqa: E402
from pwtest import Worker, celery_app, needs_test_tasks, unique, wait_for  # noqa: E402
from test_projection import Env, send, services  # noqa: E402

METRICS = ("--metrics-address", "127.0.0.1:0")


def base_url(w: Worker) -> str:
    return f"http://127.0.0.1:{w.wait_event('metrics_listening')['port']}"


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def scrape(w: Worker) -> dict:
    """{(sample name, frozenset(labels)): value} of one /metrics answer."""
    with urllib.request.urlopen(base_url(w) + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
        text = r.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_the_tasks_reuses_and_points_of_what_the_worker_did():
    with Env() as env:
        q = unique("metrics")
        w = env.worker(q, *METRICS)
        first, second = env.create_run(), env.create_run()  # same request: the second reuses
        assert send(q, first)["status"] == "completed"
        assert send(q, second)["status"] == "completed"
        assert celery_app().send_task("celery.ping", queue=q).get(timeout=30) == "pong"
        m = scrape(w)
        task = "webui.tasks.compute_projection"
        assert value(m, "pw_tasks_total", task=task, state="SUCCESS") == 2
        assert value(m, "pw_tasks_total", task="celery.ping", state="SUCCESS") == 1
        assert value(m, "pw_tasks_total", task=task, state="FAILURE") == 0
        assert value(m, "pw_task_duration_seconds_count", task=task) == 2
        assert value(m, "pw_projection_reuses_total") == 1
        n, d = len(env.points), len(env.points[0]["vector"])
        assert value(m, "pw_points_fetched_total") == n
        assert value(m, "pw_vector_bytes_fetched_total") == n * d * 4
        for phase in ("fetch", "categories", "reduce", "publish"):
            assert value(m, "pw_projection_phase_duration_seconds_count", reducer="pca", phase=phase) == 1, phase
        assert value(m, "pw_task_retries_total", task=task) == 0
        assert value(m, "pw_running_tasks") == 0 and value(m, "pw_prefetched_messages") == 0
        assert value(m, "pw_consumer_resident_memory_bytes") > 1 << 20
        assert value(m, "pw_broker_connected") == 1 and value(m, "pw_consuming") == 1


@needs_test_tasks
def test_metrics_show_a_running_task_and_its_process_memory():
    q = unique("metricsrun")
    w = Worker(q, *METRICS)
    try:
        w.wait_connected()
        celery_app().send_task("pw.test.process", queue=q, kwargs={"seconds": 30})
        wait_for(lambda: pwtest.task_processes(w.proc.pid), 30, what="the task process")
        def with_process():
            samples = scrape(w)
            return samples if value(samples, "pw_task_processes") == 1 else None

        m = wait_for(with_process, 10, what="the task process in /metrics")
        assert value(m, "pw_running_tasks") == 1
        assert value(m, "pw_task_processes_resident_memory_bytes") > 1 << 20
        w.signal(signal.SIGQUIT)  # cold: the task goes back to the queue, purged below
        assert w.wait_exit(30) == 0
    finally:
        w.stop()
        pwtest.rabbitmqctl("purge_queue", q)


def test_readyz_fails_while_rabbitmq_is_down_and_healthz_stays_up():
    q = unique("ready")
    w = Worker(q, *METRICS, "--reconnect-max", "2")  # back within 2 s of RabbitMQ
    try:
        w.wait_connected()
        url = base_url(w)
        wait_for(lambda: status(url + "/readyz") == 200, 10, what="/readyz 200")
        assert status(url + "/healthz") == 200
        services("stop-rabbit")
        try:
            wait_for(lambda: status(url + "/readyz") == 503, 60, what="/readyz 503 with RabbitMQ down")
            assert status(url + "/healthz") == 200
        finally:
            services("start-rabbit")
        wait_for(lambda: status(url + "/readyz") == 200, 90, what="/readyz back to 200")
        assert status(url + "/healthz") == 200
        assert status(url + "/nothing") == 404
    finally:
        w.stop()


def test_heartbeat_file_advances_while_the_loop_turns():
    path = os.path.join(tempfile.mkdtemp(prefix="pw-hb-"), "heartbeat")
    q = unique("heartbeat")
    w = Worker(q, "--heartbeat-file", path)
    try:
        w.wait_connected()
        first = wait_for(lambda: os.path.exists(path) and os.stat(path).st_mtime_ns, 10, what="heartbeat file")
        wait_for(lambda: os.stat(path).st_mtime_ns > first, 10, what="the heartbeat to advance")
    finally:
        w.stop()


def test_metrics_count_a_revoked_task_discarded_before_it_ran():
    q = unique("metricsrevoke")
    w = Worker(q, "--without-mingle", *METRICS)
    try:
        w.wait_connected()
        app = celery_app()
        rid = str(uuid.uuid4())
        replies = app.control.revoke(rid, destination=[f"{q}@test"], reply=True, timeout=5)
        assert replies, "the worker did not answer the revoke"
        res = app.send_task("celery.ping", queue=q, task_id=rid)
        wait_for(lambda: w.find("task_revoked_discarded", task_id=rid), 20, what="the discard")
        m = scrape(w)
        assert value(m, "pw_task_revokes_total") == 1
        assert value(m, "pw_tasks_total", task="celery.ping", state="SUCCESS") == 0
        assert res.state == "REVOKED"
    finally:
        w.stop()


if __name__ == "__main__":
    pwtest.main(globals())
