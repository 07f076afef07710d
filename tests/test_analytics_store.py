"""What the analytics store's protocol promises, on each backend, over the known set of
jobs of test_analytics.py: exact sums per status and channel, buckets, and "created since".

SQLite's jobs are written by its jobs store's own statements (insert, claim, save, cancel,
requeue), which keep ``job_hours``. PostgreSQL's jobs store is not here yet: its jobs are
inserted by ``jobs_sql.insert`` in their final state, and their ``job_hours`` rows by plain
SQL, counted as the roll-up defines them (:func:`hours_of`). Both must give the same
hand-counted answers."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable

import pytest
from test_analytics import KNOWN, Spec, at, write_job

from toombos_edge.ids import new_id
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store import Database
from toombos_edge.store.analytics import HOUR_MS, AnalyticsStore, Sums
from toombos_edge.store.jobs import CREATED, ENDED
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres.analytics import PgAnalyticsStore
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.sqlite.analytics import SqliteAnalyticsStore

Seed = Callable[[list[Spec]], Awaitable[None]]
RAN = ("completed", "partial", "failed")


def hours_of(spec: Spec) -> dict[tuple[str, str, int], tuple[int, int, int]]:
    """The job_hours deltas of one job: created in its hour, and counted under its end."""
    hour, rows = spec.created // HOUR_MS, {}
    for channel in ("", *spec.channels):
        rows[channel, CREATED, hour] = (1, 0, 0)
        if spec.end in ENDED:
            ran = spec.end in RAN
            rows[channel, spec.end, hour] = (1, spec.run_ms if ran else 0, int(ran))
    return rows


def final_job(spec: Spec) -> Job:
    status = JobStatus.pending if spec.end == "requeued" else JobStatus(spec.end)
    started = None if status in (JobStatus.pending, JobStatus.cancelled) else spec.created + 1000
    ended = None if started is None or status is JobStatus.in_progress else started + spec.run_ms
    return Job(new_id("job"), spec.kind, status, spec.created, ended or spec.created,
               channels=spec.channels, max_attempts=1, started_at=started, completed_at=ended,
               attempts=int(started is not None))


async def pg_seed(pg: PgDatabase, specs: list[Spec]) -> None:
    async with pg.transaction() as conn:
        await jobs_sql.insert(conn, [(final_job(spec), spec.created) for spec in specs], slot=0)
        for number, spec in enumerate(specs):
            for (channel, status, hour), (n, run, runs) in hours_of(spec).items():
                await conn.execute(  # spread over three writers' rows, as nodes write them
                    "INSERT INTO job_hours (channel, status, hour, slot, n, run_ms, runs) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    "ON CONFLICT (channel, status, hour, slot) "
                    "DO UPDATE SET n = job_hours.n + excluded.n, "
                    "run_ms = job_hours.run_ms + excluded.run_ms, "
                    "runs = job_hours.runs + excluded.runs",
                    channel, status, hour, number % 3, n, run, runs)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[AnalyticsStore, Seed]:
    if request.param == "sqlite":
        db: Database = request.getfixturevalue("db")

        async def sqlite_seed(specs: list[Spec]) -> None:
            def write(conn: sqlite3.Connection) -> None:
                for spec in specs:  # one transaction: each job as the engine drives it
                    write_job(conn, spec)

            await db.write(write)

        return SqliteAnalyticsStore(db), sqlite_seed
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return PgAnalyticsStore(pg), lambda specs: pg_seed(pg, specs)


def hour(ms: int) -> int:
    return ms // HOUR_MS


async def test_a_window_sums_every_status_and_channel_exactly(
    backend: tuple[AnalyticsStore, Seed]
) -> None:
    store, seed = backend
    await seed(KNOWN)
    first, last = hour(at(0, 0)), hour(at(1, 23))
    summary = await store.summary(first, last, 24, [hour(at(1, 0)), hour(at(-1, 0)),
                                                    hour(at(2, 0))])
    assert summary.jobs == Sums({"completed": 3, "failed": 1, "partial": 1, "cancelled": 1,
                                 "in_progress": 1, "pending": 2}, 11_000, 5)
    assert summary.channels == {
        "email": Sums({"completed": 2, "partial": 1, "pending": 1}, 9000, 3),
        "website": Sums({"completed": 1, "failed": 1}, 3500, 2),
        "social_twitter": Sums({"failed": 1, "cancelled": 1}, 1500, 1),
    }
    assert summary.buckets == {first // 24: 5, first // 24 + 1: 4}
    assert summary.created_since == {hour(at(1, 0)): 4, hour(at(-1, 0)): 10,
                                     hour(at(2, 0)): 0}


async def test_a_narrow_window_counts_only_its_jobs_and_running_ones_by_creation(
    backend: tuple[AnalyticsStore, Seed]
) -> None:
    store, seed = backend
    await seed(KNOWN)
    day1 = await store.summary(hour(at(1, 0)), hour(at(1, 23)), 6)
    assert day1.jobs.by_status == {"partial": 1, "pending": 1, "in_progress": 1,
                                   "cancelled": 1}
    assert set(day1.channels) == {"email", "social_twitter"}
    assert day1.buckets == {hour(at(1, 6)) // 6: 3, hour(at(1, 12)) // 6: 1}
    empty = await store.summary(hour(at(5, 0)), hour(at(6, 0)), 1, [hour(at(5, 0))])
    assert empty.jobs.total == 0 and empty.channels == {} and empty.buckets == {}
    assert empty.created_since == {hour(at(5, 0)): 0}


async def test_running_jobs_are_read_from_the_jobs_of_the_window(
    backend: tuple[AnalyticsStore, Seed]
) -> None:
    store, seed = backend
    running = [Spec(["email"], at(0, 2, n), "in_progress", kind="noop") for n in range(3)]
    await seed([*running, Spec(["email"], at(0, 4), "in_progress", kind="noop")])
    summary = await store.summary(hour(at(0, 0)), hour(at(0, 3)), 24)
    assert summary.jobs.by_status == {"in_progress": 3}
    assert summary.channels["email"].by_status == {"in_progress": 3}
    assert summary.jobs.run_ms == summary.jobs.runs == 0


async def test_every_postgres_query_reads_ranges_of_an_index(pg_database: PgDatabase) -> None:
    """EXPLAIN over three months of hours for a few channels (44,000 rows of job_hours) and
    20,000 jobs, 20 of them running: each statement reads job_hours by its primary key and
    the jobs by an index; none scans a table."""
    from toombos_edge.store.postgres import analytics as sql

    await pg_database.execute(
        "INSERT INTO job_hours (channel, status, hour, n) SELECT c, s, h, 1 "
        "FROM unnest(ARRAY['', 'email', 'website', 'social_twitter']) AS c, "
        "unnest(ARRAY['', 'completed', 'partial', 'failed', 'cancelled']) AS s, "
        "generate_series(480000, 482200) AS h")
    await pg_database.execute(
        "INSERT INTO jobs (id, kind, status, max_attempts, created_at, updated_at, due_at) "
        "SELECT 'job_' || lpad(g::text, 26, '0'), 'noop', "
        "CASE WHEN g % 1000 = 0 THEN 'in_progress' ELSE 'completed' END, 1, g, g, g "
        "FROM generate_series(1, 20000) AS g")
    await pg_database.execute("ANALYZE job_hours")
    await pg_database.execute("ANALYZE jobs")
    for statement, args in [(sql.BY_STATUS, (481000, 481720, ["", "completed"])),
                            (sql.OVER_TIME, (24, 481000, 481720)), (sql.SINCE, ([481000],)),
                            (sql.RUNNING, (0, HOUR_MS))]:
        rows = await pg_database.fetch(f"EXPLAIN {statement}", *args)
        plan = "\n".join(row[0] for row in rows)
        assert "Seq Scan" not in plan and "Index" in plan, plan
