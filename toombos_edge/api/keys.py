"""Admin: API keys."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import KEYS
from ..errors import Invalid
from ..keys import Role
from .responses import json_object, json_response


async def list_keys(request: web.Request) -> web.Response:
    """Every key, revoked ones included; secrets are never shown."""
    keys = await request.app[KEYS].list_keys()
    return json_response({"keys": [key.to_json() for key in keys]})


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
