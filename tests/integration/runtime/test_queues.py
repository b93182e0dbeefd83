"""Queues as operators run them: a queue that already exists is consumed as it is
(quorum, dead-letter exchange, max length), `--queue-type quorum` declares new queues as
quorum queues, and QoS is per consumer where RabbitMQ refuses global QoS.  Each test has
its own queue and worker; run one with ctest -R queues.<name>.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pwtest  # noqa: E402
from pwtest import Worker, celery_app, unique  # noqa: E402


def declare(queue: str, arguments: dict) -> None:
    """Declares `queue` the way an operator would before any worker starts."""
    conn = pwtest.amqp_connection()
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, exclusive=False, auto_delete=False, arguments=arguments)
    conn.close()


def app_for(queue: str, arguments: dict):
    """A Celery client that knows the queue's arguments (as the API must for a quorum
    queue: its own declaration would otherwise be refused)."""
    from kombu import Exchange, Queue

    return celery_app(task_queues=[Queue(queue, Exchange(queue, "direct"), routing_key=queue,
                                         queue_arguments=arguments)])


def ping(app, queue: str) -> str:
    return app.send_task("celery.ping", queue=queue).get(timeout=15)


def queue_row(queue: str) -> list[str]:
    """Type, durable and arguments of `queue` as RabbitMQ lists them."""
    rows = [line.split("\t") for line in pwtest.rabbitmqctl(
        "list_queues", "name", "type", "durable", "arguments").splitlines()]
    mine = [r[1:] for r in rows if r[0] == queue]
    assert len(mine) == 1, rows
    return mine[0]


def consumer_prefetch(queue: str) -> list[str]:
    """The prefetch count of each consumer of `queue` (per-consumer QoS; the list also
    counts the consumers, which a quorum queue's own figures report late)."""
    rows = [line.split("\t") for line in pwtest.rabbitmqctl(
        "list_consumers", "queue_name", "prefetch_count").splitlines()]
    return [r[1] for r in rows if r[0] == queue]


def exchange_exists(name: str) -> bool:
    """A passive exchange.declare (quicker than rabbitmqctl)."""
    import amqp

    conn = pwtest.amqp_connection()
    try:
        conn.channel().exchange_declare(name, "direct", passive=True)
        return True
    except amqp.exceptions.NotFound:
        return False
    finally:
        conn.close()


def test_existing_quorum_queue_is_consumed_without_flags():
    q = unique("quorum-pre")
    args = {"x-queue-type": "quorum"}
    declare(q, args)
    w = Worker(q, "-c", "2", "--prefetch-multiplier", "3")
    try:
        w.wait_connected()
        assert ping(app_for(q, args), q) == "pong"
        kind, durable, arguments = queue_row(q)
        assert (kind, durable) == ("quorum", "true") and "quorum" in arguments, (kind, durable, arguments)
        # RabbitMQ refuses global QoS on quorum queues: the prefetch is the consumer's
        assert consumer_prefetch(q) == ["6"], consumer_prefetch(q)
        assert not w.find("broker_connect_failed") and not w.find("broker_connection_lost")
    finally:
        w.stop()


def test_existing_classic_queue_with_dead_letter_and_max_length_is_consumed_as_it_is():
    q = unique("dlx-pre")
    dlx, dlq = f"{q}.dlx", f"{q}.dlq"
    conn = pwtest.amqp_connection()
    ch = conn.channel()
    ch.exchange_declare(dlx, "fanout", durable=True, auto_delete=False)
    ch.queue_declare(dlq, durable=True, exclusive=False, auto_delete=False)
    ch.queue_bind(dlq, dlx, "")
    conn.close()
    args = {"x-dead-letter-exchange": dlx, "x-max-length": 1000}
    declare(q, args)
    w = Worker(q)
    try:
        w.wait_connected()
        assert ping(app_for(q, args), q) == "pong"
        # a message the worker cannot take, published without declaring anything
        import amqp

        conn = pwtest.amqp_connection()
        conn.channel().basic_publish(amqp.Message(b"\x80not json", content_type="application/json",
                                                  application_headers={}), exchange="", routing_key=q)
        conn.close()
        dead = pwtest.get_dead_letters(dlq)
        assert dead[0].body in (b"\x80not json", "\x80not json"), dead[0].body
        kind, durable, arguments = queue_row(q)
        assert (kind, durable) == ("classic", "true")
        assert "x-dead-letter-exchange" in arguments and "x-max-length" in arguments, arguments
        assert w.find("message_rejected")
        assert ping(app_for(q, args), q) == "pong"
        assert not w.find("broker_connect_failed")
    finally:
        w.stop()


def test_queue_type_quorum_declares_new_queues_as_quorum():
    q = unique("quorum-new")
    w = Worker(q, "--queue-type", "quorum")
    try:
        w.wait_connected()
        kind, durable, arguments = queue_row(q)
        assert (kind, durable) == ("quorum", "true"), (kind, durable, arguments)
        # the exchange as Celery declares it (a client's re-declaration would be refused
        # otherwise), and the binding routes the client's message
        assert exchange_exists(q)
        assert ping(app_for(q, {"x-queue-type": "quorum"}), q) == "pong"
        assert consumer_prefetch(q) == ["4"], consumer_prefetch(q)
        started = w.find("worker_starting")[0]
        assert started["queue_type"] == "quorum"
    finally:
        w.stop()
    # a second worker without the flag finds the queue and consumes it as it is
    w2 = Worker(q)
    try:
        w2.wait_connected()
        assert ping(app_for(q, {"x-queue-type": "quorum"}), q) == "pong"
        assert not w2.find("broker_connect_failed")
    finally:
        w2.stop()


def test_classic_queue_keeps_channel_wide_prefetch():
    q = unique("classic-qos")
    w = Worker(q, "-c", "2", "--prefetch-multiplier", "3")
    try:
        w.wait_connected()
        out = pwtest.rabbitmqctl("list_channels", "global_prefetch_count", "consumer_count")
        rows = [line.split("\t") for line in out.splitlines()]
        # the channel's consumers: the task queue's, the pidbox's (no_ack, outside the
        # prefetch) and, during mingle's first second, its reply queue's
        assert any(r[0] == "6" and r[1] in ("2", "3") for r in rows), rows
    finally:
        w.stop()


def test_invalid_queue_type_is_refused_at_start():
    w = Worker(unique("qtype"), "--queue-type", "stream")
    try:
        assert w.wait_exit() == 2
        ev = w.find("config_invalid")
        assert ev and "classic or quorum" in json.dumps(ev), w.dump_log()
    finally:
        w.stop()


if __name__ == "__main__":
    pwtest.main(globals())
