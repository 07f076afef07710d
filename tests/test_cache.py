"""The content cache: bytes only, never pickle, hits and invalidation, self-repair, API."""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import diskcache
import pytest
from conftest import Client, auth

from toombos_edge.appkeys import CACHE
from toombos_edge.cache import ContentCache
from toombos_edge.events import CACHE_INVALIDATED, Event, EventBus
from toombos_edge.store import Database
from toombos_edge.store.cache import InvalidationHistory
from toombos_edge.store.postgres.cache import PgInvalidationHistory
from toombos_edge.store.sqlite.cache import SqliteInvalidationHistory


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
async def cache(tmp_path: Path, db: Database, bus: EventBus) -> AsyncIterator[ContentCache]:
    made = ContentCache(tmp_path / "cache", history=SqliteInvalidationHistory(db), bus=bus)
    await made.open()
    yield made
    await made.close()


@pytest.fixture(params=["sqlite", "postgres"])
def history(request: pytest.FixtureRequest) -> InvalidationHistory:
    """The invalidation history on each backend (the cache itself is a local file)."""
    if request.param == "sqlite":
        return SqliteInvalidationHistory(request.getfixturevalue("db"))
    return PgInvalidationHistory(request.getfixturevalue("pg_database"))


@pytest.fixture
async def recorded_cache(
    tmp_path: Path, history: InvalidationHistory, bus: EventBus
) -> AsyncIterator[ContentCache]:
    made = ContentCache(tmp_path / "cache", history=history, bus=bus)
    await made.open()
    yield made
    await made.close()


async def test_an_empty_cache_reports_numbers_not_nulls(cache: ContentCache) -> None:
    stats = await cache.stats()
    assert stats["total_keys"] == 0 and stats["oldest_key_age_seconds"] == 0.0
    assert all(value is not None for value in stats.values())


async def test_hits_and_misses_are_counted(cache: ContentCache) -> None:
    assert await cache.get("content:a") is None
    await cache.set("content:a", b"rendered", tags=["doc:1"])
    assert await cache.get("content:a") == b"rendered"
    stats = await cache.stats()
    assert (stats["hits"], stats["misses"], stats["total_keys"]) == (1, 1, 1)
    assert stats["hit_rate"] == 0.5 and stats["miss_rate"] == 0.5
    assert stats["cache_targets"]["local"]["enabled"] is True
    assert stats["oldest_key_age_seconds"] is not None and stats["memory_usage_mb"] > 0


async def test_expired_entries_are_evicted(cache: ContentCache) -> None:
    await cache.set("content:old", b"x")
    assert await cache.expire() == 0  # not yet
    later = time.time() + cache.ttl_seconds + 1
    assert await cache.expire(now=later) == 1
    assert (await cache.stats())["evictions"] == 1 and await cache.get("content:old") is None


async def test_the_directory_is_private(cache: ContentCache) -> None:
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700


async def test_only_bytes_go_in(cache: ContentCache) -> None:
    await cache.set("k", "a string", tags=())  # type: ignore[arg-type]
    assert cache.errors == 1 and await cache.get("k") is None


async def test_a_pickled_row_is_never_unpickled(cache: ContentCache, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    raw = diskcache.Cache(str(cache.directory))  # a writer that pickles, as an attacker might
    raw.set("content:evil", Trap())
    raw.close()
    assert await cache.get("content:evil") is None
    assert not marker.exists()
    assert cache.errors >= 1


async def test_invalidate_by_keys_pattern_and_tags(
    recorded_cache: ContentCache, bus: EventBus
) -> None:
    cache = recorded_cache
    events: list[Event] = []
    bus.subscribe(events.append)
    for name, tags in [("content:1:email", ["doc:1"]), ("content:1:website", ["doc:1"]),
                       ("content:2:email", ["doc:2", "style:modern"]), ("other:3", [])]:
        await cache.set(name, b"x", tags)
    result = await cache.invalidate(keys=["other:3"], actor="key_test")
    assert result["invalidated"] == 1 and result["targets"] == ["local"]
    assert (await cache.invalidate(pattern="content:*:email"))["invalidated"] == 2
    assert (await cache.invalidate(tags=["doc:1"]))["invalidated"] == 1
    assert (await cache.stats())["total_keys"] == 0
    assert [e.type for e in events] == [CACHE_INVALIDATED] * 3
    history = await cache.history()
    assert [h["invalidated"] for h in history] == [1, 2, 1]
    assert history[2]["cache_keys"] == ["other:3"] and history[2]["actor"] == "key_test"
    assert history[1]["pattern"] == "content:*:email"


async def test_a_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "cache.db").write_bytes(b"this is not a sqlite database at all" * 100)
    broken = ContentCache(folder)
    await broken.open()
    try:
        await broken.set("k", b"v")
        assert await broken.get("k") == b"v"
        assert broken.rebuilds == 1
    finally:
        await broken.close()


async def test_a_vanished_directory_is_rebuilt(cache: ContentCache) -> None:
    await cache.set("k", b"v")
    shutil.rmtree(cache.directory)
    assert await cache.get("k") is None  # a miss, not an error
    await cache.set("k", b"again")
    assert await cache.get("k") == b"again"
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700


async def test_api_stats_invalidate_clear_history(
    client: Client, admin_key: str, make_key: Callable[[str], Awaitable[str]]
) -> None:
    viewer = await make_key("viewer")
    store = client.app[CACHE]
    await store.set("content:abc:email", b"x", ["sha256:abc"])
    await store.set("content:abc:website", b"y", ["sha256:abc"])
    stats = await (await client.get("/api/v2/cache/stats", headers=auth(viewer))).json()
    assert stats["total_keys"] == 2 and set(stats) >= {
        "total_keys", "hit_rate", "miss_rate", "hits", "misses", "evictions",
        "memory_usage_mb", "avg_ttl_seconds", "oldest_key_age_seconds", "cache_targets"}
    denied = await client.post("/api/v2/cache/invalidate", json={"tags": ["x"]},
                               headers=auth(viewer))
    assert denied.status == 403
    empty = await client.post("/api/v1/cache/invalidate", json={}, headers=auth(admin_key))
    assert empty.status == 422
    done = await client.post("/api/v2/cache/invalidate", headers=auth(admin_key),
                             json={"pattern": "content:abc:e*"})
    body = await done.json()
    assert done.status == 200 and body["invalidated"] == 1 and body["timestamp"].endswith("Z")
    cleared = await client.post("/api/v2/cache/clear", headers=auth(admin_key))
    assert (await cleared.json())["cleared"] is True
    history = await (await client.get("/api/v1/cache/history", headers=auth(viewer))).json()
    assert [h["cleared"] for h in history["history"]] == [True, False]
    assert (await store.stats())["total_keys"] == 0
