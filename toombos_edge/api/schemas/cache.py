"""The content cache: statistics (the client contract's shape), invalidation, history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from ..contract import Body, Query, Reply

MAX_KEYS, MAX_TAGS, MAX_PATTERN = 10_000, 1000, 500


class CacheTarget(Reply):
    enabled: bool
    hit_rate: float
    total_keys: int
    memory_mb: float


class CacheStats(Reply):
    total_keys: int
    hit_rate: float
    miss_rate: float
    hits: int
    misses: int
    sets: int
    evictions: int
    errors: int
    memory_usage_mb: float
    avg_ttl_seconds: float
    oldest_key_age_seconds: float
    cache_targets: dict[str, CacheTarget]


Strings = list[Annotated[str, Meta(max_length=MAX_PATTERN)]]


class Invalidate(Body):
    """What to remove: keys (``cache_keys``, or ``keys``), a glob ``pattern``, or ``tags``."""

    cache_keys: Annotated[Strings, Meta(max_length=MAX_KEYS)] | None = None
    keys: Annotated[Strings, Meta(max_length=MAX_KEYS)] | None = None
    pattern: Annotated[str, Meta(max_length=MAX_PATTERN)] | None = None
    tags: Annotated[Strings, Meta(max_length=MAX_TAGS)] | None = None


class Invalidated(Reply):
    invalidated: int
    targets: list[str]
    timestamp: datetime
    keys: list[str]
    pattern: str | None
    tags: list[str]
    cleared: bool


class HistoryQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=500)] = 100


class HistoryEntry(Reply):
    id: str
    timestamp: datetime
    actor: str | None
    invalidated: int
    cache_keys: list[str]
    pattern: str | None
    tags: list[str]
    cleared: bool
    targets: list[str]


class CacheHistory(Reply):
    history: list[HistoryEntry]
    total: int
