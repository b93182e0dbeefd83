#!/usr/bin/python3
"""Checks that the Qdrant stand-in answers as shared/qdrant/README.md says Qdrant 1.19 does.

The C client's integration tests trust the stand-in, so its contract points are tested
here on their own: defaults, inclusive offsets and id order, vector and payload
selection, order_by, collection info shapes, error codes and bodies, auth.
  /usr/bin/python3 tests/qdrant_standin/test_qdrant_standin.py
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.request
import uuid

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "qdrant_standin.py")

U1 = "550e8400-e29b-41d4-a716-446655440000"
U2 = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
POINTS = [
    {"id": U2, "vector": {"text": [1, 2], "image": [3, 4, 5]}, "payload": {"a": 1, "b": 2}},
    {"id": 7, "vector": {"text": [0.5, 0.25]}, "payload": {"a": 7, "rank": 3}},
    {"id": U1, "vector": {"image": [6, 7, 8]}, "payload": {"a": 9, "rank": 1}},
    {"id": 2, "vector": {"text": [9, 9], "image": [1, 1, 1]}, "payload": {"rank": 2}},
    {"id": 18446744073709551615, "vector": {"text": [1, 1]}},
]


class StandIn:
    def __init__(self, points, *extra):
        self.dir = tempfile.TemporaryDirectory()
        path = os.path.join(self.dir.name, "p.jsonl")
        with open(path, "w") as fh:
            fh.write("\n".join(json.dumps(p) for p in points))
        self.proc = subprocess.Popen(["/usr/bin/python3", STANDIN, "--data", path,
                                      "--collection", "c", *extra], stdout=subprocess.PIPE)
        self.url = "http://127.0.0.1:%d" % int(self.proc.stdout.readline().split()[1])

    def call(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def scroll(self, body, **kw):
        code, _, out = self.call("POST", "/collections/c/points/scroll", body, **kw)
        return code, json.loads(out)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()
        self.dir.cleanup()


class StandInContract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = StandIn(POINTS)

    @classmethod
    def tearDownClass(cls):
        cls.s.close()

    def test_scroll_defaults_limit_10_payload_true_vector_false(self):
        code, doc = self.s.scroll({})
        self.assertEqual(code, 200)
        self.assertEqual(doc["status"], "ok")
        self.assertIsInstance(doc["time"], float)
        pts = doc["result"]["points"]
        self.assertEqual(len(pts), 5)
        self.assertTrue(all("vector" not in p and "payload" in p for p in pts))
        no_payload = [p for p in pts if p["id"] == 18446744073709551615][0]
        self.assertEqual(no_payload["payload"], {})  # a point without payload -> {}
        self.assertIsNone(doc["result"]["next_page_offset"])

    def test_ids_ordered_numbers_then_uuids_and_offsets_inclusive(self):
        seen, offset = [], None
        while True:
            body = {"limit": 2}
            if offset is not None:
                body["offset"] = offset
            _, doc = self.s.scroll(body)
            seen += [p["id"] for p in doc["result"]["points"]]
            offset = doc["result"]["next_page_offset"]
            if offset is None:
                break
        self.assertEqual(seen, [2, 7, 18446744073709551615, U1, U2])
        _, doc = self.s.scroll({"limit": 1, "offset": 3})  # need not exist: first id >= 3
        self.assertEqual(doc["result"]["points"][0]["id"], 7)
        _, doc = self.s.scroll({"limit": 1, "offset": U1.upper()})
        self.assertEqual(doc["result"]["points"][0]["id"], U1)

    def test_named_vectors_all_or_selected_by_name(self):
        _, doc = self.s.scroll({"limit": 1, "with_vector": True})
        self.assertEqual(doc["result"]["points"][0]["vector"], {"text": [9, 9], "image": [1, 1, 1]})
        _, doc = self.s.scroll({"limit": 5, "with_vectors": ["image"]})
        self.assertEqual([p["vector"] for p in doc["result"]["points"]],
                         [{"image": [1, 1, 1]}, {}, {}, {"image": [6, 7, 8]}, {"image": [3, 4, 5]}])

    def test_payload_selection_forms(self):
        ids = lambda d: [p.get("payload") for p in d["result"]["points"]]  # noqa: E731
        _, doc = self.s.scroll({"with_payload": False})
        self.assertEqual(ids(doc), [None] * 5)
        _, doc = self.s.scroll({"with_payload": ["a"], "limit": 2})
        self.assertEqual(ids(doc), [{}, {"a": 7}])
        _, doc = self.s.scroll({"with_payload": {"exclude": ["a"]}, "limit": 2})
        self.assertEqual(ids(doc), [{"rank": 2}, {"rank": 3}])

    def test_order_by_disables_next_page_offset(self):
        _, doc = self.s.scroll({"order_by": {"key": "rank", "direction": "desc"}, "limit": 2})
        self.assertEqual([p["id"] for p in doc["result"]["points"]], [7, 2])
        self.assertIsNone(doc["result"]["next_page_offset"])

    def test_collection_info_reports_named_vectors_and_points_count(self):
        code, _, out = self.s.call("GET", "/collections/c")
        res = json.loads(out)["result"]
        self.assertEqual(code, 200)
        self.assertEqual(res["points_count"], 5)
        self.assertEqual(res["config"]["params"]["vectors"],
                         {"text": {"size": 2, "distance": "Cosine"},
                          "image": {"size": 3, "distance": "Cosine"}})
        for key in ("status", "optimizer_status", "segments_count", "payload_schema"):
            self.assertIn(key, res)

    def test_count_and_exists(self):
        _, _, out = self.s.call("POST", "/collections/c/points/count", {"exact": True})
        self.assertEqual(json.loads(out)["result"], {"count": 5})
        _, _, out = self.s.call("GET", "/collections/c/exists")
        self.assertEqual(json.loads(out)["result"], {"exists": True})

    def test_errors_have_qdrant_codes_and_bodies(self):
        code, doc = self.s.scroll({"limit": 0})
        self.assertEqual(code, 422)
        self.assertIn("error", doc["status"])
        self.assertEqual(self.s.scroll({"offset": "nope"})[0], 400)
        self.assertEqual(self.s.scroll({"offset": -1})[0], 400)
        self.assertEqual(self.s.scroll({"with_vector": ["zzz"]})[0], 400)
        code, _, out = self.s.call("POST", "/collections/c/points/scroll", raw=b"{not json")
        self.assertEqual(code, 400)
        self.assertIn("Format error", json.loads(out)["status"]["error"])
        code, _, out = self.s.call("GET", "/collections/other")
        self.assertEqual(code, 404)
        self.assertEqual(json.loads(out)["status"]["error"],
                         "Not found: Collection `other` doesn't exist!")
        self.assertEqual(self.s.call("POST", "/collections/c/points/scroll?timeout=0", {})[0], 400)


class StandInShapes(unittest.TestCase):
    def test_multivector_and_sparse_configs_appear_in_info(self):
        s = StandIn([{"id": 1, "vector": {"m": [[1, 2], [3, 4]], "s": {"indices": [1],
                                                                       "values": [0.5]}}}])
        self.addCleanup(s.close)
        params = json.loads(s.call("GET", "/collections/c")[2])["result"]["config"]["params"]
        self.assertEqual(params["vectors"], {"m": {"size": 2, "distance": "Cosine",
                                                   "multivector_config": {"comparator": "max_sim"}}})
        self.assertEqual(params["sparse_vectors"], {"s": {}})
        _, doc = s.scroll({"with_vector": True})
        self.assertEqual(doc["result"]["points"][0]["vector"],
                         {"m": [[1, 2], [3, 4]], "s": {"indices": [1], "values": [0.5]}})


class StandInAuth(unittest.TestCase):
    def test_api_key_header_or_bearer_required(self):
        s = StandIn(POINTS[:1], "--api-key", "k1")
        self.addCleanup(s.close)
        code, ctype, out = s.call("GET", "/collections/c")
        self.assertEqual((code, ctype), (401, "text/plain"))
        self.assertEqual(out, b"Must provide an API key or an Authorization bearer token")
        code, _, out = s.call("GET", "/collections/c", headers={"api-key": "bad"})
        self.assertEqual((code, out), (401, b"Invalid API key or JWT"))
        self.assertEqual(s.call("GET", "/collections/c", headers={"api-key": "k1"})[0], 200)
        self.assertEqual(s.call("GET", "/collections/c",
                                headers={"Authorization": "Bearer k1"})[0], 200)


class StandInGenerator(unittest.TestCase):
    def test_generated_uuid_collection_pages_through_every_point_once(self):
        proc = subprocess.Popen(["/usr/bin/python3", STANDIN, "--collection", "g", "--generate",
                                 "n=250,dim=3,ids=uuid,seed=4,pool=7"], stdout=subprocess.PIPE)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(10), proc.stdout.close()))
        url = "http://127.0.0.1:%d" % int(proc.stdout.readline().split()[1])
        seen, offset = [], None
        while True:
            body = {"limit": 100, "with_vector": True}
            if offset is not None:
                body["offset"] = offset
            req = urllib.request.Request(url + "/collections/g/points/scroll",
                                         data=json.dumps(body).encode(), method="POST")
            doc = json.loads(urllib.request.urlopen(req).read())
            seen += [p["id"] for p in doc["result"]["points"]]
            offset = doc["result"]["next_page_offset"]
            if offset is None:
                break
        self.assertEqual(len(seen), 250)
        self.assertEqual(seen, sorted(seen, key=lambda u: uuid.UUID(u).bytes))
        self.assertEqual(len(set(seen)), 250)


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=2).result.wasSuccessful() else 1)
