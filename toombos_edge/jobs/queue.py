"""The in-memory ready queue: where idle workers wait for the job they are given.

Workers wait on it instead of polling the database. The feeder reserves the idle workers,
starts that many jobs in the database and gives one to each; a submit does the same for one
fresh job. Jobs sit in the queue itself only when their worker went away (stop).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

from ..records.job import Job
from ..store.jobs import queue_order


class ReadyQueue:
    """Idle workers, and the started jobs given to them. An idle worker is reserved for one
    job (:meth:`reserve`, :meth:`give`) before that job is started in the database, so a
    started job never waits for a worker. Jobs queue (in queue order) only when given to a
    worker that went away; removing a job (cancel, pause) is O(1): it is skipped.
    """

    def __init__(self, on_idle: Callable[[], None] | None = None) -> None:
        self.on_idle = on_idle  #: called each time a worker starts waiting
        self._heap: list[tuple[tuple[Any, ...], Job]] = []
        self._held: dict[str, Job] = {}
        self._idle: deque[asyncio.Future[Job | None]] = deque()  #: workers waiting
        self._closed = False

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._held

    def ids(self) -> list[str]:
        return list(self._held)

    def push(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._held[job.id] = job
            heapq.heappush(self._heap, (queue_order(job), job))
        for _ in jobs:
            if not self._wake_one(None):
                break

    def reserve(self) -> asyncio.Future[Job | None] | None:
        """Take an idle worker off the queue: it runs only what :meth:`give` hands it."""
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                return waiter
        return None

    def reserve_idle(self) -> list[asyncio.Future[Job | None]]:
        """Reserve every idle worker (see :meth:`reserve`)."""
        workers = []
        while (worker := self.reserve()) is not None:
            workers.append(worker)
        return workers

    def give(self, worker: asyncio.Future[Job | None], job: Job | None) -> None:
        """Hand ``job`` to a reserved worker (None: let it go back to the queue)."""
        if job is not None:
            self._held[job.id] = job
        if not worker.done():
            worker.set_result(job)
        elif job is not None:  # the worker is gone (stop): the job waits in the queue
            heapq.heappush(self._heap, (queue_order(job), job))

    def remove(self, job_id: str) -> Job | None:
        """Take a job out before any worker starts it (None if it is not here)."""
        return self._held.pop(job_id, None)

    def take_all(self) -> list[Job]:
        """Empty the queue; returns what was in it."""
        jobs = list(self._held.values())
        self._held.clear()
        self._heap.clear()
        return jobs

    def close(self) -> None:
        """Wake every waiting worker; ``take`` returns None from now on when empty."""
        self._closed = True
        while self._wake_one(None):
            pass

    async def take(self) -> Job | None:
        """The next job, waiting for one; None once closed and empty."""
        while True:
            while self._heap:
                job = heapq.heappop(self._heap)[1]
                # Identity, not id: a job removed then claimed again has a newer entry.
                if self._held.get(job.id) is job:
                    del self._held[job.id]
                    return job
            if self._closed:
                return None
            waiter: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            if self.on_idle is not None:
                self.on_idle()
            try:
                given = await waiter
            finally:
                if waiter in self._idle:
                    self._idle.remove(waiter)
            if given is not None and self._held.get(given.id) is given:
                del self._held[given.id]
                return given

    def _wake_one(self, job: Job | None) -> bool:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(job)
                return True
        return False
