"""The dashboard over HTTP: its page (revalidated) and its versioned assets (immutable).

Both are public: the page holds no data; every API call it makes carries the user's key.
Every answer carries a strict Content-Security-Policy (no inline script or style; the page
talks only to this server, over HTTP and WebSockets) and the usual security headers.
"""

from __future__ import annotations

import re

from aiohttp import hdrs, web

from ..appkeys import DASHBOARD
from ..dashboard import Asset
from ..errors import NotFound, Unavailable

IMMUTABLE = "public, max-age=31536000, immutable"
_HOST = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,255}$")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def content_security_policy(host: str | None) -> str:
    """Only this server: 'self' for HTTP, the same host for ws: and wss:."""
    sockets = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"font-src 'self'; connect-src 'self'{sockets}; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


async def index(request: web.Request) -> web.StreamResponse:
    """The one HTML page (its routes live in the URL fragment); revalidated by ETag."""
    page = request.app[DASHBOARD].index
    if page is None:
        raise Unavailable("the dashboard files are not installed (no static/index.html)")
    return _send(request, page, "no-cache")


async def asset(request: web.Request) -> web.StreamResponse:
    """``/static/<version>/<path>``: immutable when the version is the current one."""
    files = request.app[DASHBOARD]
    found = files.asset(request.match_info["path"])
    if found is None:
        raise NotFound("no such dashboard file")
    current = request.match_info["version"] == files.version
    return _send(request, found, IMMUTABLE if current else "no-cache")


def _send(request: web.Request, item: Asset, cache_control: str) -> web.StreamResponse:
    headers = {
        hdrs.CACHE_CONTROL: cache_control,
        hdrs.ETAG: item.etag,
        hdrs.VARY: hdrs.ACCEPT_ENCODING,
        "Content-Security-Policy": content_security_policy(request.host),
        **_SECURITY_HEADERS,
    }
    if item.etag in request.headers.get(hdrs.IF_NONE_MATCH, ""):
        return web.Response(status=304, headers=headers)
    headers[hdrs.CONTENT_TYPE] = item.content_type
    body = item.body
    if item.gzipped is not None and "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, ""):
        body, headers[hdrs.CONTENT_ENCODING] = item.gzipped, "gzip"
    return web.Response(body=body, headers=headers)
