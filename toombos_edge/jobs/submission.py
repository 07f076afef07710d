"""Submitting jobs: validated, committed before the caller hears the id, idempotent by key.

A new job with nothing older due and a worker idle is stored already started: that worker
is reserved for it and runs it as soon as the insert commits (so ``in_progress`` is still
"running", and the job costs no claim). Otherwise it is stored pending and the feeder
starts it when a worker is free. An idempotency key makes the insert one transaction that
returns the job already stored under that key. After the commit each job is announced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..events import JOB_CREATED, Event, EventBus
from ..ids import stamped_id
from ..logs import requester
from ..records.job import Job, JobStatus
from ..store.jobs import JobStore, Settled
from .attempts import Attempts
from .batcher import Batcher
from .feeder import Feeder
from .kinds import KindRegistry


class Submission:
    """``submit``, and what follows the commit of new jobs (it owns their inserts)."""

    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        registry: KindRegistry,
        feeder: Feeder,
        attempts: Attempts,
        *,
        changed: Callable[[], None],
        clock: Callable[[], int],
    ) -> None:
        self._store, self._bus, self._registry = store, bus, registry
        self._feeder, self._attempts = feeder, attempts
        self._changed, self._clock = changed, clock
        self._inserts = Batcher(store.insert, self._inserted, "insert", self._failed)
        self.submitted = 0

    def __repr__(self) -> str:
        return f"<Submission submitted={self.submitted} {self._inserts!r}>"

    @property
    def idle(self) -> bool:
        return self._inserts.idle

    async def drain(self) -> None:
        """Wait until every job submitted so far is stored (and handed over or given back)."""
        await self._inserts.drain()

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
        """See :meth:`.engine.JobEngine.submit`."""
        spec = self._registry.get(kind)
        params = dict(params or {})
        now = self._clock()
        job_id, created_at = stamped_id("job")
        job = Job(
            id=job_id, kind=kind, status=JobStatus.pending, created_at=created_at,
            updated_at=now, priority=priority,
            params=params if validated else spec.validate(params),
            document_id=document_id, channels=list(channels or ()),
            max_attempts=max_attempts or spec.max_attempts, idempotency_key=idempotency_key,
            correlation_id=correlation_id, metadata=dict(metadata or {}),
            scheduled_for=scheduled_for, urgent=urgent, depends_on=depends_on,
            fail_fast=fail_fast and depends_on is not None,
            actor=who() if (who := requester.get()) is not None else None,
        )
        due = now if scheduled_for is None else scheduled_for
        if idempotency_key is None and not urgent:  # most jobs: no second coroutine
            if depends_on is None:  # a dependent is not due before its dependency ends
                job = self._feeder.place(job, due, now)
            await self._inserts.add_and_wait((job, due))
            return job
        return await self._store_keyed_or_urgent(job, due, now)

    async def _store_keyed_or_urgent(self, job: Job, due: int, now: int) -> Job:
        keyed = job.idempotency_key is not None
        if due <= now and not job.urgent and job.depends_on is None:
            self._feeder.held_back(job.id)
        if keyed:
            try:
                stored = await self._store.insert_once(job, due)
            finally:  # stored, found stored or failed: no longer on its way
                self._feeder.held_stored([job.id])
            if stored is not job:
                return stored
            self._inserted([(job, due)], None)
            if job.depends_on is not None:  # its dependency may have ended: claim to see
                self._feeder.due(backlog=False)
        else:
            await self._inserts.add_and_wait((job, due))
        if job.urgent and not self._feeder.stopping:  # stopping: it waits for the next start
            self._attempts.run_urgent(job.id)
        return job

    def _inserted(self, items: Sequence[tuple[Job, int]], settled: Settled | None) -> None:
        now, due_now, later = self._clock(), False, None
        claimed, dependents = [], False
        self._feeder.held_stored(job.id for job, _due in items)
        for job, due in items:
            self._bus.publish(Event(JOB_CREATED, job))
            if job.depends_on is not None:  # blocked: due when its dependency ends
                dependents = True
                continue
            if job.lease_until is not None:  # stored started, for the worker reserved for it
                claimed.append(job)
            elif due <= now:
                due_now = True
            elif later is None or due < later:
                later = due
        self.submitted += len(items)
        self._feeder.settled(settled)  # dependencies that had ended before the insert
        if claimed:
            self._feeder.hand_over(claimed)
        # ``submit`` already held newer jobs back. A dependent's insert held its dependency
        # (see JobStore.claim): a claim meanwhile may have passed over it, due or not.
        if due_now or dependents:
            self._feeder.due(backlog=False)
        if later is not None and self._feeder.started:
            self._feeder.wake_at(later)
        self._changed()

    def _failed(self, items: Sequence[tuple[Job, int]], _exc: Exception) -> None:
        self._feeder.held_stored(job.id for job, _due in items)
        for job, _due in items:  # not stored: a worker reserved for it goes back
            self._feeder.unreserve(job.id)
        self._changed()
