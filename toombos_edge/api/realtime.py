"""Realtime over HTTP: WebSocket tokens, and the open connections for admins."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import BUS, HUB, PRINCIPAL, WS_TOKENS
from ..events import ANNOUNCEMENT, Event
from ..idp import Identity
from ..ids import iso, now_ms
from .responses import json_response
from .schemas.admin import Broadcast, ConnectionsQuery


async def ws_token(request: web.Request) -> web.Response:
    """A short-lived token for WebSocket URLs (``?token=``), bound to this caller and role.

    Asked for with an identity-provider token, it expires no later than that token."""
    tokens, principal = request.app[WS_TOKENS], request[PRINCIPAL]
    until = principal.expires_at if isinstance(principal, Identity) else None
    token, claims = tokens.issue(principal, until)
    return json_response({
        "token": token,
        "token_type": "ws",
        "role": claims.role.name,
        "expires_at": iso(claims.expires_at),
        "expires_in": tokens.ttl if until is None else (claims.expires_at - now_ms()) / 1000,
    })


async def connections(request: web.Request, query: ConnectionsQuery) -> web.Response:
    """Open WebSockets: counts per endpoint and IP, refusals, and the sockets themselves."""
    return json_response(request.app[HUB].snapshot(query.limit))


async def broadcast(request: web.Request, body: Broadcast) -> web.Response:
    """Send ``{"type": "announcement", "data": …}`` to every dashboard socket."""
    event = Event.data(ANNOUNCEMENT, body.data)
    request.app[BUS].publish(event)
    return json_response({"published": ANNOUNCEMENT, "timestamp": iso(event.timestamp)},
                         status=202)
