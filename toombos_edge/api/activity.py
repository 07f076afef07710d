"""``GET /api/activity``: the activity log newest first, filtered, paged by cursor."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson
from aiohttp import web

from ..activity import ActivityFilter
from ..activity.repository import page
from ..appkeys import DATABASE
from ..errors import BadRequest, Invalid
from .job_params import parse_time
from .paging import int_param
from .responses import json_response

DEFAULT_LIMIT, MAX_LIMIT = 50, 500
MAX_TEXT = 200
_TYPE = re.compile(r"^[a-z_.]{1,64}$")


async def list_activity(request: web.Request) -> web.Response:
    """Lines newest first; ``type`` (comma-separated), ``actor``, ``target``, ``since``,
    ``until`` (ISO 8601 or ms), ``limit`` ≤ 500 and ``cursor`` (the last page's
    ``next_cursor``)."""
    query = request.query
    flt = activity_filter(query)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT, error=Invalid)
    before = _cursor(query.get("cursor"))
    rows = await request.app[DATABASE].read(partial(page, flt=flt, limit=limit, before=before))
    items = [{"id": str(ident), **orjson.loads(line)} for ident, line in rows]
    next_cursor = str(rows[-1][0]) if len(rows) == limit else None
    body = {"activity": items, "count": len(items), "limit": limit, "next_cursor": next_cursor}
    return json_response(body)


def activity_filter(query: Mapping[str, str]) -> ActivityFilter:
    """The filter of a query string; a bad value is a 4xx naming the parameter."""
    types = tuple(t.strip() for t in query.get("type", "").split(",") if t.strip())
    if any(not _TYPE.match(t) for t in types):
        raise Invalid("'type' must be activity types such as job.failed, comma-separated")
    since, until = (_time(query, name) for name in ("since", "until"))
    if since is not None and until is not None and since > until:
        raise Invalid("'since' is after 'until'")
    return ActivityFilter(types, _text(query, "actor"), _text(query, "target"), since, until)


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    if len(value) > MAX_TEXT:
        raise Invalid(f"'{name}' is longer than {MAX_TEXT} characters")
    return value or None


def _time(query: Mapping[str, str], name: str) -> int | None:
    raw: Any = query.get(name, "").strip()
    return None if raw == "" else parse_time(name, raw)


def _cursor(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise BadRequest("'cursor' is not a cursor this server gave out")
    return int(raw)
