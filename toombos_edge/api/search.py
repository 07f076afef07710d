"""Full-text search over documents."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import SEARCH
from .responses import json_response
from .schemas.documents import SearchQuery


async def search(request: web.Request, query: SearchQuery) -> web.Response:
    """``GET /api/search?q=`` (FTS5 syntax, or ``mode=plain``): ranked hits with snippets."""
    limit, offset = query.limit, query.offset
    page = await request.app[SEARCH].search(query.q, limit=limit, offset=offset,
                                            mode=query.mode)
    return json_response({
        "query": page.query,
        "results": [hit.to_json() for hit in page.hits],
        "total": page.total, "limit": limit, "offset": offset,
        "latency_ms": page.latency_ms,
    })
