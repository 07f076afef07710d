"""The job engine over a real store: every transition, retries, cancel, recovery.

Each engine test runs on both backends (ids end in ``[sqlite]``/``[postgres]``): a real
SQLite file, and a real PostgreSQL database (tests/postgres.py). They read and write jobs
through the :class:`JobStore` protocol; the few that look at the tables behind it say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from typing import Any

import pytest
from job_backends import AnyDatabase, exact_counts, sqlite_exact_counts, writes
from support import eventually_async

from toombos_edge.errors import Conflict, Invalid, NotFound
from toombos_edge.events import JOB_EVENTS, Event, EventBus
from toombos_edge.ids import iso, new_id, now_ms
from toombos_edge.jobs.engine import JobEngine
from toombos_edge.jobs.kinds import JobContext, JobKind, KindRegistry, Outcome, PermanentFailure
from toombos_edge.jobs.retry import Backoff
from toombos_edge.records.job import Job, JobStatus
from toombos_edge.store import Database
from toombos_edge.store.jobs import JobFilter, JobStore
from toombos_edge.store.postgres import jobs_sql
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.sqlite import jobs as store
from toombos_edge.store.sqlite.database import apply_migrations, migrations
from toombos_edge.store.sqlite.jobs import SqliteJobStore


class Clock:
    """An injected wall clock (ms) that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class Gate:
    """A handler that says when it started and runs until the test opens the gate."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.opened = asyncio.Event()
        self.cancelled = False
        self.entered = 0
        self._entry = asyncio.Event()

    async def wait_entered(self, count: int) -> None:
        """Until ``count`` handlers have entered the gate (5 s at most)."""
        async with asyncio.timeout(5):
            while self.entered < count:
                self._entry.clear()
                await self._entry.wait()

    async def run(self, ctx: JobContext) -> Outcome:
        self.entered += 1
        self._entry.set()
        self.started.set()
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return Outcome({"gate": "opened"})


async def noop(ctx: JobContext) -> None:
    return None


async def boom(ctx: JobContext) -> None:
    raise RuntimeError("the handler broke")


async def forever(ctx: JobContext) -> None:
    await asyncio.Event().wait()


async def half(ctx: JobContext) -> Outcome:
    return Outcome({"email": {"status": "success"}, "twitter": {"status": "failed"}}, True)


Factory = Callable[..., Awaitable[JobEngine]]


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def registry(gate: Gate) -> KindRegistry:
    kinds = KindRegistry()
    kinds.register(JobKind("noop", noop))
    kinds.register(JobKind("boom", boom, max_attempts=3))
    kinds.register(JobKind("forever", forever, timeout=0.05, max_attempts=1))
    kinds.register(JobKind("half", half))
    kinds.register(JobKind("gate", gate.run))
    return kinds


@pytest.fixture
async def make_engine(
    job_store: JobStore, registry: KindRegistry, events: list[Event], clock: Clock
) -> AsyncIterator[Factory]:
    made: list[JobEngine] = []

    async def make(*, start: bool = True, **options: Any) -> JobEngine:
        bus = EventBus()
        bus.subscribe(events.append)
        options.setdefault("workers", 2)
        options.setdefault("backoff", Backoff(2.0, 60.0))
        engine = JobEngine(job_store, bus, registry, clock=clock, **options)
        made.append(engine)
        if start:
            await engine.start()
        return engine

    yield make
    for engine in made:
        await engine.stop(1.0)


def types(events: list[Event], job_id: str) -> list[str]:
    """The job events of ``job_id`` (a failed job also makes an ``error`` event)."""
    return [e.type for e in events
            if e.type in JOB_EVENTS and e.body["job"]["job_id"] == job_id]


async def test_submit_commits_before_returning(
    make_engine: Factory, job_store: JobStore
) -> None:
    engine = await make_engine(start=False)
    job = await engine.submit("noop", {"x": 1}, correlation_id="c-1", metadata={"a": "b"})
    row = await job_store.get(job.id)  # committed: read on another connection
    assert row is not None and row.status is JobStatus.pending
    assert (row.params, row.correlation_id, row.metadata) == ({"x": 1}, "c-1", {"a": "b"})


async def test_job_runs_and_each_change_is_published(
    make_engine: Factory, events: list[Event]
) -> None:
    engine = await make_engine()
    job = await engine.submit("noop")
    await engine.join()
    done = await engine.get(job.id)
    assert done.status is JobStatus.completed and done.attempts == 1
    assert done.completed_at is not None and done.started_at is not None
    assert types(events, job.id) == ["job_created", "job_update", "job_completed"]
    last = events[-1].to_json()
    assert last["job"]["status"] == "completed" and last["timestamp"].endswith("Z")


async def test_a_job_record_keeps_the_state_it_was_made_with(
    make_engine: Factory, events: list[Event]
) -> None:
    """Records are values: the one ``submit`` returned, and the one each event renders when it
    is first sent (here after the job ended), keep their state while the job goes on; none
    can be changed in place."""
    engine = await make_engine()
    job = await engine.submit("noop")
    await engine.join()
    assert job.status in (JobStatus.pending, JobStatus.in_progress) and job.completed_at is None
    statuses = [e.body["job"]["status"] for e in events
                if e.type in JOB_EVENTS and e.body["job"]["job_id"] == job.id]
    assert statuses[0] == job.status.value and statuses[-1] == "completed"
    assert "in_progress" in statuses
    with pytest.raises(FrozenInstanceError):
        job.status = JobStatus.completed  # type: ignore[misc]
    assert (await engine.get(job.id)).status is JobStatus.completed


async def test_unknown_kind_is_refused_at_submission(make_engine: Factory) -> None:
    engine = await make_engine()
    with pytest.raises(Invalid, match="unknown job kind"):
        await engine.submit("nope")


async def test_failures_back_off_within_jitter_then_fail(
    make_engine: Factory, clock: Clock, events: list[Event]
) -> None:
    draws = iter([0.0, 0.999])
    backoff = Backoff(2.0, 60.0)
    engine = await make_engine(random=lambda: next(draws), backoff=backoff)
    job = await engine.submit("boom")
    for attempt in (1, 2):
        failed_at = clock.now
        await engine.join()
        waiting = await engine.get(job.id)
        assert waiting.status is JobStatus.pending and waiting.attempts == attempt
        assert waiting.scheduled_for is not None
        low, high = backoff.bounds(attempt)
        assert low * 1000 <= waiting.scheduled_for - failed_at <= high * 1000
        assert len(waiting.errors) == attempt
        assert waiting.errors[-1]["error"] == "RuntimeError: the handler broke"
        clock.advance(high - 0.001)
        engine.wake()
        await engine.join()
        if attempt == 1:  # 0.0 drew the shortest wait: due by now, so it ran again
            continue
    final = await engine.get(job.id)
    assert final.status is JobStatus.failed and final.attempts == 3
    assert [e["attempt"] for e in final.errors] == [1, 2, 3]
    assert types(events, job.id)[-1] == "job_failed"


async def test_backoff_bounds_grow_and_cap() -> None:
    backoff = Backoff(1.0, 10.0)
    assert [backoff.bounds(n) for n in (1, 2, 3, 5)] == [(0.5, 1), (1, 2), (2, 4), (5, 10)]
    assert backoff.delay(3, 0.0) == 2 and backoff.delay(3, 0.5) == 3


async def test_a_handler_that_times_out_fails(make_engine: Factory) -> None:
    engine = await make_engine()
    job = await engine.submit("forever")
    await engine.join()
    failed = await engine.get(job.id)
    assert failed.status is JobStatus.failed
    assert failed.last_error == "timed out after 0.05 s"


async def test_time_limits_of_overlapping_attempts(
    make_engine: Factory, registry: KindRegistry
) -> None:
    # One timer serves every attempt: set for the earliest limit, it must still stop a job
    # that outlives the quick one it was set for, and spare the quick one that ended.
    async def quick(ctx: JobContext) -> None:
        await asyncio.sleep(0)

    async def stuck(ctx: JobContext) -> None:
        await asyncio.Event().wait()

    registry.register(JobKind("quick", quick, timeout=0.02, max_attempts=1))
    registry.register(JobKind("stuck", stuck, timeout=0.08, max_attempts=1))
    registry.register(JobKind("soon", stuck, timeout=0.01, max_attempts=1))
    engine = await make_engine(workers=3)
    first = await engine.submit("quick")
    second = await engine.submit("stuck")
    third = await engine.submit("soon")  # a shorter limit than the timer is set for
    await engine.join()
    assert (await engine.get(first.id)).status is JobStatus.completed
    stopped = await engine.get(second.id)
    assert stopped.status is JobStatus.failed
    assert stopped.last_error == "timed out after 0.08 s"
    assert (await engine.get(third.id)).last_error == "timed out after 0.01 s"


async def test_partial_outcome(make_engine: Factory, events: list[Event]) -> None:
    engine = await make_engine()
    job = await engine.submit("half")
    await engine.join()
    done = await engine.get(job.id)
    assert done.status is JobStatus.partial
    # each part as the handler said, stamped with the time the job ended
    assert done.results["twitter"] == {"status": "failed", "timestamp": iso(done.completed_at)}
    assert types(events, job.id)[-1] == "job_completed"


async def test_cancel_a_running_job_mid_way(
    make_engine: Factory, gate: Gate, job_store: JobStore, events: list[Event]
) -> None:
    engine = await make_engine()
    job = await engine.submit("gate")
    await gate.started.wait()
    cancelled = await engine.cancel(job.id)
    assert cancelled.status is JobStatus.cancelled and gate.cancelled
    row = await job_store.get(job.id)
    assert row is not None and row.status is JobStatus.cancelled
    assert types(events, job.id)[-1] == "job_cancelled"
    with pytest.raises(Conflict, match="already cancelled"):
        await engine.cancel(job.id)
    follow = await engine.submit("noop")  # the worker that was cancelled still works
    await engine.join()
    assert (await engine.get(follow.id)).status is JobStatus.completed


async def test_cancel_pending_is_immediate(make_engine: Factory) -> None:
    engine = await make_engine(start=False)
    job = await engine.submit("noop")
    assert (await engine.cancel(job.id)).status is JobStatus.cancelled
    with pytest.raises(NotFound):
        await engine.cancel("job_00000000000000000000000000")


async def test_retry_rules(make_engine: Factory, gate: Gate) -> None:
    engine = await make_engine()
    failed = await engine.submit("boom", max_attempts=1)
    done = await engine.submit("noop")
    await engine.join()
    assert (await engine.get(failed.id)).status is JobStatus.failed
    with pytest.raises(Conflict, match="completed"):
        await engine.retry(done.id)
    gate.opened.set()
    again = await engine.retry(failed.id)
    assert again.id == failed.id and again.status is JobStatus.pending and again.attempts == 0
    await engine.join()
    retried = await engine.get(failed.id)
    assert retried.status is JobStatus.failed and retried.attempts == 1
    assert len(retried.errors) == 2  # the history of both runs is kept
    with pytest.raises(NotFound):
        await engine.retry("job_00000000000000000000000000")


async def test_retry_or_cancel_of_an_unknown_job_writes_nothing(
    make_engine: Factory, job_database: AnyDatabase
) -> None:
    engine = await make_engine(start=False)
    job = await engine.submit("noop")
    unknown = "job_00000000000000000000000000"
    before = (job_database.commits, writes(job_database))
    for operation in (engine.retry, engine.cancel):
        with pytest.raises(NotFound):
            await operation(unknown)
    assert (await engine.retry_many([unknown])).refused == {unknown: f"no job {unknown}"}
    assert (await engine.cancel_many([unknown])).refused == {unknown: f"no job {unknown}"}
    assert (job_database.commits, writes(job_database)) == before  # not even an empty transaction
    # A batch that names a job too writes once, for that job.
    assert [j.id for j in (await engine.cancel_many([unknown, job.id])).touched] == [job.id]
    assert job_database.commits == before[0] + 1


async def test_retrying_a_running_job_is_refused(make_engine: Factory, gate: Gate) -> None:
    engine = await make_engine()
    job = await engine.submit("gate")
    await gate.started.wait()
    with pytest.raises(Conflict, match="running"):
        await engine.retry(job.id)
    gate.opened.set()
    await engine.join()


async def test_pause_and_resume(make_engine: Factory) -> None:
    engine = await make_engine()
    engine.pause()
    job = await engine.submit("noop")
    await engine.join()
    assert engine.paused and (await engine.get(job.id)).status is JobStatus.pending
    urgent = await engine.submit("noop", urgent=True)
    await engine.join()
    assert (await engine.get(urgent.id)).status is JobStatus.completed
    assert (await engine.get(job.id)).status is JobStatus.pending
    engine.resume()
    await engine.join()
    assert (await engine.get(job.id)).status is JobStatus.completed


async def test_idempotency_key_returns_the_same_job(
    make_engine: Factory, job_store: JobStore
) -> None:
    engine = await make_engine(start=False)
    first, second = await asyncio.gather(
        engine.submit("noop", idempotency_key="k-1"), engine.submit("noop", idempotency_key="k-1")
    )
    assert first.id == second.id
    assert [job.id for job in (await job_store.page(JobFilter(), 10)).jobs] == [first.id]


async def test_priority_then_schedule_then_creation_order(
    make_engine: Factory, registry: KindRegistry
) -> None:
    ran: list[str] = []

    async def record(ctx: JobContext) -> None:
        ran.append(ctx.params["name"])

    registry.register(JobKind("record", record))
    engine = await make_engine(start=False, workers=1)
    for name, priority in [("low", 0), ("high", 5), ("mid-1", 1), ("mid-2", 1)]:
        await engine.submit("record", {"name": name}, priority=priority)
    await engine.start()
    await engine.join()
    assert ran == ["high", "mid-1", "mid-2", "low"]


async def test_scheduled_job_starts_on_time_without_polling(
    job_store: JobStore, job_database: AnyDatabase, registry: KindRegistry
) -> None:
    bus = EventBus()
    engine = JobEngine(job_store, bus, registry, workers=1)  # the real clock
    await engine.start()
    try:
        due = now_ms() + 300
        job = await engine.submit("noop", scheduled_for=due)
        before = writes(job_database)
        done = asyncio.Event()
        bus.subscribe(lambda e: done.set() if e.type == "job_completed" else None)
        await asyncio.wait_for(done.wait(), 5)
        finished = await engine.get(job.id)
        assert finished.started_at is not None and due <= finished.started_at < due + 1000
        assert writes(job_database) - before <= 4  # a claim, a start, a save: nobody polled
    finally:
        await engine.stop(1.0)


async def test_progress_is_stored_and_published_at_most_every_100ms(
    make_engine: Factory, registry: KindRegistry, events: list[Event]
) -> None:
    def last_report_published() -> bool:
        return any(e.type == "job_update" and e.body["job"]["progress"]["message"] == "step 99"
                   for e in events)

    async def chatty(ctx: JobContext) -> None:
        for percent in range(100):
            await ctx.progress(percent, f"step {percent}")
        # the handler keeps working until its last report is out
        await eventually_async(last_report_published, 5, "the last report", every=0.01)

    registry.register(JobKind("chatty", chatty))
    engine = await make_engine()
    job = await engine.submit("chatty")
    await engine.join()
    updates = [
        e.body["job"]["progress"] for e in events
        if e.type == "job_update" and e.body["job"]["job_id"] == job.id
        and e.body["job"]["progress"]["message"]
    ]
    assert 1 <= len(updates) <= 3
    assert updates[-1] == {"percent": 99.0, "message": "step 99"}


async def test_expired_leases_are_recovered_at_start(
    make_engine: Factory, job_store: JobStore, clock: Clock
) -> None:
    """A job left in progress by a process that died runs again, its attempt counted."""
    job_id = new_id("job")
    dead = Job(job_id, "noop", JobStatus.in_progress, now_ms(), now_ms(), attempts=1,
               started_at=now_ms(), lease_until=clock.now + 60_000)
    await job_store.insert([(dead, clock.now)])
    engine = await make_engine()
    await engine.join()
    recovered = await engine.get(job_id)
    assert recovered.status is JobStatus.completed and recovered.attempts == 2
    assert recovered.errors[0]["error"].startswith("interrupted")


async def test_stop_requeues_running_jobs(
    make_engine: Factory, gate: Gate, job_store: JobStore
) -> None:
    engine = await make_engine()
    job = await engine.submit("gate")
    await gate.started.wait()
    await engine.stop(0.05)
    row = await job_store.get(job.id)
    assert row is not None and row.status is JobStatus.pending and row.attempts == 0


async def test_repr_and_stats_count(make_engine: Factory) -> None:
    engine = await make_engine()
    for _ in range(3):
        await engine.submit("noop")
    await engine.join()
    assert "done=3" in repr(engine) and "failed=0" in repr(engine)
    stats = engine.stats()
    assert stats["since_start"]["completed"] == 3 and stats["running"] == 0


async def test_a_job_whose_kind_is_gone_fails_without_retrying(
    make_engine: Factory, job_store: JobStore, clock: Clock
) -> None:
    orphan = Job(new_id("job"), "uninstalled", JobStatus.pending, now_ms(), now_ms())
    await job_store.insert([(orphan, clock.now)])
    engine = await make_engine()
    await engine.join()
    failed = await engine.get(orphan.id)
    assert failed.status is JobStatus.failed and failed.attempts == 1
    assert failed.last_error == "no handler for job kind 'uninstalled'"


async def test_cancel_a_job_waiting_behind_a_busy_worker(
    make_engine: Factory, gate: Gate, registry: KindRegistry
) -> None:
    ran: list[str] = []

    async def record(ctx: JobContext) -> None:
        ran.append(ctx.job.id)

    registry.register(JobKind("record", record))
    engine = await make_engine(workers=1)
    await engine.submit("gate")
    await gate.started.wait()
    waiting = await engine.submit("record")  # pending: the only worker is busy
    cancelled = await engine.cancel(waiting.id)
    assert cancelled.status is JobStatus.cancelled
    gate.opened.set()
    await engine.join()
    assert ran == [] and (await engine.get(waiting.id)).status is JobStatus.cancelled


async def test_pause_keeps_waiting_jobs_pending(
    make_engine: Factory, gate: Gate
) -> None:
    engine = await make_engine(workers=1)
    running = await engine.submit("gate")
    await gate.started.wait()
    held = [await engine.submit("noop") for _ in range(3)]
    engine.pause()
    gate.opened.set()
    await engine.join()
    assert (await engine.get(running.id)).status is JobStatus.completed
    for job in held:
        again = await engine.get(job.id)
        assert again.status is JobStatus.pending and again.attempts == 0
    engine.resume()
    await engine.join()
    assert {(await engine.get(job.id)).status for job in held} == {JobStatus.completed}


async def test_leases_of_running_jobs_are_renewed(
    job_store: JobStore, registry: KindRegistry, gate: Gate
) -> None:
    engine = JobEngine(job_store, EventBus(), registry, workers=1, lease_seconds=3)
    await engine.start()
    try:
        job = await engine.submit("gate")
        await gate.started.wait()
        first = (await engine.get(job.id)).lease_until
        assert first is not None

        async def renewed_lease() -> int | None:
            lease = (await engine.get(job.id)).lease_until
            return lease if lease != first else None

        renewed = await eventually_async(renewed_lease, 5, "the lease to be renewed", every=0.05)
        assert renewed > first
        gate.opened.set()
        await engine.join()
    finally:
        await engine.stop(1.0)


async def test_status_counters_match_the_table_after_every_kind_of_change(
    make_engine: Factory, job_store: JobStore, job_database: AnyDatabase
) -> None:
    engine = await make_engine(workers=1)
    await engine.submit("noop")
    failed = await engine.submit("boom", max_attempts=1)
    await engine.submit("half")
    await engine.join()
    engine.pause()
    waiting = await engine.submit("noop")
    await engine.cancel(waiting.id)
    await engine.retry(failed.id)
    await engine.submit("noop", scheduled_for=now_ms() + 60_000)

    actual: Counter[str] = Counter()  # the table's jobs per status
    for kind_status, n in (await exact_counts(job_database)).items():
        actual[kind_status.split("/")[1]] += n
    counted = {k: v for k, v in (await job_store.counts()).items() if v}
    assert counted == actual == {"completed": 1, "partial": 1, "cancelled": 1, "pending": 2}


async def test_status_counters_stay_exact_through_recovery_idempotency_urgency_and_stop(
    make_engine: Factory, gate: Gate, job_store: JobStore, job_database: AnyDatabase,
    clock: Clock,
) -> None:
    dead = Job(new_id("job"), "noop", JobStatus.in_progress, clock.now, clock.now, attempts=1,
               max_attempts=1, started_at=clock.now, lease_until=clock.now + 60_000)
    await job_store.insert([(dead, clock.now)])
    engine = await make_engine(workers=1)  # recovers ``dead``: failed, its last attempt used
    await engine.join()
    handed = await engine.submit("noop")  # an idle worker: stored started by its insert
    await engine.join()
    await engine.submit("noop", idempotency_key="k")
    assert (await engine.submit("noop", idempotency_key="k")).idempotency_key == "k"
    await engine.submit("noop", urgent=True)
    await engine.join()
    running = await engine.submit("gate")
    await gate.started.wait()
    await engine.stop(0.01)  # gives the running job back: pending
    assert (await engine.get(dead.id)).status is JobStatus.failed
    assert (await engine.get(handed.id)).attempts == 1
    assert (await engine.get(running.id)).status is JobStatus.pending
    assert await exact_counts(job_database) == {"noop/failed": 1, "noop/completed": 3,
                                            "gate/pending": 1}


async def test_a_save_that_finds_its_job_taken_counts_only_what_it_changed(
    job_store: JobStore, job_database: AnyDatabase, clock: Clock
) -> None:
    """Another engine recovered one of two jobs this one still ran (its lease ran out):
    the save leaves that job alone and counts only the other."""
    now = clock.now
    ours, taken = (Job(new_id("job"), "noop", JobStatus.in_progress, now, now, attempts=1,
                       started_at=now, lease_until=now + 60_000) for _ in range(2))
    await job_store.insert([(ours, now), (taken, now)])
    await job_store.release([taken.id], now)  # what a recovery elsewhere leaves: pending
    ended = [replace(job, status=JobStatus.completed, completed_at=now, lease_until=None)
             for job in (ours, taken)]
    await job_store.save([(job, now) for job in ended])
    assert await exact_counts(job_database) == {"noop/completed": 1, "noop/pending": 1}
    left = await job_store.get(taken.id)
    assert left is not None and left.status is JobStatus.pending


async def test_jobs_behind_busy_workers_stay_pending_until_one_is_free(
    make_engine: Factory, gate: Gate, job_store: JobStore, clock: Clock, events: list[Event]
) -> None:
    """Nothing is claimed ahead of a free worker: waiting jobs are not shown running nor
    charged an attempt, and each starts (and is stamped) when a worker takes it."""
    engine = await make_engine(workers=1)
    await engine.submit("gate")
    await gate.started.wait()
    waiting = [await engine.submit("noop") for _ in range(3)]
    assert engine.stats()["queued"] == 0 and engine.stats()["running"] == 1
    for job in waiting:
        row = await job_store.get(job.id)
        assert row is not None and row.status is JobStatus.pending
        assert row.attempts == 0 and row.started_at is None and row.lease_until is None
    counts = await job_store.counts()
    assert counts["in_progress"] == 1 and counts["pending"] == 3
    clock.advance(5)
    gate.opened.set()
    await engine.join()
    for job in waiting:
        done = await engine.get(job.id)
        assert done.status is JobStatus.completed and done.attempts == 1
        assert done.started_at == clock.now  # when it started, not when it was submitted
        assert types(events, job.id) == ["job_created", "job_update", "job_completed"]


async def test_a_claim_starts_no_more_jobs_than_idle_workers(
    make_engine: Factory, gate: Gate, job_store: JobStore
) -> None:
    engine = await make_engine(workers=3, start=False)
    for _ in range(10):
        await engine.submit("gate")
    await engine.start()
    await gate.wait_entered(3)
    counts = await job_store.counts()
    assert counts["in_progress"] == 3 and counts["pending"] == 7
    gate.opened.set()
    await engine.join()
    assert (await job_store.counts())["completed"] == 10


async def test_a_permanent_failure_is_not_retried(
    make_engine: Factory, registry: KindRegistry, events: list[Event]
) -> None:
    async def unconfigured(ctx: JobContext) -> None:
        raise PermanentFailure("no webhook configured for twitter")

    registry.register(JobKind("unconfigured", unconfigured, max_attempts=3))
    engine = await make_engine()
    job = await engine.submit("unconfigured")
    await engine.join()
    failed = await engine.get(job.id)
    assert failed.status is JobStatus.failed and failed.attempts == 1
    assert failed.last_error == "PermanentFailure: no webhook configured for twitter"
    assert [e["attempt"] for e in failed.errors] == [1]
    assert types(events, job.id)[-1] == "job_failed"


async def test_a_permanent_failure_with_partial_results_ends_partial(
    make_engine: Factory, registry: KindRegistry, events: list[Event]
) -> None:
    results = {"email": {"status": "success"}, "twitter": {"status": "failed"}}

    async def half_refused(ctx: JobContext) -> None:
        raise PermanentFailure("twitter: bad template", Outcome(results, partial=True))

    registry.register(JobKind("half_refused", half_refused, max_attempts=3))
    engine = await make_engine()
    job = await engine.submit("half_refused")
    await engine.join()
    done = await engine.get(job.id)
    assert done.status is JobStatus.partial and done.attempts == 1
    assert done.completed_at is not None
    stamp = iso(done.completed_at)
    assert done.results == {name: {**r, "timestamp": stamp} for name, r in results.items()}
    assert done.errors[0]["error"] == "PermanentFailure: twitter: bad template"
    assert types(events, job.id)[-1] == "job_completed"


async def test_a_fresh_job_for_an_idle_worker_is_stored_started(
    make_engine: Factory, events: list[Event]
) -> None:
    """Nothing queued, a worker idle: the insert is the start (no separate start write)."""
    engine = await make_engine()
    await engine.join()  # the first claim found nothing: new jobs may skip the queue
    job = await engine.submit("noop")
    assert (await engine.get(job.id)).status in {JobStatus.in_progress, JobStatus.completed}
    await engine.join()
    done = await engine.get(job.id)
    assert done.status is JobStatus.completed and done.attempts == 1
    created = next(e for e in events if e.type == "job_created"
                   and e.body["job"]["job_id"] == job.id)
    assert created.body["job"]["status"] == "in_progress"
    assert engine.stats()["since_start"]["started"] == 1


async def within_turns(condition: Callable[[], bool], turns: int = 100) -> None:
    """Let the loop run other tasks until ``condition`` holds, for a few turns at most (no
    time passes: the engine's tasks step on each turn)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not true after {turns} loop turns")


async def test_a_job_held_back_during_a_claim_is_not_overtaken(
    make_engine: Factory, registry: KindRegistry
) -> None:
    order: list[str] = []

    async def record(ctx: JobContext) -> None:
        order.append(ctx.params["name"])

    registry.register(JobKind("record", record))
    engine = await make_engine(workers=1)
    await engine.join()
    engine.wake()  # a claim for the one idle worker, which will find nothing
    await within_turns(lambda: engine.claiming)
    await engine.submit("record", {"name": "older-high"}, priority=10)  # stored pending
    await engine.submit("record", {"name": "newer-low"})
    await engine.join()
    assert order == ["older-high", "newer-low"]


async def test_cancel_racing_the_claim_that_starts_the_job(
    make_engine: Factory, gate: Gate
) -> None:
    engine = await make_engine(workers=1)
    await engine.submit("gate")
    await gate.started.wait()
    waiting = await engine.submit("gate")  # pending: the worker is busy
    gate.opened.set()  # the first ends; its worker goes idle and the feeder claims `waiting`
    await within_turns(lambda: engine.claiming)
    gate.opened.clear()
    cancelled = await engine.cancel(waiting.id)  # pending in the database a moment ago
    assert cancelled.status is JobStatus.cancelled
    await engine.join()
    assert (await engine.get(waiting.id)).status is JobStatus.cancelled


# The claim's cost on each backend's own measure, below the protocol: SQLite's VM steps,
# PostgreSQL's rows read in the claim's transaction.
def test_a_claim_reads_no_job_scheduled_for_later(tmp_path: Path) -> None:
    """However many jobs wait for later, a claim does the same work (SQLite VM steps)."""

    def claim_steps(waiting: int) -> int:
        now = now_ms()
        due = [Job(new_id("job"), "noop", JobStatus.pending, now, now) for _ in range(5)]
        later = [Job(new_id("job"), "noop", JobStatus.pending, now, now,
                     scheduled_for=now + 3_600_000) for _ in range(waiting)]
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        with contextlib.closing(sqlite3.connect(tmp_path / f"{waiting}.db",
                                                isolation_level=None)) as conn:
            apply_migrations(conn)
            conn.execute("BEGIN")  # one transaction: in autocommit each row is an fsync
            store.insert(conn, [*((job, now) for job in due),
                                *((job, now + 3_600_000) for job in later)])
            conn.execute("COMMIT")
            conn.set_progress_handler(count, 10)
            started = store.claim(conn, now, 8, now + 60_000, urgent_only=False)
            assert {job.id for job in started} == {job.id for job in due}
            assert store.next_due(conn) == (now + 3_600_000 if waiting else None)
        return steps

    assert claim_steps(20_000) <= claim_steps(0) + 2


#: Rows a transaction read so far from the jobs table and its indexes: heap rows of
#: sequential scans, index entries, and rows fetched through them.
ROWS_READ = (
    "SELECT sum(pg_stat_get_xact_tuples_returned(oid) + pg_stat_get_xact_tuples_fetched(oid))"
    "::bigint FROM pg_class WHERE oid = 'jobs'::regclass "
    "OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'jobs'::regclass)"
)


async def test_a_claim_on_postgres_reads_no_job_scheduled_for_later(
    pg_database: PgDatabase
) -> None:
    """However many jobs wait for later, a claim reads the same rows: the due ones, and the
    earliest waiting one (when to wake up), a few index entries more at most."""
    now = now_ms()

    async def claim_reads() -> int:
        async with pg_database.connection() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                before = await conn.fetchval(ROWS_READ)
                started = await jobs_sql.start_due(conn, now, 8, now + 60_000,
                                                   urgent_only=False)
                assert {job.id for job in started} == {job.id for job in due}
                await jobs_sql.next_due(conn)
                read: int = await conn.fetchval(ROWS_READ) - before
            finally:  # the same due jobs for the next measure
                await transaction.rollback()
        return read

    due = [Job(new_id("job"), "noop", JobStatus.pending, now, now) for _ in range(5)]
    later = [Job(new_id("job"), "noop", JobStatus.pending, now, now,
                 scheduled_for=now + 3_600_000) for _ in range(20_000)]
    async with pg_database.transaction() as conn:
        await jobs_sql.insert_rows(conn, [(job, now) for job in due])
    alone = await claim_reads()
    async with pg_database.transaction() as conn:
        await jobs_sql.insert_rows(conn, [(job, now + 3_600_000) for job in later])
    await pg_database.execute("ANALYZE jobs")  # as autovacuum would: the plans of real use
    assert await claim_reads() <= alone + 6


# SQLite only: these convert files written by earlier versions; PostgreSQL's schema began
# at their end state (store/postgres/migrations/0001_schema.sql), with nothing to convert.
async def test_migration_0005_keeps_jobs_of_earlier_engines_runnable(
    tmp_path: Path, registry: KindRegistry
) -> None:
    """Before 0005 a pending job could hold a lease (claimed ahead of its start), and jobs due
    later sat in the queue: one leased row must run, one due in an hour must wait."""
    path, now = tmp_path / "edge.db", now_ms()
    leased, later = new_id("job"), new_id("job")
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for number, _name, sql in migrations()[:4]:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        for job_id, due, lease in [(leased, now - 1, now + 60_000), (later, now + 3_600_000, None)]:
            conn.execute(
                "INSERT INTO jobs (id, kind, status, max_attempts, created_at, updated_at, due_at, "
                "scheduled_for, lease_until) VALUES (?, 'noop', 'pending', 1, ?, ?, ?, ?, ?)",
                (job_id, now, now, due, due, lease),
            )
    db = Database(path)
    await db.open()
    engine = JobEngine(SqliteJobStore(db), EventBus(), registry, workers=1)
    try:
        await engine.start()
        await engine.join()
        ran, waiting = await engine.get(leased), await engine.get(later)
        assert ran.status is JobStatus.completed and ran.attempts == 1
        assert waiting.status is JobStatus.pending and waiting.attempts == 0
        assert await db.read(store.next_due) == now + 3_600_000
    finally:
        await engine.stop(1.0)
        await db.close()


def test_migration_0006_rebuilds_jobs_with_counts_kept_by_the_store(tmp_path: Path) -> None:
    """Jobs and counts carry over exact, no trigger is left to count twice, the status rule
    still holds, and writing a job needs no temporary b-tree (the old ``IN`` list did)."""
    now = now_ms()
    with contextlib.closing(sqlite3.connect(tmp_path / "edge.db", isolation_level=None)) as conn:
        for number, _name, sql in migrations()[:5]:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        for kind, status in [("noop", "completed"), ("noop", "completed"), ("gate", "failed")]:
            conn.execute(
                "INSERT INTO jobs (id, kind, status, max_attempts, created_at, updated_at, due_at) "
                "VALUES (?, ?, ?, 1, ?, ?, ?)", (new_id("job"), kind, status, now, now, now))
        conn.execute("UPDATE job_counts SET n = 7")  # drifted: rebuilt from the table
        apply_migrations(conn)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        triggers = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'")
        assert triggers.fetchall() == []
        assert sqlite_exact_counts(conn) == {"noop/completed": 2, "gate/failed": 1}
        job = Job(new_id("job"), "noop", JobStatus.pending, now, now)
        store.insert(conn, [(job, now)])
        assert sqlite_exact_counts(conn) == {
            "noop/completed": 2, "gate/failed": 1, "noop/pending": 1}
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE jobs SET status = 'done' WHERE id = ?", (job.id,))
        for sql, arity in [(store.INSERT, 22), (store.SAVE, 16)]:
            program = {row[1] for row in conn.execute(f"EXPLAIN {sql}", [None] * arity)}
            assert "OpenEphemeral" not in program


class SlowCleanup:
    """A handler that, once its time limit cancels it, cleans up until cancelled again."""

    def __init__(self) -> None:
        self.cleaning = asyncio.Event()

    async def run(self, ctx: JobContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # the time limit
            self.cleaning.set()
            await asyncio.Event().wait()  # ends only when cancelled once more
            raise

    async def wait_cleaning(self) -> None:
        async with asyncio.timeout(5):
            await self.cleaning.wait()


async def test_a_stop_during_a_timed_out_jobs_cleanup_requeues_it(
    make_engine: Factory, registry: KindRegistry, job_store: JobStore, events: list[Event]
) -> None:
    handler = SlowCleanup()
    registry.register(JobKind("slow", handler.run, timeout=0.05, max_attempts=1))
    engine = await make_engine(workers=1)
    job = await engine.submit("slow")
    await handler.wait_cleaning()
    await engine.stop(0.0)
    row = await job_store.get(job.id)
    assert row is not None and row.status is JobStatus.pending and row.attempts == 0
    mine = [(e.type, e.body["job"]["status"]) for e in events if e.body["job"]["job_id"] == job.id]
    assert mine[-1] == ("job_update", "pending") and engine.counters["failed"] == 0


async def test_a_cancel_during_a_timed_out_jobs_cleanup_cancels_it_and_frees_the_worker(
    make_engine: Factory, registry: KindRegistry
) -> None:
    handler = SlowCleanup()
    registry.register(JobKind("slow", handler.run, timeout=0.05, max_attempts=1))
    engine = await make_engine(workers=1)
    job = await engine.submit("slow")
    await handler.wait_cleaning()
    assert (await engine.cancel(job.id)).status is JobStatus.cancelled
    await engine.join()
    assert (await engine.get(job.id)).status is JobStatus.cancelled
    after = await engine.submit("noop")
    await engine.join()
    assert (await engine.get(after.id)).status is JobStatus.completed
    assert engine.pending_cancels() == 0  # no cancel of the engine's own left pending


async def test_progress_reported_after_the_handler_returned_changes_nothing(
    make_engine: Factory, registry: KindRegistry, events: list[Event]
) -> None:
    """A task the handler left behind reports progress after the job ended: the job's last
    event (which renders the ended job itself) and the stored job keep the end's progress."""
    late_report = asyncio.Event()
    left_behind: list[asyncio.Task[None]] = []

    async def leaky(ctx: JobContext) -> None:
        async def later() -> None:
            await late_report.wait()
            await ctx.progress(42, "after the end")

        left_behind.append(asyncio.create_task(later()))

    registry.register(JobKind("leaky", leaky, max_attempts=1))
    engine = await make_engine(workers=1)
    job = await engine.submit("leaky")
    await engine.join()
    late_report.set()
    await left_behind[0]
    final = [e for e in events if e.type == "job_completed"][-1]
    assert final.body["job"]["progress"] == {"percent": 100.0, "message": ""}
    assert (await engine.get(job.id)).progress_message == ""
