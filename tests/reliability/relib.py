"""relib - what every section of the reliability campaign (campaign.py) shares.

One CampEnv per section: its own database owned by a role whose password is a marker
string, a RabbitMQ user whose password is another marker, a Qdrant stand-in whose API key
is a third; status-transition triggers (test-side instruments) on projection_runs and
operations, so "completed exactly once" is counted by the database itself; replicas
started in their own process group (kill -9 of a replica takes its task process with
it, as a container kill does) and supervised (a dead replica is started again, so the
broker's redelivery has somewhere to go).  Everything the worker says (logs, results,
run rows, events) is written under OUT_DIR, which the secrets check greps.

Report rows: attack -> expected -> observed, verdict PASS, FAIL or NOT REACHED (a fault
point that never fired: the step is not instrumented in this build, which is never a
pass).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "integration", "pipeline"))
import pwtest  # noqa: E402
from pwtest import wait_for  # noqa: E402
from test_projection import Standin, make_points  # noqa: E402,F401  (re-exported for sections)

# Marker secrets: unusual enough that any occurrence in an output is a leak.
MARK_BROKER = "pwSECRETbroker7f3a9c"
MARK_PG = "pwSECRETpg91c2e8"
MARK_QDRANT = "pwSECRETqkey55e1d0"
MARKERS = (MARK_BROKER, MARK_PG, MARK_QDRANT)
CAMP_USER = "pwcamp"

OUT_DIR = os.environ.get("PW_RELIABILITY_OUT") or os.path.join(
    os.environ.get("PW_BUILD_DIR", "/tmp"), "reliability")
RUN_FILES = {"x.f32.bin": 4, "y.f32.bin": 4, "ids.i32.bin": 4, "cat.u8.bin": 1}
SERVICES_SH = os.path.join(pwtest.ROOT, "tests/harness/services.sh")
SECTION = "misc"  # campaign.py sets the running section: outputs go to OUT_DIR/SECTION/


# ---- report ---------------------------------------------------------------------------

class Report:
    """Rows of one section, printed as they come and written to OUT_DIR/report-SECTION.md."""

    def __init__(self, section: str):
        self.section = section
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, attack: str, expected: str, observed: str, verdict: str) -> str:
        assert verdict in ("PASS", "FAIL", "NOT REACHED"), verdict
        self.rows.append((attack, expected, observed, verdict))
        print(f"{verdict:11} | {self.section} | {attack} | expected: {expected} | observed: {observed}", flush=True)
        return verdict

    def check(self, attack: str, expected: str, observed: str, ok: bool) -> str:
        return self.add(attack, expected, observed, "PASS" if ok else "FAIL")

    def write(self, mode: str) -> int:
        os.makedirs(OUT_DIR, exist_ok=True)
        path = os.path.join(OUT_DIR, f"report-{self.section}.md")
        with open(path, "w") as fh:
            fh.write(f"### {self.section} ({mode} mode, {time.strftime('%Y-%m-%d %H:%M:%S')})\n\n")
            fh.write("| attack | expected | observed | verdict |\n| --- | --- | --- | --- |\n")
            for row in self.rows:
                fh.write("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |\n")
        bad = [r for r in self.rows if r[3] != "PASS"]
        print(f"\n{self.section}: {len(self.rows) - len(bad)} PASS, "
              f"{sum(r[3] == 'FAIL' for r in bad)} FAIL, {sum(r[3] == 'NOT REACHED' for r in bad)} NOT REACHED"
              f" (table: {path})", flush=True)
        return 1 if bad else 0


# ---- collected outputs ------------------------------------------------------------------

def out_path(*parts: str) -> str:
    path = os.path.join(OUT_DIR, SECTION, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def record(kind: str, value) -> None:
    """Appends something the worker produced (a result, an error, a run row, an event) to
    OUT_DIR/collected-KIND.jsonl for the secrets grep."""
    with open(out_path(f"collected-{kind}.jsonl"), "a") as fh:
        fh.write(json.dumps(value, default=str) + "\n")


def grep_markers(paths: list[str]) -> list[str]:
    """Lines 'file: marker' for every marker found in the files (bytes, not parsed)."""
    found = []
    for p in paths:
        try:
            data = open(p, "rb").read()
        except OSError:
            continue
        for m in MARKERS:
            if m.encode() in data:
                found.append(f"{os.path.basename(p)}: {m}")
    return found


def collected_files() -> list[str]:
    out = []
    for dirpath, _, names in os.walk(OUT_DIR):
        for n in names:
            if n.endswith((".log", ".jsonl")):
                out.append(os.path.join(dirpath, n))
    return sorted(out)


# ---- services with marker credentials -----------------------------------------------------

def _run(cmd: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def psql(url: str, sql: str, check: bool = True) -> str:
    out = _run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], timeout=60)
    if check and out.returncode != 0:
        raise AssertionError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def broker_url_with_marker() -> str:
    """amqp://pwcamp:MARK_BROKER@host:port// - a RabbitMQ user made for the campaign."""
    try:
        pwtest.rabbitmqctl("add_user", CAMP_USER, MARK_BROKER)
    except RuntimeError:
        pwtest.rabbitmqctl("change_password", CAMP_USER, MARK_BROKER)
    pwtest.rabbitmqctl("set_permissions", "-p", "/", CAMP_USER, ".*", ".*", ".*")
    host = pwtest.BROKER_URL.split("@", 1)[1].split("/", 1)[0]
    return f"amqp://{CAMP_USER}:{MARK_BROKER}@{host}//"


def services(cmd: str) -> None:
    out = _run([SERVICES_SH, cmd, pwtest.ENV["PW_SERVICES_DIR"]], timeout=240)
    if out.returncode != 0:
        raise RuntimeError(f"services.sh {cmd}: {out.stderr.strip()[-400:]}")


TRIGGERS = """
CREATE TABLE campaign_transitions (tbl text, id text, old_status text, new_status text,
                                   at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION campaign_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TABLE_NAME = 'projection_runs' THEN
    IF OLD.status::text IS DISTINCT FROM NEW.status::text
       OR (NEW.status::text = 'completed' AND OLD.meta::text IS DISTINCT FROM NEW.meta::text) THEN
      INSERT INTO campaign_transitions (tbl, id, old_status, new_status)
        VALUES ('run', NEW.uuid::text, OLD.status::text, NEW.status::text);
    END IF;
  ELSIF OLD.status::text IS DISTINCT FROM NEW.status::text THEN
    INSERT INTO campaign_transitions (tbl, id, old_status, new_status)
      VALUES ('op', NEW.uuid::text, OLD.status::text, NEW.status::text);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER campaign_runs AFTER UPDATE ON projection_runs FOR EACH ROW EXECUTE FUNCTION campaign_log();
CREATE TRIGGER campaign_ops AFTER UPDATE ON operations FOR EACH ROW EXECUTE FUNCTION campaign_log();
-- many collection rows share the stand-in's one Qdrant collection (each row is its own hash)
ALTER TABLE collections DROP CONSTRAINT IF EXISTS collections_vector_store_name_key;
"""


class CampEnv:
    """A section's database (owner: the marker-password role), data dir, broker URL and
    Celery client, all with marker credentials."""

    def __init__(self, section: str, long: bool):
        self.section = section
        self.long = long
        os.makedirs(OUT_DIR, exist_ok=True)
        self.admin_url = pwtest.ENV["DATABASE_URL"]
        host = self.admin_url.split("@", 1)[1].rsplit("/", 1)[0]
        self.db = f"pwrel_{section}_{uuid.uuid4().hex[:6]}"
        exists = psql(self.admin_url, f"SELECT 1 FROM pg_roles WHERE rolname = '{CAMP_USER}'")
        verb = "ALTER" if exists else "CREATE"
        psql(self.admin_url, f"{verb} ROLE {CAMP_USER} LOGIN PASSWORD '{MARK_PG}'")
        psql(self.admin_url, f"CREATE DATABASE {self.db} OWNER {CAMP_USER}")
        self.url = f"postgresql://{CAMP_USER}:{MARK_PG}@{host}/{self.db}"
        out = _run([pwtest.WORKER_BIN, "migrate", "--database-url", self.url], timeout=60)
        self.keep("migrate", out.stdout + out.stderr)
        assert out.returncode == 0, out.stderr
        psql(self.url, TRIGGERS)
        self.broker_url = broker_url_with_marker()
        self.data_dir = tempfile.mkdtemp(prefix=f"pwrel-{section}-data-")
        self.standins: list[Standin] = []
        self.pools: list[Pool] = []
        self._app = None

    def keep(self, name: str, text: str) -> None:
        with open(out_path(f"{name}.log"), "a") as fh:
            fh.write(text)

    # -- Qdrant stand-in and collections
    def standin(self, points: list[dict], name: str = "vecs") -> Standin:
        s = Standin(name, points, api_key=MARK_QDRANT)
        self.standins.append(s)
        return s

    def collection(self, vector_store_name: str = "vecs", cid: str | None = None, n: int = 0) -> str:
        cid = cid or str(uuid.uuid4())
        psql(self.url, f"""INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model,
                 quantization, chunk_size, chunk_overlap, is_public, created_at, updated_at, status,
                 document_count, vector_count, total_size_bytes, chunks_total_count)
               VALUES ('{cid.replace("'", "''")}', 'c-{uuid.uuid4().hex[:8]}', 1, '{vector_store_name}',
                 'test-model', 'float16', 1000, 200, false, now(), now(), 'READY', 1, {n}, 0, 0)""")
        return cid

    def create_run(self, cid: str, config=None, reducer: str = "pca", raw_config: str | None = None) -> str:
        run, op = str(uuid.uuid4()), str(uuid.uuid4())
        cfg = raw_config if raw_config is not None else json.dumps(config or {})
        cfg = cfg.replace("'", "''")
        psql(self.url, f"""INSERT INTO operations (uuid, collection_id, user_id, type, status, config, created_at)
                 VALUES ('{op}', '{cid.replace("'", "''")}', 1, 'projection_build', 'pending', '{{}}', now());
               INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status, dimensionality,
                 reducer, config)
                 VALUES ('{run}', '{cid.replace("'", "''")}', '{op}', 'running', 2, '{reducer}', '{cfg}')""")
        return run

    def run_row(self, run: str) -> dict:
        row = psql(self.url, f"""SELECT json_build_object('status', r.status, 'storage_path', r.storage_path,
                 'point_count', r.point_count, 'meta', r.meta, 'error', r.error_message, 'collection',
                 r.collection_id, 'op', r.operation_uuid, 'op_status', o.status, 'op_error', o.error_message)
               FROM projection_runs r LEFT JOIN operations o ON o.uuid = r.operation_uuid
               WHERE r.uuid = '{run}'""")
        value = json.loads(row) if row else {}
        record("runs", {"run": run, "row": value})
        return value

    def commits(self, run: str) -> tuple[int, int]:
        """(times the run became or was re-written completed, times its operation did)."""
        r = psql(self.url, f"""SELECT count(*) FROM campaign_transitions
                               WHERE tbl = 'run' AND id = '{run}' AND new_status = 'completed'""")
        o = psql(self.url, f"""SELECT count(*) FROM campaign_transitions t JOIN projection_runs r
                                 ON r.operation_uuid::text = t.id
                               WHERE t.tbl = 'op' AND r.uuid = '{run}' AND t.new_status = 'completed'""")
        return int(r), int(o)

    # -- files
    def temp_dirs(self) -> list[str]:
        """Temporary directories of artifacts.c (.tmp-{run}-{pid}-{rand}, and its -old) anywhere
        under DATA_DIR."""
        found = []
        for dirpath, dirnames, _ in os.walk(self.data_dir):
            found += [os.path.join(dirpath, d) for d in dirnames if d.startswith(".tmp-")]
        return found

    def run_dir(self, cid: str, run: str) -> str:
        return os.path.join(self.data_dir, "semantik/projections", cid, run)

    def artifacts_problem(self, cid: str, run: str, n: int) -> str | None:
        """None when the run's directory holds exactly the five files for n points."""
        d = self.run_dir(cid, run)
        if not os.path.isdir(d):
            return "no run directory"
        names = sorted(os.listdir(d))
        want = sorted(list(RUN_FILES) + ["meta.json"])
        if names != want:
            return f"files {names}"
        for f, size in RUN_FILES.items():
            got = os.path.getsize(os.path.join(d, f))
            if got != n * size:
                return f"{f} has {got} bytes, want {n * size}"
        try:
            meta = json.load(open(os.path.join(d, "meta.json")))
        except ValueError as e:
            return f"meta.json unreadable: {e}"
        if meta.get("point_count") != n:
            return f"meta.json point_count {meta.get('point_count')}"
        return None

    # -- Celery
    def app(self):
        if self._app is None:
            from celery import Celery

            self._app = Celery("webui", broker=self.broker_url, backend="rpc://")
            self._app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                                  task_protocol=2, broker_connection_retry_on_startup=True)
        return self._app

    def send(self, queue: str, *args, **opts):
        return self.app().send_task("webui.tasks.compute_projection", args=list(args), queue=queue, **opts)

    def outcome(self, res, timeout: float) -> tuple[str, str]:
        """('ok', value) / ('error', 'ExcType: message') / ('timeout', '') of one result."""
        try:
            value = res.get(timeout=timeout)
        except Exception as e:  # noqa: BLE001 - Celery synthesises the classes
            name = type(e).__name__
            if name == "TimeoutError" and "operation timed out" in str(e).lower():
                return "timeout", ""
            record("results", {"task": res.id, "error": f"{name}: {e}"})
            return "error", f"{name}: {e}"
        record("results", {"task": res.id, "value": value})
        return "ok", json.dumps(value)

    def worker_env(self, qdrant_url: str, extra: dict | None = None) -> dict:
        env = {"CELERY_BROKER_URL": self.broker_url, "DATABASE_URL": self.url, "DATA_DIR": self.data_dir,
               "QDRANT_URL": qdrant_url, "QDRANT_API_KEY": MARK_QDRANT, "QDRANT_TIMEOUT_MS": "3000",
               "QDRANT_MAX_RETRIES": "2"}
        env.update(extra or {})
        return env

    def pool(self, queue: str, qdrant_url: str, n: int = 1, extra: dict | None = None,
             supervise: bool = True) -> "Pool":
        p = Pool(self, queue, self.worker_env(qdrant_url, extra), n, supervise)
        self.pools.append(p)
        return p

    def dump_rows(self) -> None:
        """Every run and operation row of the section's database, for the secrets grep."""
        for table in ("projection_runs", "operations"):
            out = _run(["psql", self.url, "-qAt", "-c", f"SELECT row_to_json(t) FROM {table} t"], timeout=60)
            with open(out_path(f"collected-{table}.jsonl"), "a") as fh:
                fh.write(out.stdout)

    def close(self) -> None:
        for p in self.pools:
            p.close()
        for s in self.standins:
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                s.proc.kill()
        psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)", check=False)


# ---- replicas ---------------------------------------------------------------------------

def queue_counts(queue: str) -> tuple[int, int] | None:
    try:
        return pwtest.queue_counts(queue)
    except (AssertionError, RuntimeError):
        return None


def queue_settled(queue: str, timeout: float = 15) -> tuple[int, int] | None:
    """Waits until the queue has nothing ready or unacked; returns the last counts."""
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = queue_counts(queue)
        if last == (0, 0):
            return last
        time.sleep(0.3)
    return last


class Replica:
    """One `projection-worker run` in its own process group (session)."""

    seq = 0

    def __init__(self, name: str, queue: str, env: dict):
        Replica.seq += 1
        self.name = name
        self.log_path = out_path("logs", f"{name}-{Replica.seq}-{uuid.uuid4().hex[:4]}.log")
        full = dict(os.environ)
        full.update(env)
        self.log_fh = open(self.log_path, "w")
        cmd = [pwtest.WORKER_BIN, "run", "-Q", queue, "-c", "1", "-n", f"{name}@campaign"]
        self.proc = subprocess.Popen(cmd, stdout=self.log_fh, stderr=subprocess.STDOUT, env=full,
                                     start_new_session=True)
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 of the replica: the consumer and its task process."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log_fh.close()

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def events(self) -> list[dict]:
        out = []
        with open(self.log_path, errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        out.append({"event": "unparsed", "line": line})
        return out

    def rss_kib(self) -> int:
        """Resident memory of the consumer and its children (task processes), KiB."""
        pids = [self.proc.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{entry}/stat").read()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(entry))
        total = 0
        for pid in pids:
            try:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total


class Pool:
    """N replicas on one queue, restarted when they die (a supervisor), with an optional
    chaos thread.  Every replica ever started stays in .all (their logs are evidence)."""

    def __init__(self, env: CampEnv, queue: str, worker_env: dict, n: int, supervise: bool = True):
        self.env, self.queue, self.worker_env = env, queue, worker_env
        self.names = [f"{queue}-r{i}" for i in range(n)]
        self.live = [Replica(name, queue, worker_env) for name in self.names]
        self.all = list(self.live)
        self.deaths = 0
        self.kills = 0
        self.peak_rss_kib = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, args=(supervise,), daemon=True)
        self.thread.start()

    def _loop(self, supervise: bool) -> None:
        while not self.stopping.wait(0.1):
            with self.lock:
                for i, r in enumerate(self.live):
                    if r.alive():
                        self.peak_rss_kib = max(self.peak_rss_kib, r.rss_kib())
                    elif supervise:
                        self.deaths += 1
                        r.log_fh.close()
                        self.live[i] = Replica(self.names[i], self.queue, self.worker_env)
                        self.all.append(self.live[i])

    def wait_connected(self, timeout: float = 30) -> None:
        for r in list(self.live):
            wait_for(lambda r=r: any(e.get("event") == "broker_connected" for e in r.events()), timeout,
                     what=f"{r.name} connected (log {r.log_path})")

    def kill_random(self, rng: random.Random) -> None:
        with self.lock:
            r = rng.choice(self.live)
            if r.alive():
                self.kills += 1
                r.kill()

    def kill_all(self) -> None:
        with self.lock:
            for r in self.live:
                if r.alive():
                    self.kills += 1
                    r.kill()

    def any_alive(self) -> bool:
        with self.lock:
            return any(r.alive() for r in self.live)

    def events(self, event: str | None = None) -> list[dict]:
        out = []
        for r in self.all:
            out += [e for e in r.events() if event is None or e.get("event") == event]
        return out

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        with self.lock:
            for r in self.live:
                r.stop()
