"""The workers and the life of an attempt: start, run the handler, end, store the outcome.

A worker waits in the ready queue until the feeder (or a submit) gives it a job already
stored started (``in_progress``, attempt counted), then calls the handler under the kind's
timeout. The end (completed, partial, failed with or without a retry, cancelled) is decided
in memory (:mod:`.transitions`) and stored by the save batcher; events go out after each
commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as random_module
from collections.abc import Callable, Sequence
from typing import Any

from ..cache.protocol import Cache
from ..errors import DatabaseUnavailable, InsufficientStorage
from ..events import ERROR, JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED, JOB_UPDATE, Event, EventBus
from ..ids import iso
from ..records.job import Job, JobStatus
from ..store.jobs import JobStore, Settled
from . import transitions
from .batcher import Batcher
from .feeder import Feeder
from .kinds import JobContext, KindRegistry, Outcome, PermanentFailure
from .retry import Backoff
from .running import Deadlines, Failure, ProgressReports, Running
from .tasks import Tasks

log = logging.getLogger("toombos_edge.jobs.engine")
handler_log = logging.getLogger("toombos_edge.jobs.handler")
SAVE_RETRY_SECONDS = 1.0  #: between tries to store outcomes while the disk is full
CANCEL_WAIT = 10.0  #: seconds a cancel waits for a running handler to stop

END_EVENTS = {
    JobStatus.completed: JOB_COMPLETED,
    JobStatus.partial: JOB_COMPLETED,
    JobStatus.failed: JOB_FAILED,
    JobStatus.cancelled: JOB_CANCELLED,
}


def failure_event(job: Job) -> Event:
    """A failed job as seed 004's ``error`` event (the dashboards show it)."""
    return Event.data(ERROR, {
        "error_type": "job_failed", "message": job.last_error, "job_id": job.id,
        "kind": job.kind, "attempts": job.attempts, "endpoint": None,
        "timestamp": iso(job.updated_at),
    })


class Attempts:
    """The jobs workers hold (running, or ended with their outcome being stored), their
    time limits and progress, the urgent jobs run outside the workers, and the outcomes'
    writes. Counts what it started and how each attempt ended."""

    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        registry: KindRegistry,
        feeder: Feeder,
        *,
        changed: Callable[[], None],
        clock: Callable[[], int],
        backoff: Backoff,
        random: Callable[[], float] = random_module.random,
        cache: Cache | None = None,
    ) -> None:
        self._store, self._bus, self._registry, self._feeder = store, bus, registry, feeder
        self._changed, self._clock, self._cache = changed, clock, cache
        self._backoff, self._random = backoff, random
        self.running: dict[str, Running] = {}  #: jobs a worker holds (starting or running)
        self._finishing: dict[str, Running] = {}  #: ended, their outcome being stored
        self._saves = Batcher(store.save, self._saved, "save", self._save_failed)
        self._progress = ProgressReports(store, bus, clock, self.running)
        self._deadlines = Deadlines(self.running)
        self.urgent = Tasks(changed)  #: urgent jobs, each run by a task of its own
        self.counts = dict.fromkeys(
            ("started", "completed", "partial", "failed", "cancelled"), 0)

    def __repr__(self) -> str:
        return f"<Attempts running={len(self.running)} finishing={len(self._finishing)}>"

    @property
    def idle(self) -> bool:
        return not (self.running or self._finishing or len(self.urgent)) and (
            self._saves.idle and self._progress.batcher.idle)

    def held(self) -> list[str]:
        """Ids of the jobs held here: their leases must be renewed."""
        return [*self.running, *self._finishing]

    def find(self, job_id: str) -> Running | None:
        return self.running.get(job_id) or self._finishing.get(job_id)

    async def work(self) -> None:
        """A worker: run each job the ready queue gives it, until the queue closes."""
        task, ready = asyncio.current_task(), self._feeder.ready
        while (job := await ready.take()) is not None:
            try:
                await self._run(job, task)
            except Exception:  # a bug here must not cost a worker; the lease recovers the job
                log.exception("worker failed on job %s", job.id)

    def run_urgent(self, job_id: str) -> None:
        """Start a stored pending urgent job at once, outside the workers."""
        self.urgent.spawn(self._run_urgent(job_id), f"urgent-{job_id}")

    async def stop_held(self, running: Running) -> Job:
        """Cancel a job held here, and wait (a while) until its end is stored: a running
        handler is cancelled; a job given to a worker that has not taken it never ran."""
        job = running.job
        if running.saved is None:
            running.saved = asyncio.get_running_loop().create_future()
        if job.id in self.running and not running.cancel_requested:
            running.cancel_requested = True
            if running.task is not None:
                running.task.cancel()
        elif running.task is None:
            self._store_end(running, transitions.cancel(transitions.unstart(job), self._clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.saved), CANCEL_WAIT)
        return running.job  # as its worker ended it

    def stop_timers(self) -> None:
        """No attempt runs any more (stop): no time limit is left to watch."""
        self._deadlines.close()

    async def drain(self) -> None:
        """Wait until every outcome and progress report is stored."""
        for batcher in (self._progress.batcher, self._saves):
            await batcher.drain()

    async def _run_urgent(self, job_id: str) -> None:
        now = self._clock()
        lease = now + self._feeder.lease_ms
        job = await self._store.claim_one(job_id, now, lease)
        if job is not None:
            self._feeder.announce_started([job])
            await self._run(job, asyncio.current_task())
        self._changed()

    async def _run(self, job: Job, task: asyncio.Task[Any] | None) -> None:
        """Run a job stored started for this worker (``task``), then store how it ended."""
        running = Running(job, task)
        self.running[job.id] = running
        self.counts["started"] += 1
        try:
            result = await self._attempt(running)
        except asyncio.CancelledError:
            if not running.cancel_requested:  # stopping: ``stop`` requeues it
                self.running.pop(job.id, None)
                raise
            result = None
        if task is not None:  # the job ended: take back each cancel the engine requested
            for _ in range(running.cancel_requested + running.timed_out):
                if task.cancelling():
                    task.uncancel()
        self._end(running, result)

    async def _attempt(self, running: Running) -> Outcome | Failure | None:
        job = running.job
        kind = self._registry.find(job.kind)
        if kind is None:
            return Failure(f"no handler for job kind {job.kind!r}", final=True)
        ctx = JobContext(
            job=job, cache=self._cache,
            log=logging.LoggerAdapter(handler_log, {"job_id": job.id, "kind": job.kind}),
            on_progress=lambda percent, message: self._progress.report(running, percent, message),
        )
        if kind.timeout > 0:
            self._deadlines.watch(running, kind.timeout)
        try:
            return await kind.run(ctx)
        except asyncio.CancelledError:
            task = running.task
            # Only the time limit's own cancel ends the attempt as timed out; a stop or a
            # client's cancel that came on top of it goes on as that.
            if running.cancel_requested or not running.timed_out or (
                task is not None and task.cancelling() > 1
            ):
                raise
            return Failure(f"timed out after {kind.timeout:g} s")
        except TimeoutError:
            return Failure(f"timed out after {kind.timeout:g} s")
        except PermanentFailure as exc:
            return Failure(f"{type(exc).__name__}: {exc}", final=True, outcome=exc.outcome)
        except Exception as exc:
            return Failure(f"{type(exc).__name__}: {exc}")

    def _end(self, running: Running, result: Outcome | Failure | None) -> None:
        job, now = running.job, self._clock()
        self.running.pop(job.id, None)
        if running.progress_timer is not None:  # the final state carries the progress
            self._progress.forget(running)
        if running.cancel_requested:
            job = transitions.cancel(job, now)
        elif isinstance(result, Failure):
            retry_at = self._retry_at(job, now, result.final)
            job = transitions.fail(job, result.error, now, retry_at, result.outcome)
        else:
            job = transitions.succeed(job, result, now)
        self._store_end(running, job)

    def _store_end(self, running: Running, job: Job) -> None:
        running.job = job
        self._finishing[job.id] = running
        pending = job.status is JobStatus.pending and job.scheduled_for is not None
        due = job.scheduled_for if pending and job.scheduled_for else job.updated_at
        self._saves.add((job, due))

    def _retry_at(self, job: Job, now: int, final: bool) -> int | None:
        if final or job.attempts >= job.max_attempts:
            return None
        return now + int(self._backoff.delay(job.attempts, self._random()) * 1000)

    def _saved(self, items: Sequence[tuple[Job, int]], settled: Settled | None) -> None:
        now, due_now = self._clock(), False
        for job, due in items:
            running = self._finishing.pop(job.id, None)
            if running is not None and running.saved is not None:
                running.saved.set_result(None)
            # Stored: a retry is claimed from the database as a new record, an end is final.
            if job.status is JobStatus.pending:
                self._bus.publish(Event(JOB_UPDATE, job))
                due_now = due_now or due <= now
                if due > now:
                    self._feeder.wake_at(due)
            else:
                self.counts[job.status] += 1  # a StrEnum member is its value as a key
                self._bus.publish(Event(END_EVENTS[job.status], job))
                if job.status is JobStatus.failed:
                    self._bus.publish(failure_event(job))
        if due_now:
            self._feeder.due()
        self._feeder.settled(settled)  # their dependents: cancelled, or now due
        self._changed()

    def _save_failed(self, items: Sequence[tuple[Job, int]], exc: Exception) -> None:
        """Outcomes refused for lack of space, or while the database did not answer, are
        stored once it can take them (the jobs stay held meanwhile: leases renewed, a
        cancel waits); other failures end the wait of whoever waits for them."""
        if isinstance(exc, InsufficientStorage | DatabaseUnavailable):
            asyncio.get_running_loop().call_later(SAVE_RETRY_SECONDS, self._resave, list(items))
            return
        for job, _due in items:
            running = self._finishing.pop(job.id, None)
            if running is not None and running.saved is not None:
                running.saved.set_exception(exc)
        self._changed()

    def _resave(self, items: Sequence[tuple[Job, int]]) -> None:
        for item in items:
            self._saves.add(item)
