"""The one route table: every path the server answers, with the role it needs."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from . import openapi
from .api import docs, keys, probes, realtime
from .appkeys import OPENAPI, ROUTE_ROLES
from .keys import Role
from .ws import endpoints as ws

PUBLIC = None
VIEWER, OPERATOR, ADMIN = Role.viewer, Role.operator, Role.admin


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    role: Role | None


ROUTES: tuple[Route, ...] = (
    # probes
    Route("GET", "/health", probes.health, PUBLIC),
    Route("GET", "/health/detailed", probes.health_detailed, VIEWER),
    Route("POST", "/health/check/{component}", probes.check_component, PUBLIC),
    Route("GET", "/ready", probes.ready, PUBLIC),
    Route("GET", "/live", probes.live, PUBLIC),
    Route("GET", "/liveness", probes.live, PUBLIC),
    Route("GET", "/startup", probes.startup, PUBLIC),
    # docs
    Route("GET", "/openapi.json", docs.openapi_json, PUBLIC),
    Route("GET", "/docs", docs.docs_page, PUBLIC),
    # realtime: the WebSocket gate checks origin, the per-IP limit and the token itself
    Route("GET", "/ws/jobs", ws.jobs, PUBLIC),
    Route("GET", "/ws/status/{job_id}", ws.status, PUBLIC),
    Route("GET", "/ws/dashboard", ws.dashboard, PUBLIC),
    Route("GET", "/api/v1/ws/dashboard", ws.dashboard, PUBLIC),
    Route("GET", "/ws/content/{client_id}", ws.content, PUBLIC),
    Route("GET", "/ws/session/{session_id}", ws.session, PUBLIC),
    Route("POST", "/api/auth/ws-token", realtime.ws_token, VIEWER),
    # admin
    Route("GET", "/admin/connections", realtime.connections, ADMIN),
    Route("GET", "/admin/keys", keys.list_keys, ADMIN),
    Route("POST", "/admin/keys", keys.create_key, ADMIN),
    Route("DELETE", "/admin/keys/{key_id}", keys.revoke_key, ADMIN),
)


def setup_routes(app: web.Application, routes: tuple[Route, ...] = ROUTES) -> None:
    """Register every route and remember the role each one needs."""
    roles = app[ROUTE_ROLES]
    for route in routes:
        registered = app.router.add_route(route.method, route.path, route.handler)
        roles[registered] = route.role
    app[OPENAPI] = orjson.dumps(openapi.build(routes))
