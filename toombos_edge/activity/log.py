"""The activity log: a bus subscriber that records audit lines in SQLite and a JSONL file.

On the event loop an event costs a length check and one append to a bounded deque (with
the request's actor and correlation id, read from context variables while they are
there). A flusher task takes the whole deque every ``FLUSH_SECONDS``; the log's thread
turns it into entries (``lines.describe``) and renders each line (``lines.render``, one
orjson call); the group-committing writer stores the rows with one ``executemany``; then
the thread appends the same bytes to the file.
When the deque is full an event is dropped and counted, never waited for; a crash loses
at most what was not yet flushed.

Counters (for the metrics and ``/health/detailed``) count events: every event received is,
in the end, ``written`` (its lines are in the table and the file), ``dropped`` (the deque
was full, or its batch could not be stored) or ``skipped`` (it makes no line: progress).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..events import CONNECTION_ACK, RESTARTING, STATS_UPDATE, Event, EventBus
from ..events_wire import is_remote
from ..health import PASS, WARN, Check
from ..logs import Actor, correlation_id, requester
from ..records.activity import ActivityFilter, LineIds, Row
from ..store.activity import ActivityStore, Line
from .jsonl import JsonLines
from .lines import Describe, describe, render

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05  #: how long a batch gathers (and the most a crash can lose)
PRUNE_SECONDS = 3600.0
#: How long /health warns after it last saw events dropped: a warning for what is going
#: wrong now, not a mark that never clears (the dropped-lines metric keeps the count).
DROP_WARN_SECONDS = 10.0
DAY_MS = 86_400_000
PRUNE_STEP = 10_000  #: rows removed per write: the writer is never held for long
#: Events that are never a line, kept out of the queue (and the counters) at once.
IGNORED = frozenset({STATS_UPDATE, CONNECTION_ACK, RESTARTING})

Queued = tuple[Event, Actor | None, str | None]
#: What the encoding thread hands back: the rows, the lines for the file, and the events
#: written, skipped and failed (a describer's bug, a value orjson refuses: dropped).
Encoded = tuple[list[Row], bytes, int, int, int]


class ActivityLog:
    """Records what happens; see the module docstring. ``start`` subscribes it to the bus."""

    def __init__(
        self,
        store: ActivityStore,
        bus: EventBus,
        file: JsonLines,
        *,
        max_queued: int = 100_000,
        retention_days: int = 0,
        describe: Describe = describe,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._store, self._bus, self.file = store, bus, file
        self._max = max_queued
        self._retention_ms = retention_days * DAY_MS
        self._describe = describe
        self._clock = clock
        self._queue: deque[Queued] = deque()
        self._ids = LineIds()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="activity")
        self._wake: asyncio.Event | None = None
        self._flushing = asyncio.Lock()  #: one batch at a time, in order
        self._waiting = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.received = self.written = self.dropped = self.skipped = self.lines = 0
        self._dropped_seen, self._dropped_at = 0, float("-inf")

    def __repr__(self) -> str:
        return (f"<ActivityLog received={self.received} written={self.written} "
                f"dropped={self.dropped} skipped={self.skipped} queued={len(self._queue)}>")

    async def start(self) -> None:
        """Continue the ids after the newest row, subscribe, start the flusher."""
        self._ids.last = await self._store.last_id()
        self._wake = asyncio.Event()
        self._unsubscribe = self._bus.subscribe(self.on_event)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="activity-log")

    async def close(self) -> None:
        """Leave the bus, store everything queued, close the file."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            await self._task
        await asyncio.get_running_loop().run_in_executor(self._thread, self.file.close)
        self._thread.shutdown(wait=True)

    def on_event(self, event: Event) -> None:
        """The bus subscriber: the least work on the loop (see the module docstring). Another
        node's event is its own node's line, not this one's (one table, one line)."""
        if event.type in IGNORED or is_remote(event):
            return
        self.received += 1
        queue = self._queue
        if len(queue) >= self._max:
            self.dropped += 1
            return
        who = requester.get()
        queue.append((event, None if who is None else who(), correlation_id.get()))
        if self._waiting:
            self._waiting = False
            assert self._wake is not None
            self._wake.set()

    async def page(self, flt: ActivityFilter, limit: int, before: int | None = None
                   ) -> list[Line]:
        """(id, line) of up to ``limit`` stored lines matching ``flt``, newest first, with
        an id below the cursor ``before`` if given (``GET /api/activity``)."""
        return await self._store.page(flt, limit, before)

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def check(self) -> Check:
        """The health check: a warning while events are being dropped (seen by the checks of
        the last ``DROP_WARN_SECONDS``); the total stays in the message and the metrics."""
        now = time.monotonic()
        if self.dropped != self._dropped_seen:
            self._dropped_seen, self._dropped_at = self.dropped, now
        if now - self._dropped_at < DROP_WARN_SECONDS:
            return Check(WARN, f"{self.dropped} activity events dropped (queue full or "
                               f"storage failing); {self.written} written")
        lost = f", {self.dropped} dropped earlier" if self.dropped else ""
        return Check(PASS, f"{self.written} events written, {len(self._queue)} queued{lost}")

    async def flush(self) -> None:
        """Store everything queued, and wait for the batch being stored (tests, shutdown)."""
        while True:
            async with self._flushing:
                if not self._queue:
                    return
                await self._flush()

    async def _run(self) -> None:
        assert self._wake is not None
        pruned_at = float("-inf")  # the first flush prunes
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                self._waiting = True
                await self._wake.wait()
            if not self._closing:
                # Every batch gathers this long, also right after the last one: a few large
                # writes, not many small ones between the jobs' own (bench/activity.py).
                await asyncio.sleep(FLUSH_SECONDS)
            try:
                async with self._flushing:
                    await self._flush()
                if self._retention_ms and time.monotonic() - pruned_at > PRUNE_SECONDS:
                    pruned_at = time.monotonic()
                    await self.prune()
            except Exception:  # a bug or a full disk must not end the log
                log.exception("activity flush failed")

    async def _flush(self) -> None:
        batch, self._queue = self._queue, deque()  # O(1) on the loop, whatever its size
        if not batch:
            return
        loop = asyncio.get_running_loop()
        rows, chunk, written, skipped, failed = await loop.run_in_executor(
            self._thread, self._encode, batch)
        self.skipped += skipped
        self.dropped += failed
        if not rows:
            return
        try:
            await self._store.insert(rows)
        except Exception as exc:
            log.error("storing %d activity lines failed: %s", len(rows), exc)
            self.dropped += written
            return
        self.written += written
        self.lines += len(rows)
        await loop.run_in_executor(self._thread, self._append, chunk)

    def _encode(self, batch: deque[Queued]) -> Encoded:
        """In the log's thread: each event's rows, with their ids, and the file's bytes."""
        rows: list[Row] = []
        written = skipped = failed = 0
        next_id, describe = self._ids.next, self._describe
        for event, who, cid in batch:
            try:
                entries = describe(event, who, cid)
                lines = [render(entry) for entry in entries]
            except Exception:  # one odd event must not cost the batch
                failed += 1
                log.exception("activity: cannot describe or render %r", event)
                continue
            if not entries:
                skipped += 1
                continue
            written += 1
            for entry, line in zip(entries, lines, strict=True):  # as Row says
                rows.append((next_id(entry[0]), entry[1], entry[2], entry[6], line))
        chunk = "".join([f"{row[4]}\n" for row in rows]).encode()
        return rows, chunk, written, skipped, failed

    def _append(self, chunk: bytes) -> None:
        try:
            self.file.write([chunk])
        except OSError as exc:  # the table has the lines
            log.error("appending to %s failed: %s", self.file.path, exc)

    async def prune(self) -> int:
        """Remove the rows older than the retention, a bounded step per write."""
        cutoff, removed, step = self._clock() - self._retention_ms, 0, PRUNE_STEP
        while step == PRUNE_STEP:
            step = await self._store.prune(cutoff, PRUNE_STEP)
            removed += step
        if removed:
            log.info("removed %d activity rows older than the retention", removed)
        return removed


def for_settings(settings: Settings, store: ActivityStore, bus: EventBus) -> ActivityLog:
    """The log the settings describe (its file, sizes, queue, retention), not yet started:
    the server's, and the command line's for what it changes itself (keys)."""
    file = JsonLines(settings.activity_path, max_bytes=settings.activity_max_mb << 20,
                     keep=settings.activity_keep)
    return ActivityLog(store, bus, file, max_queued=settings.activity_queue,
                       retention_days=settings.activity_retention_days)
