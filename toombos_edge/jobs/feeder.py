"""The feeder: hands due jobs from the database to idle workers, without polling.

When workers are idle and jobs may be due (a submit, a retry, a timer, a worker that just
finished), it reserves the idle workers and starts exactly that many due jobs in one
statement (``in_progress``, attempt counted, under a lease), then gives one to each. So a
claimed job is a running job: nothing waits in memory marked as started, and nothing started
waits for a worker. It sets one timer for the earliest job scheduled later, and decides when
a brand-new job may skip the database queue and go straight to an idle worker: only when no
older job is due. Jobs started but not run after all (a pause, a stop) it gives back.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import Future
from collections.abc import Callable, Iterable, Sequence
from itertools import zip_longest

from ..events import JOB_CANCELLED, JOB_UPDATE, STARTED, Event, EventBus
from ..records.job import Job
from ..store.jobs import JobStore, Settled
from . import transitions
from .queue import ReadyQueue
from .tasks import Tasks

log = logging.getLogger(__name__)


class Feeder:
    """Owns the ready queue (:attr:`ready`, where workers take jobs), the workers reserved
    for fresh jobs, and the pause; ``changed`` is called whenever it may have gone idle."""

    def __init__(
        self,
        store: JobStore,
        bus: EventBus,
        clock: Callable[[], int],
        *,
        lease_ms: int,
        changed: Callable[[], None],
    ) -> None:
        self._store, self._bus, self._clock = store, bus, clock
        self.lease_ms = lease_ms
        self._changed = changed
        self.ready = ReadyQueue(on_idle=self.want)  #: an idle worker asks for a job
        self._reserved: dict[str, Future[Job | None]] = {}  #: idle workers held for a fresh job
        self._releases = Tasks(changed)
        self._wanted = asyncio.Event()
        self.claim_done: asyncio.Future[None] | None = None  #: set while a claim runs
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0
        self._generation = 0
        self.queue_empty = False  #: no due job left in the database (for ``join``)
        self._hand_over_ok = False  #: the last claim drained the due backlog
        self._held: set[str] = set()  #: due jobs held back whose insert has not ended yet
        self._failing = False  #: the last claim failed: wait for the retry timer
        self.paused = self.started = self.stopping = False

    def __repr__(self) -> str:
        return f"<Feeder ready={len(self.ready)} empty={self.queue_empty} paused={self.paused}>"

    @property
    def idle(self) -> bool:
        """Nothing queued, claimed or given back in flight, and nothing due to claim."""
        return (
            not len(self.ready) and self.claim_done is None and not len(self._releases)
            and (self.paused or self.queue_empty or not self.started or self.stopping)
        )

    async def run(self) -> None:
        """Claim whenever asked, until stopped; returns after the claim in flight."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self.stopping:
                return
            workers = self.ready.reserve_idle()
            if workers:
                await self._claim(workers)
            self._changed()

    def want(self) -> None:
        """A worker is idle: claim a job for it, unless the database has none due."""
        if not (self.queue_empty or self._failing):
            self._wanted.set()

    def stop(self) -> None:
        self.stopping = True
        self._wanted.set()
        if self._timer is not None:
            self._timer.cancel()

    def due(self, *, backlog: bool = True) -> None:
        """Jobs became due in the database; ``backlog``: new jobs must not overtake them."""
        if backlog:
            self._hand_over_ok = False
        self._generation += 1
        self.queue_empty = self._failing = False
        self._wanted.set()

    def held_back(self, job_id: str) -> None:
        """A due job is being stored pending: newer jobs wait behind it until it is claimed."""
        self._held.add(job_id)
        self._hand_over_ok = False
        self._generation += 1  # a claim in flight may not see it: it must not re-allow

    def held_stored(self, ids: Iterable[str]) -> None:
        """The inserts of these jobs ended (committed or failed): claims that begin now see
        what they stored. Until then a claim that drains the queue does not re-allow the
        hand-over: with several connections (PostgreSQL) a claim begun after the insert
        was sent may still commit before it, and miss the job."""
        held = len(self._held)
        self._held.difference_update(ids)
        if len(self._held) != held:
            self._generation += 1  # a claim in flight may have begun before the commit

    def wake_at(self, due: int) -> None:
        """One timer, for the earliest job scheduled later."""
        if self._timer is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (due - self._clock()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)
        self._timer_due = due

    def place(self, job: Job, due: int, now: int) -> Job:
        """A new job, before its insert: started for an idle worker reserved for it when it
        is due now and nothing older is (so it skips the claim), else as it is (pending,
        and newer jobs wait behind it)."""
        if due > now:
            return job
        may = self._hand_over_ok and self.started and not self.paused and not self.stopping
        worker = self.ready.reserve() if may else None
        if worker is None:
            self.held_back(job.id)
            return job
        self._reserved[job.id] = worker
        return transitions.start(job, now, now + self.lease_ms)

    def hand_over(self, jobs: list[Job]) -> None:
        """Each fresh job stored started goes to the worker reserved for it; paused or
        stopping meanwhile: it is given back."""
        keep = not (self.stopping or self.paused)
        for job in jobs:
            self.ready.give(self._reserved.pop(job.id), job if keep else None)
        if not keep:
            self.release_soon(jobs)

    def unreserve(self, job_id: str) -> None:
        """The insert of a fresh job failed: its reserved worker goes back to waiting."""
        worker = self._reserved.pop(job_id, None)
        if worker is not None:
            self.ready.give(worker, None)

    def pause(self) -> bool:
        """Stop starting jobs (urgent ones excepted); False if it was paused already."""
        if self.paused:
            return False
        self.paused = True
        self.release_soon(self.ready.take_all())
        self._changed()
        return True

    def resume(self) -> bool:
        """Start jobs again; False if it was not paused."""
        was_paused, self.paused = self.paused, False
        self.due()
        return was_paused

    def release_soon(self, jobs: list[Job]) -> None:
        if jobs:
            self._releases.spawn(self.release(jobs), "release")

    async def release(self, jobs: Sequence[Job]) -> None:
        """Back to pending, attempt not counted (pause, stop)."""
        ids, now = [job.id for job in jobs], self._clock()
        for job in await self._store.release(ids, now):
            self._bus.publish(Event(JOB_UPDATE, job))
        if not self.stopping:
            self.due()  # due again: claim them when a worker is free (and unpaused)
        self._changed()

    async def wait_releases(self) -> None:
        await self._releases.wait()

    def settled(self, settled: Settled | None) -> None:
        """Jobs ended and their dependents were decided (in the same transaction): those
        cancelled are announced, and those released are due."""
        if settled is None:
            return
        for job in settled.cancelled:
            self._bus.publish(Event(JOB_CANCELLED, job))
        if settled.released:
            self.due()

    def announce_started(self, jobs: Sequence[Job]) -> None:
        """Jobs stored started (by a claim, or an urgent job's own): announce them."""
        for job in jobs:
            self._bus.publish(Event(JOB_UPDATE, job, note=STARTED))

    def _timer_fired(self) -> None:
        self._timer = None
        self.due()

    async def _claim(self, workers: list[Future[Job | None]]) -> None:
        """Start one due job for each reserved worker; give the workers left over back."""
        generation, urgent_only, room = self._generation, self.paused, len(workers)
        now = self._clock()
        lease = now + self.lease_ms
        self.claim_done = asyncio.get_running_loop().create_future()
        try:
            jobs, next_due = await self._store.claim(now, room, lease, urgent_only=urgent_only)
        except Exception:
            log.exception("claiming jobs failed; trying again in a second")
            self._give(workers, [])
            self._failing = True
            self.wake_at(now + 1000)
            return
        finally:
            self.claim_done.set_result(None)
            self.claim_done = None
        if self.stopping or (self.paused and not urgent_only):
            self._give(workers, [])
            self.release_soon(jobs)  # stopped or paused meanwhile: not started after all
            return
        self.announce_started(jobs)
        self._give(workers, jobs)
        self._after_claim(len(jobs) < room, generation, urgent_only, next_due)

    def _give(self, workers: list[Future[Job | None]], jobs: list[Job]) -> None:
        for worker, job in zip_longest(workers, jobs):
            if worker is not None:
                self.ready.give(worker, job)

    def _after_claim(
        self, drained: bool, generation: int, urgent_only: bool, next_due: int | None
    ) -> None:
        if drained and generation == self._generation:
            self.queue_empty = True
            if not urgent_only and not self._held:
                self._hand_over_ok = True
        if next_due is not None and not urgent_only:
            self.wake_at(next_due)
