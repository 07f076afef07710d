"""A job a worker holds: its record, and its progress reports (throttled per job).

A handler may report progress as often as it likes: the latest value is kept on the job at
once, and stored and published at most every :data:`PROGRESS_INTERVAL` seconds, the last
report of a burst included (a timer flushes it).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..events import JOB_UPDATE, Event, EventBus
from ..records.job import Job, JobStatus
from ..store.jobs import JobStore
from .batcher import Batcher
from .kinds import Outcome

PROGRESS_INTERVAL = 0.1  # seconds between stored progress reports of one job


@dataclass(slots=True)
class Running:
    job: Job
    task: asyncio.Task[Any] | None  #: None: given to a worker that has not taken it yet
    cancel_requested: bool = False
    saved: asyncio.Future[None] | None = None  #: made on demand: resolves once stored
    progress_at: float = 0.0
    progress_timer: asyncio.TimerHandle | None = None
    deadline: float = math.inf  #: loop time its attempt times out at
    timed_out: bool = False  #: :class:`Deadlines` cancelled it


@dataclass(slots=True)
class Failure:
    """An attempt that failed, and why."""

    error: str
    final: bool = False  #: no point in trying again (its kind is gone, PermanentFailure)
    outcome: Outcome | None = None  #: what a PermanentFailure said the parts produced


class Deadlines:
    """The time limits of running attempts, kept with one timer for the earliest instead of
    one per attempt (a Timeout and a timer armed and cancelled per attempt were a seventh of
    a no-op job's CPU on the loop, for limits most jobs never reach). The timer fires at
    the earliest deadline of the jobs running when it was set; an attempt that ended
    before is simply not found then, and the timer moves to the next one still running.
    """

    def __init__(self, running: dict[str, Running]) -> None:
        self._running = running
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf

    def watch(self, running: Running, seconds: float) -> None:
        """Cancel ``running``'s task (``timed_out`` set) if it still runs in ``seconds``."""
        running.deadline = deadline = asyncio.get_running_loop().time() + seconds
        if deadline < self._at:
            self._arm(deadline)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._at = None, math.inf

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._at = asyncio.get_running_loop().call_at(at, self._expire), at

    def _expire(self) -> None:
        self._timer, self._at = None, math.inf
        # Timers fire to the millisecond: what is due within one counts as due now.
        now, earliest = asyncio.get_running_loop().time() + 0.001, math.inf
        for running in list(self._running.values()):
            if running.deadline <= now:
                task = running.task
                # A task already being cancelled (a client's cancel, a stop) ends that way.
                if not running.timed_out and task is not None and not task.cancelling():
                    running.timed_out = True
                    task.cancel()
            elif running.deadline < earliest:
                earliest = running.deadline
        if earliest < math.inf:
            self._arm(earliest)


class ProgressReports:
    """The progress reports of the jobs in ``running`` (owned by :class:`.attempts.Attempts`):
    a report of a job no longer there is neither stored nor published."""

    def __init__(
        self, store: JobStore, bus: EventBus, clock: Callable[[], int], running: dict[str, Running]
    ) -> None:
        self._bus, self._clock, self._running = bus, clock, running
        self.batcher = Batcher(store.save_progress, self._stored, "progress")

    async def report(self, running: Running, percent: float, message: str) -> None:
        """A handler's ``ctx.progress``: kept now, stored and published when due. Late
        reports (a task the handler left behind) are dropped: the job has ended."""
        if running.job.status is not JobStatus.in_progress:
            return
        running.job = replace(running.job, progress_percent=percent, progress_message=message)
        if running.progress_timer is not None:
            return  # a report is already due; it will carry these latest values
        loop = asyncio.get_running_loop()
        wait = running.progress_at + PROGRESS_INTERVAL - loop.time()
        if wait <= 0:
            self._store(running)
        else:
            running.progress_timer = loop.call_later(wait, self._store, running)

    @staticmethod
    def forget(running: Running) -> None:
        """The job ended: its final state carries its progress."""
        if running.progress_timer is not None:
            running.progress_timer.cancel()
            running.progress_timer = None

    def _store(self, running: Running) -> None:
        running.progress_timer = None
        if running.job.id in self._running:
            running.progress_at = asyncio.get_running_loop().time()
            running.job = replace(running.job, updated_at=self._clock())
            self.batcher.add(running.job)

    def _stored(self, jobs: Sequence[Job], stored: list[bool]) -> None:
        for job, ok in zip(jobs, stored, strict=True):
            if ok and job.id in self._running:
                self._bus.publish(Event(JOB_UPDATE, job))
