"""Admin: restart the server."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import PRINCIPAL, RESTARTS
from .responses import json_response


async def restart(request: web.Request) -> web.Response:
    """202 ``{"status": "restarting", …}`` at once; the server stops (sockets get a
    ``restarting`` event, then 1012) and comes back on the same listening socket. 409 while
    one is under way, 429 (with ``Retry-After``) sooner than ``restart_min_interval``."""
    body = await request.app[RESTARTS].request(request[PRINCIPAL].id)
    return json_response(body, status=202)
