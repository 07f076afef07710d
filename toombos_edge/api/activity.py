"""``GET /api/activity``: the activity log newest first, filtered, paged by cursor."""

from __future__ import annotations

import orjson
from aiohttp import web

from ..activity import ActivityFilter
from ..appkeys import ACTIVITY
from ..errors import Invalid
from .job_params import parse_time
from .responses import json_response
from .schemas.admin import ActivityQuery


async def list_activity(request: web.Request, query: ActivityQuery) -> web.Response:
    """Lines newest first; ``type`` (comma-separated), ``actor``, ``target``, ``since``,
    ``until`` (ISO 8601 or ms), ``limit`` ≤ 500 and ``cursor`` (the last page's
    ``next_cursor``)."""
    flt, limit = activity_filter(query), query.limit
    before = None if query.cursor is None else int(query.cursor)
    if before is not None and before >= 1 << 63:
        raise Invalid("cursor: not a cursor this server gave out", {"field": "cursor"})
    rows = await request.app[ACTIVITY].page(flt, limit, before)
    items = [{"id": str(ident), **orjson.loads(line)} for ident, line in rows]
    next_cursor = str(rows[-1][0]) if len(rows) == limit else None
    body = {"activity": items, "count": len(items), "limit": limit, "next_cursor": next_cursor}
    return json_response(body)


def activity_filter(query: ActivityQuery) -> ActivityFilter:
    """The filter of the typed query; ``since`` after ``until`` is a 422."""
    since, until = (None if raw is None or not raw.strip() else parse_time(name, raw)
                    for name, raw in (("since", query.since), ("until", query.until)))
    if since is not None and until is not None and since > until:
        raise Invalid("since: after 'until'", {"field": "since"})
    return ActivityFilter(tuple(dict.fromkeys(query.type)), _text(query.actor),
                          _text(query.target), since, until)


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None
