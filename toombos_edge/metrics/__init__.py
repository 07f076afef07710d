"""Prometheus metrics: one registry per app, collectors that read counters when scraped.

:class:`Metrics` owns a ``CollectorRegistry`` of its own (never prometheus_client's global
one, so two apps in one process never share a series). It renders the exposition format
Prometheus asks for (text 0.0.4 or OpenMetrics) and the JSON the Toombos dashboard reads
from ``/metrics`` (CLIENT-CONTRACT.md). What counts on a hot path is kept to a dictionary
increment or one histogram observation: requests (:mod:`.requests`), jobs (:mod:`.jobs`,
a bus subscriber), commits (:class:`.collectors.CommitMetrics`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .collectors import (
    ActivityCollector,
    CacheCollector,
    CommitMetrics,
    EngineCollector,
    HubCollector,
    LimiterCollector,
    LineCounts,
)
from .frozen import Parts, freeze
from .jobs import JobMetrics
from .process import AppGauges
from .requests import UNMATCHED, RequestMetrics, RouteMeter

if TYPE_CHECKING:
    from ..cache import ContentCache
    from ..jobs.engine import JobEngine
    from ..ratelimit import RateLimiter
    from ..ws.hub import Hub

__all__ = ["UNMATCHED", "LineCounts", "Metrics", "RateWindow", "RouteMeter"]


class RateWindow:
    """Requests per second over about the last ``span`` seconds of readings.

    Each reading keeps a sample (at most one a second); the rate is taken against the
    oldest sample still inside the span, or against the start before there is one.
    """

    def __init__(self, clock: Callable[[], float], span: float = 60.0) -> None:
        self._clock, self._span = clock, span
        self._samples: deque[tuple[float, int]] = deque([(clock(), 0)])

    def per_second(self, total: int) -> float:
        now, samples = self._clock(), self._samples
        while len(samples) > 1 and now - samples[1][0] >= self._span:
            samples.popleft()
        then, before = samples[0]
        if now - samples[-1][0] >= 1.0:
            samples.append((now, total))
        return (total - before) / (now - then) if now > then else 0.0


class Metrics:
    """The app's registry and the objects that count into it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics()
        self.jobs = JobMetrics()
        self.commits = CommitMetrics()
        self.app = AppGauges(clock)
        self._rate = RateWindow(clock)
        self._engine: JobEngine | None = None
        self._cache: ContentCache | None = None
        self._parts: list[Collector] = []  #: what the registry holds, in order
        for collector in (self.app, self.requests, self.jobs, self.commits,
                          ProcessCollector(registry=None)):  # process_cpu_seconds_total …
            self.watch(collector)

    def __repr__(self) -> str:
        return f"<Metrics {self.requests!r} {self.jobs!r} {self.commits!r}>"

    # -- what is watched --------------------------------------------------------------------

    def watch(self, collector: Collector) -> Callable[[], None]:
        """Register a collector; returns the function that unregisters it."""
        self.registry.register(collector)
        self._parts.append(collector)

        def unwatch() -> None:
            self.registry.unregister(collector)
            self._parts.remove(collector)

        return unwatch

    def watch_engine(self, engine: JobEngine) -> Callable[[], None]:
        self._engine = engine
        return self.watch(EngineCollector(engine))

    def watch_cache(self, cache: ContentCache) -> Callable[[], None]:
        self._cache = cache
        return self.watch(CacheCollector(cache))

    def watch_hub(self, hub: Hub) -> Callable[[], None]:
        return self.watch(HubCollector(hub))

    def watch_limiter(self, limiter: RateLimiter) -> Callable[[], None]:
        return self.watch(LimiterCollector(limiter))

    def watch_activity(self, lines: LineCounts) -> Callable[[], None]:
        """The activity log (anything with ``written`` and ``dropped`` counters)."""
        return self.watch(ActivityCollector(lines))

    # -- answers ----------------------------------------------------------------------------

    async def exposition(self, accept: str) -> tuple[bytes, str]:
        """(body, content type): OpenMetrics when ``accept`` names it, else text 0.0.4.

        The counters are copied on the loop; families are built and encoded in a thread
        (see :mod:`.frozen`)."""
        encode, content_type = choose_encoder(accept)
        frozen = Parts([freeze(part) for part in self._parts])
        return await asyncio.to_thread(encode, frozen), content_type

    def latency(self) -> dict[str, float]:
        """Request latency since start for analytics: ``avg_ms`` (exact), ``p95_ms`` and
        ``p99_ms`` (interpolated inside the latency histogram's buckets, as PromQL's
        ``histogram_quantile``), ``error_rate`` (5xx share, 0..1); see
        :meth:`.requests.RequestMetrics.latency`."""
        return self.requests.latency()

    def dashboard(self) -> dict[str, Any]:
        """The client contract's ``/metrics`` JSON (rates are 0..1), plus the seed's gauges."""
        requests, errors, seconds = self.requests.total()
        engine = self._engine.stats() if self._engine is not None else {}
        cache = self._cache
        lookups = cache.hits + cache.misses if cache is not None else 0
        return {
            "requests_total": requests,
            "requests_per_second": round(self._rate.per_second(requests), 3),
            "avg_response_time_ms": round(seconds / requests * 1000, 3) if requests else 0.0,
            "error_rate": round(errors / requests, 4) if requests else 0.0,
            "cache_hit_rate": round(cache.hits / lookups, 4) if cache and lookups else 0.0,
            "active_jobs": engine.get("running", 0),
            "queue_size": engine.get("queue_depth", 0),
            "app_uptime_seconds": round(self.app.uptime(), 3),
            "app_cpu_usage_percent": round(self.app.cpu_percent(), 2),
            "app_memory_usage_percent": round(self.app.memory_percent(), 2),
        }
