"""Query-string parameters shared by listings: ``limit`` and ``offset``."""

from __future__ import annotations

from aiohttp import web

from ..errors import BadRequest, EdgeError


def parse_int(text: str) -> int | None:
    """An optionally signed run of ASCII digits as an int; None for anything else.

    ``str.isdigit()`` alone is true for "²" or "①", which ``int()`` refuses (a 500 once),
    and ``int()`` alone takes " 5", "1_000" and other scripts' digits.
    """
    digits = text[1:] if text[:1] in "+-" else text
    return int(text) if digits.isascii() and digits.isdigit() else None


def int_param(request: web.Request, name: str, default: int, low: int, high: int, *,
              error: type[EdgeError] = BadRequest) -> int:
    """An integer query parameter within bounds; ``error`` (400 unless told) naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = parse_int(raw)
    if value is None:
        raise error(f"'{name}' must be an integer, got {raw!r}")
    if not low <= value <= high:
        raise error(f"'{name}' must be from {low} to {high}, got {value}")
    return value


def page_params(request: web.Request, default: int = 50, most: int = 500) -> tuple[int, int]:
    """(limit, offset) of a listing."""
    limit = int_param(request, "limit", default, 1, most)
    return limit, int_param(request, "offset", 0, 0, 10**9)
