"""What the protocols of keys, the activity log and the cache history promise, checked on
their SQLite implementations over a real file (a second backend runs the same checks)."""

from __future__ import annotations

import sqlite3

import pytest

from toombos_edge.records.activity import ActivityFilter, LineIds
from toombos_edge.records.key import ApiKey, Role
from toombos_edge.store import Database
from toombos_edge.store.cache import HISTORY_LIMIT, Invalidation
from toombos_edge.store.sqlite.activity import SqliteActivityStore
from toombos_edge.store.sqlite.cache import SqliteInvalidationHistory
from toombos_edge.store.sqlite.health import SqliteHealthStore
from toombos_edge.store.sqlite.keys import SqliteKeyStore

T0 = 1_765_000_000_000


def key(n: int) -> ApiKey:
    return ApiKey(f"key_{n:04d}", f"key {n}", Role.viewer, bytes([n]) * 32, T0 + n)


async def test_a_revocation_keeps_its_first_time_and_leaves_the_active_set(
    db: Database
) -> None:
    store = SqliteKeyStore(db)
    for n in (2, 1, 3):
        await store.insert(key(n))
    assert [k.id for k in await store.page()] == ["key_0001", "key_0002", "key_0003"]
    assert [k.id for k in await store.page(1, 1)] == ["key_0002"]
    first = await store.revoke("key_0002", T0 + 100)
    again = await store.revoke("key_0002", T0 + 200)
    assert first is not None and again is not None
    assert first.revoked_at == again.revoked_at == T0 + 100
    assert await store.revoke("key_9999", T0) is None
    assert sorted(k.id for k in await store.active()) == ["key_0001", "key_0003"]
    assert await store.count() == 3


async def test_uses_are_recorded_and_unknown_ids_ignored(db: Database) -> None:
    store = SqliteKeyStore(db)
    await store.insert(key(1))
    await store.record_use({"key_0001": T0 + 5, "key_gone": T0 + 6})
    [stored] = await store.page()
    assert stored.last_used_at == T0 + 5 and stored.role is Role.viewer


async def test_activity_pages_newest_first_and_follows_oldest_first(db: Database) -> None:
    store, ids = SqliteActivityStore(db), LineIds()
    rows = [(ids.next(T0 + n // 2), "query_complete" if n % 2 else "job_created",
             None if n % 3 else "key_a", f"t{n}", f'{{"n":{n}}}') for n in range(10)]
    await store.insert(rows)
    assert await store.last_id() == rows[-1][0]
    everything = ActivityFilter()
    first = await store.page(everything, 4)
    assert [line for _, line in first] == [row[4] for row in reversed(rows[6:])]
    rest = await store.page(everything, 100, before=first[-1][0])
    assert [ident for ident, _ in rest] == [row[0] for row in reversed(rows[:6])]
    jobs_by_a = await store.page(ActivityFilter(("job_created",), "key_a"), 10)
    assert [ident for ident, _ in jobs_by_a] == [rows[6][0], rows[0][0]]
    system = await store.page(ActivityFilter(actor="system", since=T0 + 1, until=T0 + 2), 10)
    assert [ident for ident, _ in system] == [rows[5][0], rows[4][0], rows[2][0]]
    after = await store.after(everything, rows[7][0], 10)
    assert [ident for ident, _ in after] == [rows[8][0], rows[9][0]]


async def test_activity_prunes_the_oldest_in_bounded_steps(db: Database) -> None:
    store, ids = SqliteActivityStore(db), LineIds()
    await store.insert([(ids.next(T0 + n), "job_created", None, None, "{}") for n in range(7)])
    assert await store.prune(T0 + 5, 3) == 3  # a full step: more may be left
    assert await store.prune(T0 + 5, 3) == 2  # fewer than allowed: none older is left
    assert await store.prune(T0 + 5, 3) == 0
    assert len(await store.page(ActivityFilter(), 100)) == 2


async def test_a_failed_batch_stores_no_line(db: Database) -> None:
    store = SqliteActivityStore(db)
    rows = [(T0 << 10, "job_created", None, None, "{}"), (T0 << 10, "again", None, None, "{}")]
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert(rows)  # the second row reuses the first one's id
    assert await store.last_id() == 0


async def test_the_history_keeps_the_newest_entries_newest_first(db: Database) -> None:
    history = SqliteInvalidationHistory(db)
    for n in range(HISTORY_LIMIT + 3):
        await history.record(Invalidation(f"inv_{n:05d}", T0 + n // 2, None, n,
                                          keys=(f"k{n}",), tags=("a", "b"), cleared=n == 0))
    kept = await history.newest(HISTORY_LIMIT + 10)
    assert len(kept) == HISTORY_LIMIT
    newest = HISTORY_LIMIT + 2
    assert [e.invalidated for e in kept[:3]] == [newest, newest - 1, newest - 2]
    assert kept[0] == Invalidation(f"inv_{newest:05d}", T0 + newest // 2, None, newest,
                                   (f"k{newest}",), None, ("a", "b"), False)
    assert [e.invalidated for e in await history.newest(2)] == [newest, newest - 1]


async def test_the_health_ping_names_the_schema(db: Database) -> None:
    health = SqliteHealthStore(db)
    assert await health.ping() == f"sqlite schema v{db.schema_version}"
    assert await health.has_room() and health.space.reason is None
