"""Catching up on job events and cache invalidations a node missed while it did not hear
the others.

:class:`JobStates` remembers the last state of each job that the node's bus carried (a
bounded number, most recent kept), so that a catch-up publishes only states the bus has
not carried, and after a catch-up drops a notification that is not newer than what the
catch-up published for its job (see :mod:`.events_bridge`).

:func:`missed_invalidations` publishes the cache invalidations recorded meanwhile (the
shared history has them), so that this node's cache drops what every other node dropped
(:mod:`.cache.remote`); one recorded just before the link was lost may be applied again,
which only costs a render.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from .cache.history import event_data
from .events import (
    CACHE_INVALIDATED,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_UPDATE,
    EventBus,
)
from .events_wire import JobState, RemoteEvent
from .ids import now_ms
from .records.job import JobStatus
from .store.cache import HISTORY_LIMIT, Invalidation
from .store.postgres.cache import PgInvalidationHistory
from .store.postgres.database import PgDatabase
from .store.postgres.notify import changed_since

log = logging.getLogger(__name__)

CATCH_UP_LIMIT = 10_000  #: jobs a catch-up publishes at most (the oldest writes first)
SEEN = 10_000  #: job states remembered, so that a catch-up skips what the bus carried
CATCH_UP = "catch-up"  #: the origin of the events a catch-up publishes
_FINAL = {JobStatus.completed: JOB_COMPLETED, JobStatus.partial: JOB_COMPLETED,
          JobStatus.failed: JOB_FAILED, JobStatus.cancelled: JOB_CANCELLED}


class JobStates:
    """The job states a bus carried, and the catch-up that fills a hole in them."""

    def __init__(self, limit: int = SEEN) -> None:
        self._limit = limit
        self._seen: OrderedDict[str, JobState] = OrderedDict()
        self._caught: dict[str, JobState] = {}  #: what the last catch-up published
        self.caught_up = self.stale = 0

    def remember(self, job_id: str, state: JobState) -> None:
        seen = self._seen
        seen[job_id] = state
        seen.move_to_end(job_id)
        if len(seen) > self._limit:
            seen.popitem(last=False)

    def is_stale(self, job_id: str | None, state: JobState | None) -> bool:
        """Not newer than the state the last catch-up published for this job."""
        if job_id is None or state is None or not self._caught:
            return False
        caught = self._caught.get(job_id)
        if caught is None:
            return False
        if state[0] < caught[0] or state == caught:
            self.stale += 1
            return True
        del self._caught[job_id]  # newer: from here on, notifications lead
        return False

    async def catch_up(self, db: PgDatabase, bus: EventBus, since: int) -> int:
        """Publish the current state of each job written since ``since`` (ms) that the bus
        has not carried: ``job_update``, or the final event of a job that ended. Returns
        how many were published."""
        jobs = await changed_since(db, since, CATCH_UP_LIMIT)
        if len(jobs) == CATCH_UP_LIMIT:
            log.warning("catch-up stopped at %d jobs: clients should list jobs again",
                        CATCH_UP_LIMIT)
        self._caught = {}
        for job in jobs:
            state = (job.updated_at, job.status.value)
            if self._seen.get(job.id) == state:
                continue
            self._caught[job.id] = state
            self.remember(job.id, state)
            bus.publish(RemoteEvent.of_job(_FINAL.get(job.status, JOB_UPDATE), job,
                                           job.updated_at, origin=CATCH_UP))
        self.caught_up += len(self._caught)
        return len(self._caught)


async def missed_invalidations(db: PgDatabase, bus: EventBus, since: int) -> int:
    """Publish the cache invalidations recorded at or after ``since`` (ms), oldest first,
    as another node's; when the history (its newest ``HISTORY_LIMIT``) may not reach back
    that far, one clear of everything instead. Returns how many were published."""
    newest = await PgInvalidationHistory(db).newest(HISTORY_LIMIT)
    missed = [entry for entry in reversed(newest) if entry.ts >= since]
    if len(missed) == HISTORY_LIMIT:
        log.warning("more cache invalidations than the history keeps were missed: "
                    "clearing this node's cache")
        missed = [Invalidation("catch-up", now_ms(), None, 0, cleared=True)]
    for entry in missed:
        bus.publish(RemoteEvent(CACHE_INVALIDATED, {"data": event_data(entry)}, entry.ts,
                                None, origin=CATCH_UP, seq=0))
    return len(missed)
