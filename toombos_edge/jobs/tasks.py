"""Tasks a part of the engine starts on the side and must not lose track of.

Each is kept until it ends, so that a stop can wait for them (or cancel them) and ``join``
can tell the engine is busy; a failure is logged, never left for the garbage collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("toombos_edge.jobs.engine")


class Tasks:
    """A set of running tasks; ``changed`` is called each time one ends."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<Tasks {len(self._tasks)}>"

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``work`` as the engine's own: in a fresh context, not the one of the request
        that happened to start it (its actor and correlation id stay with that request)."""
        task = asyncio.get_running_loop().create_task(work, name=name,
                                                      context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def all(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks)

    async def wait(self) -> None:
        """Until every task (those started meanwhile included) has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("engine task %s failed", task.get_name(), exc_info=task.exception())
        self._changed()


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
