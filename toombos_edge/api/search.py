"""Full-text search over documents."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import SEARCH
from ..errors import BadRequest
from .paging import page_params
from .responses import json_response


async def search(request: web.Request) -> web.Response:
    """``GET /api/search?q=`` (FTS5 syntax, or ``mode=plain``): ranked hits with snippets."""
    mode = request.query.get("mode", "fts")
    if mode not in {"fts", "plain"}:
        raise BadRequest("'mode' must be 'fts' or 'plain'")
    limit, offset = page_params(request, default=20, most=100)
    page = await request.app[SEARCH].search(
        request.query.get("q", ""), limit=limit, offset=offset, mode=mode
    )
    return json_response({
        "query": page.query,
        "results": [hit.to_json() for hit in page.hits],
        "total": page.total, "limit": limit, "offset": offset,
        "latency_ms": page.latency_ms,
    })
