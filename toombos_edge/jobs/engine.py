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
import logging
import random as random_module
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..cache.protocol import Cache
from ..events import JOB_UPDATE, QUEUE_PAUSED, QUEUE_RESUMED, Event, EventBus
from ..ids import now_ms
from ..records.job import Job
from ..store.jobs import JobStore
from . import operations
from .attempts import END_EVENTS, Attempts
from .feeder import Feeder
from .kinds import KindRegistry
from .operations import BatchResult, Operations
from .retry import Backoff
from .submission import Submission
from .tasks import cancel_all

__all__ = ["BatchResult", "JobEngine"]

log = logging.getLogger(__name__)


class JobEngine:
    """Runs jobs of the kinds in ``registry``; see the module docstring.

    It owns its parts, each with its own state: the :class:`.feeder.Feeder` (the ready
    queue, claims, hand-over of fresh jobs, the pause), :class:`.attempts.Attempts` (the
    jobs workers hold, their limits, progress and outcomes), :class:`.submission.Submission`
    (new jobs and their inserts) and :class:`.operations.Operations` (cancel, retry). Here:
    the public API, the lifetime (start with recovery, stop), ``join``, ``stats`` and the
    housekeeping tick.
    """

    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        registry: KindRegistry,
        *,
        workers: int = 4,
        lease_seconds: float = 60.0,
        backoff: Backoff | None = None,
        clock: Callable[[], int] = now_ms,
        random: Callable[[], float] = random_module.random,
        cache: Cache | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        """``poll_seconds``: other engines share the store (PostgreSQL): look for due jobs
        and rescue leases that ran out that often (see :mod:`.nodes`)."""
        self.registry = registry
        self._store, self._bus, self._clock = store, bus, clock
        self._workers = workers
        self._lease_ms = int(lease_seconds * 1000)
        self._poll_ticks = 0 if poll_seconds is None else max(1, round(poll_seconds))
        self._changes = asyncio.Event()  #: set by a part that may have gone idle (``join``)
        changed = self._changes.set
        self._feeder = Feeder(store, bus, clock, lease_ms=self._lease_ms, changed=changed)
        self._attempts = Attempts(
            store, bus, registry, self._feeder, changed=changed, clock=clock,
            backoff=backoff or Backoff(), random=random, cache=cache,
        )
        self._submission = Submission(
            store, bus, registry, self._feeder, self._attempts, changed=changed, clock=clock)
        self._operations = Operations(
            store, bus, self._feeder, self._attempts, changed=changed, clock=clock)
        self._tasks: list[asyncio.Task[None]] = []  #: the workers, the feeder, housekeeping
        self.status_counts: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._stopping: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        c = self.counters
        return (
            f"<JobEngine workers={self._workers} running={len(self._attempts.running)} "
            f"queued={len(self._feeder.ready)} done={c['completed'] + c['partial']} "
            f"failed={c['failed']} cancelled={c['cancelled']}"
            f"{' paused' if self._feeder.paused else ''}>"
        )

    # -- jobs -----------------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        params: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        scheduled_for: int | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        document_id: str | None = None,
        channels: Sequence[str] | None = None,
        urgent: bool = False,
        depends_on: str | None = None,
        fail_fast: bool = False,
        validated: bool = False,
    ) -> Job:
        """Store a new job and return it (committed); raises ``Invalid`` for an unknown kind.

        With an ``idempotency_key`` already used, returns that job instead. ``urgent`` jobs
        go ahead of every other and run even while the queue is paused. A job that
        ``depends_on`` another is not claimed before that one has ended (no worker waits
        for it); with ``fail_fast`` it is cancelled instead if that one failed or was
        cancelled. ``validated``: the params are already in the kind's own form (a service
        made them from a request it decoded and checked), so they are not checked again.
        """
        return await self._submission.submit(
            kind, params, priority=priority, scheduled_for=scheduled_for,
            max_attempts=max_attempts, idempotency_key=idempotency_key,
            correlation_id=correlation_id, metadata=metadata, document_id=document_id,
            channels=channels, urgent=urgent, depends_on=depends_on, fail_fast=fail_fast,
            validated=validated,
        )

    async def get(self, job_id: str) -> Job:
        """The stored job; raises ``NotFound``."""
        return await operations.get(self._store, job_id)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a pending job at once, or a running one cooperatively; 409 if it ended."""
        return await self._operations.cancel(job_id)

    async def retry(self, job_id: str) -> Job:
        """Start a failed, partial or cancelled job again with its attempts reset."""
        return await self._operations.retry(job_id)

    async def retry_many(self, ids: Sequence[str]) -> BatchResult:
        """Retry each of ``ids`` that can be; the others are refused with the reason."""
        return await self._operations.retry_many(ids)

    async def cancel_many(self, ids: Sequence[str]) -> BatchResult:
        """Cancel each of ``ids`` that can be; the others are refused with the reason."""
        return await self._operations.cancel_many(ids)

    # -- the queue ------------------------------------------------------------------------

    def pause(self, *, announce: bool = True) -> None:
        """Stop starting jobs (urgent ones excepted); running ones finish. ``announce``:
        publish ``queue_paused`` (not when another node's pause is applied here)."""
        if self._feeder.pause():
            log.info("queue paused")
            if announce:
                self._bus.publish(Event.data(QUEUE_PAUSED, self._queue_state()))

    def resume(self, *, announce: bool = True) -> None:
        log.info("queue resumed")
        if self._feeder.resume() and announce:
            self._bus.publish(Event.data(QUEUE_RESUMED, self._queue_state()))

    def holds(self, job_id: str) -> bool:
        """A worker of this engine runs ``job_id``, or is about to."""
        return self._attempts.find(job_id) is not None or job_id in self._feeder.ready

    @property
    def ask_owner_to_cancel(self) -> Callable[[str], Awaitable[bool]] | None:
        """How a cancel of a job another engine runs is passed on (:mod:`.nodes`); None:
        no other engine shares the store, and such a cancel is refused."""
        return self._operations.ask_owner

    @ask_owner_to_cancel.setter
    def ask_owner_to_cancel(self, ask: Callable[[str], Awaitable[bool]] | None) -> None:
        self._operations.ask_owner = ask

    @property
    def paused(self) -> bool:
        return self._feeder.paused

    @property
    def claiming(self) -> bool:
        """A claim is in flight: due jobs are being started for idle workers right now."""
        return self._feeder.claim_done is not None

    def wake(self) -> None:
        """Look for due jobs now (after the injected clock moved, or a scheduled time)."""
        self._feeder.due()

    def _queue_state(self) -> dict[str, int]:
        return {"running": len(self._attempts.running),
                "queue_depth": self.status_counts.get("pending", 0) + len(self._feeder.ready)}

    # -- lifetime -------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover jobs left running by a dead process, then start the workers."""
        exclusive = await self._store.lock_engine()
        if not exclusive:  # the usual with several nodes; on SQLite, a second server
            log.log(logging.INFO if self._poll_ticks else logging.WARNING,
                    "another engine uses %r; recovering expired leases only", self._store)
        recovered = await self._recover(every_lease=exclusive)
        if recovered:
            log.info("requeued %d jobs left running by a stopped process", recovered)
        self.status_counts = await self._store.counts()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._attempts.work(), name=f"worker-{n}")
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
                interrupted = [running.job for running in self._attempts.running.values()]
                await cancel_all([*self._tasks, *self._attempts.urgent.all()])
                self._attempts.stop_timers()
            if interrupted:
                log.warning("requeueing %d jobs still running at stop", len(interrupted))
                await self._feeder.release(interrupted)
            await self._submission.drain()
            await self._attempts.drain()
            await self._feeder.wait_releases()
        finally:
            await self._store.unlock_engine()

    async def _let_running_finish(self, grace: float) -> None:
        began = asyncio.get_running_loop().time()
        if self._tasks:
            await self._tasks[self._workers]  # the feeder ends after its current claim
        await self._submission.drain()  # jobs handed over in flight land, and are released
        held = self._feeder.ready.take_all()
        self._feeder.ready.close()
        if held:
            await self._feeder.release(held)
        runners = [*self._tasks[: self._workers], *self._attempts.urgent.all()]
        left = grace - (asyncio.get_running_loop().time() - began)
        if runners and left > 0:
            await asyncio.wait(runners, timeout=left)

    async def join(self) -> None:
        """Wait until nothing is running, queued or due now (later schedules are not waited)."""
        while not self._is_idle():
            self._changes.clear()
            await self._changes.wait()

    def _is_idle(self) -> bool:
        return self._feeder.idle and self._attempts.idle and self._submission.idle

    # -- numbers --------------------------------------------------------------------------

    def pending_cancels(self) -> int:
        """Cancels requested of the engine's own tasks (workers, feeder, housekeeping) and
        not taken back. 0 in a healthy engine: a leftover cancel would end a worker at its
        next await (a job's cancel or time limit cancels its worker, then takes it back)."""
        return sum(task.cancelling() for task in self._tasks if not task.done())

    @property
    def counters(self) -> dict[str, int]:
        """Jobs submitted, started, ended each way, cancelled and retried since start."""
        ended, ops = self._attempts.counts, self._operations
        return {"submitted": self._submission.submitted, **ended,
                "cancelled": ended["cancelled"] + ops.cancelled, "retried": ops.retried}

    def stats(self) -> dict[str, Any]:
        """Queue depth, running jobs, counts per status and counters since start."""
        return {
            "workers": self._workers,
            "paused": self._feeder.paused,
            "running": len(self._attempts.running),
            "queued": len(self._feeder.ready),
            "queue_depth": self.status_counts.get("pending", 0) + len(self._feeder.ready),
            "counts": dict(self.status_counts),
            "since_start": self.counters,
            "rates": dict(self._rates),
        }

    async def _housekeep(self) -> None:
        """Every second: counts per status and rates; every third of a lease: renew leases."""
        ticks, last = 0, self.counters
        while True:
            await asyncio.sleep(1.0)
            ticks += 1
            counters = self.counters
            self._rates = {k: float(v - last[k]) for k, v in counters.items()}
            last = counters
            try:
                self.status_counts = await self._store.counts()
                if ticks % max(1, self._lease_ms // 3000) == 0:
                    await self._renew_leases()
                if self._poll_ticks and ticks % self._poll_ticks == 0:
                    await self._poll()
            except Exception:  # the database is having a moment: try again next tick
                log.exception("job housekeeping failed")

    async def _poll(self) -> None:
        """Rescue the jobs whose lease ran out (their node died), and look for due jobs
        (other nodes' events may have been lost)."""
        recovered = await self._recover(every_lease=False)
        if recovered:
            log.warning("rescued %d jobs whose lease ran out", recovered)
        self._feeder.due()

    async def _recover(self, *, every_lease: bool) -> int:
        """Requeue (or end) jobs whose lease is not held, announce each, settle their
        dependents; returns how many."""
        recovered, settled = await self._store.recover(self._clock(), every_lease=every_lease)
        for job in recovered:
            self._bus.publish(Event(END_EVENTS.get(job.status, JOB_UPDATE), job))
        self._feeder.settled(settled)
        return len(recovered)

    async def _renew_leases(self) -> None:
        ids = [*self._attempts.held(), *self._feeder.ready.ids()]
        if ids:
            until = self._clock() + self._lease_ms
            await self._store.renew_leases(ids, until)
