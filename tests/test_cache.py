"""The content cache: bytes only, never pickle, hits and invalidation, self-repair, API,
and invalidations that reach every node's cache."""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import diskcache
import pytest
from conftest import Client, auth
from support import eventually_async

from toombos_edge.appkeys import CACHE
from toombos_edge.cache import ContentCache
from toombos_edge.events import CACHE_INVALIDATED, Event, EventBus
from toombos_edge.events_bridge import NodeBridge
from toombos_edge.events_catchup import CATCH_UP
from toombos_edge.events_wire import RemoteEvent, is_remote
from toombos_edge.ids import now_ms
from toombos_edge.store import Database
from toombos_edge.store.cache import InvalidationHistory
from toombos_edge.store.postgres.cache import PgInvalidationHistory
from toombos_edge.store.postgres.database import PgDatabase
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


# -- several nodes --------------------------------------------------------------------------


@dataclass
class Node:
    """One node: its own cache directory, pool, bus and bridge; every event its bus carried."""

    cache: ContentCache
    bus: EventBus
    bridge: NodeBridge
    db: PgDatabase
    seen: list[Event] = field(default_factory=list)

    def own(self, type_: str) -> list[Event]:
        return [e for e in self.seen if e.type == type_ and not is_remote(e)]


@pytest.fixture
async def two_nodes(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Nodes "a" and "b" on one PostgreSQL database (the history is shared)."""
    nodes: list[Node] = []
    pools: list[PgDatabase] = []
    try:
        for name in "ab":
            db = PgDatabase(postgres_url, pool_size=3)
            await db.open()
            pools.append(db)
            bus = EventBus()
            node = Node(ContentCache(tmp_path / name, history=PgInvalidationHistory(db),
                                     bus=bus), bus, NodeBridge(db, bus, node_id=name), db)
            bus.subscribe(node.seen.append)
            await node.cache.open()
            nodes.append(node)
            await node.bridge.start()
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            await node.bridge.close()
            await node.cache.close()
        for db in pools:
            await db.close()


async def _applied(node: Node, count: int) -> None:
    await eventually_async(lambda: node.cache.remote.applied >= count, 20,
                           lambda: f"{node.cache.remote!r}, {node.bridge!r}")


async def test_an_invalidation_on_one_node_drops_the_entries_on_every_node(
    two_nodes: tuple[Node, Node]
) -> None:
    a, b = two_nodes
    entries = [("content:1:email", ["document:d1"]), ("content:2:email", ["document:d2"]),
               ("content:3:website", [])]
    for node in (a, b):
        for key, tags in entries:
            await node.cache.set(key, b"x", tags)
    await a.cache.invalidate(keys=["content:3:website"], actor="key_admin")
    await _applied(b, 1)
    assert await b.cache.get("content:3:website") is None
    await a.cache.invalidate(tags=["document:d1"])
    await _applied(b, 2)
    assert [await b.cache.get(key) for key, _tags in entries] == [None, b"x", None]
    await b.cache.invalidate(pattern="content:2:*")  # the other way round
    await _applied(a, 1)
    assert [await a.cache.get(key) for key, _tags in entries] == [None, None, None]
    for key, tags in entries:
        await a.cache.set(key, b"again", tags)
    await b.cache.clear()
    await _applied(a, 2)
    assert (await a.cache.stats())["total_keys"] == 0
    # Each invalidation is recorded once, by the node asked, and announced once: a node
    # applying another's records and publishes nothing (the bridge sends only a node's own
    # events), so nothing comes back.
    history = await a.cache.history()
    assert [(h["cleared"], h["invalidated"]) for h in history] == [
        (True, 0), (False, 1), (False, 1), (False, 1)]
    assert (len(a.own(CACHE_INVALIDATED)), len(b.own(CACHE_INVALIDATED))) == (2, 2)
    assert (a.cache.remote.applied, b.cache.remote.applied) == (2, 2)
    assert (a.cache.remote.removed, b.cache.remote.removed) == (4, 2)


async def test_a_node_back_from_a_lost_link_drops_what_was_invalidated_meanwhile(
    two_nodes: tuple[Node, Node], postgres_url: str
) -> None:
    a, b = two_nodes
    for node in (a, b):
        for key in ("content:1", "content:2"):
            await node.cache.set(key, b"x")
    async with a.db.connection(), a.db.connection(), a.db.connection():
        pass  # a's pool holds all its connections: it records and sends while b is away
    url = urlsplit(postgres_url)
    database = url.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(url._replace(path="/postgres")))
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        assert await admin.fetchval("SELECT pg_terminate_backend($1)",
                                    b.bridge.stats()["backend_pid"])
        await eventually_async(lambda: not b.bridge.state.healthy, 20, "b is deaf")
        await a.cache.invalidate(keys=["content:1"])
        await eventually_async(lambda: a.bridge.sent == 1, 20, "a sent while b was away")
        assert await b.cache.get("content:1") == b"x"
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    await _applied(b, 1)
    assert [await b.cache.get(key) for key in ("content:1", "content:2")] == [None, b"x"]
    caught = [e for e in b.seen if e.type == CACHE_INVALIDATED]
    assert [(e.origin, e.body["data"]["keys"]) for e in caught
            if isinstance(e, RemoteEvent)] == [(CATCH_UP, ["content:1"])]
    assert len(await b.cache.history()) == 1


async def test_a_remote_invalidation_that_names_no_scope_drops_nothing(
    cache: ContentCache, bus: EventBus
) -> None:
    await cache.set("k", b"v")
    for data in ({"keys": "k", "tags": [], "pattern": None, "cleared": False},
                 {"keys": ["k"]}, None):
        bus.publish(RemoteEvent(CACHE_INVALIDATED, {"data": data}, now_ms(), None,
                                origin="b/1", seq=1))
    await cache.invalidate(keys=["other"])  # this node's own: not applied twice
    good = {"keys": ["k"], "tags": [], "pattern": None, "cleared": False}
    bus.publish(RemoteEvent(CACHE_INVALIDATED, {"data": good}, now_ms(), None,
                            origin="b/1", seq=2))
    await eventually_async(lambda: cache.remote.applied == 1, 20, repr(cache.remote))
    assert (cache.remote.refused, cache.remote.removed) == (3, 1)
    assert await cache.get("k") is None
    assert [h["cache_keys"] for h in await cache.history()] == [["other"]]
