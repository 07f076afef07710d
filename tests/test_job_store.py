"""The JobStore protocol's promises, through the protocol only, on each backend: a real
SQLite file and a real PostgreSQL database (test ids end in ``[sqlite]``/``[postgres]``).

Written against :class:`JobStore` (the ``job_store`` fixture is the one place that names a
backend), so that every implementation is checked by the same cases. The cases at the end
are what only matters with several nodes on one PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from toombos_edge.ids import new_id, now_ms
from toombos_edge.jobs import transitions
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store import Database
from toombos_edge.store.jobs import JobFilter, JobStore, fieldset, whole
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.jobs import PgJobStore
from toombos_edge.store.sqlite.jobs import SqliteJobStore

NOW = now_ms()
LEASE = 60_000


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Path | PgDatabase:
    """The SQLite file's path, or a migrated PostgreSQL database (a sync fixture: an async
    one cannot ask for the async ``pg_database`` by name)."""
    if request.param == "postgres":
        database: PgDatabase = request.getfixturevalue("pg_database")
        return database
    return tmp_path / "edge.db"


@pytest.fixture
async def job_store(backend: Path | PgDatabase) -> AsyncIterator[JobStore]:
    if isinstance(backend, PgDatabase):
        store = PgJobStore(backend)
        yield store
        await store.unlock_engine()
        return
    database = Database(backend)
    await database.open()
    yield SqliteJobStore(database)
    await database.close()


def new(kind: str = "noop", **fields: object) -> Job:
    return Job(new_id("job"), kind, JobStatus.pending, NOW, NOW, **fields)  # type: ignore[arg-type]


async def test_claim_starts_due_jobs_in_queue_order_up_to_the_limit(job_store: JobStore) -> None:
    low, high, urgent = new(), new(priority=5), new(urgent=True)
    later = new(scheduled_for=NOW + 3_600_000)
    await job_store.insert([(low, NOW), (high, NOW), (urgent, NOW), (later, NOW + 3_600_000)])
    jobs, next_due = await job_store.claim(NOW, 2, NOW + LEASE, urgent_only=False)
    assert [job.id for job in jobs] == [urgent.id, high.id] and next_due is None
    assert all(j.status is JobStatus.in_progress and j.attempts == 1 for j in jobs)
    jobs, next_due = await job_store.claim(NOW, 5, NOW + LEASE, urgent_only=False)
    assert [job.id for job in jobs] == [low.id]
    assert next_due == NOW + 3_600_000  # fewer than asked: when the next one comes due
    assert (await job_store.counts())["in_progress"] == 3


async def test_saving_an_end_settles_its_dependents_in_the_same_call(job_store: JobStore) -> None:
    first = new()
    after, skipped = new(depends_on=first.id), new(depends_on=first.id, fail_fast=True)
    await job_store.insert([(first, NOW), (after, NOW), (skipped, NOW)])
    jobs, _ = await job_store.claim(NOW, 5, NOW + LEASE, urgent_only=False)
    assert [job.id for job in jobs] == [first.id]  # the blocked ones are not claimed
    failed = transitions.fail(jobs[0], "boom", NOW + 1, None)
    settled = await job_store.save([(failed, NOW + 1)])
    assert settled is not None and settled.released == 1
    assert [job.id for job in settled.cancelled] == [skipped.id]
    jobs, _ = await job_store.claim(NOW + 2, 5, NOW + LEASE, urgent_only=False)
    assert [job.id for job in jobs] == [after.id]


async def test_a_save_of_a_job_no_longer_held_changes_nothing(job_store: JobStore) -> None:
    job = new()
    await job_store.insert([(job, NOW)])
    [started], _ = await job_store.claim(NOW, 1, NOW + LEASE, urgent_only=False)
    recovered, _ = await job_store.recover(NOW + LEASE + 1, every_lease=False)  # lease ran out
    assert [j.id for j in recovered] == [job.id] and recovered[0].status is JobStatus.pending
    await job_store.save([(transitions.succeed(started, None, NOW + 2), NOW + 2)])
    stored = await job_store.get(job.id)
    assert stored is not None and stored.status is JobStatus.pending


async def test_insert_once_returns_the_job_stored_under_the_key(job_store: JobStore) -> None:
    first = await job_store.insert_once(new(idempotency_key="k"), NOW)
    again = await job_store.insert_once(new(idempotency_key="k"), NOW)
    assert again.id == first.id and (await job_store.counts())["pending"] == 1


async def test_cancel_release_and_requeue(job_store: JobStore) -> None:
    pending, running = new(), new()
    await job_store.insert([(running, NOW)])
    await job_store.claim(NOW, 1, NOW + LEASE, urgent_only=False)
    await job_store.insert([(pending, NOW)])
    cancelled, settled = await job_store.cancel_pending([pending.id, running.id], NOW + 1)
    assert [job.id for job in cancelled] == [pending.id] and settled is None
    released = await job_store.release([running.id], NOW + 2)
    assert released[0].status is JobStatus.pending and released[0].attempts == 0
    requeued = await job_store.requeue([pending.id, running.id], NOW + 3)
    assert [job.id for job in requeued] == [pending.id]  # a pending job is not retried
    assert await job_store.statuses([pending.id, running.id, "job_nope"]) == {
        pending.id: JobStatus.pending, running.id: JobStatus.pending}


async def test_pages_fields_and_ids_newest_first(job_store: JobStore) -> None:
    jobs = [new(kind="a" if n % 2 else "b") for n in range(5)]
    await job_store.insert([(job, NOW) for job in jobs])
    newest = sorted((job.id for job in jobs), reverse=True)
    page = await job_store.page(JobFilter(), 2)
    assert [job.id for job in page.jobs] == newest[:2] and page.next_cursor == newest[1]
    assert (page.total, page.total_exact) == (5, True)
    rest = await job_store.page(JobFilter(), 5, before=page.next_cursor)
    assert [job.id for job in rest.jobs] == newest[2:] and rest.next_cursor is None
    light = await job_store.fields_page(JobFilter(kind="a"), fieldset(["status"]), 10)
    assert light.total == 2 and all(row.keys() == {"job_id", "status"} for row in light.jobs)
    assert await job_store.ids(JobFilter(statuses=("pending",)), newest[0], 10) == newest[1:]


async def test_the_sqlite_engine_lock_is_held_by_one_store_at_a_time(tmp_path: Path) -> None:
    database = Database(tmp_path / "edge.db")
    await database.open()
    try:
        one, two = SqliteJobStore(database), SqliteJobStore(database)
        assert await one.lock_engine() and not await two.lock_engine()
        await one.unlock_engine()
        assert await two.lock_engine()
        await two.unlock_engine()
    finally:
        await database.close()


async def test_a_batch_requeued_in_its_order_runs_in_its_order(job_store: JobStore) -> None:
    first = new()
    then = new(depends_on=first.id, fail_fast=True)
    await job_store.insert([(first, NOW), (then, NOW)])
    [started], _ = await job_store.claim(NOW, 5, NOW + LEASE, urgent_only=False)
    settled = await job_store.save([(transitions.fail(started, "boom", NOW + 1, None), NOW + 1)])
    assert settled is not None and [job.id for job in settled.cancelled] == [then.id]
    requeued = await job_store.requeue([first.id, then.id], NOW + 2)
    assert [job.id for job in requeued] == [first.id, then.id]
    assert (await job_store.counts())["pending"] == 2
    jobs, _ = await job_store.claim(NOW + 3, 5, NOW + LEASE, urgent_only=False)
    assert [job.id for job in jobs] == [first.id]  # ``then`` waits for ``first`` again
    await job_store.save([(transitions.succeed(jobs[0], None, NOW + 4), NOW + 4)])
    jobs, _ = await job_store.claim(NOW + 5, 5, NOW + LEASE, urgent_only=False)
    assert [job.id for job in jobs] == [then.id]


async def test_filters_and_whole_objects_as_the_job_json(job_store: JobStore) -> None:
    made = [new(document_id="doc_abc", channels=["blog"], params={"n": 1}),
            new(correlation_id="corr-9", metadata={"k": "v"}), new(kind="other"),
            new(scheduled_for=NOW + 60_000)]
    await job_store.insert([(job, job.scheduled_for or NOW) for job in made])
    await job_store.claim(NOW, 1, NOW + LEASE, urgent_only=False)  # the oldest: made[0]
    by_q = await job_store.page(JobFilter(q="doc_a"), 10)
    assert [job.id for job in by_q.jobs] == [made[0].id]
    assert (by_q.total, by_q.total_exact) == (1, True)  # counted, not from the tallies
    assert [j.id for j in (await job_store.page(JobFilter(q="corr-"), 10)).jobs] == [made[1].id]
    assert [j.id for j in (await job_store.page(JobFilter(q=made[2].id), 10)).jobs] == [made[2].id]
    both = await job_store.page(JobFilter(statuses=("pending", "in_progress")), 2, offset=1)
    assert [job.id for job in both.jobs] == [made[2].id, made[1].id] and both.total == 4
    assert (await job_store.page(JobFilter(kind="other", statuses=("pending",)), 5)).total == 1
    # A time range is one of ids, which carry the real time they were made at.
    assert (await job_store.page(JobFilter(since=now_ms() + 60_000), 5)).jobs == []
    assert len((await job_store.page(JobFilter(since=NOW, until=now_ms()), 5)).jobs) == 4
    whole_page = await job_store.fields_page(JobFilter(), whole(), 10, total=False)
    stored = [await job_store.get(job.id) for job in reversed(made)]
    assert whole_page.jobs == [job.to_json() for job in stored if job is not None]
    assert [list(row) for row in whole_page.jobs] == [list(job.to_json()) for job in stored
                                                       if job is not None]  # keys in order
    assert whole_page.total == 0  # not counted when not asked
