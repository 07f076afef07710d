"""The peer of bench/http.py: FastAPI on uvicorn (uvloop, httptools, one worker).

It serves the same routes as the real server from the same SQLite file, with the same
code below the HTTP layer: the same ``Database`` (reader connections), the same
``HealthService`` (same checks, same one-second cache), the same key check and the same
list SQL and JSON (orjson). Only the web framework differs.

Usage: python bench/peers/fastapi_peer.py PORT DATA_DIR
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response

from toombos_edge.api.job_params import paging, query_filter
from toombos_edge.api.responses import error_body
from toombos_edge.app import _engine_check
from toombos_edge.cache import ContentCache
from toombos_edge.events import EventBus
from toombos_edge.health import HealthService, Lifecycle
from toombos_edge.jobs import listing
from toombos_edge.jobs.engine import JobEngine
from toombos_edge.jobs.kinds import KindRegistry
from toombos_edge.keys import KeyService, Role
from toombos_edge.store import Database

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    data_dir = Path(sys.argv[2])
    db = Database(data_dir / "edge.db")
    await db.open()
    bus = EventBus()
    keys = KeyService(db, bus)
    await keys.refresh()
    health = HealthService(db, data_dir, Lifecycle(started=True, ready=True))
    # The server's extra checks, built from the same code: its cache's, and its engine's
    # (an engine that runs no worker here: the check reads its counters only).
    cache = ContentCache(data_dir / "cache", db=db, bus=bus)
    await cache.open()
    health.register("cache", cache.check)
    engine = JobEngine(db, bus, KindRegistry(), cache=cache)
    health.register("jobs", lambda: _engine_check(engine))
    state.update(db=db, keys=keys, health=health)
    yield
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


@app.get("/api/jobs")
async def list_jobs(request: Request) -> Response:
    """The server's jobs list: same filter and paging parsers, same read, same JSON."""
    denied = authorize(request, Role.viewer)
    if denied is not None:
        return denied
    query = request.query_params
    flt, paged = query_filter(query), paging(query)
    page = await listing.list_page(state["db"], flt, paged.limit, paged.offset, paged.cursor)
    return json({
        "jobs": [job.to_json() for job in page.jobs],
        "total": page.total,
        "total_exact": page.total_exact,
        "page": paged.page,
        "page_size": paged.limit,
        "offset": paged.offset,
        "next_cursor": page.next_cursor,
    })


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                workers=1, access_log=False, log_level="warning")
