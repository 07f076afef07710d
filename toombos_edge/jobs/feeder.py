"""The feeder: keeps the ready queue topped up from the database, without polling.

It claims due jobs in one statement per batch (a lease: they stay ``pending`` until a worker
starts them) when told that jobs became due (a submit, a retry, a timer) or that the ready
queue runs low, and sets one timer for the earliest job scheduled later. It also decides
when a brand-new job may skip the database queue and go straight to the ready queue: only
when no older job is due.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable

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
        prefetch: int,
        lease_ms: int,
        release: Callable[[list[Job]], None],
        changed: Callable[[], None],
    ) -> None:
        self._db, self._ready, self._clock = db, ready, clock
        self.prefetch, self.lease_ms = prefetch, lease_ms
        self._release, self._changed = release, changed
        self._wanted = asyncio.Event()
        self.claim_done: asyncio.Future[None] | None = None  #: set while a claim runs
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0
        self._generation = 0
        self.queue_empty = False  #: no due job left in the database (for ``join``)
        self._hand_over_ok = False  #: the last claim drained the due backlog
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
            room = self.prefetch - len(self._ready)
            if room > 0:
                await self._claim(room)
            self._changed()

    def want(self) -> None:
        """The ready queue runs low: claim more."""
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
        self.queue_empty = False
        self._wanted.set()

    def held_back(self) -> None:
        """A due job was stored pending: newer jobs wait behind it until it is claimed."""
        self._hand_over_ok = False

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
        return (
            self._hand_over_ok and self.started and not self.paused and not self.stopping
            and len(self._ready) < 2 * self.prefetch
        )

    def claim_fresh(self, job: Job, now: int) -> None:
        """Mark a new job claimed: stored that way, it skips the claim query."""
        job.lease_until = now + self.lease_ms

    def _timer_fired(self) -> None:
        self._timer = None
        self.due()

    async def _claim(self, room: int) -> None:
        generation, urgent_only = self._generation, self.paused
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
            self.wake_at(now + 1000)
            return
        finally:
            self.claim_done.set_result(None)
            self.claim_done = None
        if self.stopping or (self.paused and not urgent_only):
            self._release(jobs)
            return
        self._ready.push(jobs)
        self._after_claim(len(jobs) < room, generation, urgent_only, next_due)

    def _after_claim(
        self, drained: bool, generation: int, urgent_only: bool, next_due: int | None
    ) -> None:
        if drained and not urgent_only:
            self._hand_over_ok = True
        if drained and generation == self._generation:
            self.queue_empty = True
        if next_due is not None and not urgent_only:
            self.wake_at(next_due)
