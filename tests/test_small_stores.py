"""What the protocols of keys, the activity log, the cache history and health promise,
checked on each backend: SQLite over a real file, PostgreSQL on a real server (test ids
say which). A check that only means something with several nodes (concurrent calls on
PostgreSQL's pool) runs on both: the single writer must pass it too."""

from __future__ import annotations

import asyncio
import errno
import sqlite3
from dataclasses import dataclass

import asyncpg
import pytest
from postgres import Cluster

from toombos_edge.records.activity import ActivityFilter, LineIds, first_id
from toombos_edge.records.key import ApiKey, Role
from toombos_edge.store.activity import ActivityStore
from toombos_edge.store.cache import HISTORY_LIMIT, Invalidation, InvalidationHistory
from toombos_edge.store.health import HealthStore
from toombos_edge.store.keys import KeyStore
from toombos_edge.store.postgres.activity import PgActivityStore
from toombos_edge.store.postgres.cache import PgInvalidationHistory
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.health import PgHealthStore, is_no_space
from toombos_edge.store.postgres.keys import PgKeyStore
from toombos_edge.store.sqlite.activity import SqliteActivityStore
from toombos_edge.store.sqlite.cache import SqliteInvalidationHistory
from toombos_edge.store.sqlite.health import SqliteHealthStore
from toombos_edge.store.sqlite.keys import SqliteKeyStore

T0 = 1_765_000_000_000


@dataclass(frozen=True)
class Stores:
    keys: KeyStore
    activity: ActivityStore
    history: InvalidationHistory
    health: HealthStore
    duplicate: type[Exception]  #: what the driver raises for a primary key stored twice
    ping: str  #: what the health ping answers


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "sqlite":
        db = request.getfixturevalue("db")
        return Stores(SqliteKeyStore(db), SqliteActivityStore(db), SqliteInvalidationHistory(db),
                      SqliteHealthStore(db), sqlite3.IntegrityError,
                      f"sqlite schema v{db.schema_version}")
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return Stores(PgKeyStore(pg), PgActivityStore(pg), PgInvalidationHistory(pg),
                  PgHealthStore(pg), asyncpg.UniqueViolationError,
                  f"postgresql schema v{pg.schema_version}")


def key(n: int) -> ApiKey:
    return ApiKey(f"key_{n:04d}", f"key {n}", Role.viewer, bytes([n]) * 32, T0 + n)


async def test_a_revocation_keeps_its_first_time_and_leaves_the_active_set(
    stores: Stores
) -> None:
    store = stores.keys
    for n in (2, 1, 3):
        await store.insert(key(n))
    assert [k.id for k in await store.page()] == ["key_0001", "key_0002", "key_0003"]
    assert [k.id for k in await store.page(1, 1)] == ["key_0002"]
    first = await store.revoke("key_0002", T0 + 100)
    again = await store.revoke("key_0002", T0 + 200)
    assert first is not None and again is not None
    assert first[0].revoked_at == again[0].revoked_at == T0 + 100
    assert (first[1], again[1]) == (True, False)  # the first call revoked it
    assert await store.revoke("key_9999", T0) is None
    assert sorted(k.id for k in await store.active()) == ["key_0001", "key_0003"]
    assert await store.count() == 3


async def test_concurrent_revocations_agree_on_one_time(stores: Stores) -> None:
    """Revocations racing (on PostgreSQL, from several connections at once): each returns
    the key with the one time that was stored first, and one says it revoked it."""
    await stores.keys.insert(key(1))
    revoked = await asyncio.gather(*(stores.keys.revoke("key_0001", T0 + n)
                                     for n in range(1, 9)))
    times = {r[0].revoked_at for r in revoked if r is not None}
    [stored] = await stores.keys.page()
    assert len(revoked) == 8 and times == {stored.revoked_at}
    assert sum(r[1] for r in revoked if r is not None) == 1  # one call revoked it
    assert stored.revoked_at is not None and T0 < stored.revoked_at < T0 + 9


async def test_uses_are_recorded_and_unknown_ids_ignored(stores: Stores) -> None:
    store = stores.keys
    await store.insert(key(1))
    await store.record_use({"key_0001": T0 + 5, "key_gone": T0 + 6})
    [stored] = await store.page()
    assert stored.last_used_at == T0 + 5 and stored.role is Role.viewer
    assert stored.secret_hash == bytes([1]) * 32


async def test_activity_pages_newest_first_and_follows_oldest_first(stores: Stores) -> None:
    store, ids = stores.activity, LineIds()
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
    targeted = await store.after(ActivityFilter(target="t3"), 0, 10)
    assert targeted == [(rows[3][0], rows[3][4])]


async def test_activity_prunes_the_oldest_in_bounded_steps(stores: Stores) -> None:
    store, ids = stores.activity, LineIds()
    await store.insert([(ids.next(T0 + n), "job_created", None, None, "{}") for n in range(7)])
    assert await store.prune(T0 + 5, 3) == 3  # a full step: more may be left
    assert await store.prune(T0 + 5, 3) == 2  # fewer than allowed: none older is left
    assert await store.prune(T0 + 5, 3) == 0
    assert len(await store.page(ActivityFilter(), 100)) == 2


async def test_concurrent_prunes_remove_each_line_once(stores: Stores) -> None:
    store, ids = stores.activity, LineIds()
    await store.insert([(ids.next(T0 + n), "job_created", None, None, "{}")
                        for n in range(60)])
    removed = await asyncio.gather(*(store.prune(T0 + 50, 10) for _ in range(4)))
    assert all(n <= 10 for n in removed) and sum(removed) == 40
    while await store.prune(T0 + 50, 10):
        pass
    left = await store.page(ActivityFilter(), 100)
    assert len(left) == 10 and min(ident for ident, _ in left) == first_id(T0 + 50)


async def test_a_failed_batch_stores_no_line(stores: Stores) -> None:
    store = stores.activity
    rows = [(T0 << 10, "job_created", None, None, "{}"), (T0 << 10, "again", None, None, "{}")]
    with pytest.raises(stores.duplicate):
        await store.insert(rows)  # the second row reuses the first one's id
    assert await store.last_id() == 0


async def test_the_history_keeps_the_newest_entries_newest_first(stores: Stores) -> None:
    history = stores.history
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


async def test_concurrent_records_keep_the_history_bounded(stores: Stores) -> None:
    """Entries recorded at once (on PostgreSQL, each in its own transaction on its own
    connection) still leave only the newest HISTORY_LIMIT."""
    history = stores.history
    for n in range(HISTORY_LIMIT - 2):
        await history.record(Invalidation(f"inv_{n:05d}", T0 + n, "key_a", 1))
    late = [Invalidation(f"inv_{n:05d}", T0 + n, None, 2, pattern="p*", cleared=True)
            for n in range(HISTORY_LIMIT - 2, HISTORY_LIMIT + 18)]
    await asyncio.gather(*(history.record(entry) for entry in late))
    kept = await history.newest(HISTORY_LIMIT + 50)
    assert [e.id for e in kept] == [f"inv_{n:05d}" for n in range(HISTORY_LIMIT + 17, 17, -1)]
    assert kept[0] == late[-1] and kept[-1].actor == "key_a"


async def test_the_health_ping_names_the_schema(stores: Stores) -> None:
    health = stores.health
    assert await health.ping() == stores.ping
    assert await health.has_room() and health.space.reason is None


# --- what only several nodes on PostgreSQL can do ------------------------------------------


async def test_an_older_use_recorded_later_keeps_the_latest_time(
    pg_database: PgDatabase
) -> None:
    """Two nodes flush their batches of uses in either order: the later use stays."""
    store = PgKeyStore(pg_database)
    await store.insert(key(1))
    await store.record_use({"key_0001": T0 + 50})
    await store.record_use({"key_0001": T0 + 20})  # another node's batch, committed after
    [stored] = await store.page()
    assert stored.last_used_at == T0 + 50


async def test_a_database_that_refuses_fails_the_ping_until_it_answers_again(
    pg_database: PgDatabase, postgres_cluster: Cluster
) -> None:
    health = PgHealthStore(pg_database)
    name = await pg_database.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(postgres_cluster.url())
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1", name)
        # Which error depends on when the driver notices its connection is gone (a refused
        # new connection, a lost one, a protocol state): the health check takes any.
        with pytest.raises(Exception):  # noqa: B017
            await health.ping()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert await health.ping() == f"postgresql schema v{pg_database.schema_version}"
    finally:
        await admin.close()


def test_the_servers_disk_full_is_a_lack_of_space_and_other_errors_are_not() -> None:
    assert is_no_space(asyncpg.DiskFullError('could not extend file "base/1/2"'))
    assert is_no_space(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_no_space(asyncpg.UniqueViolationError("duplicate key"))
    assert not is_no_space(asyncpg.ConnectionDoesNotExistError("connection lost"))
