"""Admin: API keys."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import KEYS, PRINCIPAL
from ..keys import Role
from .responses import json_response
from .schemas.admin import KeyListQuery, NewKey


async def list_keys(request: web.Request, query: KeyListQuery) -> web.Response:
    """Keys oldest first, revoked ones included (``limit`` ≤ 500, ``offset``); no secrets."""
    keys = await request.app[KEYS].list_keys(query.limit, query.offset)
    return json_response(
        {"keys": [key.to_json() for key in keys], "limit": query.limit, "offset": query.offset}
    )


async def create_key(request: web.Request, body: NewKey) -> web.Response:
    """Create a key; the answer carries its secret, this once."""
    key, secret = await request.app[KEYS].create(body.name, Role[body.role])
    return json_response({**key.to_json(), "secret": secret}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key at once; its open WebSockets are closed."""
    key = await request.app[KEYS].revoke(request.match_info["key_id"])
    return json_response(key.to_json())


async def whoami(request: web.Request) -> web.Response:
    """Who this request came as (a key, or a token's subject): id, name and role."""
    key = request[PRINCIPAL]
    return json_response({"id": key.id, "name": key.name, "role": key.role.name})
