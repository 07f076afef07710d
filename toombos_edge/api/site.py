"""Pages of the website channel, served by this server at ``/site/{slug}``."""

from __future__ import annotations

import re

from aiohttp import web

from ..appkeys import CONTENT
from ..errors import NotFound

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
# The page is content, not an application: no scripts, no framing, no plugins.
SITE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


async def page(request: web.Request) -> web.Response:
    """The published article under this slug (each view is counted for analytics)."""
    slug = request.match_info["slug"]
    if not _SLUG.match(slug):
        raise NotFound(f"no page at /site/{slug}")
    html = await request.app[CONTENT].items.view_page(slug)
    response = web.Response(text=html, content_type="text/html")
    response.headers["Content-Security-Policy"] = SITE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response
