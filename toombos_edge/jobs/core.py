"""The job engine's shared state and the small helpers every part of it uses.

:class:`EngineCore` declares what the engine holds (database, bus, ready queue, the jobs
workers run, the batchers, the feeder, counters); :class:`.engine.JobEngine` builds it, and
the parts (:mod:`.submission`, :mod:`.attempts`, :mod:`.operations`) work on it. Here:
publishing after commits, giving started jobs back, side tasks and the idle signal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import NotFound
from ..events import JOB_UPDATE, Event, EventBus
from ..store import Database
from . import store
from .batcher import Batcher
from .feeder import Feeder
from .kinds import Cache, KindRegistry
from .lock import EngineLock
from .model import Job
from .queue import ReadyQueue
from .retry import Backoff
from .running import Deadlines, ProgressReports, Running

log = logging.getLogger("toombos_edge.jobs.engine")


class EngineCore:
    """The state the engine's parts share; see :class:`.engine.JobEngine`."""

    registry: KindRegistry
    counters: dict[str, int]
    status_counts: dict[str, int]
    _db: Database
    _bus: EventBus
    _cache: Cache | None
    _workers: int
    _lease_ms: int
    _backoff: Backoff
    _clock: Callable[[], int]
    _random: Callable[[], float]
    _ready: ReadyQueue
    _running: dict[str, Running]  #: jobs a worker holds (starting or running)
    _finishing: dict[str, Running]  #: ended, their outcome being stored
    _inserts: Batcher[tuple[Job, int]]
    _saves: Batcher[tuple[Job, int]]
    _progress: ProgressReports
    _deadlines: Deadlines
    _feeder: Feeder
    _tasks: list[asyncio.Task[None]]
    _side: set[asyncio.Task[Any]]
    _urgent: set[asyncio.Task[Any]]
    _reserved: dict[str, asyncio.Future[Job | None]]  #: idle workers held for a fresh job
    _idle: asyncio.Event
    _lock: EngineLock
    _rates: dict[str, float]

    async def get(self, job_id: str) -> Job:
        """The stored job; raises ``NotFound``."""
        job = await self._db.read(lambda c: store.get(c, job_id))
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    async def _run_urgent(self, job_id: str) -> None:
        raise NotImplementedError  # the worker part (:mod:`.attempts`) runs jobs

    def _claimed(self, jobs: Sequence[Job]) -> None:
        raise NotImplementedError  # the worker part (:mod:`.attempts`) announces starts

    def _publish(self, type_: str, job: Job, note: str | None = None) -> None:
        """Announce a job: the event renders the (frozen) record when first sent."""
        self._bus.publish(Event(type_, job, note=note))  # Event.job, one call fewer

    def _release_soon(self, jobs: list[Job]) -> None:
        if jobs:
            self._spawn(self._release(jobs), "release")

    async def _release(self, jobs: Sequence[Job]) -> None:
        """Back to pending, attempt not counted (pause, stop)."""
        ids, now = [job.id for job in jobs], self._clock()
        for job in await self._db.write(lambda c: store.release(c, ids, now)):
            self._publish(JOB_UPDATE, job)
        if not self._feeder.stopping:
            self._feeder.due()  # due again: claim them when a worker is free (and unpaused)
        self._changed()

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._side.add(task)
        task.add_done_callback(self._side_done)

    def _urgent_done(self, task: asyncio.Task[Any]) -> None:
        self._urgent.discard(task)
        self._side_done(task)

    def _side_done(self, task: asyncio.Task[Any]) -> None:
        self._side.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task %s failed", task.get_name(), exc_info=task.exception())
        self._changed()

    def _is_idle(self) -> bool:
        busy = (
            self._running or self._finishing or len(self._ready) or self._side or self._urgent
            or self._feeder.claim_done is not None
            or not (self._inserts.idle and self._saves.idle
                    and self._progress.batcher.idle)
        )
        feeder = self._feeder
        return not busy and (
            feeder.paused or feeder.queue_empty or not feeder.started or feeder.stopping
        )

    def _changed(self) -> None:
        if self._is_idle():
            self._idle.set()
