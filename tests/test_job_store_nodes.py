"""The job store with several nodes on one PostgreSQL database, and its tallies against
SQLite's.

Each node is its own :class:`PgDatabase` pool on the same database, as two servers would
be: what one claims, recovers or locks, the other sees only through PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support import eventually_async

from toombos_edge.events import EventBus
from toombos_edge.ids import new_id, now_ms
from toombos_edge.jobs import transitions
from toombos_edge.jobs.engine import JobEngine
from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store import Database
from toombos_edge.store.jobs import JobStore
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.engine_lock import ENGINE_LOCK
from toombos_edge.store.postgres.job_write import Write
from toombos_edge.store.postgres.jobs import PgJobStore
from toombos_edge.store.sqlite.jobs import SqliteJobStore

NOW = now_ms()
LEASE = 60_000


def new(kind: str = "noop", **fields: object) -> Job:
    return Job(new_id("job"), kind, JobStatus.pending, NOW, NOW, **fields)  # type: ignore[arg-type]


@pytest.fixture
async def nodes(postgres_url: str) -> AsyncIterator[tuple[PgJobStore, PgJobStore]]:
    """Two nodes' job stores: two pools on one database."""
    one, two = PgDatabase(postgres_url, pool_size=4), PgDatabase(postgres_url, pool_size=4)
    await one.open()
    await two.open()
    stores = PgJobStore(one), PgJobStore(two)
    try:
        yield stores
    finally:
        for store in stores:
            await store.unlock_engine()
        await one.close()
        await two.close()


async def test_two_nodes_claiming_at_once_never_start_the_same_job(
    nodes: tuple[PgJobStore, PgJobStore],
) -> None:
    jobs = [new(priority=n % 3) for n in range(300)]
    await nodes[0].insert([(job, NOW) for job in jobs[:150]])
    await nodes[1].insert([(job, NOW) for job in jobs[150:]])

    async def drain(store: PgJobStore, worker: int) -> list[str]:
        taken: list[str] = []
        while True:
            claimed, _ = await store.claim(NOW + worker, 7, NOW + LEASE, urgent_only=False)
            if not claimed:
                return taken
            taken += [job.id for job in claimed]

    # Four claimers per node, all at once: the pools' connections interleave their claims.
    taken = await asyncio.gather(*(drain(nodes[n % 2], n) for n in range(8)))
    every = [job_id for ids in taken for job_id in ids]
    assert sorted(every) == sorted(job.id for job in jobs)  # each job exactly once
    assert len(set(every)) == len(every)
    for store in nodes:  # both nodes count the same exact totals
        assert (await store.counts())["in_progress"] == 300
        assert (await store.counts())["pending"] == 0


async def test_recover_takes_only_leases_that_ran_out(
    nodes: tuple[PgJobStore, PgJobStore],
) -> None:
    one, two = nodes
    live, dead = new(), new()
    await one.insert([(live, NOW), (dead, NOW)])
    assert await one.claim_one(dead.id, NOW, NOW + 1_000) is not None  # a node that died
    assert await one.claim_one(live.id, NOW, NOW + LEASE) is not None  # a live node's job
    recovered, _ = await two.recover(NOW + 2_000, every_lease=False)
    assert [job.id for job in recovered] == [dead.id]
    assert recovered[0].status is JobStatus.pending and recovered[0].errors[0]["attempt"] == 1
    stored = await two.get(live.id)
    assert stored is not None and stored.status is JobStatus.in_progress
    # The live node's save goes through; the dead node's late save is refused.
    [held] = [job for job in [await one.get(live.id)] if job is not None]
    await one.save([(transitions.succeed(held, None, NOW + 3_000), NOW + 3_000)])
    assert await two.statuses([live.id, dead.id]) == {
        live.id: JobStatus.completed, dead.id: JobStatus.pending}


async def _waiting_for_lock(url: str) -> bool:
    """True when a session waits for the engine lock (not granted, in pg_locks)."""
    conn = await asyncpg.connect(url)
    try:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND ((classid::bigint << 32) | objid::bigint) = $1", ENGINE_LOCK)
    finally:
        await conn.close()
    return bool(waiting)


async def test_the_engine_lock_lets_no_engine_take_a_live_engines_jobs(
    nodes: tuple[PgJobStore, PgJobStore], postgres_url: str,
) -> None:
    one, two = nodes
    job = new()
    await one.insert([(job, NOW)])
    assert await one.lock_engine()  # first: no other engine runs
    starting = asyncio.create_task(two.lock_engine())
    await eventually_async(lambda: _waiting_for_lock(postgres_url), 20, "the second engine waits")
    assert not starting.done()  # held off until the first one's start-up recovery is done
    await one.recover(NOW, every_lease=True)
    assert await asyncio.wait_for(starting, 20) is False  # another engine runs
    [claimed], _ = await two.claim(NOW, 1, NOW + LEASE, urgent_only=False)
    await one.unlock_engine()
    # A third engine starts while the second runs: it must not treat its lease as dead.
    third_db = PgDatabase(postgres_url, pool_size=2)
    await third_db.open()
    third = PgJobStore(third_db)
    try:
        assert await third.lock_engine() is False
        assert await third.recover(NOW + 1, every_lease=False) == ([], None)
        await two.unlock_engine()
        await third.unlock_engine()
        assert await third.lock_engine()  # every other engine has gone
        recovered, _ = await third.recover(NOW + 2, every_lease=True)
        assert [j.id for j in recovered] == [claimed.id]
    finally:
        await third.unlock_engine()
        await third_db.close()


async def test_an_engine_whose_lock_connection_was_lost_takes_its_lock_again(
    nodes: tuple[PgJobStore, PgJobStore], postgres_url: str,
) -> None:
    """PostgreSQL restarted (here: the lock's session killed): until the node holds its
    lock again, an engine starting would take it for dead. The poll (``recover`` without
    ``every_lease``) takes it again, so a starting engine sees a live one."""
    one, two = nodes
    assert await one.lock_engine()
    await one.recover(NOW, every_lease=True)  # start-up done: the shared lock now
    admin = await asyncpg.connect(postgres_url)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = $1::bigint & x'FFFFFFFF'::bigint "
            "AND pid <> pg_backend_pid()", ENGINE_LOCK)
        assert killed == 1
        async def gone() -> bool:
            return await _lock_holders(admin) == 0

        await eventually_async(gone, 20, "the lock is gone")
        await one.recover(NOW + 1, every_lease=False)
        assert await _lock_holders(admin) == 1
    finally:
        await admin.close()
    assert await two.lock_engine() is False  # another engine runs


async def _lock_holders(admin: asyncpg.Connection) -> int:
    return int(await admin.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objid = $1::bigint & x'FFFFFFFF'::bigint", ENGINE_LOCK))


async def test_two_nodes_inserting_one_idempotency_key_store_one_job(
    nodes: tuple[PgJobStore, PgJobStore],
) -> None:
    stored = await asyncio.gather(*(
        nodes[n % 2].insert_once(new(idempotency_key="same"), NOW) for n in range(6)))
    assert len({job.id for job in stored}) == 1
    assert (await nodes[0].counts())["pending"] == 1


async def _script(store: JobStore, jobs: dict[str, Job]) -> None:
    """The same life of a few jobs, through the protocol: every move the tallies count."""
    a, b, c, d, e, f = (jobs[name] for name in "abcdef")
    await store.insert([(a, NOW), (b, NOW), (c, NOW), (e, NOW + 5_000)])
    await store.insert([(d, NOW)])  # depends on a, fail_fast
    await store.insert_once(f, NOW)
    claimed, _ = await store.claim(NOW + 10, 3, NOW + 1_000, urgent_only=False)
    by_id = {job.id: job for job in claimed}
    await store.save([(transitions.fail(by_id[a.id], "boom", NOW + 20, None), NOW + 20)])
    await store.save_progress([by_id[b.id]])
    await store.renew_leases([b.id], NOW + 2_000)
    await store.recover(NOW + 1_500, every_lease=False)  # one of b, c has run out
    await store.release([b.id], NOW + 30)
    await store.cancel_pending([e.id], NOW + 40)
    await store.requeue([a.id, d.id, e.id], NOW + 50)
    claimed, _ = await store.claim(NOW + 60, 10, NOW + 9_000, urgent_only=False)
    await store.save([(transitions.succeed(job, None, NOW + 70), NOW + 70) for job in claimed])


def _tallies(rows: list[Any]) -> tuple[set[tuple[Any, ...]], ...]:
    counts, hours = rows
    return ({tuple(row) for row in counts}, {tuple(row) for row in hours})


_COUNTS = ("SELECT kind, status, CAST(sum(n) AS bigint) FROM job_counts GROUP BY kind, status "
           "HAVING sum(n) <> 0")
_HOURS = ("SELECT channel, status, hour, CAST(sum(n) AS bigint), CAST(sum(run_ms) AS bigint), "
          "CAST(sum(runs) AS bigint) FROM job_hours GROUP BY channel, status, hour "
          "HAVING sum(n) <> 0 OR sum(run_ms) <> 0 OR sum(runs) <> 0")


async def test_postgres_keeps_the_tallies_and_jobs_as_sqlite_does(
    pg_database: PgDatabase, tmp_path: Path,
) -> None:
    a = new(channels=["blog", "x"])
    jobs = {"a": a, "b": new(kind="other", channels=["blog"]), "c": new(),
            "d": new(depends_on=a.id, fail_fast=True), "e": new(scheduled_for=NOW + 5_000),
            "f": new(idempotency_key="once")}
    sqlite_db = Database(tmp_path / "edge.db")
    await sqlite_db.open()
    try:
        await _script(SqliteJobStore(sqlite_db), jobs)
        await _script(PgJobStore(pg_database), jobs)
        sqlite_rows = await sqlite_db.read(
            lambda c: [c.execute(_COUNTS).fetchall(), c.execute(_HOURS).fetchall()])
        sqlite_jobs = [await SqliteJobStore(sqlite_db).get(job.id) for job in jobs.values()]
    finally:
        await sqlite_db.close()
    pg_rows = [await pg_database.fetch(_COUNTS), await pg_database.fetch(_HOURS)]
    assert _tallies(pg_rows) == _tallies(sqlite_rows)
    assert len(_tallies(pg_rows)[1]) > 4  # the script made and ended jobs on channels
    pg_jobs = [await PgJobStore(pg_database).get(job.id) for job in jobs.values()]
    assert pg_jobs == sqlite_jobs


async def test_writes_at_once_never_wait_for_each_other_on_the_tallies(
    nodes: tuple[PgJobStore, PgJobStore], postgres_url: str,
) -> None:
    """Every new job adds to its hour's tallies: two nodes' inserts (or one node's batches
    in flight at once) must not queue behind each other's commits on one shared row."""
    one, two = nodes
    # One write of the store's own, held open between its tallies and its commit (the
    # store's transactions cannot be paused, so this plays one with the same steps).
    held = PgDatabase(postgres_url, pool_size=2)
    await held.open()
    try:
        async with held.transaction() as conn:
            write = Write.on(conn)
            first = new(channels=["blog"])
            await jobs_sql.insert_rows(conn, [(first, NOW)])
            write.count(None, [(first.kind, first.status.value)])
            write.hours([(first, None, None)])
            await write.flush()
            # Another node adds a job of the same hour and channel meanwhile: it commits.
            await asyncio.wait_for(two.insert([(new(channels=["blog"]), NOW)]), 30)
            await asyncio.wait_for(one.insert([(new(), NOW)]), 30)
    finally:
        await held.close()
    assert (await one.counts())["pending"] == 3


async def _lock_waits(url: str) -> bool:
    """True when some session waits for a row another transaction holds."""
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"))
    finally:
        await conn.close()


async def test_a_dependent_inserted_while_its_dependency_ends_is_not_left_blocked(
    nodes: tuple[PgJobStore, PgJobStore], postgres_url: str,
) -> None:
    one, two = nodes
    first = new()
    await one.insert([(first, NOW)])
    running, _ = await one.claim(NOW, 1, NOW + LEASE, urgent_only=False)
    assert [job.id for job in running] == [first.id]
    # Another node's end of ``first``, caught between its update and its commit: the
    # store's save is one transaction we cannot pause, so this one plays its first step.
    ending = await asyncpg.connect(postgres_url)
    try:
        async with ending.transaction():
            await ending.execute("UPDATE jobs SET status = 'completed', lease_until = NULL "
                                 "WHERE id = $1", first.id)
            after = new(depends_on=first.id)
            inserting = asyncio.create_task(two.insert([(after, NOW)]))
            # The insert reads the dependency it waits for under a share lock: it waits
            # for the end to commit, rather than reading it as still running.
            await eventually_async(lambda: _lock_waits(postgres_url), 20, "the insert waits")
            assert not inserting.done()
    finally:
        await ending.close()
    settled = await asyncio.wait_for(inserting, 20)
    assert settled is not None and settled.released == 1
    claimed, _ = await one.claim(NOW + 1, 5, NOW + LEASE, urgent_only=False)
    assert [job.id for job in claimed] == [after.id]


async def test_two_engines_on_one_database_run_every_job_exactly_once(
    nodes: tuple[PgJobStore, PgJobStore],
) -> None:
    """The real engine over the PostgreSQL store, two nodes sharing one queue: jobs
    submitted to each node, some depending on jobs submitted to the other."""
    runs: Counter[str] = Counter()

    async def count_run(ctx: JobContext) -> None:
        runs[ctx.job.id] += 1
        await ctx.progress(50, "half way")

    registry = KindRegistry()
    registry.register(JobKind("count", count_run))
    engines = [JobEngine(store, EventBus(), registry, workers=3) for store in nodes]
    for engine in engines:
        await engine.start()
    try:
        firsts = [await engines[n % 2].submit("count", {"n": n}) for n in range(100)]
        seconds = [await engines[(n + 1) % 2].submit("count", depends_on=first.id)
                   for n, first in enumerate(firsts[:50])]

        async def all_completed() -> bool:
            return (await nodes[0].counts())["completed"] == 150

        await eventually_async(all_completed, 60, lambda: f"ran {len(runs)} of 150")
    finally:
        for engine in engines:
            await engine.stop(5.0)
    assert set(runs) == {job.id for job in firsts + seconds}
    assert set(runs.values()) == {1}  # none ran twice
    for first, second in zip(firsts, seconds, strict=False):
        done = await nodes[1].get(first.id), await nodes[1].get(second.id)
        assert done[0] is not None and done[1] is not None
        assert done[0].completed_at is not None and done[1].started_at is not None
        assert done[1].started_at >= done[0].completed_at  # after what it waits for
