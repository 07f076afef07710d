"""The feeder: hands due jobs from the database to idle workers, without polling.

When workers are idle and jobs may be due (a submit, a retry, a timer, a worker that just
finished), it reserves the idle workers and starts exactly that many due jobs in one
statement (``in_progress``, attempt counted, under a lease), then gives one to each. So a
claimed job is a running job: nothing waits in memory marked as started, and nothing started
waits for a worker. It sets one timer for the earliest job scheduled later, and decides when
a brand-new job may skip the database queue and go straight to an idle worker: only when no
older job is due.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from asyncio import Future
from collections.abc import Callable
from itertools import zip_longest

from ..store import Database
from . import store
from .model import Job
from .queue import ReadyQueue

log = logging.getLogger(__name__)


class Feeder:
    def __init__(
        self,
        db: Database,
        ready: ReadyQueue,
        clock: Callable[[], int],
        *,
        lease_ms: int,
        started: Callable[[list[Job]], None],
        release: Callable[[list[Job]], None],
        changed: Callable[[], None],
    ) -> None:
        self._db, self._ready, self._clock = db, ready, clock
        self.lease_ms = lease_ms
        self._started, self._release, self._changed = started, release, changed
        self._wanted = asyncio.Event()
        self.claim_done: asyncio.Future[None] | None = None  #: set while a claim runs
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0
        self._generation = 0
        self.queue_empty = False  #: no due job left in the database (for ``join``)
        self._hand_over_ok = False  #: the last claim drained the due backlog
        self._failing = False  #: the last claim failed: wait for the retry timer
        self.paused = self.started = self.stopping = False

    def __repr__(self) -> str:
        return f"<Feeder ready={len(self._ready)} empty={self.queue_empty} paused={self.paused}>"

    async def run(self) -> None:
        """Claim whenever asked, until stopped; returns after the claim in flight."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self.stopping:
                return
            workers = self._ready.reserve_idle()
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

    def held_back(self) -> None:
        """A due job was stored pending: newer jobs wait behind it until it is claimed."""
        self._hand_over_ok = False
        self._generation += 1  # a claim in flight may not see it: it must not re-allow

    def wake_at(self, due: int) -> None:
        """One timer, for the earliest job scheduled later."""
        if self._timer is not None and self._timer_due <= due:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, (due - self._clock()) / 1000)
        self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)
        self._timer_due = due

    def may_hand_over(self) -> bool:
        """May a new job go straight to a worker? Only when nothing older is due."""
        return self._hand_over_ok and self.started and not self.paused and not self.stopping

    def _timer_fired(self) -> None:
        self._timer = None
        self.due()

    async def _claim(self, workers: list[Future[Job | None]]) -> None:
        """Start one due job for each reserved worker; give the workers left over back."""
        generation, urgent_only, room = self._generation, self.paused, len(workers)
        now = self._clock()
        lease = now + self.lease_ms

        def claim(conn: sqlite3.Connection) -> tuple[list[Job], int | None]:
            jobs = store.claim(conn, now, room, lease, urgent_only=urgent_only)
            return jobs, store.next_due(conn) if len(jobs) < room else None

        self.claim_done = asyncio.get_running_loop().create_future()
        try:
            jobs, next_due = await self._db.write(claim)
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
            self._release(jobs)  # stopped or paused meanwhile: not started after all
            return
        self._started(jobs)
        self._give(workers, jobs)
        self._after_claim(len(jobs) < room, generation, urgent_only, next_due)

    def _give(self, workers: list[Future[Job | None]], jobs: list[Job]) -> None:
        for worker, job in zip_longest(workers, jobs):
            if worker is not None:
                self._ready.give(worker, job)

    def _after_claim(
        self, drained: bool, generation: int, urgent_only: bool, next_due: int | None
    ) -> None:
        if drained and generation == self._generation:
            self.queue_empty = True
            if not urgent_only:
                self._hand_over_ok = True
        if next_due is not None and not urgent_only:
            self.wake_at(next_due)
