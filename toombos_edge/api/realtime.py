"""Realtime over HTTP: WebSocket tokens, and the open connections for admins."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import HUB, PRINCIPAL, WS_TOKENS
from ..errors import Invalid
from ..ids import iso
from .responses import json_response

MAX_LISTED = 10_000


async def ws_token(request: web.Request) -> web.Response:
    """A short-lived token for WebSocket URLs (``?token=``), bound to this key and its role."""
    tokens = request.app[WS_TOKENS]
    token, claims = tokens.issue(request[PRINCIPAL])
    return json_response({
        "token": token,
        "token_type": "ws",
        "role": claims.role.name,
        "expires_at": iso(claims.expires_at),
        "expires_in": tokens.ttl,
    })


async def connections(request: web.Request) -> web.Response:
    """Open WebSockets: counts per endpoint and IP, refusals, and the sockets themselves."""
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LISTED:
        raise Invalid(f"'limit' must be an integer from 1 to {MAX_LISTED}")
    return json_response(request.app[HUB].snapshot(int(raw)))
