"""What the retention store's protocol promises, on each backend, driven by the real
:class:`Retention` rules: only ended jobs past their age go, the dead set is capped oldest
first, old content versions go, each call deletes at most what it is allowed, and the job
counters stay exact. Several prunes at once (several nodes, on PostgreSQL) delete each row
once and never more than the cap allows.

SQLite's jobs are inserted by its jobs store's statements; PostgreSQL's by ``jobs_sql.insert``
(its jobs store is not here yet). Content and its versions are plain SQL of the same shape
on both."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from toombos_edge.ids import new_id, now_ms
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.retention import DAY_MS, FINISHED, Policy, Retention
from toombos_edge.store import Database
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.retention import PgRetentionStore
from toombos_edge.store.retention import RetentionStore
from toombos_edge.store.sqlite import jobs as sqlite_jobs
from toombos_edge.store.sqlite.retention import SqliteRetentionStore

# "Now" is 200 days ahead: jobs created now are as old as each test needs.
NOW = now_ms() + 200 * DAY_MS
COUNTS = ("SELECT kind || '/' || status, CAST(sum(n) AS bigint) FROM job_counts "
          "GROUP BY kind, status HAVING sum(n) <> 0")
REAL = "SELECT kind || '/' || status, count(*) FROM jobs GROUP BY kind, status"


@dataclass
class Backend:
    """The store and plain SQL on its database (``?`` placeholders on both)."""

    store: RetentionStore
    sqlite: Database | None = None
    pg: PgDatabase | None = None

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.sqlite is not None:
            return await self.sqlite.read(lambda c: c.execute(sql, args).fetchall())
        assert self.pg is not None
        return [tuple(row) for row in await self.pg.fetch(_numbered(sql), *args)]

    async def run(self, sql: str, *args: Any) -> None:
        if self.sqlite is not None:
            await self.sqlite.write(lambda c: c.execute(sql, args))
        else:
            assert self.pg is not None
            await self.pg.execute(_numbered(sql), *args)

    def json(self, value: Any) -> Any:
        return orjson.dumps(value).decode() if self.sqlite is not None else value

    async def add_job(self, status: str, ended_days_ago: float | None,
                      kind: str = "noop") -> str:
        created = now_ms()
        job = Job(new_id("job"), kind, JobStatus(status), created, created)
        if self.sqlite is not None:
            await self.sqlite.write(lambda c: sqlite_jobs.insert(c, [(job, created)]))
        else:
            assert self.pg is not None
            async with self.pg.transaction() as conn:
                await jobs_sql.insert(conn, [(job, created)], slot=1)
        ended = None if ended_days_ago is None else NOW - int(ended_days_ago * DAY_MS)
        await self.run("UPDATE jobs SET completed_at = ? WHERE id = ?", ended, job.id)
        return job.id

    async def job_ids(self) -> set[str]:
        return {row[0] for row in await self.rows("SELECT id FROM jobs")}

    async def exact_counts(self) -> dict[str, int]:
        """The counters per kind and status, checked against a count of the table."""
        counted = dict(await self.rows(COUNTS))
        assert counted == dict(await self.rows(REAL))
        return counted

    async def add_content(self, versions: int) -> str:
        """An item at version ``versions`` with every earlier one kept, replaced now."""
        item, at = new_id("cnt"), now_ms()
        await self.run(
            "INSERT INTO content (id, channel, style, tone, content_type, body, version, "
            "created_at, updated_at) VALUES (?, 'email', 's', 't', 'c', ?, ?, ?, ?)",
            item, self.json({"subject": f"v{versions}"}), versions, at, at)
        for n in range(1, versions):
            await self.run(
                "INSERT INTO content_versions (content_id, version, body, created_at, "
                "replaced_at) VALUES (?, ?, ?, ?, ?)", item, n, self.json({"subject": f"v{n}"}),
                at, at)
        return item

    async def versions(self, item: str) -> list[int]:
        rows = await self.rows("SELECT version FROM content_versions WHERE content_id = ? "
                               "ORDER BY version DESC", item)
        return [row[0] for row in rows]


def _numbered(sql: str) -> str:
    counter = iter(range(1, 100))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "sqlite":
        db: Database = request.getfixturevalue("db")
        return Backend(SqliteRetentionStore(db), sqlite=db)
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return Backend(PgRetentionStore(pg), pg=pg)


async def test_jobs_go_by_age_and_status_only_in_bounded_steps(backend: Backend) -> None:
    keep = {
        await backend.add_job("completed", 10),  # finished, but not for long enough
        await backend.add_job("completed", 1),
        await backend.add_job("failed", 40),  # dead jobs are kept 90 days
        await backend.add_job("pending", None),  # not finished, however old
        await backend.add_job("in_progress", None),
    }
    gone = {await backend.add_job(status, 31, kind)
            for status in ("completed", "partial", "cancelled") for kind in ("noop", "boom")}
    gone |= {await backend.add_job("failed", 91), await backend.add_job("failed", 150, "boom")}
    gone |= {await backend.add_job("completed", 45) for _ in range(7)}
    cutoff = NOW - 30 * DAY_MS
    assert await backend.store.prune_ended_jobs(FINISHED, cutoff, 2) == 2  # at most 2
    retention = Retention(backend.store, None,
                          Policy(finished_days=30, dead_days=90, dead_max=0),
                          clock=lambda: NOW, batch=2)

    counts = await retention.run_once()

    assert await backend.job_ids() == keep
    assert counts["finished_jobs"] == len(gone) - 2 - 2 and counts["dead_jobs"] == 2
    assert await backend.exact_counts() == {
        "noop/completed": 2, "noop/failed": 1, "noop/pending": 1, "noop/in_progress": 1}


async def test_the_dead_set_is_capped_oldest_first(backend: Backend) -> None:
    dead = [await backend.add_job("failed", 1, kind) for kind in ("a", "b", "a", "b", "a")]
    others = {await backend.add_job("completed", 1), await backend.add_job("cancelled", 1)}
    retention = Retention(backend.store, None, Policy(finished_days=0, dead_days=0, dead_max=3),
                          clock=lambda: NOW, batch=500)

    assert (await retention.run_once())["dead_over_cap"] == 2
    assert await backend.job_ids() == set(dead[2:]) | others
    assert await backend.exact_counts() == {
        "a/failed": 2, "b/failed": 1, "noop/completed": 1, "noop/cancelled": 1}
    assert (await retention.run_once())["dead_over_cap"] == 0


async def test_prunes_at_once_delete_each_job_once_and_respect_the_cap(
    backend: Backend
) -> None:
    """As two nodes running retention together: the finished jobs go once each (the
    counters stay exact), and the dead set ends at its cap, not below it."""
    finished = {await backend.add_job("completed", 45) for _ in range(12)}
    dead = [await backend.add_job("failed", 1) for _ in range(10)]
    cutoff = NOW - 30 * DAY_MS
    ended = await asyncio.gather(*(backend.store.prune_ended_jobs(FINISHED, cutoff, 5)
                                   for _ in range(3)))
    capped = await asyncio.gather(*(backend.store.prune_oldest_jobs("failed", 4, 10)
                                    for _ in range(3)))
    assert sum(ended) == len(finished) and all(n <= 5 for n in ended)
    assert sum(capped) == 6
    assert await backend.job_ids() == set(dead[6:])
    assert await backend.exact_counts() == {"noop/failed": 4}


async def test_content_versions_beyond_n_or_older_than_x_go(backend: Backend) -> None:
    items = [await backend.add_content(6) for _ in range(2)]
    # Item b's version 5 was replaced long ago (as if its clock had been set back).
    await backend.run("UPDATE content_versions SET replaced_at = ? WHERE content_id = ? "
                      "AND version = 5", now_ms() - 40 * DAY_MS, items[1])
    retention = Retention(backend.store, None,
                          Policy(finished_days=0, dead_days=0, dead_max=0,
                                 content_versions=3, content_version_days=30))

    assert (await retention.run_once())["content_versions"] == 2 + 3
    assert await backend.versions(items[0]) == [5, 4, 3]  # the 3 newest earlier ones
    assert await backend.versions(items[1]) == [4, 3]  # and 5 was older than 30 days


async def test_a_scan_goes_on_where_the_last_one_stopped(backend: Backend) -> None:
    items = sorted([await backend.add_content(4) for _ in range(3)])
    store = backend.store
    gone, position = await store.prune_content_versions(("", 0), 1, 0, 4)
    assert (gone, position) == (3, (items[1], 1))  # a's 1 and 2, and b's 1: the 4th read
    gone, position = await store.prune_content_versions((items[1], 1), 1, 0, 4)
    assert (gone, position) == (3, (items[2], 2))
    assert await store.prune_content_versions((items[2], 2), 1, 0, 4) == (0, None)
    assert [await backend.versions(item) for item in items] == [[3], [3], [3]]


async def test_giving_space_back_stays_within_its_bound(backend: Backend) -> None:
    await backend.add_content(30)
    await backend.run("DELETE FROM content_versions")
    given = await backend.store.give_back_space(4)
    assert 0 <= given <= 4
    if backend.pg is not None:
        assert given == 0  # (auto)vacuum's business on PostgreSQL (store/postgres/retention.py)
