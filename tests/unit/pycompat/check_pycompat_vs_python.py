"""pycompat against Python itself: bool(), str(), int(), float(), repr(float),
datetime.fromisoformat(...).timestamp() (naive = UTC) and json.dumps string escaping,
each expected value computed here by /usr/bin/python3 over edge cases and generated values.

usage: check_pycompat_vs_python.py DRIVER   (seed: $PYCOMPAT_SEED, default fixed)
"""

import json
import os
import random
import struct
import subprocess
import sys
from datetime import datetime, timezone

DRIVER = sys.argv[1]
rng = random.Random(int(os.environ.get("PYCOMPAT_SEED", "20261121")))
ERR = "!ERR"

VALUES = [None, True, False, 0, 1, -7, 2**63 - 1, -(2**63), 0.0, -0.0, 1.5, 1e16, 1e-5,
          123456.789, "", "x", "0", "False", "None", "d\u00e9j\u00e0", "it's", 'say "hi"',
          "both ' and \"", "tab\there\nnl", "\x01\x1f\x7f", "\x85\xa0\xad", "\U0001f600",
          [], {}, [0], [""], {"a": [1, 2.5, None, True]}, {"k'": "v\n"}, [[], {}, [1.0]]]
INT_STRINGS = ["12", " 12 ", "\t-3\n", "+5", "1_000", "1__000", "_1", "1_", "15.5", "1e3",
               "", " ", "0x10", "00", "-0", "\u0663\u0664", "\u00a012\u2003",
               "9223372036854775807", "9223372036854775808", "-9223372036854775808",
               "True", "nan", "12abc"]
FLOAT_STRINGS = ["1.5", " 2.5 ", "1_000.5", "1e5", "1E-5", ".5", "5.", "-.5e+3", "inf",
                 "-Infinity", "nAn", "1_e5", "1._5", "0x1p3", "1e", "e5", "", ".", "+",
                 "1.5.5", "nan(1)", "\u20031.25\u2003", "1" * 40, "1e400", "-1e400"]


def py_str(v):
    return str(v)


def py_int(v):
    try:
        r = int(v)
    except (TypeError, ValueError, OverflowError):
        return ERR
    return str(r) if -(2**63) <= r < 2**63 else ERR


def py_float(v):
    try:
        return repr(float(v))
    except (TypeError, ValueError):
        return ERR


def iso_us(text):
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        return ERR
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    delta = d - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return str((delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds)


def esc(raw):
    try:
        return json.dumps(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return ERR


def timestamps():
    fixed = ["2026-11-21", "20261121", "2026-11-21T04:27:54", "2026-11-21 04:27:54",
             "2026-11-21X04:27", "2026-11-21\u00e904:27", "2026-11-21T04", "2026-11-21T0427",
             "2026-11-21T042754", "2026-11-21T04:27:54Z", "2026-11-21T04:27:54z",
             "2026-11-21T04:27:54+05:30", "2026-11-21T04:27:54-0530", "2026-11-21T04:27:54+05",
             "2026-11-21T04:27:54+05:30:15", "2026-11-21T04:27:54+05:30:15.5",
             "2026-11-21T04:27:54+24:00", "2026-11-21T04:27:54+23:59", "2026-11-21T04:27:54+00:99",
             "2026-11-21T04:27:54 +01:00", "2026-11-21T04:27:54X+01:00", "2026-11-21T04:27:54XY+01:00",
             "2026-11-21T04:27:54.", "2026-11-21T04:27:54,5", "2026-11-21T24:00:00",
             "2026-11-21T23:60:00", "2026-11-21T23:59:60", "2026-11-21T", "2026-11-21 ",
             "2026-02-29", "2024-02-29", "1900-02-29", "2000-02-29", "0000-01-01", "0001-01-01",
             "9999-12-31T23:59:59.999999", "2026-13-01", "2026-00-10", "2026-11-31", "2026-1121",
             "202611-21", "2026-W47-6", "2026W476", "2026-W47", "2026W47", "2026-W53-1",
             "2020-W53-7", "2026-W00-1", "2026-W47-8", "2026-W47-6T10:00", "2026-W47T10",
             "2026-11-21T04.5", "2026-11-21T04:27:54:123", "1970-01-01T00:00:00-00:00:01",
             "2026-11-21T04:27:54.1234567890+01:00", "2026-11-21T04:27:54.1234567X+01:00",
             "", "2026", "2026-11", "abcdefghij", "2026-11-21T04:27:54+", "2026-11-21T04:27:54-01:00junk"]
    out = list(fixed)
    for _ in range(300):
        y, mo, d = rng.randint(1, 9999), rng.randint(0, 13), rng.randint(0, 32)
        s = f"{y:04d}-{mo:02d}-{d:02d}"
        if rng.random() < 0.2:
            s = s.replace("-", "")
        if rng.random() < 0.8:
            s += rng.choice("T _Xé") + f"{rng.randint(0, 25):02d}"
            if rng.random() < 0.8:
                s += f":{rng.randint(0, 61):02d}"
                if rng.random() < 0.8:
                    s += f":{rng.randint(0, 61):02d}"
                    if rng.random() < 0.5:
                        s += rng.choice(".,") + "".join(rng.choice("0123456789")
                                                        for _ in range(rng.randint(1, 9)))
            r = rng.random()
            if r < 0.2:
                s += "Z"
            elif r < 0.6:
                s += rng.choice("+-") + f"{rng.randint(0, 25):02d}" + rng.choice(["", ":"]) \
                    + f"{rng.randint(0, 60):02d}" + rng.choice(["", ":30", ":07.25"])
        out.append(s)
    return out


def random_double():
    r = rng.random()
    if r < 0.3:
        return struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
    if r < 0.6:
        return rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30)
    return float(rng.randint(-10**6, 10**6)) / rng.choice([1, 3, 7, 10, 1000, 2**20])


def cases():
    out = []
    for v in VALUES:
        text = json.dumps(v)
        out.append(("truthy", text, str(bool(v))))
        out.append(("str", text, py_str(v)))
        out.append(("int", text, py_int(v)))
        out.append(("float", text, py_float(v)))
    for s in INT_STRINGS + FLOAT_STRINGS:
        out.append(("int", json.dumps(s), py_int(s)))
        out.append(("float", json.dumps(s), py_float(s)))
    for f in [0.0, -0.0, 1e16, 1e-5, 1e-4, 0.1, 1 / 3, 5e-324, 1.7976931348623157e308,
              123456789012345680.0, 9007199254740993.0, 2.0**-1074 * 3]:
        out.append(("repr", repr(f), repr(f)))
    for _ in range(2000):
        f = random_double()
        if f == f and abs(f) != float("inf"):
            out.append(("repr", repr(f), repr(f)))
    for t in timestamps():
        out.append(("iso", t, iso_us(t)))
    raws = [b"plain", b'q"b\\s', b"\n\r\t\b\f\x00\x1f\x7f", "é€中😀\U0010ffff".encode(),
            b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\xe2\x82"]
    for _ in range(300):
        raws.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 6))))
        raws.append("".join(chr(rng.choice([rng.randrange(0x20, 0x7f), rng.randrange(0, 0xd800),
                                            rng.randrange(0xe000, 0x110000)]))
                            for _ in range(rng.randint(0, 6))).encode())
    for raw in raws:
        out.append(("esc", raw.hex(), esc(raw)))
    return out


def main():
    todo = cases()
    lines = "".join(f"{op}\t{arg}\n" for op, arg, _ in todo).encode()
    proc = subprocess.run([DRIVER], input=lines, capture_output=True, check=True)
    got = proc.stdout.split(b"\0")[:-1]
    if len(got) != len(todo):
        print(f"FAIL: {len(got)} outputs for {len(todo)} cases")
        return 1
    failures = 0
    for (op, arg, want), g in zip(todo, got):
        g = g.decode("utf-8", "replace")
        if g != want:
            failures += 1
            if failures <= 20:
                print(f"FAIL {op}({arg!r}): want {want!r} got {g!r}")
    print(f"{len(todo) - failures}/{len(todo)} results identical to Python")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
