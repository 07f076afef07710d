"""Admin: API keys."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import KEYS, PRINCIPAL
from ..errors import Invalid
from ..keys import Role
from .responses import json_object, json_response

MAX_PAGE = 500


async def list_keys(request: web.Request) -> web.Response:
    """Keys oldest first, revoked ones included (``limit`` ≤ 500, ``offset``); no secrets."""
    limit = _query_int(request, "limit", MAX_PAGE, 1, MAX_PAGE)
    offset = _query_int(request, "offset", 0, 0, 2**62)
    keys = await request.app[KEYS].list_keys(limit, offset)
    return json_response(
        {"keys": [key.to_json() for key in keys], "limit": limit, "offset": offset}
    )


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Invalid(f"'{name}' must be an integer from {low} to {high}", {name: raw})
    return value


async def create_key(request: web.Request) -> web.Response:
    """Create a key; the answer carries its secret, this once."""
    body = await json_object(request)
    name, role = body.get("name"), body.get("role", "viewer")
    if not isinstance(name, str) or not isinstance(role, str):
        raise Invalid("'name' and 'role' must be strings")
    key, secret = await request.app[KEYS].create(name, Role.parse(role))
    return json_response({**key.to_json(), "secret": secret}, status=201)


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key at once; its open WebSockets are closed."""
    key = await request.app[KEYS].revoke(request.match_info["key_id"])
    return json_response(key.to_json())


async def whoami(request: web.Request) -> web.Response:
    """Who this request came as (a key, or a token's subject): id, name and role."""
    key = request[PRINCIPAL]
    return json_response({"id": key.id, "name": key.name, "role": key.role.name})
