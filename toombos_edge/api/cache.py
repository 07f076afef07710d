"""The content cache: statistics, invalidation, clearing and the history of both."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appkeys import CACHE, PRINCIPAL
from ..errors import Invalid
from .paging import int_param
from .responses import json_object, json_response

MAX_KEYS = 10_000
MAX_PATTERN = 500


async def stats(request: web.Request) -> web.Response:
    """Keys, hit and miss rates, size and age of the cache (the client contract's shape)."""
    return json_response(await request.app[CACHE].stats())


async def invalidate(request: web.Request) -> web.Response:
    """Remove entries by ``cache_keys`` (or ``keys``), a glob ``pattern`` or ``tags``."""
    body = await json_object(request)
    keys = _strings(body.get("cache_keys", body.get("keys")), "cache_keys", MAX_KEYS)
    tags = _strings(body.get("tags"), "tags", 1000)
    pattern = body.get("pattern")
    if pattern is not None and (not isinstance(pattern, str) or len(pattern) > MAX_PATTERN):
        raise Invalid(f"'pattern' must be a glob string of at most {MAX_PATTERN} characters")
    if not keys and not tags and not pattern:
        raise Invalid("name what to invalidate: 'cache_keys', 'pattern' or 'tags'")
    result = await request.app[CACHE].invalidate(keys, pattern, tags, actor=_actor(request))
    return json_response(result)


async def clear(request: web.Request) -> web.Response:
    """Remove every entry of the cache."""
    result = await request.app[CACHE].clear(actor=_actor(request))
    return json_response({"cleared": True, **result})


async def history(request: web.Request) -> web.Response:
    """Invalidations and clears, newest first (``limit`` up to 500)."""
    limit = int_param(request, "limit", 100, 1, 500, error=Invalid)
    entries = await request.app[CACHE].history(limit)
    return json_response({"history": entries, "total": len(entries)})


def _strings(value: Any, name: str, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"'{name}' must be a list of strings")
    if len(value) > limit:
        raise Invalid(f"'{name}' has more than {limit} items")
    return value


def _actor(request: web.Request) -> str | None:
    key = request.get(PRINCIPAL)
    return key.id if key is not None else None
