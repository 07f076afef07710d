"""``GET /metrics`` for Prometheus, curl and browsers, or for the Toombos dashboard as JSON;
``GET /api/metrics``, always the JSON.

What each client sends decides the answer on ``/metrics``:

- Prometheus: ``Accept: application/openmetrics-text;…, text/plain;…`` → OpenMetrics (text
  0.0.4 when it names only ``text/plain``);
- curl and a browser's ``fetch``: ``Accept: */*`` → text 0.0.4;
- the Toombos dashboard: ``Accept: */*`` with ``Content-Type: application/json`` (it sends
  it on every GET), or anyone naming ``application/json`` in ``Accept`` → the JSON.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from ..appkeys import METRICS
from .responses import json_response

JSON = "application/json"
OPENMETRICS = "application/openmetrics-text"
#: The answer depends on these request headers: shared caches must key on them.
VARY = "Accept, Content-Type"


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get(hdrs.ACCEPT, "")
    if OPENMETRICS in accept:
        return False
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    return JSON in accept or content_type.split(";")[0].strip().lower() == JSON


async def scrape(request: web.Request) -> web.Response:
    """The exposition format, or the dashboard's JSON to a client that asks for JSON."""
    metrics = request.app[METRICS]
    if wants_json(request):
        response = json_response(metrics.dashboard())
    else:
        body, content_type = await metrics.exposition(request.headers.get(hdrs.ACCEPT, ""))
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
    response.headers.add(hdrs.VARY, VARY)
    return response


async def dashboard(request: web.Request) -> web.Response:
    """The client contract's metrics: requests, latency, errors, cache, jobs."""
    return json_response(request.app[METRICS].dashboard())
