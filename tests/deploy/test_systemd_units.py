"""deploy/systemd/'s units: `systemd-analyze verify` accepts them without a warning, the stop
timeout exceeds the drain timeout, the hardening the operations guide promises is there,
MemoryMax covers the configured slots at the measured peak, DATA_DIR is the state directory,
and the migration runs first as a oneshot.

`systemd-analyze verify` refuses a unit whose ExecStart binary does not exist, and
/usr/local/bin/projection-worker exists only once installed; so each unit is verified as a
temporary copy, under its own name, with the ExecStart path replaced by the built binary
(passed by CMake as --worker $<TARGET_FILE:projection-worker>); nothing else is changed.
--man=no: Documentation= is not looked up.  Usage: test_systemd_units.py --worker BIN [test]"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import deployfiles as df

UNITS = ("projection-worker.service", "projection-worker-migrate.service")
INSTALLED_BIN = "/usr/local/bin/projection-worker"


def worker_bin():
    args = sys.argv[1:]
    assert "--worker" in args, "usage: test_systemd_units.py --worker BIN [test_name]"
    return os.path.abspath(args[args.index("--worker") + 1])


def unit(name):
    """{section: {key: [values]}} of a unit file (enough of systemd's syntax for these units)."""
    parsed, section = {}, None
    for line in df.read("deploy", "systemd", name).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = parsed.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return parsed


def one(u, section, key):
    values = u.get(section, {}).get(key)
    assert values, f"{key}= not set in [{section}]"
    return values[-1]


def seconds(value):
    m = re.fullmatch(r"(\d+)(s|min)?", value)
    assert m, f"cannot read the time span {value}"
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


def test_units_pass_systemd_analyze_verify():
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze not found (Debian package systemd; deploy/install-deps.sh installs it)"
    worker = worker_bin()
    assert os.access(worker, os.X_OK), f"{worker} is not an executable: build projection-worker first"
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name in UNITS:
            text = df.read("deploy", "systemd", name)
            assert f"ExecStart={INSTALLED_BIN} " in text, f"{name}: ExecStart is not {INSTALLED_BIN}"
            p = os.path.join(tmp, name)
            with open(p, "w") as f:
                f.write(text.replace(f"ExecStart={INSTALLED_BIN} ", f"ExecStart={worker} "))
            paths.append(p)
        out = subprocess.run([tool, "verify", "--man=no", *paths], capture_output=True, text=True, timeout=120)
        report = (out.stdout + out.stderr).strip()
        assert out.returncode == 0, f"systemd-analyze verify exited {out.returncode}:\n{report}"
        # Unknown keys and bad values are warnings with exit status 0: any output fails.
        assert report == "", f"systemd-analyze verify warned:\n{report}"


def test_stop_timeout_exceeds_the_shutdown_timeout_and_sigterm_goes_to_the_consumer():
    u = unit("projection-worker.service")
    exec_start = one(u, "Service", "ExecStart")
    m = re.search(r"--shutdown-timeout[ =](\d+)", exec_start)
    assert m, "ExecStart does not pass --shutdown-timeout, so TimeoutStopSec cannot be matched to it"
    assert seconds(one(u, "Service", "TimeoutStopSec")) > int(m.group(1))
    assert one(u, "Service", "KillMode") == "mixed"
    assert one(u, "Service", "KillSignal") in ("SIGTERM", "TERM")
    assert one(u, "Service", "Restart") == "on-failure"
    assert one(u, "Service", "OOMPolicy") == "continue", "an OOM kill of a task process must not stop the service"


def test_hardening_settings_are_present():
    expected = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "SystemCallFilter": "@system-service",
    }
    for name in UNITS:
        u = unit(name)
        for key, value in expected.items():
            assert one(u, "Service", key) == value if value else key in u["Service"], f"{name}: {key}"
        assert one(u, "Service", "EnvironmentFile") == "/etc/projection-worker/env", name


def test_data_dir_is_the_state_directory():
    u = unit("projection-worker.service")
    env = dict(kv.split("=", 1) for line in u["Service"]["Environment"] for kv in line.split())
    assert env["DATA_DIR"] == "/var/lib/" + one(u, "Service", "StateDirectory"), \
        "with ProtectSystem=strict only the StateDirectory is writable"


def test_memory_max_covers_the_slots_at_the_measured_peak():
    u = unit("projection-worker.service")
    env = dict(kv.split("=", 1) for line in u["Service"]["Environment"] for kv in line.split())
    slots = int(env["PW_CONCURRENCY"])
    limit = df.mib(one(u, "Service", "MemoryMax").replace("G", "Gi").replace("M", "Mi"))
    assert limit >= 1.5 * df.measured_peak_mib() * slots, f"MemoryMax {limit} MiB for {slots} slots"


def test_migration_runs_first_as_a_oneshot():
    worker, migrate = unit(UNITS[0]), unit(UNITS[1])
    assert one(migrate, "Service", "Type") == "oneshot"
    assert one(migrate, "Service", "ExecStart") == f"{INSTALLED_BIN} migrate"
    assert UNITS[1] in " ".join(worker["Unit"].get("Requires", []))
    assert UNITS[1] in " ".join(worker["Unit"].get("After", []))


if __name__ == "__main__":
    df.main(globals())
