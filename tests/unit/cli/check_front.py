"""The `projection-worker` front: it needs libc alone (so a short command does not load
the consumer's TLS stacks or OpenBLAS), hands each command to the binary that has it with
the same pid and arguments, and says which variable to set when a binary is missing.
Usage: check_front.py FRONT"""
import os
import shutil
import subprocess
import sys
import tempfile


SANITIZERS = ("libasan.", "libubsan.", "libtsan.", "liblsan.")  # tests/run.sh's sanitizer builds


def needed(binary):
    """The shared libraries the binary names, the sanitizer runtimes left out."""
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    libs = (line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line)
    return sorted(lib for lib in libs if not lib.startswith(SANITIZERS))


def handed_over(front, tmp):
    """Each command runs in its binary, pid and arguments unchanged."""
    failures = []
    for command, var in (("run", "PW_CONSUMER_BIN"), ("project", "PW_PROJECT_BIN"),
                         ("migrate", "PW_TASK_BIN"), ("backfill", "PW_TASK_BIN")):
        seen = os.path.join(tmp, f"{command}.txt")
        script = os.path.join(tmp, f"as-{command}")
        with open(script, "w") as f:
            f.write(f"#!/bin/sh\necho \"$$ $0 $*\" > '{seen}'\n")
        os.chmod(script, 0o755)
        p = subprocess.Popen([front, command, "--x", "y z"], env=dict(os.environ, **{var: script}))
        p.wait(timeout=30)
        try:
            with open(seen) as f:
                got = f.read().strip()
        except OSError:
            failures.append(f"{command}: {var} was not run (exit {p.returncode})")
            continue
        want = f"{p.pid} {script} {command} --x y z"  # a script's $0 is its own path
        if got != want:
            failures.append(f"{command}: ran as {got!r}, want {want!r}")
    return failures


def missing(front, tmp):
    """A front copied alone: the command fails with the path and the variable to set."""
    lonely = os.path.join(tmp, "projection-worker")
    shutil.copy(front, lonely)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BIN")}
    p = subprocess.run([lonely, "project", "--help"], capture_output=True, text=True, env=env)
    if p.returncode != 1 or "projection-worker-project" not in p.stderr or "PW_PROJECT_BIN" not in p.stderr:
        return [f"missing project binary: exit {p.returncode}, stderr {p.stderr!r}"]
    return []


def main(front):
    failures = []
    libs = needed(front)
    if libs != ["libc.so.6"]:
        failures.append(f"the front needs {libs}, want libc.so.6 alone")
    with tempfile.TemporaryDirectory() as tmp:
        failures += handed_over(front, tmp)
        failures += missing(front, tmp)
    for f in failures:
        print("FAIL", f)
    print("ok" if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1])))
