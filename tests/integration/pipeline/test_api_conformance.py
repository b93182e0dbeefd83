"""The API reads what we write: the seed's own ProjectionService (copied verbatim into
tests/fixtures/webui/projection_service.py) reads a computed run, a reused run and a
forced run that our worker wrote, through its read paths: get_projection_metadata,
list_projections, resolve_artifact_path (each array) and select_projection_region
(selection by ids).  Its repositories are stubbed over the real PostgreSQL rows (psql:
Debian's Python has no PostgreSQL driver); the expected values come from the points the
test loaded (numpy's PCA, the seed task's own category helpers), not from the worker.
"""
from __future__ import annotations

import ast
import asyncio
import enum
import importlib.util
import json
import os
import sys
import types
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import pwtest  # noqa: E402
from test_projection import NOW, Env, reference_case, send  # noqa: E402

SERVICE = os.path.join(pwtest.ROOT, "tests/fixtures/webui/projection_service.py")
PY_TASK = os.path.join(pwtest.ROOT, "tests/fixtures/python_task/projection.py")


# ---- the service's imports, stubbed ----------------------------------------------------

class OperationStatus(str, enum.Enum):  # values as shared/database/models.py has them
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ProjectionRunStatus(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class HTTPException(Exception):
    def __init__(self, status_code: int, detail: str | None = None):
        super().__init__(status_code, detail)
        self.status_code, self.detail = status_code, detail


class EntityNotFoundError(Exception):
    pass


class AccessDeniedError(Exception):
    pass


class NoChunks:
    """Chunks and documents are the API's own tables; the worker writes none."""

    def __init__(self, session):
        self.session = session

    async def get_chunk_by_id(self, chunk_id, collection_id):
        return None

    async def get_by_id(self, document_id):
        return None


SETTINGS = types.SimpleNamespace(data_dir=Path("/nonexistent"))


def load_service():
    mods = {
        "fastapi": {"HTTPException": HTTPException},
        "shared": {}, "shared.config": {"settings": SETTINGS}, "shared.database": {},
        "shared.database.exceptions": {"AccessDeniedError": AccessDeniedError,
                                       "EntityNotFoundError": EntityNotFoundError},
        "shared.database.models": {"OperationStatus": OperationStatus, "OperationType": object,
                                   "ProjectionRun": object, "ProjectionRunStatus": ProjectionRunStatus},
        "shared.database.repositories": {},
        "shared.database.repositories.chunk_repository": {"ChunkRepository": NoChunks},
        "shared.database.repositories.document_repository": {"DocumentRepository": NoChunks},
        "packages": {}, "packages.webui": {}, "packages.webui.celery_app": {"celery_app": None},
    }
    for name, attrs in mods.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    spec = importlib.util.spec_from_file_location("projection_service", SERVICE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ProjectionService


class Session:
    def __init__(self):
        self.flushes = 0

    async def flush(self):
        self.flushes += 1


class Runs:
    """ProjectionRunRepository's reads over projection_runs."""

    def __init__(self, env: Env):
        self.env = env

    def _runs(self, where: str) -> list:
        text = self.env.sql(f"""SELECT coalesce(json_agg(json_build_object('uuid', uuid, 'collection_id', collection_id,
                                    'status', status, 'reducer', reducer, 'dimensionality', dimensionality,
                                    'created_at', created_at, 'operation_uuid', operation_uuid, 'config', config,
                                    'meta', meta, 'storage_path', storage_path, 'point_count', point_count)
                                    ORDER BY created_at DESC), '[]')
                                  FROM projection_runs WHERE {where}""")
        runs = []
        for r in json.loads(text):
            r["status"] = ProjectionRunStatus(r["status"])
            r["created_at"] = datetime.fromisoformat(r["created_at"])
            runs.append(types.SimpleNamespace(**r))
        return runs

    async def get_by_uuid(self, uuid: str):
        found = self._runs(f"uuid = '{uuid}'")
        return found[0] if found else None

    async def list_for_collection(self, collection_id: str):
        runs = self._runs(f"collection_id = '{collection_id}'")
        return runs, len(runs)


class Operations:
    def __init__(self, env: Env):
        self.env = env

    async def get_by_uuid(self, uuid: str):
        row = self.env.sql(f"SELECT json_build_object('status', status, 'error_message', error_message) "
                           f"FROM operations WHERE uuid = '{uuid}'")
        if not row:
            return None
        op = json.loads(row)
        return types.SimpleNamespace(status=OperationStatus(op["status"]), error_message=op["error_message"])


class Collections:
    def __init__(self, env: Env):
        self.env = env

    async def get_by_uuid_with_permission_check(self, collection_id: str, user_id: int):
        owner = self.env.sql(f"SELECT owner_id FROM collections WHERE id = '{collection_id}'")
        if not owner:
            raise EntityNotFoundError("collection", collection_id)
        if int(owner) != user_id:
            raise AccessDeniedError("collection", collection_id)
        return types.SimpleNamespace(owner_id=int(owner))


# ---- what the Python task's runs give -------------------------------------------------------

def python_meta_keys() -> set[str]:
    """The keys of the meta.json the seed's task writes for a PCA run coloured by filetype:
    its meta_payload literal and the keys it adds unconditionally or for PCA."""
    tree = ast.parse(open(PY_TASK).read())
    for node in ast.walk(tree):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id == "meta_payload" and isinstance(node.value, ast.Dict)):
            keys = {k.value for k in node.value.keys}
            return keys | {"original_ids", "category_counts", "explained_variance_ratio", "singular_values"}
    raise AssertionError("meta_payload literal not found in the seed's task")


def pca_reference(points: list[dict]) -> np.ndarray:
    vecs = np.asarray([p["vector"] for p in points], dtype=np.float32)
    centred = vecs - vecs.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def test_api_reads_computed_reused_and_forced_runs():
    Service = load_service()
    with Env() as env:
        SETTINGS.data_dir = Path(env.data_dir)
        cid = env.collection_id
        q = env.queue_with_worker("api")
        computed = env.create_run({"color_by": "filetype"})
        send(q, computed)
        reused = env.create_run({"color_by": "filetype"})
        send(q, reused)
        forced = env.create_run({"color_by": "filetype", "force": True})
        send(q, forced)

        session = Session()
        svc = Service(db_session=session, projection_repo=Runs(env), operation_repo=Operations(env),
                      collection_repo=Collections(env))
        ids = [p["id"] for p in env.points]
        ref_xy = pca_reference(env.points)
        ref_cat = reference_case([p["payload"] for p in env.points], "filetype", NOW)
        keys = python_meta_keys()
        for run in (computed, reused, forced):
            md = asyncio.run(svc.get_projection_metadata(cid, run, 1))
            assert (md["projection_id"], md["collection_id"], md["status"], md["reducer"], md["dimensionality"],
                    md["operation_status"], md["message"]) == (run, cid, "completed", "pca", 2, "completed", None), md
            meta = md["meta"]
            assert meta["color_by"] == "filetype" and meta["legend"] == ref_cat["legend"], meta
            assert meta["shown_count"] == meta["total_count"] == len(ids) and meta["sampled"] is False
            art = meta["projection_artifacts"]
            # the forced run also names the run it supersedes (the reuse contract's addition)
            expected = keys | ({"parent_run_id"} if run == forced else set())
            assert set(art) == expected, set(art) ^ expected
            assert art["original_ids"] == [str(i) for i in ids] and art["legend"] == ref_cat["legend"]
            assert art["point_count"] == len(ids) and art["category_counts"] == ref_cat["category_counts"]

            arrays = {}
            for name in ("x", "y", "ids", "cat"):
                path = asyncio.run(svc.resolve_artifact_path(cid, run, name, 1))
                assert path == Path(env.data_dir, "semantik/projections", cid, run, art["files"].get(
                    name, art["files"].get("categories"))).resolve(), path
                arrays[name] = path.read_bytes()
            for col, name in enumerate(("x", "y")):
                ours = np.frombuffer(arrays[name], dtype="<f4")
                sign = np.sign(np.dot(ours, ref_xy[:, col])) or 1.0
                assert np.max(np.abs(ours - sign * ref_xy[:, col])) / np.max(np.abs(ref_xy[:, col])) < 1e-4, name
            assert np.frombuffer(arrays["ids"], dtype="<i4").tolist() == ids
            assert list(arrays["cat"]) == ref_cat["categories"]

            picked = [ids[7], ids[0], ids[7], 5]  # a duplicate and an id not in the run
            sel = asyncio.run(svc.select_projection_region(cid, run, {"ids": picked}, 1))
            blank = {"chunk_id": None, "document_id": None, "chunk_index": None, "content_preview": None}
            assert sel == {"items": [{"selected_id": ids[7], "index": 7, "original_id": str(ids[7]), **blank},
                                     {"selected_id": ids[0], "index": 0, "original_id": str(ids[0]), **blank}],
                           "missing_ids": [5], "degraded": False}, sel
        assert session.flushes == 0, "storage_path was not relative to DATA_DIR as the API stores it"

        reused_meta = asyncio.run(svc.get_projection_metadata(cid, reused, 1))["meta"]
        assert reused_meta["reused_from"] == computed and reused_meta["idempotent_reuse"] is True
        forced_meta = asyncio.run(svc.get_projection_metadata(cid, forced, 1))["meta"]
        assert forced_meta["parent_run_id"] in (computed, reused) and "reused_from" not in forced_meta
        assert forced_meta["projection_artifacts"]["projection_id"] == forced
        listed = asyncio.run(svc.list_projections(cid, 1))
        assert sorted(p["projection_id"] for p in listed) == sorted([computed, reused, forced])
        assert all(p["operation_status"] == "completed" for p in listed)


if __name__ == "__main__":
    pwtest.main(globals())
