"""The job engine: durable queue, workers, retries, scheduling, cancel, recovery.

A job is committed before ``submit`` returns. A feeder claims due jobs from the database in
batches (``in_progress`` under a lease) into an in-memory ready queue; N workers take from
it, so nobody polls. Outcomes, progress and new jobs are written in coalesced batches
(:mod:`.batcher`) and each is published on the bus only after its commit. Jobs scheduled for
later wake the feeder with one timer at the earliest due time. At start, jobs whose lease
expired (their process died) go back to pending with their attempt counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as random_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, NotFound
from ..events import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_CREATED,
    JOB_FAILED,
    JOB_UPDATE,
    Event,
    EventBus,
)
from ..ids import id_ms, new_id, now_ms
from ..store import Database
from . import store, transitions
from .batcher import Batcher
from .feeder import Feeder
from .kinds import Cache, JobContext, JobKind, KindRegistry, Outcome
from .lock import EngineLock
from .model import Job, JobStatus
from .queue import ReadyQueue
from .retry import Backoff
from .running import Failure, ProgressReports, Running

log = logging.getLogger(__name__)
handler_log = logging.getLogger("toombos_edge.jobs.handler")

CANCEL_WAIT = 10.0  # seconds a cancel waits for a running handler to stop
END_EVENTS = {
    JobStatus.completed: JOB_COMPLETED,
    JobStatus.partial: JOB_COMPLETED,
    JobStatus.failed: JOB_FAILED,
    JobStatus.cancelled: JOB_CANCELLED,
}
REFUSE_CANCEL = "job {id} is already {status}: only pending or running jobs can be cancelled"
REFUSE_RETRY = {
    JobStatus.pending: "job {id} is pending: it is already waiting to run",
    JobStatus.in_progress: "job {id} is running: cancel it first, then retry",
    JobStatus.completed: "job {id} completed: there is nothing to retry",
}


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch operation changed, and what it refused with why."""

    touched: list[Job]
    refused: dict[str, str]


class JobEngine:
    """Runs jobs of the kinds in ``registry``; see the module docstring."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        registry: KindRegistry,
        *,
        workers: int = 4,
        prefetch: int | None = None,
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
        self._saves = Batcher(db, store.save, self._saved, "save", self._write_failed)
        self._progress = ProgressReports(
            db, clock, self._running.__contains__, lambda job: self._publish(JOB_UPDATE, job)
        )
        self._feeder = Feeder(
            db, self._ready, clock, prefetch=prefetch or max(256, workers * 4),
            lease_ms=self._lease_ms, release=self._release_soon, changed=self._changed,
        )
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
        self._announced: set[str] = set()

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

    async def stop(self, grace: float) -> None:
        """Stop taking jobs; let running ones finish within ``grace`` seconds, requeue the rest."""
        self._feeder.stop()
        if self._tasks:
            await self._tasks[self._workers]  # the feeder ends after its current claim
        await self._inserts.drain()  # jobs handed over in flight land, and are released
        held = self._ready.take_all()
        self._ready.close()
        if held:
            await self._release(held)
        runners = [*self._tasks[: self._workers], *self._urgent]
        if runners:
            await asyncio.wait(runners, timeout=grace)
        interrupted = [running.job for running in self._running.values()]
        await _cancel_all([*self._tasks, *self._urgent])
        if interrupted:
            log.warning("requeueing %d jobs still running at stop", len(interrupted))
            await self._release(interrupted)
        for batcher in (self._inserts, self._progress.batcher, self._saves):
            await batcher.drain()
        while self._side:
            await asyncio.gather(*self._side, return_exceptions=True)
        self._lock.release()

    # -- submitting and reading -----------------------------------------------------------

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
    ) -> Job:
        """Store a new job and return it (committed); raises ``Invalid`` for an unknown kind.

        With an ``idempotency_key`` already used, returns that job instead. ``urgent`` jobs
        go ahead of every other and run even while the queue is paused.
        """
        spec = self.registry.get(kind)
        now = self._clock()
        job_id = new_id("job")
        job = Job(
            id=job_id, kind=kind, status=JobStatus.pending, created_at=id_ms(job_id),
            updated_at=now, priority=priority, params=spec.validate(dict(params or {})),
            document_id=document_id, channels=list(channels or ()),
            max_attempts=max_attempts or spec.max_attempts, idempotency_key=idempotency_key,
            correlation_id=correlation_id, metadata=dict(metadata or {}),
            scheduled_for=scheduled_for, urgent=urgent,
        )
        return await self._store_new(job, now)

    async def _store_new(self, job: Job, now: int) -> Job:
        due = now if job.scheduled_for is None else job.scheduled_for
        keyed = job.idempotency_key is not None
        if not keyed and not job.urgent and due <= now and self._feeder.may_hand_over():
            self._feeder.claim_fresh(job, now)
        elif due <= now and not job.urgent:
            self._feeder.held_back()
        if keyed:
            stored = await self._db.write(lambda c: store.insert_once(c, job, due))
            if stored is not job:
                return stored
            self._inserted([(job, due)], None)
        else:
            await self._inserts.add_and_wait((job, due))
        if job.urgent:
            task = asyncio.get_running_loop().create_task(self._run_urgent(job.id))
            self._urgent.add(task)
            task.add_done_callback(self._urgent_done)
        return job

    async def get(self, job_id: str) -> Job:
        """The stored job; raises ``NotFound``."""
        job = await self._db.read(lambda c: store.get(c, job_id))
        if job is None:
            raise NotFound(f"no job {job_id}")
        return job

    # -- changing jobs --------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a pending job at once, or a running one cooperatively; 409 if it ended."""
        for _ in range(3):
            running = self._running.get(job_id) or self._finishing.get(job_id)
            if running is not None:
                return await self._cancel_held(running)
            held = self._ready.remove(job_id)
            if held is not None:
                return await self._cancel_held(Running(held, None))
            cancelled = await self._cancel_pending([job_id])
            if cancelled:
                return cancelled[0]
            job = await self.get(job_id)
            claiming = self._feeder.claim_done
            if job.status is not JobStatus.in_progress or claiming is None:
                break
            await asyncio.shield(claiming)  # it is being claimed: ask again after
        raise Conflict(REFUSE_CANCEL.format(id=job_id, status=job.status.value))

    async def retry(self, job_id: str) -> Job:
        """Start a failed, partial or cancelled job again with its attempts reset."""
        result = await self.retry_many([job_id])
        if result.touched:
            return result.touched[0]
        reason = result.refused.get(job_id, f"no job {job_id}")
        raise NotFound(reason) if reason.startswith("no job") else Conflict(reason)

    async def retry_many(self, ids: Sequence[str]) -> BatchResult:
        """Retry each of ``ids`` that can be; the others are refused with the reason."""
        now = self._clock()
        touched = await self._db.write(lambda c: store.requeue(c, ids, now))
        for job in touched:
            self._publish(JOB_UPDATE, job)
        self.counters["retried"] += len(touched)
        if touched:
            self._feeder.due()
        return BatchResult(touched, await self._refusals(ids, touched, REFUSE_RETRY))

    async def cancel_many(self, ids: Sequence[str]) -> BatchResult:
        """Cancel each of ``ids`` that can be; the others are refused with the reason."""
        touched = await self._cancel_pending(ids)
        done = {job.id for job in touched}
        for job_id in ids:
            if job_id not in done and (job_id in self._running or job_id in self._ready):
                with contextlib.suppress(Conflict, NotFound):
                    touched.append(await self.cancel(job_id))
        refusals = {s: REFUSE_CANCEL for s in JobStatus if s.terminal}
        return BatchResult(touched, await self._refusals(ids, touched, refusals))

    def pause(self) -> None:
        """Stop starting jobs (urgent ones excepted); running ones finish."""
        if self._feeder.paused:
            return
        self._feeder.paused = True
        self._release_soon(self._ready.take_all())
        log.info("queue paused")
        self._changed()

    def resume(self) -> None:
        self._feeder.paused = False
        log.info("queue resumed")
        self._feeder.due()

    @property
    def paused(self) -> bool:
        return self._feeder.paused

    def wake(self) -> None:
        """Look for due jobs now (after the injected clock moved, or a scheduled time)."""
        self._feeder.due()

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

    # -- internals: running ---------------------------------------------------------------

    async def _work(self) -> None:
        low_water = self._feeder.prefetch // 2
        while (job := await self._ready.take()) is not None:
            if len(self._ready) < low_water:
                self._feeder.want()
            try:
                await self._run(job)
            except Exception:  # a bug here must not cost a worker; the lease recovers the job
                log.exception("worker failed on job %s", job.id)

    async def _run_urgent(self, job_id: str) -> None:
        now = self._clock()
        job = await self._db.write(lambda c: store.claim_one(c, job_id, now, now + self._lease_ms))
        if job is not None:
            await self._run(job)
        self._changed()

    async def _run(self, job: Job) -> None:
        task = asyncio.current_task()
        running = Running(job, task)
        self._running[job.id] = running
        self.counters["started"] += 1
        if job.id in self._announced:  # its job_created already said "in_progress"
            self._announced.discard(job.id)
        else:
            self._publish(JOB_UPDATE, job)
        try:
            result = await self._attempt(running)
        except asyncio.CancelledError:
            if not running.cancel_requested:  # stopping: ``stop`` requeues it
                self._running.pop(job.id, None)
                raise
            result = None
        if running.cancel_requested and task is not None and task.cancelling():
            task.uncancel()
        self._end(running, result)

    async def _attempt(self, running: Running) -> Outcome | Failure | None:
        job = running.job
        if job.kind not in self.registry:
            return Failure(f"no handler for job kind {job.kind!r}", final=True)
        kind: JobKind = self.registry.get(job.kind)
        ctx = JobContext(
            job=job, db=self._db, cache=self._cache,
            log=logging.LoggerAdapter(handler_log, {"job_id": job.id, "kind": job.kind}),
            _progress=lambda percent, message: self._progress.report(running, percent, message),
        )
        try:
            async with asyncio.timeout(kind.timeout if kind.timeout > 0 else None):
                return await kind.run(ctx)
        except TimeoutError:
            return Failure(f"timed out after {kind.timeout:g} s")
        except Exception as exc:
            return Failure(f"{type(exc).__name__}: {exc}")

    def _end(self, running: Running, result: Outcome | Failure | None) -> None:
        job, now = running.job, self._clock()
        self._running.pop(job.id, None)
        self._progress.forget(running)
        if running.cancel_requested:
            transitions.cancel(job, now)
        elif isinstance(result, Failure):
            transitions.fail(job, result.error, now, self._retry_at(job, now, result.final))
        else:
            transitions.succeed(job, result, now)
        self._finishing[job.id] = running
        pending = job.status is JobStatus.pending and job.scheduled_for is not None
        self._saves.add((job, job.scheduled_for if pending and job.scheduled_for else now))

    def _retry_at(self, job: Job, now: int, final: bool) -> int | None:
        if final or job.attempts >= job.max_attempts:
            return None
        return now + int(self._backoff.delay(job.attempts, self._random()) * 1000)

    async def _cancel_held(self, running: Running) -> Job:
        job = running.job
        if running.saved is None:
            running.saved = asyncio.get_running_loop().create_future()
        if job.id in self._running and not running.cancel_requested:
            running.cancel_requested = True
            if running.task is not None:
                running.task.cancel()
        elif running.task is None:  # claimed but not started: cancel it here
            transitions.cancel(job, self._clock())
            self._finishing[job.id] = running
            self._saves.add((job, job.updated_at))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running.saved), CANCEL_WAIT)
        if job.status is JobStatus.pending:  # it had ended with a retry scheduled
            cancelled = await self._cancel_pending([job.id])
            if cancelled:
                return cancelled[0]
        if job.status is not JobStatus.cancelled and job.status.terminal:
            raise Conflict(REFUSE_CANCEL.format(id=job.id, status=job.status.value))
        return job

    async def _cancel_pending(self, ids: Sequence[str]) -> list[Job]:
        now = self._clock()
        cancelled = await self._db.write(lambda c: store.cancel_pending(c, ids, now))
        for job in cancelled:
            self.counters["cancelled"] += 1
            self._publish(JOB_CANCELLED, job)
        self._changed()
        return cancelled

    def _release_soon(self, jobs: list[Job]) -> None:
        if jobs:
            self._spawn(self._release(jobs), "release")

    async def _release(self, jobs: Sequence[Job]) -> None:
        """Back to pending, attempt not counted (pause, stop)."""
        ids, now = [job.id for job in jobs], self._clock()
        self._announced.difference_update(ids)
        for job in await self._db.write(lambda c: store.release(c, ids, now)):
            self._publish(JOB_UPDATE, job)
        self._changed()

    async def _refusals(
        self, ids: Sequence[str], touched: Sequence[Job], reasons: dict[JobStatus, str]
    ) -> dict[str, str]:
        done = {job.id for job in touched}
        rest = [job_id for job_id in ids if job_id not in done]
        found = await self._db.read(lambda c: store.statuses(c, rest)) if rest else {}
        refused = {}
        for job_id in rest:
            status = found.get(job_id)
            if status is None:
                refused[job_id] = f"no job {job_id}"
            else:
                reason = reasons.get(status, "job {id} is {status}")
                refused[job_id] = reason.format(id=job_id, status=status.value)
        return refused

    # -- internals: after commits ---------------------------------------------------------

    def _inserted(self, items: Sequence[tuple[Job, int]], _result: object) -> None:
        now, due_now, later = self._clock(), False, None
        claimed = []
        for job, due in items:
            self._publish(JOB_CREATED, job)
            if job.status is JobStatus.in_progress:
                claimed.append(job)
            elif due <= now:
                due_now = True
            elif later is None or due < later:
                later = due
        self.counters["submitted"] += len(items)
        if claimed:
            self._announced.update(job.id for job in claimed)
            self._hand_over(claimed)
        if due_now:
            self._feeder.due(backlog=False)  # ``submit`` already held newer jobs back
        if later is not None and self._feeder.started:
            self._feeder.wake_at(later)
        self._changed()

    def _hand_over(self, jobs: list[Job]) -> None:
        if self._feeder.stopping or self._feeder.paused:
            self._release_soon(jobs)
        else:
            self._ready.push(jobs)

    def _saved(self, items: Sequence[tuple[Job, int]], _result: object) -> None:
        now, due_now = self._clock(), False
        for job, due in items:
            running = self._finishing.pop(job.id, None)
            if running is not None and running.saved is not None:
                running.saved.set_result(None)
            if job.status is JobStatus.pending:
                self._publish(JOB_UPDATE, job)
                due_now = due_now or due <= now
                if due > now:
                    self._feeder.wake_at(due)
            else:
                self.counters[job.status.value] += 1
                self._publish(END_EVENTS[job.status], job)
        if due_now:
            self._feeder.due()
        self._changed()

    def _write_failed(self, items: Sequence[tuple[Job, int]], exc: Exception) -> None:
        for job, _due in items:
            running = self._finishing.pop(job.id, None)
            if running is not None and running.saved is not None:
                running.saved.set_exception(exc)
        self._changed()

    def _publish(self, type_: str, job: Job) -> None:
        self._bus.publish(Event.job(type_, job.to_json()))

    # -- internals: bookkeeping -----------------------------------------------------------

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
            or not (self._inserts.idle and self._saves.idle and self._progress.batcher.idle)
        )
        feeder = self._feeder
        return not busy and (
            feeder.paused or feeder.queue_empty or not feeder.started or feeder.stopping
        )

    def _changed(self) -> None:
        if self._is_idle():
            self._idle.set()

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
