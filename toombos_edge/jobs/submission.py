"""Submitting jobs: validated, committed before the caller hears the id, idempotent by key.

A new job with nothing older due and a worker idle is stored already started: that worker
is reserved for it and runs it as soon as the insert commits (so ``in_progress`` is still
"running", and the job costs no claim). Otherwise it is stored pending and the feeder
starts it when a worker is free. An idempotency key makes the insert one transaction that
returns the job already stored under that key. After the commit each job is announced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..events import JOB_CREATED
from ..ids import stamped_id
from ..logs import requester
from . import store, transitions
from .core import EngineCore
from .model import Job, JobStatus


class Submission(EngineCore):
    """``submit``, and what follows the commit of new jobs."""

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
        job_id, created_at = stamped_id("job")
        job = Job(
            id=job_id, kind=kind, status=JobStatus.pending, created_at=created_at,
            updated_at=now, priority=priority, params=spec.validate(dict(params or {})),
            document_id=document_id, channels=list(channels or ()),
            max_attempts=max_attempts or spec.max_attempts, idempotency_key=idempotency_key,
            correlation_id=correlation_id, metadata=dict(metadata or {}),
            scheduled_for=scheduled_for, urgent=urgent,
            actor=who() if (who := requester.get()) is not None else None,
        )
        due = now if scheduled_for is None else scheduled_for
        if idempotency_key is None and not urgent:  # most jobs: no second coroutine
            job = self._place(job, due, now)
            await self._inserts.add_and_wait((job, due))
            return job
        return await self._store_keyed_or_urgent(job, due, now)

    def _place(self, job: Job, due: int, now: int) -> Job:
        """A plain new job due now goes to an idle worker (stored started) if nothing older
        is due; otherwise it is stored pending, and newer jobs wait behind it."""
        if due > now:
            return job
        worker = self._ready.reserve() if self._feeder.may_hand_over() else None
        if worker is None:
            self._feeder.held_back()
            return job
        self._reserved[job.id] = worker
        return transitions.start(job, now, now + self._lease_ms)

    async def _store_keyed_or_urgent(self, job: Job, due: int, now: int) -> Job:
        keyed = job.idempotency_key is not None
        if due <= now and not job.urgent:
            self._feeder.held_back()
        if keyed:
            stored = await self._db.write(lambda c: store.insert_once(c, job, due))
            if stored is not job:
                return stored
            self._inserted([(job, due)], None)
        else:
            await self._inserts.add_and_wait((job, due))
        if job.urgent and not self._feeder.stopping:  # stopping: it waits for the next start
            task = asyncio.get_running_loop().create_task(self._run_urgent(job.id))
            self._urgent.add(task)
            task.add_done_callback(self._urgent_done)
        return job

    def _inserted(self, items: Sequence[tuple[Job, int]], _result: object) -> None:
        now, due_now, later = self._clock(), False, None
        claimed = []
        for job, due in items:
            if job.lease_until is not None:  # a worker runs this very object
                self._publish(JOB_CREATED, job)
                claimed.append(job)
                continue
            self._publish(JOB_CREATED, job)  # the feeder claims a new object from the row
            if due <= now:
                due_now = True
            elif later is None or due < later:
                later = due
        self.counters["submitted"] += len(items)
        if claimed:
            self._hand_over(claimed)
        if due_now:
            self._feeder.due(backlog=False)  # ``submit`` already held newer jobs back
        if later is not None and self._feeder.started:
            self._feeder.wake_at(later)
        self._changed()

    def _hand_over(self, jobs: list[Job]) -> None:
        """Each fresh job stored started goes to the worker reserved for it (a job gets a
        lease only with a reserved worker); paused or stopping meanwhile: it is given back."""
        keep = not (self._feeder.stopping or self._feeder.paused)
        for job in jobs:
            self._ready.give(self._reserved.pop(job.id), job if keep else None)
        if not keep:
            self._release_soon(jobs)
