"""HTTP requests by method, route template and status, with their latency.

The request pipeline holds one :class:`RouteMeter` per route, made when the route table is
registered, so a request costs a dictionary lookup by status and one histogram observation
(``RouteMeter.record``; measured in bench/README.md). The label is the route's template
(``/api/jobs/{job_id}``), never the raw path: one series per route, however many ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from .frozen import LoopCollector
from .histogram import REQUEST_SECONDS, Histogram, merged

#: The route label of requests no route matched (404/405 from the catch-all).
UNMATCHED = "unmatched"


class RouteMeter:
    """One route's requests: a latency histogram per status code."""

    __slots__ = ("by_status", "method", "route")

    def __init__(self, method: str, route: str) -> None:
        self.method, self.route = method, route
        self.by_status: dict[int, Histogram] = {}

    def __repr__(self) -> str:
        return f"<RouteMeter {self.method} {self.route} statuses={sorted(self.by_status)}>"

    def record(self, status: int, seconds: float) -> None:
        """Count one answer; a WebSocket's (101) is left out: it lasts as long as the
        socket, and the hub counts sockets."""
        if status == 101:
            return
        histogram = self.by_status.get(status)
        if histogram is None:
            histogram = self.by_status[status] = Histogram(REQUEST_SECONDS)
        histogram.observe(seconds)


class RequestMetrics(LoopCollector):
    """Every route's meter, and the collector that exposes them."""

    def __init__(self) -> None:
        self._meters: dict[tuple[str, str], RouteMeter] = {}

    def __repr__(self) -> str:
        return f"<RequestMetrics routes={len(self._meters)} requests={self.total()[0]}>"

    def meter(self, method: str, route: str) -> RouteMeter:
        """The meter of one route (``method`` ``*`` for a route of any method)."""
        key = (method, route)
        if key not in self._meters:
            self._meters[key] = RouteMeter(method, route)
        return self._meters[key]

    def freeze(self) -> RequestMetrics:
        """A copy of every meter, to collect away from the loop."""
        frozen = RequestMetrics()
        for key, meter in self._meters.items():
            twin = frozen._meters[key] = RouteMeter(meter.method, meter.route)
            twin.by_status = {status: h.copy() for status, h in meter.by_status.items()}
        return frozen

    def series(self) -> Iterator[tuple[RouteMeter, int, Histogram]]:
        for meter in list(self._meters.values()):
            for status, histogram in list(meter.by_status.items()):
                yield meter, status, histogram

    def total(self) -> tuple[int, int, float]:
        """(requests, of them 5xx, seconds spent) since start."""
        requests = errors = 0
        seconds = 0.0
        for _meter, status, histogram in self.series():
            count = histogram.count
            requests += count
            errors += count if status >= 500 else 0
            seconds += histogram.sum
        return requests, errors, seconds

    def latency(self) -> dict[str, float]:
        """Request latency over every route since start: ``avg_ms``, ``p95_ms``, ``p99_ms``
        and ``error_rate`` (the share of 5xx answers, 0..1).

        The average is exact (the histograms' sum over their count); the percentiles are
        interpolated linearly inside the histogram bucket they fall in, as PromQL's
        ``histogram_quantile`` does, so they are as precise as the buckets
        (:data:`.histogram.REQUEST_SECONDS`) around them.
        """
        requests, errors, _seconds = self.total()
        everything = merged((h for _m, _s, h in self.series()), REQUEST_SECONDS)
        average = everything.sum / requests if requests else 0.0
        return {
            "avg_ms": round(average * 1000, 3),
            "p95_ms": round(everything.quantile(0.95) * 1000, 3),
            "p99_ms": round(everything.quantile(0.99) * 1000, 3),
            "error_rate": round(errors / requests, 4) if requests else 0.0,
        }

    def collect(self) -> Iterator[Any]:
        labels = ["method", "route", "status"]
        counter = CounterMetricFamily(
            "toombos_http_requests", "HTTP requests answered, by route template and status.",
            labels=labels,
        )
        latency = HistogramMetricFamily(
            "toombos_http_request_duration_seconds",
            "Time from routing a request to its response, by route template and status.",
            labels=labels,
        )
        for meter, status, histogram in self.series():
            values = [meter.method, meter.route, str(status)]
            counter.add_metric(values, histogram.count)
            latency.add_metric(values, histogram.buckets(), histogram.sum)
        yield counter
        yield latency
