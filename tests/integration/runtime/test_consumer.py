"""Celery interop of `projection-worker run` with the real Python Celery 5 client and a
real RabbitMQ (started by ctest's services fixture).  Each test has its own queue and
worker; run one with: ctest -R queue.<name>, or directly with
PW_SERVICES_ENV=... /usr/bin/python3 tests/integration/runtime/test_consumer.py test_name
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pwtest  # noqa: E402
from pwtest import needs_test_tasks, ReplyQueue, Worker, celery_app, publish_raw, queue_counts, unique, wait_for  # noqa: E402

RUN_ID = "d3b07384-d9a0-4c8e-9f1e-2a3b4c5d6e7f"


def _ping(app, queue: str, timeout: float = 15.0, **kw):
    return app.send_task("celery.ping", queue=queue, **kw).get(timeout=timeout)


def test_ping_protocol2_through_rpc():
    q = unique("ping2")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app(protocol=2)
        assert _ping(app, q) == "pong"
        assert _ping(app, q, args=[]) == "pong"
        assert _ping(app, q, kwargs={}) == "pong"
        received = w.find("task_received", task="celery.ping")
        assert received and all(e["protocol"] == 2 for e in received), received
    finally:
        w.stop()


def test_ping_protocol1_through_rpc():
    q = unique("ping1")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app(protocol=1)
        assert _ping(app, q) == "pong"
        assert _ping(app, q, kwargs={}) == "pong"
        received = w.find("task_received", task="celery.ping")
        assert received and all(e["protocol"] == 1 for e in received), received
    finally:
        w.stop()


def test_projection_task_reads_args_and_kwargs_forms():
    """Both call forms reach the handler in both protocols; this worker has no database
    configured, so the task fails with a message naming the run and the missing setting
    (never a fake success).  The full pipeline is tested in tests/integration/pipeline."""
    q = unique("proj")
    w = Worker(q)
    try:
        w.wait_connected()
        for protocol in (1, 2):
            app = celery_app(protocol=protocol)
            for call in ({"args": [RUN_ID]}, {"kwargs": {"projection_id": RUN_ID}}):
                res = app.send_task("webui.tasks.compute_projection", queue=q, **call)
                try:
                    res.get(timeout=15)
                except ValueError as exc:
                    assert RUN_ID in str(exc) and "DATABASE_URL" in str(exc), exc
                else:
                    raise AssertionError("compute_projection pretended to succeed")
                assert res.state == "FAILURE"
            bad = app.send_task("webui.tasks.compute_projection", queue=q, args=["../etc/passwd"])
            try:
                bad.get(timeout=15)
            except ValueError as exc:
                assert "not a UUID" in str(exc), exc
            else:
                raise AssertionError("a non-UUID run id was accepted")
    finally:
        w.stop()


def test_unknown_task_rejected_with_failure_result_and_worker_keeps_serving():
    from celery.exceptions import NotRegistered

    q = unique("unknown")
    dlq = pwtest.setup_dead_letter(q)
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("webui.tasks.no_such_task", queue=q, args=[1])
        try:
            res.get(timeout=15)
        except NotRegistered as exc:
            assert "webui.tasks.no_such_task" in str(exc)
        else:
            raise AssertionError("unknown task did not fail")
        dead = pwtest.get_dead_letters(dlq)
        assert json.loads(dead[0].body)[0] == [1]
        assert dead[0].application_headers["task"] == "webui.tasks.no_such_task"
        assert _ping(app, q) == "pong"
        assert queue_counts(q) == (0, 0)
        assert len(w.find("task_unregistered")) == 1
    finally:
        w.stop()


def _bad_message_case(body: bytes, content_type: str | None, headers: dict | None, expect_exc: str,
                      log_words: str, content_encoding: str | None = "utf-8"):
    """Publishes one bad message with reply_to: it must be dead-lettered untouched, get a
    FAILURE result, one error log line, and the worker must answer the next ping."""
    q = unique("bad")
    dlq = pwtest.setup_dead_letter(q)
    w = Worker(q)
    replies = ReplyQueue()
    task_id = str(uuid.uuid4())
    try:
        w.wait_connected()
        hdrs = dict(headers or {})
        if "id" in hdrs:
            hdrs["id"] = task_id
        publish_raw(q, body, content_type, hdrs, reply_to=replies.name, correlation_id=task_id,
                    content_encoding=content_encoding)
        dead = pwtest.get_dead_letters(dlq)
        got = dead[0].body
        got = got.encode() if isinstance(got, str) else got  # py-amqp decodes utf-8 bodies
        assert got == body, "the dead-lettered message was altered"
        msg, result = replies.get()
        assert msg.properties["correlation_id"] == task_id
        assert result["status"] == "FAILURE" and result["task_id"] == task_id, result
        assert result["result"]["exc_type"] == expect_exc, result
        rejected = w.find("message_rejected")
        assert len(rejected) == 1 and log_words in rejected[0]["msg"], rejected
        assert _ping(celery_app(), q) == "pong"
        assert queue_counts(q) == (0, 0)
        assert w.proc.poll() is None
    finally:
        replies.close()
        w.stop()


V2_HEADERS = {"lang": "py", "task": "celery.ping", "id": "set-per-test", "retries": 0,
              "timelimit": [None, None], "eta": None, "expires": None}


def test_rejects_pickle_body_without_requeue():
    # A real pickle of ([], {}, {}) - it must never be unpickled.
    body = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00]\x94}\x94}\x94\x87\x94."
    _bad_message_case(body, "application/x-python-serialize", V2_HEADERS, "ContentDisallowed",
                      "pickle", content_encoding="binary")


def test_rejects_garbage_body_without_requeue():
    _bad_message_case(b"[[\"x\"], {, not json", "application/json", V2_HEADERS, "DecodeError",
                      "Can't decode message body")


def test_rejects_message_without_task_header():
    _bad_message_case(b'[["x"], {}, {}]', "application/json", {}, "InvalidTaskError",
                      "unknown message")


def test_rejects_wrong_body_shape():
    _bad_message_case(b'{"not": "a task"}', "application/json", V2_HEADERS, "DecodeError",
                      "protocol 2 body")


def test_expired_on_arrival_is_revoked_and_acked():
    q = unique("expired")
    w = Worker(q)
    replies = ReplyQueue()
    task_id = str(uuid.uuid4())
    try:
        w.wait_connected()
        headers = dict(V2_HEADERS, id=task_id, expires="2020-01-01T00:00:00+00:00")
        publish_raw(q, b"[[], {}, {}]", "application/json", headers, reply_to=replies.name,
                    correlation_id=task_id)
        _, result = replies.get()
        assert result["status"] == "REVOKED" and result["result"]["exc_message"] == ["expired"]
        assert queue_counts(q) == (0, 0)
    finally:
        replies.close()
        w.stop()


def test_eta_task_is_held_until_due():
    q = unique("eta")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app()
        sent = time.time()
        res = app.send_task("celery.ping", queue=q, countdown=2)
        assert res.get(timeout=20) == "pong"
        started = w.find("task_started")[0]
        # The worker must not start it before its eta (allow for clock granularity).
        started_ts = time.mktime(time.strptime(started["ts"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert started_ts >= int(sent) + 1, (sent, started)
    finally:
        w.stop()


@needs_test_tasks
def test_track_started_publishes_started_state():
    q = unique("started")
    w = Worker(q, "--track-started")
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.sleep", queue=q, args=[1.5])
        wait_for(lambda: res.state == "STARTED", 10, what="STARTED state")
        assert res.get(timeout=15) == 1.5
        assert res.state == "SUCCESS"
    finally:
        w.stop()


def test_queues_declared_exactly_like_celery():
    """A Celery client declares the same exchange/queue/binding before publishing; any
    flag difference would make RabbitMQ refuse with 406.  Also compare the listing."""
    q = unique("decl")
    w = Worker(q)
    try:
        w.wait_connected()
        rows = [line.split("\t") for line in pwtest.rabbitmqctl(
            "list_queues", "name", "durable", "auto_delete", "exclusive", "arguments").splitlines()]
        mine = [r for r in rows if r[0] == q]
        assert mine == [[q, "true", "false", "false", "[]"]], mine
        ex = [line.split("\t") for line in pwtest.rabbitmqctl(
            "list_exchanges", "name", "type", "durable", "auto_delete").splitlines()]
        assert [q, "direct", "true", "false"] in ex
        binds = pwtest.rabbitmqctl("list_bindings", "source_name", "destination_name", "routing_key")
        assert f"{q}\t{q}\t{q}" in binds
        assert _ping(celery_app(), q) == "pong"  # the client re-declares: no 406
    finally:
        w.stop()


def test_shares_a_queue_with_a_python_celery_worker():
    """A Python Celery 5 worker and ours consume the same queue: the Python worker's
    declarations are accepted next to ours and both answer pings."""
    import subprocess

    q = unique("shared")
    ours = Worker(q)
    env = dict(os.environ, CELERY_BROKER_URL=pwtest.BROKER_URL, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    log = open(os.path.join(pwtest.LOG_DIR, f"{q}-python.log"), "w")
    py = subprocess.Popen(["/usr/bin/python3", "-m", "celery", "-A", "pyworker_app", "worker", "-Q", q, "-c", "1",
                           "-P", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
                           "-n", f"py-{q}@test", "-l", "info"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ours.wait_connected()
        app = celery_app()
        wait_for(lambda: "ready" in open(log.name).read(), 30, what="python worker ready")
        results = [app.send_task("celery.ping", queue=q) for _ in range(60)]
        assert pwtest.results_of(results, 30) == ["pong"] * 60
        served_by_us = len(ours.find("task_succeeded", task="celery.ping"))
        served_by_python = open(log.name).read().count("succeeded in")
        assert served_by_us + served_by_python == 60, (served_by_us, served_by_python)
        assert served_by_us > 0 and served_by_python > 0, (served_by_us, served_by_python)
    finally:
        py.terminate()
        py.wait(20)
        log.close()
        ours.stop()


def test_amqps_connection_verifies_the_broker_certificate():
    """amqps:// with the test CA serves tasks; without it (system CAs) the handshake is
    refused, logged without the password, and retried - the worker does not die."""
    q = unique("tls")
    url = pwtest.ENV["PW_AMQPS_URL"]
    good = Worker(q, env={"CELERY_BROKER_URL": url, "PW_BROKER_CA_FILE": pwtest.ENV["PW_TLS_CA_FILE"]})
    bad = Worker(q, env={"CELERY_BROKER_URL": url}, name=f"{q}-noca")
    try:
        good.wait_connected()
        # the password is masked; here the user name is the same word, so it is scrubbed too
        assert good.find("broker_connected")[0]["broker"].startswith("amqps://***:***@")
        assert _ping(celery_app(), q) == "pong"
        failure = bad.wait_event("broker_connect_failed", timeout=20)
        assert "verif" in failure["msg"].lower() or "certificate" in failure["msg"].lower(), failure
        bad.wait_event("broker_connect_failed", count=2, timeout=20)
        assert bad.proc.poll() is None
        assert "guest:guest" not in bad.dump_log()
    finally:
        good.stop()
        bad.stop()


def test_prefetch_is_concurrency_times_multiplier():
    q = unique("qos")
    w = Worker(q, "-c", "2", "--prefetch-multiplier", "3")
    try:
        w.wait_connected()
        out = pwtest.rabbitmqctl("list_channels", "prefetch_count", "global_prefetch_count", "consumer_count")
        rows = [line.split("\t") for line in out.splitlines()]
        # the channel's consumers: the task queue's, the pidbox's (no_ack, outside the
        # prefetch) and, during mingle's first second, its reply queue's
        assert any(r[2] in ("2", "3") and "6" in (r[0], r[1]) for r in rows), rows
    finally:
        w.stop()


@needs_test_tasks
def test_killed_worker_task_is_redelivered_and_completed():
    q = unique("kill9")
    w1 = Worker(q, name="kill9-first")
    w2 = None
    try:
        w1.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.sleep", queue=q, args=[2.0])
        w1.wait_event("task_started")
        w1.proc.kill()  # SIGKILL: no chance to ack or requeue
        w1.wait_exit()
        assert not w1.find("task_succeeded")
        ready, unacked = wait_for(lambda: queue_counts(q)[0] == 1 and queue_counts(q), 15,
                                  what="message back in the queue")
        assert (ready, unacked) == (1, 0)
        w2 = Worker(q, name="kill9-second")
        assert res.get(timeout=30) == 2.0
        redelivered = w2.find("task_received", task="pw.test.sleep")
        assert redelivered and redelivered[0]["redelivered"] is True
        assert queue_counts(q) == (0, 0)
    finally:
        w1.stop()
        if w2:
            w2.stop()


@needs_test_tasks
def test_worker_reconnects_after_rabbitmq_restart():
    q = unique("restart")
    w = Worker(q)
    try:
        w.wait_connected()
        assert _ping(celery_app(), q) == "pong"
        import subprocess

        subprocess.run([os.path.join(pwtest.ROOT, "tests/harness/services.sh"), "restart-rabbit",
                        pwtest.ENV["PW_SERVICES_DIR"]], check=True, timeout=180)
        w.wait_event("broker_connection_lost", timeout=30)
        w.wait_connected(count=2, timeout=90)
        assert _ping(celery_app(), q, timeout=30) == "pong"
        assert w.proc.poll() is None
        lost = w.find("broker_connection_lost")[0]
        assert "guest:guest" not in json.dumps(w.events())  # password never logged
        assert lost["level"] == "error"
    finally:
        w.stop()


@needs_test_tasks
def test_sigterm_finishes_running_task_then_exits_zero():
    q = unique("term")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.sleep", queue=q, args=[1.5])
        w.wait_event("task_started")
        w.signal(signal.SIGTERM)
        assert w.wait_exit(30) == 0
        assert res.get(timeout=10) == 1.5
        assert w.find("shutdown_started") and w.find("task_succeeded")
        assert queue_counts(q) == (0, 0)
    finally:
        w.stop()


@needs_test_tasks
def test_sigterm_after_grace_period_leaves_task_to_redelivery():
    q = unique("grace")
    w = Worker(q, "--shutdown-timeout", "0.5")
    w2 = None
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.sleep", queue=q, args=[3.0])
        queued = app.send_task("celery.ping", queue=q)  # reserved, not started (-c 1)
        w.wait_event("task_started")
        w.signal(signal.SIGTERM)
        assert w.wait_exit(30) == 0
        assert w.find("shutdown_abandoning")
        assert not w.find("task_succeeded", task="pw.test.sleep")
        w2 = Worker(q, name="grace-second")
        assert res.get(timeout=30) == 3.0
        assert queued.get(timeout=30) == "pong"
    finally:
        w.stop()
        if w2:
            w2.stop()


@needs_test_tasks
def test_consumer_timeout_ends_in_one_redelivery_not_a_second_run():
    """RabbitMQ closes a channel whose delivery stays unacked past consumer_timeout,
    checked on each channel tick (channel_tick_interval, 60 s by default; 1 s here so the
    test waits seconds, not minutes).  The worker reconnects, the redelivered message
    attaches to the still-running task, and the task runs once and is acked once."""
    q = unique("ctimeout")
    pwtest.rabbitmqctl("eval", "application:set_env(rabbit, channel_tick_interval, 1000).")
    pwtest.rabbitmqctl("eval", "application:set_env(rabbit, consumer_timeout, 2000).")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.sleep", queue=q, args=[8.0])
        assert res.get(timeout=90) == 8.0
        assert w.find("broker_connection_lost"), "the broker never enforced consumer_timeout"
        assert "PRECONDITION_FAILED" in w.find("broker_connection_lost")[0]["msg"]
        assert len(w.find("redelivery_attached")) >= 1
        assert len(w.find("task_started")) == 1, "the task ran twice"
        assert len(w.find("task_succeeded")) == 1
        wait_for(lambda: queue_counts(q) == (0, 0), 10, what="queue drained")
    finally:
        pwtest.rabbitmqctl("eval", "application:set_env(rabbit, consumer_timeout, 1800000).")
        pwtest.rabbitmqctl("eval", "application:set_env(rabbit, channel_tick_interval, 60000).")
        w.stop()


@needs_test_tasks
def test_heartbeats_flow_while_a_task_computes():
    """With a 1 s heartbeat a worker that stopped servicing the connection during a
    task would be disconnected by RabbitMQ within ~3 s."""
    q = unique("hb")
    w = Worker(q, "--heartbeat", "1")
    try:
        w.wait_connected()
        res = celery_app().send_task("pw.test.sleep", queue=q, args=[5.0])
        assert res.get(timeout=30) == 5.0
        assert not w.find("broker_connection_lost"), w.find("broker_connection_lost")
    finally:
        w.stop()


@needs_test_tasks
def test_hard_time_limit_fails_task():
    q = unique("limit")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.sleep", queue=q, args=[10.0], time_limit=1)
        try:
            res.get(timeout=20)
        except Exception as exc:  # noqa: BLE001 - the client synthesises the class
            assert type(exc).__name__ == "TimeLimitExceeded", repr(exc)
        else:
            raise AssertionError("time limit not enforced")
        assert _ping(app, q) == "pong"
    finally:
        w.stop()


@needs_test_tasks
def test_task_process_killed_alone_is_requeued_and_completes():
    """What the OOM killer does: the task process dies of SIGKILL, the worker lives."""
    q = unique("oomonce")
    w = Worker(q)
    try:
        w.wait_connected()
        res = celery_app().send_task("pw.test.process", queue=q, kwargs={"seconds": 2.0})
        w.wait_event("task_started")
        child = wait_for(lambda: pwtest.task_processes(w.proc.pid), 10, what="the task process")
        os.kill(child[0], signal.SIGKILL)
        assert res.get(timeout=30) == 2.0
        died = w.find("task_process_died")
        assert [(e["signal"], e["deaths"]) for e in died] == [(9, 1)], died
        assert len(w.find("task_received", task="pw.test.process")) == 2
        assert not w.find("task_failed")
        wait_for(lambda: queue_counts(q) == (0, 0), 10, what="queue drained")
    finally:
        w.stop()


@needs_test_tasks
def test_task_process_dying_every_time_fails_after_max_deaths():
    q = unique("oomalways")
    w = Worker(q)  # --max-task-deaths defaults to 3
    try:
        w.wait_connected()
        res = celery_app().send_task("pw.test.process", queue=q, kwargs={"die": True})
        try:
            res.get(timeout=60)
        except Exception as exc:  # noqa: BLE001 - the client rebuilds billiard's class
            assert type(exc).__name__ == "WorkerLostError", repr(exc)
            assert "killed by signal 9, likely out of memory" in str(exc), repr(exc)
        else:
            raise AssertionError("a task whose process always dies succeeded")
        assert [e["deaths"] for e in w.find("task_process_died")] == [1, 2, 3]
        # three deaths, then one last run that gives up and is answered once
        assert len(w.find("task_received", task="pw.test.process")) == 4
        assert len(w.find("task_failed")) == 1
        wait_for(lambda: queue_counts(q) == (0, 0), 10, what="queue drained")
    finally:
        w.stop()


@needs_test_tasks
def test_retry_answer_requeues_pauses_consuming_and_later_succeeds():
    """A task that answers retry (its database unreachable) is never answered FAILURE:
    it is published again as Celery's Task.retry does (retries + 1, a backed-off eta),
    and the worker stops consuming, gives every message back to the queue, and resumes
    after a pause (1 s, doubling per retry until a success resets it)."""
    q = unique("retry")
    counter = os.path.join(pwtest.LOG_DIR, f"{q}.count")
    w = Worker(q)
    try:
        w.wait_connected()
        app = celery_app()
        res = app.send_task("pw.test.process", queue=q, kwargs={"retry_file": counter, "retries": 3})
        pings = [app.send_task("celery.ping", queue=q) for _ in range(2)]
        # while paused: no consumer on the queue, the task and both pings wait in it
        wait_for(lambda: pwtest.queue_state(q) == (3, 0), 20, what="paused with 3 messages ready")
        assert res.get(timeout=60) == 0.0
        assert [p.get(timeout=30) for p in pings] == ["pong", "pong"]
        paused = w.find("service_unavailable")
        assert [e["retries"] for e in paused] == [0, 1, 2], paused
        assert all(e["paused_s"] in (1.0, 2.0, 4.0) for e in paused), paused
        assert [e["retries"] for e in w.find("task_retried", task_id=res.id)] == [1, 2, 3]
        assert all(e["level"] == "warning" and "unavailable" in e["msg"] for e in paused), paused
        assert not w.find("task_failed")
        with open(counter) as fh:
            assert fh.read().strip() == "4"
        wait_for(lambda: queue_counts(q) == (0, 0), 10, what="queue drained")
    finally:
        w.stop()


def test_invalid_configuration_exits_with_clear_message():
    import subprocess

    out = subprocess.run([pwtest.WORKER_BIN, "run", "-b", "redis://u:secret@h:1/0"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 2
    line = json.loads(out.stderr.strip().splitlines()[-1])
    assert line["event"] == "config_invalid" and "secret" not in out.stderr
    out = subprocess.run([pwtest.WORKER_BIN, "run", "--concurrency", "zero"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 2 and "concurrency" in out.stderr


if __name__ == "__main__":
    pwtest.main(globals())
