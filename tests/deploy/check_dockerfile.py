"""A few hadolint-style rules for deploy/Dockerfile (Debian 12 packages no hadolint), and
checks of what the image must contain.

    /usr/bin/python3 tests/deploy/check_dockerfile.py deploy/Dockerfile     # lint only
    /usr/bin/python3 tests/deploy/check_dockerfile.py --worker BIN [test]   # the ctest entries

Rules (hadolint's numbers where one exists):
  DL3007  no image without a tag or tagged `latest` (ARG defaults resolved)
  DL3015  every `apt-get install` has --no-install-recommends
  DL3009  a RUN that runs `apt-get install` removes /var/lib/apt/lists afterwards
  DL3020  no ADD of local files (COPY); ADD only for URLs
  DL3002  the final stage's last USER is not root (and there is one)
The image itself cannot be built here (no container runtime); the build command is
`docker build -f deploy/Dockerfile .` from the repository root."""
import os
import re
import subprocess
import sys

import deployfiles as df

BINARIES = ("projection-worker", "projection-worker-consumer", "projection-worker-task",
            "projection-worker-project")


def instructions(text):
    """[(line number, INSTRUCTION, arguments)] with continuation lines joined and comment
    lines (also those inside a continuation, as Docker does) dropped."""
    out, buf, start = [], "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") or (not line and not buf):
            continue
        if not buf:
            start = n
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    return out


def lint(text):
    problems = []
    ins = instructions(text)
    args = {}
    stages = []  # list of lists of instructions
    for n, word, rest in ins:
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        if word == "FROM":
            stages.append([])
            image = rest.split()[0]
            if image.startswith("--platform"):
                image = rest.split()[1]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), image)
            stage_names = [s[0][2].split()[-1] for s in stages[:-1] if " AS " in s[0][2].upper()]
            if image in stage_names or image == "scratch":
                pass
            elif "@" not in image and (":" not in image.split("/")[-1] or image.endswith(":latest")):
                problems.append(f"line {n}: DL3007 image {image!r} has no pinned tag (or `latest`)")
        if stages:
            stages[-1].append((n, word, rest))
        if word == "RUN" and re.search(r"\bapt-get\b[^;&|]*\binstall\b", rest):
            for cmd in re.split(r"&&|;", rest):
                if re.search(r"\bapt-get\b.*\binstall\b", cmd) and "--no-install-recommends" not in cmd:
                    problems.append(f"line {n}: DL3015 apt-get install without --no-install-recommends")
            if not re.search(r"rm -rf /var/lib/apt/lists/\*?\s*$", rest.split("&&")[-1].strip()):
                problems.append(f"line {n}: DL3009 apt lists not removed at the end of the RUN that installs")
        if word == "ADD":
            srcs = [a for a in rest.split()[:-1] if not a.startswith("--")]
            if any(not re.match(r"https?://", s) for s in srcs):
                problems.append(f"line {n}: DL3020 ADD of a local file (use COPY)")
    if not stages:
        return problems + ["no FROM"]
    users = [rest for _, word, rest in stages[-1] if word == "USER"]
    if not users:
        problems.append("DL3002 the final stage sets no USER (runs as root)")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"DL3002 the final stage's last USER is {users[-1]}")
    return problems


def dockerfile():
    return df.read("deploy", "Dockerfile")


def final_stage():
    ins = instructions(dockerfile())
    last_from = max(i for i, (_, w, _) in enumerate(ins) if w == "FROM")
    return ins[last_from:]


def test_deploy_dockerfile_passes_the_rules():
    problems = lint(dockerfile())
    assert not problems, "deploy/Dockerfile:\n" + "\n".join(problems)


def test_rules_catch_each_violation():
    """The linter flags each rule's violation on a minimal Dockerfile (it must be able to fail)."""
    good = ("FROM debian:12-slim\nRUN apt-get update && apt-get install -y --no-install-recommends x \\\n"
            "    && rm -rf /var/lib/apt/lists/*\nCOPY a /a\nUSER 10001\n")
    assert lint(good) == [], lint(good)
    cases = {
        "DL3007": good.replace("debian:12-slim", "debian:latest"),
        "DL3007 ": good.replace("debian:12-slim", "debian"),
        "DL3015": good.replace(" --no-install-recommends", ""),
        "DL3009": good.replace(" \\\n    && rm -rf /var/lib/apt/lists/*", ""),
        "DL3020": good.replace("COPY a /a", "ADD a /a"),
        "DL3002": good.replace("USER 10001", "USER root"),
        "DL3002 ": good.replace("USER 10001\n", ""),
    }
    for rule, text in cases.items():
        found = lint(text)
        assert any(rule.strip() in p for p in found), f"{rule.strip()} not reported for:\n{text}\ngot {found}"
    assert lint("ARG T=latest\nFROM debian:${T}\nUSER 1\n"), "an ARG default of latest was not resolved"
    assert lint("FROM debian:12\nADD https://example.org/x.tgz /x\nUSER 1\n") == []


def test_runtime_stage_runs_the_worker_as_a_fixed_non_root_uid():
    stage = final_stage()
    user = [rest for _, w, rest in stage if w == "USER"][-1]
    assert re.fullmatch(r"\d+(:\d+)?", user) and int(user.split(":")[0]) >= 1000, \
        f"USER {user}: use a fixed numeric UID (Kubernetes runAsNonRoot can only check a number)"
    entry = [rest for _, w, rest in stage if w == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/projection-worker"]'], entry
    assert [rest for _, w, rest in stage if w == "CMD"] == ['["run"]']
    assert any(w == "VOLUME" and "/data" in rest for _, w, rest in stage), "DATA_DIR is not a volume"
    assert any(w == "ENV" and "DATA_DIR=/data" in rest for _, w, rest in stage)


def test_runtime_stage_copies_the_four_binaries_and_no_dev_packages():
    stage = final_stage()
    copies = " ".join(rest for _, w, rest in stage if w == "COPY")
    for b in BINARIES:
        assert f"/build/worker/{b} " in copies + " ", f"{b} is not copied into the image"
    assert copies.rstrip().endswith("/usr/local/bin/"), "the binaries must sit together in /usr/local/bin"
    installs = " ".join(rest for _, w, rest in stage if w == "RUN")
    assert not re.search(r"\S+-dev\b", installs), "the runtime stage installs -dev packages"


def runtime_packages():
    stage = final_stage()
    run = " ".join(rest for _, w, rest in stage if w == "RUN" and "apt-get install" in rest)
    words = run.split("apt-get install", 1)[1].split("&&")[0].split()
    return {w for w in words if not w.startswith("-")}


def test_runtime_packages_provide_every_library_the_binaries_link():
    """Each shared library the built binaries name (NEEDED) resolves, on this Debian 12 machine,
    to a package the runtime stage installs (or one every Debian image has)."""
    args = sys.argv[1:]
    assert "--worker" in args, "usage: check_dockerfile.py --worker BIN test_name"
    bindir = os.path.dirname(os.path.abspath(args[args.index("--worker") + 1]))
    base = {"libc6", "libgcc-s1"}  # in every debian:12 image
    sanitizers = re.compile(r"^lib(asan|ubsan|tsan|lsan)")  # tests/run.sh's sanitizer builds
    wanted = runtime_packages()
    libs = []  # (binary, soname, path as ldd resolved it)
    for b in BINARIES:
        exe = os.path.join(bindir, b)
        assert os.access(exe, os.X_OK), f"{exe} not built"
        ldd = subprocess.run(["ldd", exe], capture_output=True, text=True, check=True).stdout
        needed = re.findall(r"\(NEEDED\).*\[(.+)\]",
                            subprocess.run(["readelf", "-d", exe], capture_output=True, text=True, check=True).stdout)
        assert needed, f"{b}: readelf shows no NEEDED entry"
        for lib in needed:
            if sanitizers.match(lib):
                continue
            # the dynamic loader appears as its own path, without "=>"
            m = (re.search(rf"^\s*{re.escape(lib)} => (\S+)", ldd, re.M)
                 or re.search(rf"^\s*(/\S*/{re.escape(lib)})\s", ldd, re.M))
            assert m, f"{b}: {lib} not resolved by ldd"
            libs.append((b, lib, m.group(1)))
    # One dpkg -S for every path (it is slow); the real file first, for alternatives
    # such as libopenblas.so.0 -> openblas-pthread/.
    paths = sorted({p for _, _, link in libs for p in (os.path.realpath(link), link)})
    q = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True)
    owner_of = {}
    for line in q.stdout.splitlines():
        pkgs, _, file = line.partition(": ")
        owner_of[file.strip()] = pkgs.split(",")[0].split(":")[0].strip()
    missing = []
    for b, lib, link in libs:
        owner = owner_of.get(os.path.realpath(link)) or owner_of.get(link)
        assert owner, f"{b}: no Debian package owns {link}"
        if owner not in wanted | base:
            missing.append(f"{b}: {lib} is in {owner}")
    assert not missing, "the runtime stage lacks packages:\n" + "\n".join(missing)


if __name__ == "__main__":
    if len(sys.argv) == 2 and not sys.argv[1].startswith(("test_", "--")):
        with open(sys.argv[1], encoding="utf-8") as fh:
            found = lint(fh.read())
        print("\n".join(found) or "ok")
        sys.exit(1 if found else 0)
    df.main(globals())
