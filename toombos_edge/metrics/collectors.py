"""Collectors that read the server's own counters when scraped, and cost nothing between.

The engine, the WebSocket hub, the content cache and the activity log count for their own
``stats``; these turn those counters into metric families at scrape time. The database's
commits are the one exception: their latency and size are observed per commit
(:class:`CommitMetrics`, a batch at a time, never per write).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .frozen import LoopCollector
from .histogram import BATCH_SIZES, COMMIT_SECONDS, Histogram

if TYPE_CHECKING:
    from ..cache import ContentCache
    from ..jobs.engine import JobEngine
    from ..ratelimit import RateLimiter
    from ..ws.hub import Hub

JOB_STATUSES = ("pending", "in_progress", "completed", "partial", "failed", "cancelled")


class LineCounts(Protocol):
    """What the activity log counts: lines written, and lines dropped on a full queue."""

    @property
    def written(self) -> int: ...

    @property
    def dropped(self) -> int: ...


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class EngineCollector(LoopCollector):
    """The queue: jobs by stored status, queue depth, running jobs, starts and retries."""

    def __init__(self, engine: JobEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Any]:
        stats = self._engine.stats()
        counts = stats["counts"]
        jobs = GaugeMetricFamily(
            "toombos_jobs", "Jobs in the database by status (refreshed every second).",
            labels=["status"],
        )
        for status in JOB_STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield _gauge("toombos_job_queue_depth", "Jobs due or waiting for a worker.",
                     stats["queue_depth"])
        yield _gauge("toombos_jobs_running", "Jobs a worker is running now.", stats["running"])
        yield _gauge("toombos_job_workers", "Workers that run jobs.", stats["workers"])
        yield _gauge("toombos_job_queue_paused", "1 while the queue is paused.",
                     int(stats["paused"]))
        since = stats["since_start"]
        yield _counter("toombos_job_attempts_started", "Attempts started.", since["started"])
        yield _counter("toombos_jobs_retried", "Jobs retried by a client.", since["retried"])


class HubCollector(LoopCollector):
    """WebSockets: open by endpoint, accepted, closed, refused by reason, messages, slow."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Any]:
        hub = self._hub
        open_ = GaugeMetricFamily("toombos_websocket_connections",
                                  "Open WebSockets by endpoint.", labels=["endpoint"])
        for endpoint, n in sorted(hub.sockets.by_endpoint().items()):
            open_.add_metric([endpoint], n)
        yield open_
        yield _counter("toombos_websocket_accepted", "WebSockets accepted.", hub.accepted)
        yield _counter("toombos_websocket_closed", "WebSockets closed.", hub.closed)
        refused = CounterMetricFamily(
            "toombos_websocket_refused",
            "WebSocket upgrades refused, by reason (origin, per_ip_limit, auth, not_found).",
            labels=["reason"],
        )
        for reason, n in sorted(hub.gate.refused.items()):
            refused.add_metric([reason], n)
        yield refused
        yield _counter("toombos_websocket_messages_sent", "Messages written to WebSockets.",
                       hub.messages)
        yield _counter("toombos_websocket_slow_consumers_closed",
                       "WebSockets closed (1013) because their send queue was full.",
                       hub.slow_closed)


class CacheCollector(LoopCollector):
    """The content cache's lookups and evictions."""

    def __init__(self, cache: ContentCache) -> None:
        self._cache = cache

    def collect(self) -> Iterator[Any]:
        cache = self._cache
        yield _counter("toombos_cache_hits", "Content cache lookups that found an entry.",
                       cache.hits)
        yield _counter("toombos_cache_misses", "Content cache lookups that found none.",
                       cache.misses)
        yield _counter("toombos_cache_evictions", "Content cache entries dropped as expired.",
                       cache.evictions)
        yield _counter("toombos_cache_errors", "Content cache operations that failed.",
                       cache.errors)


class CommitMetrics(LoopCollector):
    """Group commits: how long each took and how many writes it held."""

    def __init__(self) -> None:
        self.seconds = Histogram(COMMIT_SECONDS)
        self.sizes = Histogram(BATCH_SIZES)

    def __repr__(self) -> str:
        return f"<CommitMetrics commits={self.seconds.count} writes={self.sizes.sum:.0f}>"

    def freeze(self) -> CommitMetrics:
        frozen = CommitMetrics()
        frozen.seconds, frozen.sizes = self.seconds.copy(), self.sizes.copy()
        return frozen

    def observe(self, writes: int, seconds: float) -> None:
        """``Database.on_commit``."""
        self.seconds.observe(seconds)
        self.sizes.observe(writes)

    def collect(self) -> Iterator[Any]:
        latency = HistogramMetricFamily(
            "toombos_db_commit_seconds", "Time of one group commit of the SQLite writer.")
        latency.add_metric([], self.seconds.buckets(), self.seconds.sum)
        size = HistogramMetricFamily(
            "toombos_db_commit_batch_size", "Writes committed together in one transaction.")
        size.add_metric([], self.sizes.buckets(), self.sizes.sum)
        yield latency
        yield size


class ActivityCollector(LoopCollector):
    """Activity log lines written, and dropped because its queue was full."""

    def __init__(self, lines: LineCounts) -> None:
        self._lines = lines

    def collect(self) -> Iterator[Any]:
        yield _counter("toombos_activity_lines_written", "Activity log lines written.",
                       self._lines.written)
        yield _counter("toombos_activity_lines_dropped",
                       "Activity log lines dropped because the log's queue was full.",
                       self._lines.dropped)


class LimiterCollector(LoopCollector):
    """Rate limits: requests refused by scope and policy; buckets held and forgotten."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def collect(self) -> Iterator[Any]:
        refused = CounterMetricFamily(
            "toombos_rate_limited", "Requests refused with 429 by a rate limit, by what was "
            "counted (key, ip, failed_auth, server) and the policy.", labels=["scope", "policy"])
        for (scope, policy), count in sorted(self._limiter.refusals.items()):
            refused.add_metric([scope, policy], count)
        yield refused
        tables = self._limiter.tables()
        buckets = GaugeMetricFamily("toombos_rate_limit_buckets",
                                    "Clients tracked by the rate limits, by scope.",
                                    labels=["scope"])
        evicted = CounterMetricFamily(
            "toombos_rate_limit_evicted", "Buckets forgotten before they were full because "
            "their table reached TOOMBOS_RATE_LIMIT_MAX_BUCKETS.", labels=["scope"])
        for table in tables:
            buckets.add_metric([table.scope], len(table.table))
            evicted.add_metric([table.scope], table.evicted)
        yield buckets
        yield evicted
