"""Analytics: the dashboard's overview and its job analytics over a window of time."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from ..contract import Query, Reply

Time = Annotated[str, Meta(max_length=64,
                           description="ISO 8601 time, a bare date, or milliseconds")]


class Window(Query):
    """Absent dates: the last 30 days up to now."""

    start_date: Time | None = None
    end_date: Time | None = None
    granularity: Literal["hour", "day"] = "day"


class Point(Reply):
    timestamp: datetime
    count: int


class JobAnalytics(Reply):
    total_jobs: int
    pending_jobs: int
    in_progress_jobs: int
    completed_jobs: int
    partial_jobs: int
    failed_jobs: int
    cancelled_jobs: int
    success_rate: float
    avg_processing_time_seconds: float
    jobs_by_channel: dict[str, int]
    jobs_by_status: dict[str, int]
    jobs_over_time: list[Point]
    start_date: datetime
    end_date: datetime
    granularity: Literal["hour", "day"]


class Performance(Reply):
    avg_response_time_ms: float
    p95_response_time_ms: float
    p99_response_time_ms: float
    error_rate: float
    success_rate: float


class ChannelPerformance(Reply):
    total_jobs: int
    success_rate: float
    avg_processing_time_seconds: float


class Recent(Reply):
    last_24h: int
    last_7d: int
    last_30d: int


class Overview(Reply):
    job_analytics: JobAnalytics
    channel_performance: dict[str, ChannelPerformance]
    recent_activity: Recent
    performance_metrics: Performance
