"""pwtest - helpers shared by the integration tests (run with /usr/bin/python3).

The services (RabbitMQ, PostgreSQL) are started once by ctest's "services" fixture
(tests/harness/services.sh); their addresses are in the file $PW_SERVICES_ENV.  Each
test runs its own worker process on its own queue, so tests cannot see each other's
messages.  `main(globals())` runs the test functions named on the command line (or
all `test_*`) and prints the "N passed, N failed" line ctest shows.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def services_env() -> dict[str, str]:
    path = os.environ.get("PW_SERVICES_ENV")
    if not path or not os.path.exists(path):
        raise RuntimeError("PW_SERVICES_ENV is not set or missing: run through ctest (services fixture)")
    env = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


ENV = services_env()
BROKER_URL = ENV["CELERY_BROKER_URL"]
WORKER_BIN = os.environ.get("PW_WORKER_BIN", os.path.join(ROOT, "build/worker/projection-worker"))
LOG_DIR = os.path.join(os.environ.get("PW_BUILD_DIR", "/tmp"), "test-logs")
os.makedirs(LOG_DIR, exist_ok=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """One projection-worker process with its JSON-lines log in a file."""

    def __init__(self, queue: str, *args: str, env: dict[str, str] | None = None, name: str | None = None):
        self.queue = queue
        self.log_path = os.path.join(LOG_DIR, f"{name or queue}-{uuid.uuid4().hex[:6]}.log")
        full_env = dict(os.environ)
        full_env["CELERY_BROKER_URL"] = BROKER_URL
        full_env.update(env or {})
        self.log_fh = open(self.log_path, "w")
        cmd = [WORKER_BIN, "run", "-Q", queue, "-c", "1", "-n", f"{name or queue}@test", *args]
        wrapper = os.environ.get("PW_WORKER_WRAPPER")  # e.g. "valgrind --leak-check=full ..."
        if wrapper:
            cmd = wrapper.split() + cmd
        self.proc = subprocess.Popen(cmd, stdout=self.log_fh, stderr=subprocess.STDOUT, env=full_env)

    def events(self) -> list[dict]:
        out = []
        with open(self.log_path) as fh:
            for line in fh:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise AssertionError(f"worker wrote a non-JSON log line: {line!r}")
        return out

    def find(self, event: str, **fields) -> list[dict]:
        return [e for e in self.events() if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

    def wait_event(self, event: str, timeout: float = 20.0, count: int = 1, **fields) -> dict:
        found = wait_for(lambda: len(self.find(event, **fields)) >= count and self.find(event, **fields),
                         timeout, what=f"worker event {event} {fields} (log {self.log_path})")
        return found[count - 1]

    def wait_connected(self, count: int = 1, timeout: float = 30.0) -> None:
        self.wait_event("broker_connected", timeout=timeout, count=count)

    def signal(self, signo: int) -> None:
        self.proc.send_signal(signo)

    def wait_exit(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log_fh.close()

    def stop(self) -> None:
        """SIGTERM and wait.  With a sanitized worker (PW_SANITIZED_WORKER=1) a graceful
        stop must exit 0 and the log must hold no sanitizer report: leaks fail the test."""
        graceful = self.proc.poll() is None
        if graceful:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                graceful = False
        if not self.log_fh.closed:
            self.log_fh.close()
        self.check_sanitizers(graceful)

    def check_sanitizers(self, graceful: bool) -> None:
        log = self.dump_log()
        if "runtime error:" in log or "ERROR: AddressSanitizer" in log:
            raise AssertionError(f"sanitizer report in {self.log_path}")
        if os.environ.get("PW_SANITIZED_WORKER") == "1" and graceful:
            if "LeakSanitizer" in log or self.proc.returncode != 0:
                raise AssertionError(f"worker exit {self.proc.returncode} / leak report in {self.log_path}")

    def dump_log(self) -> str:
        with open(self.log_path) as fh:
            return fh.read()


def celery_app(protocol: int = 2, **conf):
    from celery import Celery

    app = Celery("webui", broker=BROKER_URL, backend="rpc://")
    app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                    task_protocol=protocol, broker_connection_retry_on_startup=True, **conf)
    return app


def results_of(results: list, timeout: float) -> list:
    """The values of several AsyncResults, in order, each awaited with `timeout` as
    `r.get(timeout=...)` does.  They are registered with the result consumer first, so a
    result that arrives while another is awaited is stored on arrival.  Otherwise Celery
    5.2's rpc backend buffers it and its get() drains the connection once more (blocking
    the 1 s interval when nothing else comes) before noticing it is ready: 60 results
    that were all in cost up to a minute."""
    if results:
        results[0].backend.add_pending_results(results)
    return [r.get(timeout=timeout) for r in results]


def rabbitmqctl(*args: str) -> str:
    """rabbitmqctl against the test node (its private epmd port, node name and cookie)."""
    state = ENV["PW_SERVICES_DIR"]
    ports = {}
    with open(os.path.join(state, "rabbit.ports")) as fh:
        for line in fh:
            k, v = line.strip().split("=", 1)
            ports[k] = v
    env = dict(os.environ)
    env.update(HOME=os.path.join(state, "rabbit"), ERL_EPMD_PORT=ports["EPMD_PORT"],
               RABBITMQ_NODENAME=f"pwtest{ports['AMQP_PORT']}@localhost")
    out = subprocess.run(["/usr/lib/rabbitmq/bin/rabbitmqctl", "-q", *args], env=env,
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def queue_counts(queue: str) -> tuple[int, int]:
    """(messages ready, messages unacknowledged) of a queue."""
    for line in rabbitmqctl("list_queues", "name", "messages_ready", "messages_unacknowledged").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {queue} does not exist")


def queue_state(queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of a queue, from a passive queue.declare: quick
    enough to poll while a worker pauses."""
    conn = amqp_connection()
    try:
        _, ready, consumers = conn.channel().queue_declare(queue, passive=True)
        return ready, consumers
    finally:
        conn.close()


def task_processes(parent_pid: int) -> list[int]:
    """Pids of the `projection-worker-task task` processes a worker started."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        if ppid == parent_pid and b"task" in argv[1:2]:
            found.append(int(entry))
    return found


def amqp_connection():
    import amqp

    rest = BROKER_URL.split("://", 1)[1]
    creds, hostpart = rest.split("@", 1)
    user, password = creds.split(":", 1)
    host = hostpart.split("/", 1)[0]
    conn = amqp.Connection(host=host, userid=user, password=password, virtual_host="/")
    conn.connect()
    return conn


def publish_raw(queue: str, body: bytes, content_type: str | None, headers: dict | None = None,
                reply_to: str | None = None, correlation_id: str | None = None,
                content_encoding: str | None = "utf-8") -> None:
    """Publishes a message the way Celery does (default exchange, key = queue), with
    whatever body and properties the test wants, declaring the queue with Celery's flags."""
    import amqp

    conn = amqp_connection()
    ch = conn.channel()
    ch.exchange_declare(queue, "direct", durable=True, auto_delete=False)
    ch.queue_declare(queue, durable=True, exclusive=False, auto_delete=False, arguments={})
    ch.queue_bind(queue, queue, queue)
    props = {"delivery_mode": 2}
    if content_type is not None:
        props["content_type"] = content_type
    if content_encoding is not None:
        props["content_encoding"] = content_encoding
    if reply_to:
        props["reply_to"] = reply_to
    if correlation_id:
        props["correlation_id"] = correlation_id
    msg = amqp.Message(body, application_headers=headers or {}, **props)
    ch.basic_publish(msg, exchange="", routing_key=queue)
    ch.close()
    conn.close()


class ReplyQueue:
    """A reply queue read with basic.get, for results of raw-published messages."""

    def __init__(self):
        self.name = str(uuid.uuid4())
        self.conn = amqp_connection()
        self.ch = self.conn.channel()
        self.ch.queue_declare(self.name, durable=False, exclusive=False, auto_delete=True,
                              arguments={"x-expires": 600000})

    def get(self, timeout: float = 10.0):
        def poll():
            msg = self.ch.basic_get(self.name, no_ack=True)
            return msg

        msg = wait_for(poll, timeout, what=f"a result on {self.name}")
        return msg, json.loads(msg.body)

    def empty_for(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.ch.basic_get(self.name, no_ack=True) is not None:
                return False
            time.sleep(0.05)
        return True

    def close(self):
        self.conn.close()


def setup_dead_letter(queue: str) -> str:
    """Gives `queue` a dead-letter exchange by policy (Celery's queue arguments stay {}),
    returns the name of the queue where rejected messages land."""
    import amqp

    dlx, dlq = f"{queue}.dlx", f"{queue}.dlq"
    conn = amqp_connection()
    ch = conn.channel()
    ch.exchange_declare(dlx, "fanout", durable=True, auto_delete=False)
    ch.queue_declare(dlq, durable=True, exclusive=False, auto_delete=False)
    ch.queue_bind(dlq, dlx, "")
    conn.close()
    rabbitmqctl("set_policy", f"dlx-{queue}", f"^{queue}$", json.dumps({"dead-letter-exchange": dlx}),
                "--apply-to", "queues")
    return dlq


def get_dead_letters(dlq: str, timeout: float = 10.0) -> list:
    conn = amqp_connection()
    ch = conn.channel()
    found = []

    def poll():
        msg = ch.basic_get(dlq, no_ack=True)
        if msg is not None:
            found.append(msg)
        return found

    try:
        wait_for(poll, timeout, what=f"a dead letter in {dlq}")
    finally:
        conn.close()
    return found


def needs_test_tasks(fn):
    """Marks a test that needs the pw.test.sleep task (a PW_TEST_TASKS build); ctest
    reads the marker from the file and registers the test only in such builds."""
    return fn


def main(namespace: dict) -> None:
    names = sys.argv[1:] or sorted(n for n in namespace if n.startswith("test_"))
    passed = failed = 0
    for name in names:
        fn = namespace[name]
        start = time.monotonic()
        try:
            fn()
        except Exception:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - start:.1f}s)")
            traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - start:.1f}s)")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
