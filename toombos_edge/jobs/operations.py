"""Changing jobs from outside: cancel, retry, and the batch forms of both.

A pending job is cancelled in the database at once; a started one given to a worker that
has not taken it yet is taken back; a running one has its task cancelled and is stored
``cancelled`` when its worker has stopped it. Whatever cannot be changed is refused with why (409).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..errors import Conflict, NotFound, Unavailable
from ..events import JOB_CANCELLED, JOB_UPDATE, RETRIED, Event, EventBus
from ..records.job import Job, JobStatus
from ..store.jobs import JobStore
from .attempts import Attempts
from .feeder import Feeder
from .running import Running

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


async def get(store: JobStore, job_id: str) -> Job:
    """The stored job; raises ``NotFound``."""
    job = await store.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


class Operations:
    """Cancel and retry, one job or many; counts the jobs it cancelled and retried."""

    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        feeder: Feeder,
        attempts: Attempts,
        *,
        changed: Callable[[], None],
        clock: Callable[[], int],
    ) -> None:
        self._store, self._bus, self._feeder, self._attempts = store, bus, feeder, attempts
        self._changed, self._clock = changed, clock
        self.cancelled = self.retried = 0
        #: Passes on a cancel of a job another engine runs (see :mod:`.nodes`).
        self.ask_owner: Callable[[str], Awaitable[bool]] | None = None

    def __repr__(self) -> str:
        return f"<Operations cancelled={self.cancelled} retried={self.retried}>"

    async def cancel(self, job_id: str) -> Job:
        """Cancel a pending job at once, or a running one cooperatively; 409 if it ended."""
        ready = self._feeder.ready
        for _ in range(3):
            running = self._attempts.find(job_id)
            if running is not None:
                return await self._cancel_held(running)
            held = ready.remove(job_id)
            if held is not None:
                return await self._cancel_held(Running(held, None))
            cancelled = await self._cancel_pending([job_id])
            if cancelled:
                return cancelled[0]
            job = await get(self._store, job_id)
            claiming = self._feeder.claim_done
            if job.status.terminal:
                break
            if claiming is not None:
                await asyncio.shield(claiming)  # it may be being started: ask again after
            elif not (job_id in self._attempts.running or job_id in ready):
                break  # started by another engine, or ended meanwhile
        if job.status is JobStatus.in_progress and self.ask_owner is not None:
            return await self._cancel_elsewhere(job_id)
        raise Conflict(REFUSE_CANCEL.format(id=job_id, status=job.status.value))

    async def _cancel_elsewhere(self, job_id: str) -> Job:
        """A job another engine runs: that engine cancels it; the job as it then is."""
        assert self.ask_owner is not None
        ended = await self.ask_owner(job_id)
        job = await get(self._store, job_id)
        if job.status is JobStatus.cancelled:
            return job
        if not ended and not job.status.terminal:
            raise Unavailable(f"job {job_id} runs on another node, which did not confirm "
                              "the cancel in time: try again")
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
        now, known = self._clock(), await self._known(ids)
        touched = await self._store.requeue(known, now) if known else []
        for job in touched:
            self._bus.publish(Event(JOB_UPDATE, job, note=RETRIED))
        self.retried += len(touched)
        if touched:
            self._feeder.due()
        return BatchResult(touched, await self._refusals(ids, touched, REFUSE_RETRY))

    async def cancel_many(self, ids: Sequence[str]) -> BatchResult:
        """Cancel each of ``ids`` that can be; the others are refused with the reason."""
        touched = await self._cancel_pending(ids)
        done = {job.id for job in touched}
        for job_id in ids:
            if job_id not in done and (
                job_id in self._attempts.running or job_id in self._feeder.ready
            ):
                with contextlib.suppress(Conflict, NotFound):
                    touched.append(await self.cancel(job_id))
        if self.ask_owner is not None:  # those other engines run, all asked at once
            touched += await self._cancel_running_elsewhere(
                [job_id for job_id in ids if job_id not in {job.id for job in touched}])
        refusals = {s: REFUSE_CANCEL for s in JobStatus if s.terminal}
        return BatchResult(touched, await self._refusals(ids, touched, refusals))

    async def _cancel_running_elsewhere(self, ids: Sequence[str]) -> list[Job]:
        found = await self._store.statuses(ids)
        running = [job_id for job_id in ids if found.get(job_id) is JobStatus.in_progress]

        async def cancel(job_id: str) -> Job | None:
            with contextlib.suppress(Conflict, NotFound, Unavailable):
                return await self.cancel(job_id)
            return None

        return [job for job in await asyncio.gather(*map(cancel, running)) if job is not None]

    async def _cancel_held(self, running: Running) -> Job:
        job = await self._attempts.stop_held(running)
        if job.status is JobStatus.pending:  # it had ended with a retry scheduled
            cancelled = await self._cancel_pending([job.id])
            if cancelled:
                return cancelled[0]
        if job.status is not JobStatus.cancelled and job.status.terminal:
            raise Conflict(REFUSE_CANCEL.format(id=job.id, status=job.status.value))
        return job

    async def _cancel_pending(self, ids: Sequence[str]) -> list[Job]:
        now, known = self._clock(), await self._known(ids)
        if not known:
            return []
        cancelled, settled = await self._store.cancel_pending(known, now)
        self._feeder.settled(settled)
        for job in cancelled:
            self._bus.publish(Event(JOB_CANCELLED, job))
        self.cancelled += len(cancelled)
        self._changed()
        return cancelled

    async def _known(self, ids: Sequence[str]) -> list[str]:
        """Those of ``ids`` that name a job: unknown ones cost no write transaction.

        Only existence is read here; the status is left to the write's own condition, since
        a reader may not see a transition still queued to the writer.
        """
        found = await self._store.statuses(ids)
        return [job_id for job_id in ids if job_id in found]

    async def _refusals(
        self, ids: Sequence[str], touched: Sequence[Job], reasons: dict[JobStatus, str]
    ) -> dict[str, str]:
        done = {job.id for job in touched}
        rest = [job_id for job_id in ids if job_id not in done]
        found = await self._store.statuses(rest)
        refused = {}
        for job_id in rest:
            status = found.get(job_id)
            if status is None:
                refused[job_id] = f"no job {job_id}"
            else:
                reason = reasons.get(status, "job {id} is {status}")
                refused[job_id] = reason.format(id=job_id, status=status.value)
        return refused
