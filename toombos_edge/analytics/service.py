"""Analytics of jobs in the shapes of the public dashboard (CLIENT-CONTRACT.md).

Counts come from the hourly roll-up (:mod:`.store`), so a range is resolved to the whole
UTC hours it touches. A job belongs to the hour it was created in and counts under its
status now. Rates are percentages (0-100, as the dashboard prints them); times are rounded
to the millisecond. Request latency and error rate are not counted here: they come from the
request metrics through ``request_stats`` (zeros where none is given, as in tests of the
rollup alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import Invalid
from ..ids import iso, now_ms
from ..records.job import JobStatus
from ..store import Database
from ..store.jobs import HOUR_MS
from . import store
from .store import Sums

HOURS = {"hour": 1, "day": 24}  #: granularity → hours per point of jobs_over_time
MAX_POINTS = 10_000  #: points of jobs_over_time one answer may hold
RECENT = {"last_24h": 24, "last_7d": 7 * 24, "last_30d": 30 * 24}
_STATUSES = [status.value for status in JobStatus]
_SUMMARY = ("avg_ms", "p95_ms", "p99_ms", "error_rate")


class RequestSummary(Protocol):
    """Request latency and errors since start, as the request metrics measure them."""

    @property
    def avg_ms(self) -> float: ...
    @property
    def p95_ms(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...
    @property
    def error_rate(self) -> float:
        """The fraction (0-1) of requests answered with a server error."""


#: The request metrics' summary: an object with those four attributes, or a mapping with
#: those four keys (``avg_ms``, ``p95_ms``, ``p99_ms``, ``error_rate`` as a fraction).
RequestStats = Callable[[], RequestSummary | Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class Window:
    """The hours asked for (inclusive) and the width of a point of ``jobs_over_time``."""

    first_hour: int
    last_hour: int
    granularity: str

    @classmethod
    def of(cls, start_ms: int, end_ms: int, granularity: str) -> Window:
        """The window of a request; ``Invalid`` (422) names the parameter at fault."""
        if granularity not in HOURS:
            raise Invalid(f"'granularity' must be hour or day, got {granularity!r}")
        if end_ms < start_ms:
            raise Invalid("'start_date' is after 'end_date'")
        window = cls(start_ms // HOUR_MS, end_ms // HOUR_MS, granularity)
        points = len(window.buckets())
        if points > MAX_POINTS:
            raise Invalid(f"'start_date' to 'end_date' is {points} points of one "
                          f"{granularity}; at most {MAX_POINTS}")
        return window

    @property
    def hours_per_point(self) -> int:
        return HOURS[self.granularity]

    def buckets(self) -> range:
        per = self.hours_per_point
        return range(self.first_hour // per, self.last_hour // per + 1)


def _rate(part: int, whole: int) -> float:
    return round(part * 100 / whole, 2) if whole else 0.0


def _seconds(sums: Sums) -> float:
    return round(sums.run_ms / sums.runs / 1000, 3) if sums.runs else 0.0


def job_analytics(jobs: Sums, channels: dict[str, Sums], over_time: list[dict[str, Any]],
                  window: Window) -> dict[str, Any]:
    """The contract's job analytics object."""
    by_status = {status: jobs.by_status.get(status, 0) for status in _STATUSES}
    return {
        "total_jobs": jobs.total,
        **{f"{status}_jobs": by_status[status] for status in _STATUSES},
        "success_rate": _rate(by_status["completed"], jobs.total),
        "avg_processing_time_seconds": _seconds(jobs),
        "jobs_by_channel": {name: sums.total for name, sums in channels.items()},
        "jobs_by_status": by_status,
        "jobs_over_time": over_time,
        "start_date": iso(window.first_hour * HOUR_MS),
        "end_date": iso((window.last_hour + 1) * HOUR_MS - 1),
        "granularity": window.granularity,
    }


class AnalyticsService:
    """Answers analytics questions from the roll-up, each answer reused for a few seconds."""

    def __init__(self, db: Database, *, request_stats: RequestStats | None = None,
                 cache_seconds: float = 5.0, clock: Callable[[], int] = now_ms) -> None:
        self._db = db
        self.request_stats = request_stats  #: the request metrics; None: zeros
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self.queries = self.reused = 0

    def __repr__(self) -> str:
        return f"<AnalyticsService queries={self.queries} reused={self.reused}>"

    async def jobs(self, window: Window) -> dict[str, Any]:
        """``GET /api/v2/analytics/jobs``: counts, rates and points over the window."""
        return await self._cached(("jobs", window), lambda: self._jobs(window))

    async def overview(self, window: Window) -> dict[str, Any]:
        """``GET /api/v2/analytics``: job analytics, request performance, channels, recent."""
        answer = await self._cached(("overview", window), lambda: self._overview(window))
        return {**answer, "performance_metrics": self.performance()}

    def performance(self) -> dict[str, float]:
        """Request latency and error rate from the request metrics (zeros without them)."""
        if self.request_stats is None:
            return dict.fromkeys(("avg_response_time_ms", "p95_response_time_ms",
                                  "p99_response_time_ms", "error_rate", "success_rate"), 0.0)
        stats = self.request_stats()
        if isinstance(stats, Mapping):
            avg, p95, p99, errors = (stats[name] for name in _SUMMARY)
        else:
            avg, p95, p99, errors = stats.avg_ms, stats.p95_ms, stats.p99_ms, stats.error_rate
        error = float(errors) * 100
        return {
            "avg_response_time_ms": round(float(avg), 3),
            "p95_response_time_ms": round(float(p95), 3),
            "p99_response_time_ms": round(float(p99), 3),
            "error_rate": round(error, 2),
            "success_rate": round(100 - error, 2),
        }

    async def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> dict[str, Any]:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self.reused += 1
            return hit[1]
        self.queries += 1
        answer: dict[str, Any] = await compute()
        if self._cache_seconds > 0:
            if len(self._cache) >= 64:  # a few windows are asked again and again; drop old
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            self._cache[key] = (now + self._cache_seconds, answer)
        return answer

    async def _jobs(self, window: Window) -> dict[str, Any]:
        def read(conn: Any) -> dict[str, Any]:
            jobs, channels = store.window(conn, window.first_hour, window.last_hour)
            return job_analytics(jobs, channels, self._points(conn, window), window)

        return await self._db.read(read)

    async def _overview(self, window: Window) -> dict[str, Any]:
        now_hour = self._clock() // HOUR_MS

        def read(conn: Any) -> dict[str, Any]:
            jobs, channels = store.window(conn, window.first_hour, window.last_hour)
            return {
                "job_analytics": job_analytics(jobs, channels, self._points(conn, window),
                                               window),
                "channel_performance": {
                    name: {"total_jobs": sums.total,
                           "success_rate": _rate(sums.by_status.get("completed", 0), sums.total),
                           "avg_processing_time_seconds": _seconds(sums)}
                    for name, sums in channels.items()
                },
                "recent_activity": {
                    name: store.created_since(conn, now_hour - hours + 1)
                    for name, hours in RECENT.items()
                },
            }

        return await self._db.read(read)

    @staticmethod
    def _points(conn: Any, window: Window) -> list[dict[str, Any]]:
        """One point per hour or day of the window, empty ones included (a chart's x axis)."""
        per = window.hours_per_point
        counts = store.over_time(conn, window.first_hour, window.last_hour, per)
        return [{"timestamp": iso(bucket * per * HOUR_MS), "count": counts.get(bucket, 0)}
                for bucket in window.buckets()]
