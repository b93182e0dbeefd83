#!/usr/bin/python3
"""Integration tests of the C Qdrant client (db/qdrant/qdrant.c) against the Qdrant stand-in.

Each test writes its own points, starts tests/qdrant_standin/qdrant_standin.py on a free
port, runs qdrant_scroll_tool (C, linked with pw_db) and checks the report: the matrix
against float32(float(text)) computed here with numpy, the ids against str(id) in
Qdrant's scroll order, and the stand-in's request counters.

  test_qdrant_client.py --tool PATH [TestName ...]
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import unittest
import urllib.request
import uuid

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "..", "..", "qdrant_standin", "qdrant_standin.py")
TOOL = None

PW_EINVAL, PW_ENOTFOUND, PW_ECANCELED, PW_ETIMEOUT, PW_EUNAVAIL, PW_EDENIED = -1, -5, -6, -7, -8, -9
PW_EPROTO = -4  # compute/pw_error.h


def sort_key(pid):
    return (0, pid, b"") if isinstance(pid, int) else (1, 0, uuid.UUID(pid).bytes)


def make_points(n, dim, ids="int", seed=7, named=None, null_every=0):
    rng = random.Random(seed)
    used = set()
    pts = []
    for i in range(n):
        if ids == "uuid" or (ids == "mixed" and i % 3 == 0):
            pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        else:
            pid = rng.choice([rng.randrange(0, 10**6), rng.randrange(2**53, 2**64)])
            while pid in used:
                pid += 1
        used.add(pid)

        def vec(d):
            return [rng.uniform(-1, 1) * 10 ** rng.randint(-6, 3) for _ in range(d)]

        if named:
            v = {}
            for name, d in named:
                r = rng.random()
                if r < 0.2:
                    continue  # name missing on this point
                v[name] = None if r < 0.3 else vec(d)
        else:
            v = None if null_every and i % null_every == 0 else vec(dim)
        pts.append({"id": pid, "vector": v,
                    "payload": {"doc_id": "doc-%d" % (i // 4), "path": "/d/%d/f.txt" % (i % 3),
                                "metadata": {"mime_type": "text/x-%d" % (i % 2)}}})
    return pts


def python_selection(points, limit, vector_name=None):
    """What projection.py keeps: scroll order, first `limit` usable dense vectors."""
    kept = []
    for p in sorted(points, key=lambda r: sort_key(r["id"])):
        v = p.get("vector")
        if isinstance(v, dict):
            if vector_name is not None:
                v = v.get(vector_name)
            else:
                v = next((x for x in v.values() if x is not None), None)
        if v is None:
            continue
        kept.append((str(p["id"]), np.asarray(v, dtype=np.float32), p["payload"]))
        if len(kept) == limit:
            break
    return kept


class StandIn:
    def __init__(self, points, api_key=None, faults=(), collection="test", extra=()):
        self.dir = tempfile.TemporaryDirectory()
        data = os.path.join(self.dir.name, "points.jsonl")
        with open(data, "w") as fh:
            for p in points:
                fh.write(json.dumps(p) + "\n")
        cmd = ["/usr/bin/python3", STANDIN, "--data", data, "--collection", collection]
        if api_key:
            cmd += ["--api-key", api_key]
        for f in faults:
            cmd += ["--fault", f]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("PORT "), line
        self.url = "http://127.0.0.1:%d" % int(line.split()[1])

    def stats(self):
        with urllib.request.urlopen(self.url + "/__standin/stats") as r:
            return json.loads(r.read())

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.dir.cleanup()


def run_tool(url, collection="test", api_key=None, **opts):
    out = tempfile.NamedTemporaryFile(suffix=".f32", delete=False)
    out.close()
    cmd = [TOOL, "--url", url, "--collection", collection, "--out", out.name,
           "--backoff-ms", str(opts.pop("backoff_ms", 10))]
    for k, v in opts.items():
        cmd += ["--" + k.replace("_", "-")] + ([str(v)] if v != "" else [])
    env = dict(os.environ)
    env.pop("QDRANT_API_KEY", None)
    if api_key is not None:
        env["QDRANT_API_KEY"] = api_key
    res = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    rep = json.loads(res.stdout)
    x = np.fromfile(out.name, dtype=np.float32)
    os.unlink(out.name)
    rep["x"] = x.reshape(rep["n"], rep["dim"]) if rep["n"] else x
    return rep


class QdrantClientTest(unittest.TestCase):
    def start(self, points, **kw):
        s = StandIn(points, **kw)
        self.addCleanup(s.close)
        return s

    def assert_matches_python(self, rep, points, limit=200000, vector_name=None):
        want = python_selection(points, limit, vector_name)
        self.assertEqual(rep["rc"], 0, rep["msg"])
        self.assertEqual(rep["n"], len(want))
        self.assertEqual(rep["ids"], [w[0] for w in want])
        expected = np.stack([w[1] for w in want])
        self.assertEqual(rep["x"].shape, expected.shape)
        self.assertTrue(np.array_equal(rep["x"].view(np.uint32), expected.view(np.uint32)))
        for got, w in zip(rep["fields"], want):
            self.assertEqual(got["doc_id"][1], w[2]["doc_id"])
            self.assertEqual(got["metadata.mime_type"][1], w[2]["metadata"]["mime_type"])

    def scroll_limits(self, s):
        return [b.get("limit") for b in s.stats()["scroll_bodies"]]

    # -- reading -----------------------------------------------------------------------
    def test_full_scroll_with_integer_ids(self):
        pts = make_points(2500, 8, ids="int")
        s = self.start(pts)
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        self.assertTrue(rep["reached_end"])
        self.assertEqual(self.scroll_limits(s), [1000, 1000, 1000])
        bodies = s.stats()["scroll_bodies"]
        self.assertTrue(all(b["with_payload"] is True and b["with_vector"] is True for b in bodies))
        self.assertNotIn("offset", bodies[0])
        order = sorted(pts, key=lambda r: sort_key(r["id"]))
        self.assertEqual([b.get("offset") for b in bodies[1:]], [order[1000]["id"], order[2000]["id"]])

    def test_full_scroll_with_uuid_and_mixed_ids(self):
        pts = make_points(1300, 5, ids="mixed", seed=11)
        s = self.start(pts)
        rep = run_tool(s.url, batch=400)
        self.assert_matches_python(rep, pts)
        self.assertEqual(self.scroll_limits(s), [400, 400, 400, 400])
        self.assertIsInstance(s.stats()["scroll_bodies"][3]["offset"], str)

    def test_named_vectors_take_first_non_null(self):
        pts = make_points(600, 0, named=[("a", 6), ("b", 6)], seed=3)
        s = self.start(pts)
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        self.assertGreater(rep["skipped"], 0)

    def test_dimension_learned_from_the_data_then_pages_parsed_in_parallel(self):
        # named vectors of different sizes and no name: the dimension comes from the
        # first page (parsed as it arrives), later pages go to the parser threads
        rng = random.Random(13)
        pts = [{"id": i, "payload": {"doc_id": "d%d" % i, "metadata": {"mime_type": "t/%d" % (i % 4)}},
                "vector": {"a": [rng.uniform(-1, 1) for _ in range(5)],
                           "b": None if i % 3 else [rng.uniform(-1, 1) for _ in range(9)]}}
               for i in range(2600)]
        s = self.start(pts)
        rep = run_tool(s.url, parse_threads=2)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["dim"], 5)
        self.assertEqual(s.stats()["routes"]["scroll"], 3)

    def test_mixed_dimensions_in_a_later_page_fail_naming_the_point(self):
        rng = random.Random(17)
        pts = [{"id": i, "payload": {},
                "vector": {"a": [rng.uniform(-1, 1) for _ in range(5)]} if i != 2345
                else {"a": None, "b": [rng.uniform(-1, 1) for _ in range(9)]}}
               for i in range(3000)]
        s = self.start(pts)
        rep = run_tool(s.url, parse_threads=2)
        self.assertEqual(rep["code"], PW_EPROTO)
        self.assertIn("point 2345", rep["msg"])
        self.assertIn("mixed dimensions", rep["msg"])
        self.assertEqual(rep["n"], 2000)  # the pages before the bad one were kept

    def test_named_vectors_use_the_requested_name(self):
        pts = make_points(600, 0, named=[("a", 4), ("b", 7)], seed=5)
        s = self.start(pts)
        rep = run_tool(s.url, vector="b")
        self.assert_matches_python(rep, pts, vector_name="b")
        self.assertEqual(rep["dim"], 7)
        self.assertTrue(all(b["with_vector"] == ["b"] for b in s.stats()["scroll_bodies"]))

    def test_gzip_responses_are_decoded_while_streaming(self):
        pts = make_points(1500, 16, ids="mixed", seed=21)
        s = self.start(pts, extra=["--gzip"])
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        st = s.stats()
        self.assertEqual(st["gzip_responses"], st["total"])  # every answer went out gzipped

    def test_no_compression_asks_for_plain_bodies(self):
        pts = make_points(50, 4)
        s = self.start(pts, extra=["--gzip"])
        rep = run_tool(s.url, no_compression="")
        self.assert_matches_python(rep, pts)
        self.assertEqual(s.stats()["gzip_responses"], 0)

    def test_zero_retries_means_one_attempt(self):
        s = self.start(make_points(10, 4), faults=["route=scroll,kind=status,status=503,times=-1"])
        rep = run_tool(s.url, retries=0)
        self.assertEqual(rep["code"], PW_EUNAVAIL)
        self.assertEqual(s.stats()["routes"]["scroll"], 1)

    def test_truncated_gzip_body_is_retried(self):
        pts = make_points(1500, 16, seed=22)
        s = self.start(pts, extra=["--gzip"],
                       faults=["route=scroll,kind=truncate,after_bytes=20000,times=1"])
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["retries"], 1)

    def test_multivector_points_are_skipped_and_cannot_be_requested(self):
        pts = [{"id": i, "vector": ({"m": [[1.0, 2.0], [3.0, 4.0]]} if i % 2 else
                                    {"m": [[5.0, 6.0]], "d": [float(i), 0.5]}), "payload": {}}
               for i in range(10)]
        s = self.start(pts)
        rep = run_tool(s.url, vector="m")
        self.assertEqual(rep["code"], PW_EINVAL)
        self.assertIn("multivector", rep["msg"])
        rep = run_tool(s.url)  # first non-null is the multivector: skipped, as ndim 2 in Python
        self.assertEqual(rep["rc"], 0)
        self.assertEqual((rep["n"], rep["skipped"]), (0, 10))
        rep = run_tool(s.url, vector="d")
        self.assertEqual(rep["n"], 5)
        self.assertEqual(rep["x"][:, 0].tolist(), [0.0, 2.0, 4.0, 6.0, 8.0])

    def test_unknown_vector_name_fails_before_scrolling(self):
        s = self.start(make_points(10, 0, named=[("a", 4)]))
        rep = run_tool(s.url, vector="zzz")
        self.assertEqual(rep["code"], PW_EINVAL)
        self.assertIn("zzz", rep["msg"])
        self.assertNotIn("scroll", s.stats()["routes"])

    def test_sample_limit_smaller_than_collection(self):
        pts = make_points(2500, 4, null_every=10)
        s = self.start(pts)
        rep = run_tool(s.url, limit=1234)
        self.assert_matches_python(rep, pts, limit=1234)
        self.assertFalse(rep["reached_end"])
        # pages of <= 1000 until enough usable vectors; the next page is requested before
        # the previous one is parsed, so its size counts the points asked for, not the
        # usable ones (projection.py asks 1234 - usable), and no point past the ones
        # needed is ever asked for
        limits = self.scroll_limits(s)
        order = sorted(pts, key=lambda r: sort_key(r["id"]))
        usable = [p["vector"] is not None for p in order]
        needed = next(i + 1 for i in range(len(order)) if sum(usable[: i + 1]) == 1234)
        self.assertEqual(limits[:2], [1000, 234])
        self.assertTrue(all(lim <= 1000 for lim in limits))
        self.assertEqual(sum(limits), needed)

    def test_sample_limit_with_parsing_on_one_thread_asks_like_projection_py(self):
        pts = make_points(2500, 4, null_every=10)
        s = self.start(pts)
        rep = run_tool(s.url, limit=1234, parse_threads=1)
        self.assert_matches_python(rep, pts, limit=1234)
        limits = self.scroll_limits(s)
        order = sorted(pts, key=lambda r: sort_key(r["id"]))
        usable_first_page = sum(1 for p in order[:1000] if p["vector"] is not None)
        self.assertLess(usable_first_page, 1000)
        self.assertEqual(limits[:2], [1000, 1234 - usable_first_page])

    def test_threaded_and_single_thread_parsing_give_identical_matrices(self):
        pts = make_points(5300, 24, ids="mixed", null_every=7)
        s = self.start(pts)
        one = run_tool(s.url, parse_threads=1)
        for threads in (2, 3):
            many = run_tool(s.url, parse_threads=threads)
            self.assertEqual(many["rc"], 0, many["msg"])
            self.assertEqual(many["ids"], one["ids"])
            self.assertEqual(many["fields"], one["fields"])
            self.assertEqual(many["skipped"], one["skipped"])
            self.assertTrue(np.array_equal(many["x"].view(np.uint32), one["x"].view(np.uint32)))
        self.assert_matches_python(one, pts)

    def test_offset_after_points_lets_next_page_start_before_parse(self):
        s = self.start(make_points(3000, 4))
        run_tool(s.url, parse_threads=2)
        # the peeked offsets were all right: one request per page, none repeated
        self.assertEqual(s.stats()["routes"]["scroll"], 3)

    def test_offset_written_before_points_is_still_followed(self):
        # next_page_offset before the points: the tail holds no offset, each page is
        # parsed before the next request; a payload key that looks like the offset near
        # the end of a page must not be taken for it (the parse corrects the guess)
        pts = make_points(3500, 4)
        order = sorted(pts, key=lambda r: sort_key(r["id"]))
        for i in range(999, len(order), 1000):  # the last point of each page
            order[i]["payload"]["tags"] = [1]
            order[i]["payload"]["next_page_offset"] = order[0]["id"]
        s = self.start(pts, extra=["--offset-first"])
        rep = run_tool(s.url, parse_threads=2)
        self.assert_matches_python(rep, pts)
        self.assertTrue(rep["reached_end"])
        bodies = s.stats()["scroll_bodies"]
        offsets = set(json.dumps(b.get("offset")) for b in bodies)
        pages = set(json.dumps(o) for o in [None] + [order[i]["id"] for i in (1000, 2000, 3000)])
        self.assertLessEqual(pages, offsets)  # every page was read from its real offset
        self.assertGreater(len(bodies), 4)  # and the wrong guesses cost extra requests only

    def test_progress_callback_cancels_between_pages(self):
        s = self.start(make_points(12000, 4))
        rep = run_tool(s.url, cancel_after=2, parse_threads=2)
        self.assertEqual(rep["code"], PW_ECANCELED)
        self.assertEqual(rep["n"], 2000)
        # pages already requested (at most one per slot: 2 parsers + 2) are not waited for
        self.assertLessEqual(s.stats()["routes"]["scroll"], 2 + 4)

    def test_progress_callback_cancels_after_the_page_on_one_thread(self):
        s = self.start(make_points(3000, 4))
        rep = run_tool(s.url, cancel_after=2, parse_threads=1)
        self.assertEqual(rep["code"], PW_ECANCELED)
        self.assertEqual(rep["n"], 2000)
        self.assertEqual(s.stats()["routes"]["scroll"], 2)

    def test_skip_payload_sends_with_payload_false(self):
        pts = make_points(30, 4)
        s = self.start(pts)
        rep = run_tool(s.url, no_payload="")
        self.assertEqual(rep["rc"], 0)
        self.assertEqual(rep["fields"], [{}] * 30)
        self.assertTrue(all(b["with_payload"] is False for b in s.stats()["scroll_bodies"]))

    def test_payload_fields_give_python_or_chain_results(self):
        # projection.py picks payload.get("doc_id") or payload.get("document_id") or ...;
        # the C side exposes each field's kind, text and Python truthiness, which must pick
        # the same key with the same value for payloads of every JSON type.
        rng = random.Random(9)
        values = [None, 0, 1, -3, 0.0, 2.5, 1e-400, "", "x", "d\u00e9j\u00e0", True, False,
                  {}, {"a": 1}, [], [0], 12345678901234567890123]
        keys = ["doc_id", "document_id", "chunk_id", "source_id"]
        pts = []
        for i in range(300):
            pl = {k: rng.choice(values) for k in keys if rng.random() < 0.6}
            meta = rng.choice([None, 5, [], {}, {"mime_type": rng.choice(values)}])
            if meta is not None:
                pl["metadata"] = meta
            pts.append({"id": i, "vector": [1.0, 2.0], "payload": pl})
        s = self.start(pts)
        rep = run_tool(s.url)
        self.assertEqual(rep["rc"], 0, rep["msg"])
        for p, got in zip(pts, rep["fields"]):
            pl = p["payload"]
            want_key = next((k for k in keys if pl.get(k)), None)
            got_key = next((k for k in keys if k in got and got[k][2]), None)
            self.assertEqual(got_key, want_key, (pl, got))
            if want_key is not None and isinstance(pl[want_key], (str, int)) \
                    and not isinstance(pl[want_key], bool):
                self.assertEqual(got[want_key][1], str(pl[want_key]))
            meta = pl.get("metadata") if isinstance(pl.get("metadata"), dict) else {}
            mime = meta.get("mime_type")
            if "mime_type" in meta:
                self.assertEqual(got["metadata.mime_type"][2], bool(mime), (pl, got))
            else:
                self.assertNotIn("metadata.mime_type", got)

    # -- errors ------------------------------------------------------------------------
    def test_unknown_collection_is_not_found_without_retry(self):
        s = self.start(make_points(10, 4))
        rep = run_tool(s.url, collection="nope")
        self.assertEqual(rep["code"], PW_ENOTFOUND)
        self.assertIn("404", rep["msg"])
        self.assertEqual(s.stats()["total"], 1)

    def test_missing_api_key_is_denied_without_retry(self):
        s = self.start(make_points(10, 4), api_key="s3cret-key")
        rep = run_tool(s.url)
        self.assertEqual(rep["code"], PW_EDENIED)
        self.assertIn("401", rep["msg"])
        self.assertEqual(s.stats()["total"], 1)

    def test_wrong_api_key_is_denied_and_not_echoed(self):
        s = self.start(make_points(10, 4), api_key="s3cret-key")
        rep = run_tool(s.url, api_key="wrong-key-XYZ")
        self.assertEqual(rep["code"], PW_EDENIED)
        self.assertNotIn("wrong-key-XYZ", rep["msg"])
        self.assertEqual(s.stats()["total"], 1)

    def test_forbidden_403_is_denied_without_retry(self):
        s = self.start(make_points(10, 4), faults=["route=info,kind=status,status=403,times=-1"])
        rep = run_tool(s.url)
        self.assertEqual(rep["code"], PW_EDENIED)
        self.assertIn("403", rep["msg"])
        self.assertEqual(s.stats()["total"], 1)

    def test_bad_request_400_fails_without_retry(self):
        s = self.start(make_points(10, 4), faults=["route=scroll,kind=status,status=400,times=-1"])
        rep = run_tool(s.url)
        self.assertEqual(rep["code"], PW_EINVAL)
        self.assertIn("400", rep["msg"])
        self.assertEqual(s.stats()["routes"]["scroll"], 1)

    def test_correct_api_key_reads_everything(self):
        pts = make_points(50, 4)
        s = self.start(pts, api_key="s3cret-key")
        rep = run_tool(s.url, api_key="s3cret-key")
        self.assert_matches_python(rep, pts)
        self.assertNotIn("s3cret-key", json.dumps({k: v for k, v in rep.items() if k != "x"}))

    def test_retries_5xx_then_succeeds(self):
        pts = make_points(1500, 4)
        s = self.start(pts, faults=["route=scroll,kind=status,status=503,times=2"])
        rep = run_tool(s.url, retries=3)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["retries"], 2)
        self.assertEqual(s.stats()["routes"]["scroll"], 2 + 2)

    def test_collection_info_5xx_is_retried(self):
        pts = make_points(20, 4)
        s = self.start(pts, faults=["route=info,kind=status,status=502,times=1"])
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["retries"], 1)
        self.assertEqual(s.stats()["routes"]["info"], 2)

    def test_5xx_forever_fails_clearly_after_retries(self):
        s = self.start(make_points(100, 4), faults=["route=scroll,kind=status,status=500,times=-1"])
        rep = run_tool(s.url, retries=2)
        self.assertEqual(rep["code"], PW_EUNAVAIL)
        self.assertIn("gave up after 3 attempts", rep["msg"])
        self.assertIn("HTTP 500", rep["msg"])
        self.assertEqual(s.stats()["routes"]["scroll"], 3)

    def test_timeout_is_retried_then_succeeds(self):
        pts = make_points(100, 4)
        s = self.start(pts, faults=["route=scroll,kind=delay,delay_s=2,times=1"])
        rep = run_tool(s.url, timeout_ms=500, retries=2)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["retries"], 1)

    def test_timeout_forever_fails_with_timeout(self):
        s = self.start(make_points(100, 4), faults=["route=scroll,kind=delay,delay_s=2,times=-1"])
        rep = run_tool(s.url, timeout_ms=400, retries=1)
        self.assertEqual(rep["code"], PW_ETIMEOUT)
        self.assertEqual(s.stats()["routes"]["scroll"], 2)

    def test_truncated_body_is_retried_without_duplicate_rows(self):
        pts = make_points(1500, 6)
        s = self.start(pts, faults=["route=scroll,kind=truncate,after_bytes=30000,times=1"])
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["retries"], 1)
        self.assertEqual(s.stats()["routes"]["scroll"], 3)

    def test_disconnect_mid_body_is_retried_without_duplicate_rows(self):
        pts = make_points(1500, 6)
        s = self.start(pts, faults=["route=scroll,kind=disconnect,after_bytes=20000,times=1"])
        rep = run_tool(s.url)
        self.assert_matches_python(rep, pts)
        self.assertEqual(rep["retries"], 1)

    def test_truncated_body_forever_fails_clearly(self):
        s = self.start(make_points(100, 4), faults=["route=scroll,kind=truncate,after_bytes=500,times=-1"])
        rep = run_tool(s.url, retries=2)
        self.assertEqual(rep["code"], PW_EUNAVAIL)
        self.assertIn("truncated", rep["msg"])
        self.assertEqual(rep["n"], 0)

    def test_unreachable_server_fails_after_retries(self):
        s = self.start(make_points(1, 4))
        url = s.url
        s.proc.terminate()
        s.proc.wait(10)
        rep = run_tool(url, retries=1)
        self.assertEqual(rep["code"], PW_EUNAVAIL)
        self.assertIn("gave up after 2 attempts", rep["msg"])


def main():
    global TOOL
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--tool":
        print(__doc__)
        return 2
    TOOL = args[1]
    names = args[2:]
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    if names:
        for n in names:
            suite.addTest(QdrantClientTest(n))
    else:
        suite = loader.loadTestsFromTestCase(QdrantClientTest)
    res = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if res.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
