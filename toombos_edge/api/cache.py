"""The content cache: statistics, invalidation, clearing and the history of both."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import CACHE, PRINCIPAL
from ..errors import Invalid
from .responses import json_response
from .schemas.cache import HistoryQuery, Invalidate


async def stats(request: web.Request) -> web.Response:
    """Keys, hit and miss rates, size and age of the cache (the client contract's shape)."""
    return json_response(await request.app[CACHE].stats())


async def invalidate(request: web.Request, body: Invalidate) -> web.Response:
    """Remove entries by ``cache_keys`` (or ``keys``), a glob ``pattern`` or ``tags``."""
    keys = body.cache_keys if body.cache_keys is not None else body.keys or []
    tags, pattern = body.tags or [], body.pattern
    if not keys and not tags and not pattern:
        raise Invalid("body: name what to invalidate: 'cache_keys', 'pattern' or 'tags'",
                      {"field": "cache_keys"})
    result = await request.app[CACHE].invalidate(keys, pattern, tags, actor=_actor(request))
    return json_response(result)


async def clear(request: web.Request) -> web.Response:
    """Remove every entry of the cache."""
    result = await request.app[CACHE].clear(actor=_actor(request))
    return json_response({"cleared": True, **result})


async def history(request: web.Request, query: HistoryQuery) -> web.Response:
    """Invalidations and clears, newest first (``limit`` up to 500)."""
    entries = await request.app[CACHE].history(query.limit)
    return json_response({"history": entries, "total": len(entries)})


def _actor(request: web.Request) -> str | None:
    key = request.get(PRINCIPAL)
    return key.id if key is not None else None
