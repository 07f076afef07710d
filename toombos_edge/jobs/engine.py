"""The job engine: durable queue, workers, retries, scheduling, cancel, recovery.

A job is committed before ``submit`` returns. N workers wait in an in-memory ready queue;
nobody polls. When workers are idle and jobs are due, a feeder starts exactly that many jobs
in one statement (``in_progress``, attempt counted, ``started_at``, a lease) and gives one
to each idle worker; a fresh job with nothing older due goes straight to an idle worker,
stored started by its insert. So ``in_progress`` means running, nothing is held in memory
unstarted, and after a crash only jobs that really started are charged an attempt.
Outcomes, progress and new jobs are written in coalesced batches (:mod:`.batcher`) and each
is published on the bus only after its commit.
Jobs scheduled for later wake the feeder with one timer at the earliest due time. At start,
jobs whose lease expired (their process died) go back to pending with their attempt counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random as random_module
from collections.abc import Callable, Sequence
from typing import Any

from ..events import JOB_UPDATE, EventBus
from ..ids import now_ms
from ..store import Database
from . import store
from .attempts import END_EVENTS, Attempts
from .batcher import Batcher
from .core import log
from .feeder import Feeder
from .kinds import Cache, KindRegistry
from .lock import EngineLock
from .operations import BatchResult, Operations
from .queue import ReadyQueue
from .retry import Backoff
from .running import Deadlines, ProgressReports, Running
from .submission import Submission

__all__ = ["BatchResult", "JobEngine"]


class JobEngine(Submission, Attempts, Operations):
    """Runs jobs of the kinds in ``registry``; see the module docstring.

    Its parts: :class:`.submission.Submission` (submit, get), :class:`.attempts.Attempts`
    (workers, each attempt), :class:`.operations.Operations` (cancel, retry, pause); the
    shared state is declared by :class:`.core.EngineCore`. Here: building it, its lifetime
    (start with recovery, stop), ``join``, ``stats`` and the housekeeping tick.
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        registry: KindRegistry,
        *,
        workers: int = 4,
        lease_seconds: float = 60.0,
        backoff: Backoff | None = None,
        clock: Callable[[], int] = now_ms,
        random: Callable[[], float] = random_module.random,
        cache: Cache | None = None,
    ) -> None:
        self.registry = registry
        self._db, self._bus, self._cache = db, bus, cache
        self._workers = workers
        self._lease_ms = int(lease_seconds * 1000)
        self._backoff = backoff or Backoff()
        self._clock, self._random = clock, random
        self._ready = ReadyQueue()
        self._running: dict[str, Running] = {}
        self._finishing: dict[str, Running] = {}
        self._inserts = Batcher(db, store.insert, self._inserted, "insert", self._write_failed)
        self._saves = Batcher(db, store.save, self._saved, "save", self._save_failed)
        self._progress = ProgressReports(
            db, clock, self._running.__contains__, lambda job: self._publish(JOB_UPDATE, job)
        )
        self._deadlines = Deadlines(self._running)
        self._feeder = Feeder(
            db, self._ready, clock, lease_ms=self._lease_ms, started=self._claimed,
            release=self._release_soon, changed=self._changed,
        )
        self._ready.on_idle = self._feeder.want  # an idle worker asks the feeder for a job
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._lock = EngineLock(db.path)
        self.counters = dict.fromkeys(
            ("submitted", "started", "completed", "partial", "failed", "cancelled", "retried"), 0
        )
        self.status_counts: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._urgent: set[asyncio.Task[Any]] = set()
        self._reserved = {}
        self._stopping: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        c = self.counters
        return (
            f"<JobEngine workers={self._workers} running={len(self._running)} "
            f"queued={len(self._ready)} done={c['completed'] + c['partial']} "
            f"failed={c['failed']} cancelled={c['cancelled']}"
            f"{' paused' if self._feeder.paused else ''}>"
        )

    # -- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs left running by a dead process, then start the workers."""
        exclusive = self._lock.acquire()
        if not exclusive:
            log.warning("another engine holds %s; recovering expired leases only", self._lock)
        now = self._clock()
        recovered = await self._db.write(
            lambda c: store.recover(c, now, every_lease=exclusive)
        )
        for job in recovered:
            self._publish(END_EVENTS.get(job.status, JOB_UPDATE), job)
        if recovered:
            log.info("requeued %d jobs left running by a stopped process", len(recovered))
        self.status_counts = await self._db.read(store.counts)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._work(), name=f"worker-{n}")
                       for n in range(self._workers)]
        self._tasks.append(loop.create_task(self._feeder.run(), name="job-feeder"))
        self._tasks.append(loop.create_task(self._housekeep(), name="job-housekeeping"))
        self._feeder.started = True
        self._feeder.due()

    def begin_stop(self, grace: float) -> None:
        """Stop claiming at once; the rest of the stop (see :meth:`stop`) runs in a task."""
        if self._stopping is None:
            self._feeder.stop()
            self._stopping = asyncio.get_running_loop().create_task(
                self._stop(grace), name="job-engine-stop")

    async def stop(self, grace: float) -> None:
        """Stop taking jobs; let running ones finish within ``grace`` seconds, requeue the rest.

        A stop already begun (:meth:`begin_stop`) keeps its own grace; this waits for it.
        """
        self.begin_stop(grace)
        assert self._stopping is not None
        await self._stopping

    async def _stop(self, grace: float) -> None:
        try:
            try:
                await self._let_running_finish(grace)
            finally:  # whatever failed above: no task of the engine outlives the stop
                interrupted = [running.job for running in self._running.values()]
                await _cancel_all([*self._tasks, *self._urgent])
                self._deadlines.close()
            if interrupted:
                log.warning("requeueing %d jobs still running at stop", len(interrupted))
                await self._release(interrupted)
            for batcher in (self._inserts, self._progress.batcher, self._saves):
                await batcher.drain()
            while self._side:
                await asyncio.gather(*self._side, return_exceptions=True)
        finally:
            self._lock.release()

    async def _let_running_finish(self, grace: float) -> None:
        began = asyncio.get_running_loop().time()
        if self._tasks:
            await self._tasks[self._workers]  # the feeder ends after its current claim
        await self._inserts.drain()  # jobs handed over in flight land, and are released
        held = self._ready.take_all()
        self._ready.close()
        if held:
            await self._release(held)
        runners = [*self._tasks[: self._workers], *self._urgent]
        left = grace - (asyncio.get_running_loop().time() - began)
        if runners and left > 0:
            await asyncio.wait(runners, timeout=left)

    async def join(self) -> None:
        """Wait until nothing is running, queued or due now (later schedules are not waited)."""
        while not self._is_idle():
            self._idle.clear()
            await self._idle.wait()

    def stats(self) -> dict[str, Any]:
        """Queue depth, running jobs, counts per status and counters since start."""
        return {
            "workers": self._workers,
            "paused": self._feeder.paused,
            "running": len(self._running),
            "queued": len(self._ready),
            "queue_depth": self.status_counts.get("pending", 0) + len(self._ready),
            "counts": dict(self.status_counts),
            "since_start": dict(self.counters),
            "rates": dict(self._rates),
        }

    async def _housekeep(self) -> None:
        """Every second: counts per status and rates; every third of a lease: renew leases."""
        ticks, last = 0, dict(self.counters)
        while True:
            await asyncio.sleep(1.0)
            ticks += 1
            self._rates = {k: float(v - last[k]) for k, v in self.counters.items()}
            last = dict(self.counters)
            try:
                self.status_counts = await self._db.read(store.counts)
                if ticks % max(1, self._lease_ms // 3000) == 0:
                    await self._renew_leases()
            except Exception:  # the database is having a moment: try again next tick
                log.exception("job housekeeping failed")

    async def _renew_leases(self) -> None:
        ids = [*self._running, *self._finishing, *self._ready.ids()]
        if ids:
            until = self._clock() + self._lease_ms
            await self._db.write(lambda c: store.renew_leases(c, ids, until))


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
