"""The in-memory ready queue: jobs claimed from the database, waiting for a free worker.

Workers wait on it instead of polling the database; the engine's feeder keeps it topped up
with a batch claim whenever it runs low.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Any

from .model import Job
from .store import queue_order


class ReadyQueue:
    """Claimed jobs in queue order. Removing a job (cancel, pause) is O(1): it is skipped."""

    def __init__(self) -> None:
        self._heap: list[tuple[tuple[Any, ...], Job]] = []
        self._held: dict[str, Job] = {}
        self._event = asyncio.Event()
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
        if jobs:
            self._event.set()

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
        self._event.set()

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
            self._event.clear()
            await self._event.wait()
