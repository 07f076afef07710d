"""Probes: /health and its kin. Public except the detailed report."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import HEALTH, LIFECYCLE
from ..health import FAIL
from .responses import json_bytes, json_response


async def health(request: web.Request) -> web.Response:
    """Overall status with database, cache, disk and memory checks; 503 when unhealthy."""
    status, body = await request.app[HEALTH].report_json()
    return json_bytes(body, status=503 if status == "unhealthy" else 200)


async def health_detailed(request: web.Request) -> web.Response:
    """Every component with its latency, the counts of checks and the enabled features."""
    body = await request.app[HEALTH].detailed()
    return json_response(body, status=503 if body["status"] == "unhealthy" else 200)


async def check_component(request: web.Request) -> web.Response:
    """Run one component's check now, bypassing the one-second cache."""
    name = request.match_info["component"]
    check = await request.app[HEALTH].run_one(name)
    return json_response(
        {"component": name, **check.to_json()}, status=503 if check.status == FAIL else 200
    )


async def ready(request: web.Request) -> web.Response:
    """``{"ready": true}`` once migrations ran and the workers started; 503 before."""
    lifecycle = request.app[LIFECYCLE]
    is_ready = lifecycle.ready and not lifecycle.stopping
    return json_response({"ready": is_ready}, status=200 if is_ready else 503)


async def live(request: web.Request) -> web.Response:
    """The process answers: its event loop is running."""
    return json_response({"status": "alive"})


async def startup(request: web.Request) -> web.Response:
    """Start-up finished (the database is open and migrated)."""
    started = request.app[LIFECYCLE].started
    return json_response({"started": started}, status=200 if started else 503)
