"""Query-string parameters shared by listings: ``limit`` and ``offset``."""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within bounds; 400 naming it otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"'{name}' must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"'{name}' must be from {low} to {high}, got {value}")
    return value


def page_params(request: web.Request, default: int = 50, most: int = 500) -> tuple[int, int]:
    """(limit, offset) of a listing."""
    limit = int_param(request, "limit", default, 1, most)
    return limit, int_param(request, "offset", 0, 0, 10**9)
