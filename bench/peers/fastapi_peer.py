"""The peer of bench/http_rps.py: FastAPI on uvicorn (uvloop, httptools, one worker).

It serves the same routes from the same SQLite file with the same JSON. ``/health`` uses
the server's own ``HealthService`` (same checks, same one-second cache) and the key check
is the server's ``KeyService.authenticate``. The jobs list is written the way an ordinary
FastAPI app would: its own SQL on one aiosqlite connection (``execute_fetchall``, the page
then the total from the same counters table the server reads), ``sqlite3.Row`` rows to
dicts, ``orjson`` for the body. It formats times with the server's ``iso`` so that both
answers are byte-for-byte equal (the obvious ``strftime`` per value is slower: the peer is
given the server's faster helper). It pages by ``limit``/``offset`` and knows ``fields``;
no filters, no cursor (the bench needs neither).

Usage: python bench/peers/fastapi_peer.py PORT DATA_DIR
uvicorn runs as its users run it: its access log on, at its default level (info).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
import uvicorn
from fastapi import FastAPI, Query, Request, Response

from toombos_edge.activity import ActivityLog, JsonLines
from toombos_edge.api.responses import error_body
from toombos_edge.app import _engine_check
from toombos_edge.cache import ContentCache
from toombos_edge.events import EventBus
from toombos_edge.health import HealthService, Lifecycle
from toombos_edge.ids import iso
from toombos_edge.jobs.engine import JobEngine
from toombos_edge.jobs.kinds import KindRegistry
from toombos_edge.keys import KeyService, Role
from toombos_edge.store import Database
from toombos_edge.store.sqlite.activity import SqliteActivityStore
from toombos_edge.store.sqlite.cache import SqliteInvalidationHistory
from toombos_edge.store.sqlite.health import SqliteHealthStore
from toombos_edge.store.sqlite.jobs import SqliteJobStore
from toombos_edge.store.sqlite.keys import SqliteKeyStore

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    data_dir = Path(sys.argv[2])
    db = Database(data_dir / "edge.db")
    await db.open()
    bus = EventBus()
    keys = KeyService(SqliteKeyStore(db), bus)
    await keys.refresh()
    health = HealthService(SqliteHealthStore(db), data_dir, Lifecycle(started=True, ready=True))
    # The server's extra checks, built from the same code: its activity log's and its
    # cache's, and its engine's (an engine that runs no worker here: the check reads its
    # counters only; so does the activity log's, which is never started here).
    activity = ActivityLog(SqliteActivityStore(db), bus,
                           JsonLines(data_dir / "peer-activity.jsonl", max_bytes=1 << 20, keep=1))
    health.register("activity", activity.check)
    cache = ContentCache(data_dir / "cache", history=SqliteInvalidationHistory(db), bus=bus)
    await cache.open()
    health.register("cache", cache.check)
    engine = JobEngine(SqliteJobStore(db), bus, KindRegistry(), cache=cache)
    health.register("jobs", lambda: _engine_check(engine))
    jobs_db = await aiosqlite.connect(data_dir / "edge.db")
    jobs_db.row_factory = sqlite3.Row
    state.update(db=db, keys=keys, health=health, jobs_db=jobs_db)
    yield
    await jobs_db.close()
    await cache.close()
    await db.close()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def authorize(request: Request, role: Role) -> Response | None:
    """The same check as the server's auth middleware; a JSON error or None."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    key = state["keys"].authenticate(secret.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        return json(error_body(401, "unauthorized", "invalid or revoked API key"), 401)
    if key.role < role:
        return json(error_body(403, "forbidden", "role too low"), 403)
    return None


@app.get("/health")
async def health() -> Response:
    body = await state["health"].report()
    return json(body, 503 if body["status"] == "unhealthy" else 200)


@app.get("/ready")
async def ready() -> Response:
    return json({"ready": True})


@app.get("/admin/keys")
async def list_keys(request: Request, limit: int = 500, offset: int = 0) -> Response:
    denied = authorize(request, Role.admin)
    if denied is not None:
        return denied
    keys = await state["keys"].list_keys(limit, offset)
    return json({"keys": [key.to_json() for key in keys], "limit": limit, "offset": offset})


# The job object's keys in its order, each as a SQL expression aliased to the key.
COLUMNS = {
    "job_id": "id AS job_id", "kind": "kind", "status": "status", "priority": "priority",
    "document_id": "document_id", "channels": "channels",
    "progress": "progress_percent, progress_message", "attempts": "attempts",
    "max_attempts": "max_attempts", "last_error": "last_error", "errors": "errors",
    "results": "results", "params": "params", "metadata": "metadata",
    "correlation_id": "correlation_id", "idempotency_key": "idempotency_key",
    "created_at": "created_at", "updated_at": "updated_at", "scheduled_for": "scheduled_for",
    "started_at": "started_at", "completed_at": "completed_at",
}
JSON_KEYS = ("channels", "errors", "results", "params", "metadata")
TIME_KEYS = ("created_at", "updated_at", "scheduled_for", "started_at", "completed_at")


def job_dict(row: sqlite3.Row, keys: list[str]) -> dict[str, Any]:
    job = dict(row)
    if "progress" in keys:
        job["progress"] = {"percent": job.pop("progress_percent"),
                           "message": job.pop("progress_message")}
        job = {key: job[key] for key in keys}  # back in the object's order
    for key in JSON_KEYS:
        if key in job:
            job[key] = orjson.loads(job[key])
    for key in TIME_KEYS:
        if key in job:
            job[key] = iso(job[key])
    return job


@app.get("/api/jobs")
async def list_jobs(
    request: Request,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=100_000),
    fields: str | None = None,
) -> Response:
    """Newest first, ``fields`` cutting each job to those keys (``job_id`` always)."""
    denied = authorize(request, Role.viewer)
    if denied is not None:
        return denied
    asked = {name.strip() for name in (fields or "").split(",") if name.strip()}
    if asked - COLUMNS.keys():
        return json(error_body(422, "invalid", f"unknown fields {sorted(asked - COLUMNS.keys())}"),
                    422)
    keys = [key for key in COLUMNS if not asked or key in asked or key == "job_id"]
    db = state["jobs_db"]
    rows = await db.execute_fetchall(
        f"SELECT {', '.join(COLUMNS[key] for key in keys)} FROM jobs "
        "ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))
    total = (await db.execute_fetchall("SELECT sum(n) FROM job_counts"))[0][0] or 0
    jobs = [job_dict(row, keys) for row in rows]
    return json({
        "jobs": jobs,
        "total": total,
        "total_exact": True,
        "page": offset // limit + 1,
        "page_size": limit,
        "offset": offset,
        "next_cursor": jobs[-1]["job_id"] if len(jobs) == limit else None,
    })


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                workers=1)  # uvicorn's defaults: access log on, level info
