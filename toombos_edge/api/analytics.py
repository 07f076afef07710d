"""Analytics over HTTP: the dashboard's overview and its job analytics.

``start_date`` and ``end_date`` are ISO 8601 times (the dashboard sends
``Date.toISOString()``), bare dates or milliseconds; absent, the last 30 days up to now.
``granularity`` is ``hour`` or ``day`` (default). A bad value is a 422 naming it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ..analytics import Window
from ..appkeys import ANALYTICS
from ..ids import now_ms
from .job_params import parse_time
from .responses import json_response

DEFAULT_DAYS = 30
_DAY_MS = 86_400_000


def window(query: Mapping[str, str]) -> Window:
    """The window a query string asks for."""
    end_raw, start_raw = query.get("end_date", ""), query.get("start_date", "")
    end = parse_time("end_date", end_raw, end_of_day=True) if end_raw.strip() else now_ms()
    start = (parse_time("start_date", start_raw) if start_raw.strip()
             else end - DEFAULT_DAYS * _DAY_MS)
    return Window.of(start, end, query.get("granularity", "day").strip().lower() or "day")


async def overview(request: web.Request) -> web.Response:
    """Job analytics, request performance, channel performance and recent activity."""
    return json_response(await request.app[ANALYTICS].overview(window(request.query)))


async def jobs(request: web.Request) -> web.Response:
    """Jobs in the window: per status and channel, success rate, run time, over time."""
    return json_response(await request.app[ANALYTICS].jobs(window(request.query)))
