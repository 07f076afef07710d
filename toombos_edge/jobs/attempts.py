"""The workers and the life of an attempt: start, run the handler, end, store the outcome.

A worker waits in the ready queue until the feeder (or a submit) gives it a job already
stored started (``in_progress``, attempt counted), then calls the handler under the kind's
timeout. The end (completed, partial, failed with or without a retry, cancelled) is decided
in memory (:mod:`.transitions`) and stored by the save batcher; events go out after each
commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ..errors import InsufficientStorage
from ..events import (
    ERROR,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_UPDATE,
    STARTED,
    Event,
)
from ..ids import iso
from . import store, transitions
from .core import EngineCore, log
from .kinds import JobContext, Outcome, PermanentFailure
from .model import Job, JobStatus
from .running import Failure, Running

handler_log = logging.getLogger("toombos_edge.jobs.handler")
SAVE_RETRY_SECONDS = 1.0  #: between tries to store outcomes while the disk is full

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


class Attempts(EngineCore):
    """The worker loop and each attempt's lifecycle."""

    async def _work(self) -> None:
        task = asyncio.current_task()
        while (job := await self._ready.take()) is not None:
            try:
                await self._run(job, task)
            except Exception:  # a bug here must not cost a worker; the lease recovers the job
                log.exception("worker failed on job %s", job.id)

    async def _run_urgent(self, job_id: str) -> None:
        now = self._clock()
        job = await self._db.write(lambda c: store.claim_one(c, job_id, now, now + self._lease_ms))
        if job is not None:
            self._claimed([job])
            await self._run(job, asyncio.current_task())
        self._changed()

    async def _run(self, job: Job, task: asyncio.Task[Any] | None) -> None:
        """Run a job stored started for this worker (``task``), then store how it ended."""
        running = Running(job, task)
        self._running[job.id] = running
        self.counters["started"] += 1
        try:
            result = await self._attempt(running)
        except asyncio.CancelledError:
            if not running.cancel_requested:  # stopping: ``stop`` requeues it
                self._running.pop(job.id, None)
                raise
            result = None
        if task is not None:  # the job ended: take back each cancel the engine requested
            for _ in range(running.cancel_requested + running.timed_out):
                if task.cancelling():
                    task.uncancel()
        self._end(running, result)

    async def _attempt(self, running: Running) -> Outcome | Failure | None:
        job = running.job
        kind = self.registry.find(job.kind)
        if kind is None:
            return Failure(f"no handler for job kind {job.kind!r}", final=True)
        ctx = JobContext(
            job=job, db=self._db, cache=self._cache,
            log=logging.LoggerAdapter(handler_log, {"job_id": job.id, "kind": job.kind}),
            _progress=lambda percent, message: self._progress.report(running, percent, message),
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
        self._running.pop(job.id, None)
        if running.progress_timer is not None:  # the final state carries the progress
            self._progress.forget(running)
        if running.cancel_requested:
            job = transitions.cancel(job, now)
        elif isinstance(result, Failure):
            retry_at = self._retry_at(job, now, result.final)
            job = transitions.fail(job, result.error, now, retry_at, result.outcome)
        else:
            job = transitions.succeed(job, result, now)
        running.job = job
        self._finishing[job.id] = running
        pending = job.status is JobStatus.pending and job.scheduled_for is not None
        self._saves.add((job, job.scheduled_for if pending and job.scheduled_for else now))

    def _retry_at(self, job: Job, now: int, final: bool) -> int | None:
        if final or job.attempts >= job.max_attempts:
            return None
        return now + int(self._backoff.delay(job.attempts, self._random()) * 1000)

    def _claimed(self, jobs: Sequence[Job]) -> None:
        """Jobs the feeder (or an urgent submit) stored started: announce them."""
        for job in jobs:
            self._publish(JOB_UPDATE, job, STARTED)

    def _saved(self, items: Sequence[tuple[Job, int]], _result: object) -> None:
        now, due_now = self._clock(), False
        for job, due in items:
            running = self._finishing.pop(job.id, None)
            if running is not None and running.saved is not None:
                running.saved.set_result(None)
            # Stored: a retry is claimed from the database as a new object, an end is final.
            if job.status is JobStatus.pending:
                self._publish(JOB_UPDATE, job)
                due_now = due_now or due <= now
                if due > now:
                    self._feeder.wake_at(due)
            else:
                self.counters[job.status] += 1  # a StrEnum member is its value as a key
                self._publish(END_EVENTS[job.status], job)
                if job.status is JobStatus.failed:
                    self._bus.publish(failure_event(job))
        if due_now:
            self._feeder.due()
        self._changed()

    def _save_failed(self, items: Sequence[tuple[Job, int]], exc: Exception) -> None:
        """Outcomes refused for lack of space are stored once there is room again (the jobs
        stay held meanwhile: leases renewed, a cancel waits); other failures as any write."""
        if not isinstance(exc, InsufficientStorage):
            self._write_failed(items, exc)
            return
        asyncio.get_running_loop().call_later(SAVE_RETRY_SECONDS, self._resave, list(items))

    def _resave(self, items: Sequence[tuple[Job, int]]) -> None:
        for item in items:
            self._saves.add(item)

    def _write_failed(self, items: Sequence[tuple[Job, int]], exc: Exception) -> None:
        for job, _due in items:
            worker = self._reserved.pop(job.id, None)
            if worker is not None:  # its insert failed: the reserved worker goes back
                self._ready.give(worker, None)
            running = self._finishing.pop(job.id, None)
            if running is not None and running.saved is not None:
                running.saved.set_exception(exc)
        self._changed()
