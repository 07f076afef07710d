"""Analytics over HTTP: the dashboard's overview and its job analytics.

``start_date`` and ``end_date`` are ISO 8601 times (the dashboard sends
``Date.toISOString()``), bare dates or milliseconds; absent, the last 30 days up to now.
``granularity`` is ``hour`` or ``day`` (default). A bad value is a 422 naming it.
"""

from __future__ import annotations

from aiohttp import web

from ..analytics import Window
from ..appkeys import ANALYTICS
from ..ids import now_ms
from .job_params import parse_time
from .responses import json_response
from .schemas import analytics

DEFAULT_DAYS = 30
_DAY_MS = 86_400_000


def window(query: analytics.Window) -> Window:
    """The window a query asks for."""
    end_raw, start_raw = (query.end_date or "").strip(), (query.start_date or "").strip()
    end = parse_time("end_date", end_raw, end_of_day=True) if end_raw else now_ms()
    start = parse_time("start_date", start_raw) if start_raw else end - DEFAULT_DAYS * _DAY_MS
    return Window.of(start, end, query.granularity)


async def overview(request: web.Request, query: analytics.Window) -> web.Response:
    """Job analytics, request performance, channel performance and recent activity."""
    return json_response(await request.app[ANALYTICS].overview(window(query)))


async def jobs(request: web.Request, query: analytics.Window) -> web.Response:
    """Jobs in the window: per status and channel, success rate, run time, over time."""
    return json_response(await request.app[ANALYTICS].jobs(window(query)))
