"""A job a worker holds: its record, and its progress reports (throttled per job).

A handler may report progress as often as it likes: the latest value is kept on the job at
once, and stored and published at most every :data:`PROGRESS_INTERVAL` seconds, the last
report of a burst included (a timer flushes it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..store import Database
from . import store
from .batcher import Batcher
from .kinds import Outcome
from .model import Job

PROGRESS_INTERVAL = 0.1  # seconds between stored progress reports of one job


@dataclass(slots=True)
class Running:
    job: Job
    task: asyncio.Task[Any] | None  #: None: given to a worker that has not taken it yet
    cancel_requested: bool = False
    saved: asyncio.Future[None] | None = None  #: made on demand: resolves once stored
    progress_at: float = 0.0
    progress_timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Failure:
    """An attempt that failed, and why."""

    error: str
    final: bool = False  #: no point in trying again (its kind is gone, PermanentFailure)
    outcome: Outcome | None = None  #: what a PermanentFailure said the parts produced


class ProgressReports:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], int],
        is_running: Callable[[str], bool],
        publish: Callable[[Job], None],
    ) -> None:
        self._clock, self._is_running, self._publish = clock, is_running, publish
        self.batcher = Batcher(db, store.save_progress, self._stored, "progress")

    async def report(self, running: Running, percent: float, message: str) -> None:
        """A handler's ``ctx.progress``: kept now, stored and published when due."""
        running.job.progress_percent, running.job.progress_message = percent, message
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
        if self._is_running(running.job.id):
            running.progress_at = asyncio.get_running_loop().time()
            running.job.updated_at = self._clock()
            self.batcher.add(running.job)

    def _stored(self, jobs: Sequence[Job], stored: list[bool]) -> None:
        for job, ok in zip(jobs, stored, strict=True):
            if ok and self._is_running(job.id):
                self._publish(job)
