"""Probes, metrics, the server's own state: health reports, readiness, restart, critical."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ..contract import Reply

CheckStatus = Literal["pass", "warn", "fail"]


class Check(Reply):
    status: CheckStatus
    message: str
    latency_ms: float


class Health(Reply):
    """``/health``: 200 unless unhealthy (503, the same body)."""

    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: datetime
    checks: dict[str, Check]
    uptime: float
    version: str


class HealthDetailed(Health):
    components: dict[str, Check]
    checks_passed: int
    checks_total: int
    uptime_seconds: float
    features: list[str]
    ready: bool


class ComponentCheck(Check):
    component: str


class Ready(Reply):
    ready: bool


class Alive(Reply):
    status: Literal["alive"]


class Started(Reply):
    started: bool


class DashboardMetrics(Reply):
    """The client contract's ``/metrics`` JSON (rates are 0..1), plus the seed's gauges."""

    requests_total: int
    requests_per_second: float
    avg_response_time_ms: float
    error_rate: float
    cache_hit_rate: float
    active_jobs: int
    queue_size: int
    app_uptime_seconds: float
    app_cpu_usage_percent: float
    app_memory_usage_percent: float


class Restarting(Reply):
    status: Literal["restarting"]
    mode: str
    requested_at: datetime
    message: str


class QueueStats(Reply):
    """The job engine's state: counts per status, rates per second, since start."""

    counts: dict[str, int]
    paused: bool
    queue_depth: int
    queued: int
    rates: dict[str, float]
    running: int
    since_start: dict[str, int]
    workers: int


class QueueState(Reply):
    paused: bool
    stats: QueueStats


class JobBrief(Reply):
    job_id: str
    kind: str
    status: str
    attempts: int
    last_error: str | None
    document_id: str | None
    updated_at: datetime


class LastError(Reply):
    job_id: str
    error: str | None
    at: datetime


class CriticalStatus(Reply):
    """Queue state, failing jobs, their last errors and the components not passing."""

    status: str
    timestamp: datetime
    queue: QueueStats
    failing_jobs: list[JobBrief]
    failed_total: int
    partial_jobs: list[JobBrief]
    last_errors: list[LastError]
    degraded_components: dict[str, Check]
    health: str
