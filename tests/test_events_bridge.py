"""Events between nodes over LISTEN/NOTIFY, on a real PostgreSQL: two bridges on one
database are two nodes, each with its own event bus."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from support import eventually_async

from toombos_edge.events import (
    ANNOUNCEMENT,
    CACHE_INVALIDATED,
    JOB_COMPLETED,
    JOB_CREATED,
    JOB_UPDATE,
    WS_CONNECTION,
    Event,
    EventBus,
)
from toombos_edge.events_bridge import NodeBridge
from toombos_edge.events_catchup import CATCH_UP, JobStates, missed_invalidations
from toombos_edge.events_wire import RemoteEvent, is_remote
from toombos_edge.ids import now_ms
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store.cache import HISTORY_LIMIT, Invalidation
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres.cache import PgInvalidationHistory
from toombos_edge.store.postgres.database import PgDatabase


@dataclass
class Node:
    """One node: its database pool, its bus, its bridge, and every event its bus carried."""

    db: PgDatabase
    bus: EventBus
    bridge: NodeBridge
    seen: list[Event] = field(default_factory=list)

    def remote(self, job_id: str | None = None) -> list[RemoteEvent]:
        return [e for e in self.seen if isinstance(e, RemoteEvent)
                and (job_id is None or e.body.get("job", {}).get("job_id") == job_id)]

    def announcements(self) -> list[str]:
        return [str(e.body["data"]["message"]) for e in self.remote()
                if e.type == ANNOUNCEMENT]


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_node(postgres_url: str) -> AsyncIterator[NodeFactory]:
    """Start a node by name on the test's database (bridge options as keywords); every
    node started is closed after the test."""
    made: list[Node] = []

    async def start(name: str, **options: Any) -> Node:
        db = PgDatabase(postgres_url, pool_size=3)
        await db.open()
        bus = EventBus()
        node = Node(db, bus, NodeBridge(db, bus, node_id=name, **options))
        made.append(node)
        bus.subscribe(node.seen.append)
        await node.bridge.start()
        return node

    try:
        yield start
    finally:
        for node in made:
            await node.bridge.close()
            await node.db.close()


@pytest.fixture
async def two_nodes(start_node: NodeFactory) -> tuple[Node, Node]:
    """Nodes "a" and "b" on one database."""
    return await start_node("a"), await start_node("b")


async def _store(db: PgDatabase, job: Job) -> Job:
    async with db.transaction() as conn:
        await jobs_sql.insert(conn, [(job, job.updated_at)], slot=0)
    return job


async def _save(db: PgDatabase, job: Job) -> Job:
    await db.execute("UPDATE jobs SET status = $2, updated_at = $3, progress_percent = $4 "
                     "WHERE id = $1", job.id, job.status.value, job.updated_at,
                     job.progress_percent)
    return job


def _job(job_id: str, **changes: object) -> Job:
    now = now_ms()
    job = Job(id=job_id, kind="noop", status=JobStatus.pending, created_at=now,
              updated_at=now)
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


async def _announce(node: Node, message: str) -> None:
    node.bus.publish(Event.data(ANNOUNCEMENT, {"message": message}))


async def test_a_job_event_crosses_once_in_order_and_is_not_echoed(
        two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    job = _job("job_order")
    a.bus.publish(Event(JOB_CREATED, job))
    a.bus.publish(Event.data(WS_CONNECTION, {"action": "accepted"}))  # per node: stays
    for step in range(1, 1001):  # three batches of notifications (BATCH is 500)
        a.bus.publish(Event(JOB_UPDATE, dataclasses.replace(
            job, status=JobStatus.in_progress, progress_percent=step / 2)))
    a.bus.publish(Event(JOB_COMPLETED, dataclasses.replace(job, status=JobStatus.completed)))

    await eventually_async(lambda: len(b.remote()) >= 1002, 20, lambda: f"b got {b.bridge!r}")
    # b answers; once a has b's answer, a's own events would have come back before it.
    await _announce(b, "from b")
    await eventually_async(lambda: a.announcements() == ["from b"], 20, "a hears b")

    got = b.remote("job_order")
    assert len(b.remote()) == 1002, "each event once, and no per-node event"
    assert [e.type for e in got] == [JOB_CREATED, *[JOB_UPDATE] * 1000, JOB_COMPLETED]
    assert [e.body["job"]["progress"]["percent"] for e in got[1:1001]] == [
        step / 2 for step in range(1, 1001)]
    assert [e.seq for e in got] == sorted(e.seq for e in got)
    assert {e.origin for e in got} == {a.bridge.origin}
    assert got[-1].body["job"]["status"] == "completed"
    assert got[-1].encoded == Event(JOB_COMPLETED, dataclasses.replace(
        job, status=JobStatus.completed), timestamp=got[-1].timestamp).encoded
    assert all(e.subject is None for e in got), "remote jobs are not counted again here"
    assert a.remote() == [e for e in a.seen if is_remote(e)] and len(a.remote()) == 1
    assert a.bridge.referenced == 0 and b.bridge.duplicates == 0 and b.bridge.gaps == 0


async def test_a_large_job_crosses_by_reference(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    big = await _store(a.db, _job("job_big", params={"text": "x" * 20_000}))
    a.bus.publish(Event(JOB_CREATED, big))

    got = await eventually_async(lambda: b.remote("job_big"), 20, "the large job on b")
    assert len(got[0].encoded) > 20_000
    assert got[0].type == JOB_CREATED
    assert got[0].body["job"]["params"] == {"text": "x" * 20_000}
    assert a.bridge.referenced == 1 and a.bridge.sent == 1


async def test_an_event_too_large_and_no_job_is_dropped_and_counted(
        two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    a.bus.publish(Event.data(ANNOUNCEMENT, {"message": "y" * 10_000}))
    await _announce(a, "small")
    await eventually_async(lambda: b.announcements() == ["small"], 20, "the small one")
    assert a.bridge.too_large == 1


async def test_a_lost_listener_reports_reconnects_and_catches_up(
        two_nodes: tuple[Node, Node], postgres_url: str) -> None:
    a, b = two_nodes
    seen_before = await _store(a.db, _job("job_before"))
    a.bus.publish(Event(JOB_CREATED, seen_before))
    await eventually_async(lambda: b.remote("job_before"), 20, "b hears a first")
    first = b.bridge.state
    assert first.healthy and first.reason == "listening"
    # a's pool holds all its connections now: a sends while no new one may be made.
    async with a.db.connection(), a.db.connection(), a.db.connection():
        pass

    url = urlsplit(postgres_url)
    database = url.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(url._replace(path="/postgres")))
    try:
        # No new connection may reach the database while b is away (a keeps its pool).
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        pid = b.bridge.stats()["backend_pid"]
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        lost = await eventually_async(
            lambda: None if b.bridge.state.healthy else b.bridge.state, 20, "b reports it")
        assert lost.since >= first.since
        # It tries again, and says why it cannot get back yet.
        await eventually_async(lambda: b.bridge.state.reason.startswith("reconnecting"), 20,
                               lambda: repr(b.bridge.state))

        missed = await _store(a.db, _job("job_missed"))
        a.bus.publish(Event(JOB_CREATED, missed))
        done = await _save(a.db, dataclasses.replace(
            missed, status=JobStatus.completed, updated_at=now_ms() + 1, progress_percent=100))
        a.bus.publish(Event(JOB_COMPLETED, done))
        await eventually_async(lambda: a.bridge.sent == 3, 20, "a sent while b was away")
        still = b.bridge.state
        assert not still.healthy and still.since == lost.since
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()

    back = await eventually_async(lambda: b.bridge.state if b.bridge.state.healthy else None,
                                  60, lambda: repr(b.bridge.state))
    assert back.reason == "listening" and back.since >= lost.since
    assert b.bridge.stats()["reconnects"] == 1
    caught = b.remote("job_missed")
    assert [(e.type, e.origin, e.body["job"]["status"]) for e in caught] == [
        (JOB_COMPLETED, CATCH_UP, "completed")]
    assert len(b.remote("job_before")) == 1, "a state b already had is not sent again"

    # And the link works as before.
    await _announce(a, "after")
    await eventually_async(lambda: b.announcements() == ["after"], 20, "b hears a again")
    assert b.bridge.gaps == 0, "what the catch-up covered is not reported missing"


async def test_a_closing_node_sends_what_it_queued(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    for n in range(50):
        a.bus.publish(Event.data(ANNOUNCEMENT, {"message": str(n)}))
    await a.bridge.close()
    await eventually_async(lambda: len(b.announcements()) == 50, 20, lambda: repr(b.bridge))
    assert b.announcements() == [str(n) for n in range(50)]


async def test_a_personal_event_keeps_its_address(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    a.bus.publish(Event.personal(ANNOUNCEMENT, {"message": "just you"}, client_id="c1"))
    got = await eventually_async(b.remote, 20, "the personal event on b")
    assert got[0].address == ("client", "c1")
    assert got[0].body["data"] == {"message": "just you"}


async def test_events_a_full_queue_dropped_are_counted_by_the_receiver(
        start_node: NodeFactory) -> None:
    a = await start_node("a", max_queued=1)
    b = await start_node("b")
    for message in ("kept", "dropped 1", "dropped 2"):  # the sender has not run yet
        a.bus.publish(Event.data(ANNOUNCEMENT, {"message": message}))
    await eventually_async(lambda: b.announcements() == ["kept"], 20, "the first one")
    a.bus.publish(Event.data(ANNOUNCEMENT, {"message": "next"}))
    await eventually_async(lambda: b.announcements() == ["kept", "next"], 20, "the next one")
    assert a.bridge.dropped == 2 and b.bridge.gaps == 2


async def test_after_a_catch_up_an_older_state_is_stale(
        two_nodes: tuple[Node, Node]) -> None:
    a, _b = two_nodes
    job = await _store(a.db, _job("job_caught", status=JobStatus.in_progress))
    states, bus, published = JobStates(), EventBus(), list[Event]()
    bus.subscribe(published.append)
    assert await states.catch_up(a.db, bus, job.updated_at - 1) == 1
    assert [(e.type, e.body["job"]["job_id"]) for e in published] == [
        (JOB_UPDATE, "job_caught")]
    now = (job.updated_at, "in_progress")
    assert states.is_stale("job_caught", (job.updated_at - 5, "pending"))
    assert states.is_stale("job_caught", now), "the same state again"
    assert not states.is_stale("job_caught", (job.updated_at + 5, "completed"))
    assert not states.is_stale("job_caught", (job.updated_at - 5, "pending")), (
        "once a newer state came, notifications lead again")
    assert await states.catch_up(a.db, bus, job.updated_at - 1) == 0, "carried already"


async def test_a_catch_up_republishes_the_invalidations_recorded_since(
        pg_database: PgDatabase) -> None:
    history, bus, published = PgInvalidationHistory(pg_database), EventBus(), list[Event]()
    bus.subscribe(published.append)
    at = now_ms()
    for n, keys in enumerate([("old",), ("k1",), ("k2", "k3")]):
        await history.record(Invalidation(f"inv_{n}", at + n * 10, "key_x", 1, keys))
    assert await missed_invalidations(pg_database, bus, at + 10) == 2
    assert [(e.type, e.origin, e.timestamp, e.body["data"]["keys"]) for e in published
            if isinstance(e, RemoteEvent)] == [
        (CACHE_INVALIDATED, CATCH_UP, at + 10, ["k1"]),
        (CACHE_INVALIDATED, CATCH_UP, at + 20, ["k2", "k3"])]


async def test_a_catch_up_past_the_kept_history_clears_the_cache(
        pg_database: PgDatabase) -> None:
    """The history keeps the newest invalidations only: when all of them are in the gap,
    older ones may be missing, and the whole cache goes."""
    at, bus, published = now_ms(), EventBus(), list[Event]()
    bus.subscribe(published.append)
    await pg_database.execute(
        "INSERT INTO cache_invalidations (id, ts, invalidated, keys, tags, cleared) "
        "SELECT 'inv_' || n, $1::bigint + n, 1, '[\"k\"]', '[]', false "
        "FROM generate_series(1, $2::int) AS n", at, HISTORY_LIMIT)
    assert await missed_invalidations(pg_database, bus, at) == 1
    assert [e.body["data"]["cleared"] for e in published] == [True]
    published.clear()
    assert await missed_invalidations(pg_database, bus, at + 2) == HISTORY_LIMIT - 1
    assert not any(e.body["data"]["cleared"] for e in published)
