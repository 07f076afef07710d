"""Coalesce many small writes of one kind into one database write.

Items added during one turn of the event loop are written by one call of a store method
(one transaction, one statement for the batch rather than one per job); the SQLite store
then group-commits that with whatever else is queued. ``after`` runs on the loop once the
batch is committed (publish events, wake workers).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from ..errors import InsufficientStorage

T = TypeVar("T")
Write = Callable[[Sequence[T]], Awaitable[Any]]  #: a store method writing a batch
After = Callable[[Sequence[T], Any], None]
Failed = Callable[[Sequence[T], Exception], None]

log = logging.getLogger(__name__)


class Batcher(Generic[T]):
    def __init__(
        self,
        write: Write[T],
        after: After[T],
        name: str,
        failed: Failed[T] | None = None,
    ) -> None:
        self._write = write
        self._after = after
        self._failed = failed
        self.name = name
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.written = 0

    def __repr__(self) -> str:
        return (
            f"<Batcher {self.name} batches={self.batches} written={self.written} "
            f"queued={len(self._items)} inflight={len(self._inflight)}>"
        )

    @property
    def idle(self) -> bool:
        return not self._items and not self._inflight

    def add(self, item: T) -> None:
        """Queue ``item``; it is written soon, together with its neighbours."""
        self._items.append(item)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def add_and_wait(self, item: T) -> asyncio.Future[None]:
        """Queue ``item``; the future resolves once it is committed (or fails with the write)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        self._items.append(item)  # ``add``, inlined: one call fewer per submitted job
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return waiter

    async def drain(self) -> None:
        """Wait until everything queued so far is committed."""
        while not self.idle:
            if self._items:
                self._flush()
            await asyncio.gather(*self._inflight, return_exceptions=True)

    def _done(self) -> None:
        # Out of the in-flight set before ``after`` runs, so that it sees this batch as done.
        task = asyncio.current_task()
        if task is not None:
            self._inflight.discard(task)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._items:
            return
        items, self._items = self._items, []
        waiters, self._waiters = self._waiters, []
        # A batch belongs to no one request: run it outside the context of whichever request
        # added its first item, so that its events do not look made by that request.
        task = asyncio.create_task(self._commit(items, waiters), name=f"batch-{self.name}",
                                   context=contextvars.Context())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _commit(self, items: list[T], waiters: list[asyncio.Future[None]]) -> None:
        try:
            result = await self._write(items)
        except Exception as exc:
            if not isinstance(exc, InsufficientStorage):  # logged once by the database
                log.error("%s: writing %d items failed: %s", self.name, len(items), exc)
            self._done()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            if self._failed is not None:
                self._failed(items, exc)
            return
        self._done()
        self.batches += 1
        self.written += len(items)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._after(items, result)
