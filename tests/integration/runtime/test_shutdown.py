"""Shutdown as operators expect (issue 14, item 5): SIGQUIT is a cold shutdown (running
tasks' processes terminated, their messages back in the queue, nothing unfinished
acked), and a soft-shutdown window as Celery 5.5's worker_soft_shutdown_timeout gives
running tasks a last chance before the cold stop.  SIGTERM's warm shutdown is tested in
test_consumer.py."""
from __future__ import annotations

import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
import pwtest  # noqa: E402
from pwtest import Worker, celery_app, needs_test_tasks, queue_counts, task_processes, unique, wait_for  # noqa: E402


def gone(pid: int) -> bool:
    """The process no longer runs (exited, or a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def running_task_process(w: Worker) -> int:
    return wait_for(lambda: task_processes(w.proc.pid), 30, what="the task process")[0]


def check_cold_stop(w: Worker, q: str, child: int, res) -> None:
    """The worker exited 0 after a cold stop: the task process killed, no result, the
    task's message back in the queue (never acked)."""
    assert w.wait_exit(30) == 0
    wait_for(lambda: gone(child), 10, what="the task process to end")
    stop = w.find("shutdown_abandoning")
    assert stop and stop[0]["mode"] == "cold" and stop[0]["processes_killed"] == 1, stop
    assert not w.find("task_succeeded") and not w.find("task_failed")
    assert res.state == "PENDING", "a result was published for an unfinished task"
    assert queue_counts(q) == (1, 0), "the unfinished task's message is not back in the queue"


@needs_test_tasks
def test_sigquit_requeues_running_task_and_kills_its_process():
    q = unique("cold")
    w = Worker(q)
    w2 = None
    try:
        w.wait_connected()
        res = celery_app().send_task("pw.test.process", queue=q, kwargs={"seconds": 5})
        child = running_task_process(w)
        w.signal(signal.SIGQUIT)
        check_cold_stop(w, q, child, res)
        w2 = Worker(q, name="cold-second")
        assert res.get(timeout=60) == 5.0
    finally:
        w.stop()
        if w2:
            w2.stop()


@needs_test_tasks
def test_soft_shutdown_window_lets_a_running_task_finish_before_the_cold_stop():
    q = unique("soft")
    w = Worker(q, "--soft-shutdown-timeout", "60")
    try:
        w.wait_connected()
        res = celery_app().send_task("pw.test.process", queue=q, kwargs={"seconds": 2})
        running_task_process(w)
        w.signal(signal.SIGQUIT)
        assert w.wait_exit(60) == 0
        assert res.get(timeout=10) == 2.0
        assert w.find("soft_shutdown_started", reason="SIGQUIT")
        assert not w.find("shutdown_abandoning")
        assert queue_counts(q) == (0, 0)
    finally:
        w.stop()


@needs_test_tasks
def test_warm_deadline_then_soft_window_then_unfinished_task_is_requeued():
    q = unique("softend")
    w = Worker(q, "--shutdown-timeout", "0.5", "--soft-shutdown-timeout", "0.5")
    try:
        w.wait_connected()
        res = celery_app().send_task("pw.test.process", queue=q, kwargs={"seconds": 60})
        child = running_task_process(w)
        w.signal(signal.SIGTERM)
        check_cold_stop(w, q, child, res)
        assert w.find("soft_shutdown_started", reason="warm shutdown deadline")
    finally:
        w.stop()
        pwtest.rabbitmqctl("purge_queue", q)


if __name__ == "__main__":
    pwtest.main(globals())
