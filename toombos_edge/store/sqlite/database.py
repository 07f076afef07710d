"""SQLite in WAL mode: one group-committing writer and separate readers, threads of our own.

Every write is a function of a ``sqlite3.Connection`` queued to the one writer. The writer
takes everything queued, runs it in one ``BEGIN IMMEDIATE`` transaction in its own thread
(each function inside its own savepoint, so one failing write does not undo the others),
commits once, then resumes each caller. Many concurrent writers cost one fsync, and one
wake-up of the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

from ..space import ROOM_BYTES, SpaceState, is_no_space
from .schema import (
    apply_migrations,
    configure,
    migrations,
    switch_to_incremental_vacuum,
    vacuum_pages,
)
from .threads import ConnectionThread, Jobs, call, hand_back, settle

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_Pending = tuple[asyncio.Future[Any], Op]

# The schema's functions, importable from here as they always were.
__all__ = ["Database", "apply_migrations", "migrations", "switch_to_incremental_vacuum",
           "vacuum_pages"]

log = logging.getLogger(__name__)

#: Pages a delete may use past ``max_size_mb`` while it runs (256 KiB at 4 KiB pages).
_DELETE_RESERVE_PAGES = 64

def _run_batch(conn: sqlite3.Connection, batch: list[_Pending]) -> list[tuple[bool, Any]]:
    """Run queued writes in one transaction (in the writer thread).

    Each write runs in its own savepoint, so one failing undoes only itself. A failure after
    which SQLite has rolled back the whole transaction (a full disk, an I/O error) fails that
    write alone: the others run again in a new transaction.
    """
    outcomes: list[tuple[bool, Any] | None] = [None] * len(batch)
    while True:
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not todo:
            return cast(list[tuple[bool, Any]], outcomes)
        ran = _transaction(conn, [batch[i][1] for i in todo])
        if isinstance(ran, _Lost):
            outcomes[todo[ran.position]] = (False, ran.error)
            continue
        for i, outcome in zip(todo, ran, strict=True):
            outcomes[i] = outcome
        return cast(list[tuple[bool, Any]], outcomes)


class _Lost(NamedTuple):
    """The write at ``position`` failed and SQLite rolled back the whole transaction."""

    position: int
    error: Exception


def _transaction(conn: sqlite3.Connection, ops: list[Op]) -> list[tuple[bool, Any]] | _Lost:
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for index, op in enumerate(ops):
            conn.execute("SAVEPOINT op")
            try:
                outcomes.append((True, op(conn)))
            except Exception as exc:  # the caller gets it; the batch goes on
                if not conn.in_transaction:
                    return _Lost(index, exc)
                conn.execute("ROLLBACK TO op")
                outcomes.append((False, exc))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


class Database:
    """The SQLite file: ``write`` group-commits, ``read`` runs on a reader connection.

    One writer thread and ``readers`` reader threads, each with its own connection; readers
    share one queue, so a read waits only while every reader is busy.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        readers: int = 2,
        batch_max: int = 1000,
        max_size_mb: int = 0,
    ) -> None:
        self.path = path
        self._synchronous = synchronous
        self._max_size_mb = max_size_mb
        self._max_pages = 0  # max_size_mb in pages, once the file is open
        #: Whether the last write failed for lack of space (the disk, or ``max_size_mb``).
        self.space = SpaceState()
        #: Pages in use when a write last hit ``max_size_mb`` (None: none has since the
        #: room came back): room is back only once that much less is used (``has_room``).
        self._used_when_full: int | None = None
        self._reader_count = readers
        self._batch_max = batch_max
        self._loop: asyncio.AbstractEventLoop | None = None  # set while open
        self._threads: list[ConnectionThread] = []
        self._writes: Jobs = queue.SimpleQueue()
        self._reads: Jobs = queue.SimpleQueue()
        self._pending: list[_Pending] = []  # writes not yet handed to the writer thread
        self._in_flight = 0  # batches handed to the writer thread and not back yet
        self._dispatching = False  # a _dispatch is scheduled on the loop
        self.schema_version = 0
        self.commits = 0
        self.writes = 0
        #: Called after each commit with (writes in it, seconds it took): the metrics.
        self.on_commit: Callable[[int, float], None] | None = None

    def __repr__(self) -> str:
        return (
            f"<Database {self.path.name} v{self.schema_version} commits={self.commits} "
            f"writes={self.writes} queued={len(self._pending)}>"
        )

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The connections' threads while open (the writer first); each ends at close."""
        return tuple(connection.thread for connection in self._threads)

    async def open(self) -> None:
        """Open the connections and apply migrations; raises SchemaTooNew."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._writes, self._reads = queue.SimpleQueue(), queue.SimpleQueue()
        try:
            writer = self._start(loop, "writer", self._writes, self._prepare_writer)
            self.schema_version = await writer.ready  # migrations first, then the readers
            readers = [self._start(loop, f"reader-{n}", self._reads, self._prepare_reader)
                       for n in range(self._reader_count)]
            for reader in readers:
                await reader.ready
        except BaseException:
            with contextlib.suppress(Exception):  # the reason it failed matters, not this
                await self._stop_threads()
            raise
        self._loop = loop

    async def close(self) -> None:
        """Finish the queued writes, then close every connection.

        New reads and writes are refused from the start. Every thread is told to stop (behind
        the work already queued to it) before the first await, so that even a cancelled close
        ends them all: one left running would keep the interpreter waiting at exit.
        """
        self._loop = None
        while self._pending:  # the rest of the queued writes, in batches, behind any in flight
            self._send(self._take())
        await self._stop_threads()
        await asyncio.to_thread(fold_wal, self.path)

    async def write(self, op: Callable[[sqlite3.Connection], T], *, frees: bool = False) -> T:
        """Run ``op`` in a write transaction; returns after its commit.

        ``frees`` marks a write that makes room (a delete): it may grow the file past
        ``max_size_mb`` by a small reserve while it runs, because deleting a row also writes
        (the full-text index records the deletion), and an operator must be able to free
        space in a full database.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("database is not open")
        if frees and self._max_size_mb:
            op = self._with_reserve(op)
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((future, op))
        if not self._dispatching and not self._in_flight:
            # Later in this turn of the loop: the other writes made in it join the batch.
            self._dispatching = True
            loop.call_soon(self._dispatch)
        return await future

    async def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` on a reader connection (a consistent WAL snapshot per statement)."""
        loop = self._loop
        if loop is None or not self._reader_count:
            raise RuntimeError("database is not open")
        future: asyncio.Future[T] = loop.create_future()
        self._reads.put(partial(call, loop, future, op))
        return await future

    async def backup(self, target: Path) -> None:
        """Copy the live database to ``target`` with SQLite's online backup."""
        def copy(conn: sqlite3.Connection) -> None:
            with contextlib.closing(sqlite3.connect(target)) as dest:
                conn.backup(dest)

        await self.read(copy)

    async def has_room(self, pages: int = 32) -> bool:
        """Whether ``pages`` more pages fit under ``max_size_mb`` (always, without one) and,
        after a write hit that limit, at least that much was freed since: the write that
        failed may have needed far more than the few pages still free, so a small write
        that fits says nothing about it."""
        if not self._max_size_mb:
            return True
        full_at = self._used_when_full

        def room(conn: sqlite3.Connection) -> bool:
            used, page_size = _used_pages(conn), conn.execute("PRAGMA page_size").fetchone()[0]
            fits = (used + pages) * page_size <= self._max_size_mb << 20
            return fits and (full_at is None or used + pages <= full_at)

        back = await self.read(room)
        if back and self._used_when_full == full_at:
            self._used_when_full = None
        return back

    def _note_full(self, conn: sqlite3.Connection) -> None:
        """In the writer thread, after a write found no space: with the disk not full, it
        was ``max_size_mb`` (a full disk is the health check's own to see)."""
        if self._max_size_mb and shutil.disk_usage(self.path.parent).free >= ROOM_BYTES:
            with contextlib.suppress(sqlite3.Error):
                self._used_when_full = _used_pages(conn)

    def _with_reserve(self, op: Callable[[sqlite3.Connection], T]) -> Callable[
            [sqlite3.Connection], T]:
        limit = self._max_pages

        def run(conn: sqlite3.Connection) -> T:
            conn.execute(f"PRAGMA max_page_count = {limit + _DELETE_RESERVE_PAGES}")
            try:
                return op(conn)
            finally:
                conn.execute(f"PRAGMA max_page_count = {limit}")

        return run

    def _prepare_writer(self, conn: sqlite3.Connection) -> int:
        configure(conn, self._synchronous)
        version = apply_migrations(conn)
        switch_to_incremental_vacuum(conn)
        if self._max_size_mb:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            self._max_pages = (self._max_size_mb << 20) // page_size
            conn.execute(f"PRAGMA max_page_count = {self._max_pages}")
        return version

    def _prepare_reader(self, conn: sqlite3.Connection) -> None:
        configure(conn, self._synchronous)
        conn.execute("PRAGMA query_only = ON")

    def _start(self, loop: asyncio.AbstractEventLoop, role: str, jobs: Jobs,
               prepare: Callable[[sqlite3.Connection], Any]) -> ConnectionThread:
        connection = ConnectionThread(self.path, f"sqlite-{role} {self.path.name}", jobs,
                                      prepare, loop)
        self._threads.append(connection)
        return connection

    async def _stop_threads(self) -> None:
        """Stop every thread behind its queued work; wait for each to close its connection."""
        connections, self._threads = self._threads, []
        for connection in connections:
            connection.stop()
        closes = await asyncio.gather(*(c.ended for c in connections), return_exceptions=True)
        failures = [failure for failure in closes if failure is not None]
        for failure in failures:
            log.error("a database connection did not close cleanly: %r", failure)
        if failures:
            raise failures[0]

    def _take(self) -> list[_Pending]:
        if len(self._pending) <= self._batch_max:
            batch, self._pending = self._pending, []
        else:
            batch = self._pending[:self._batch_max]
            del self._pending[:self._batch_max]
        return batch

    def _dispatch(self) -> None:
        """Hand the writes queued so far to the writer thread, as one batch (on the loop)."""
        self._dispatching = False
        if self._pending and not self._in_flight:
            self._send(self._take())

    def _send(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        started = time.perf_counter()

        def job(conn: sqlite3.Connection) -> None:  # in the writer thread
            try:
                outcomes, failure = _run_batch(conn, batch), None
            except Exception as exc:  # the commit itself failed (disk full, I/O error)
                outcomes, failure = [(False, exc)] * len(batch), exc
            if any(not ok and is_no_space(value) for ok, value in outcomes):
                self._note_full(conn)
            hand_back(loop, self._committed, batch, outcomes, failure, started)

        self._writes.put(job)

    def _committed(self, batch: list[_Pending], outcomes: list[tuple[bool, Any]],
                   failure: Exception | None, started: float) -> None:
        """Resume the callers of a batch the writer thread ran (on the loop, one call)."""
        self._in_flight -= 1
        self._dispatch()  # the next batch runs while these callers resume
        if failure is not None:
            if not is_no_space(failure):
                log.error("write batch of %d failed: %s", len(batch), failure)
        else:
            self.commits += 1
            self.writes += len(batch)
            if self.on_commit is not None:
                self.on_commit(len(batch), time.perf_counter() - started)
        for (future, _op), (ok, value) in zip(batch, outcomes, strict=True):
            if not ok and is_no_space(value):
                error: Any = self.space.refuse("a database write", value)
            else:
                error = value
            settle(future, ok, value if ok else error)


def _used_pages(conn: sqlite3.Connection) -> int:
    size: int = conn.execute("PRAGMA page_count").fetchone()[0]
    free: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return size - free


def fold_wal(path: Path) -> None:
    """Leave the database one file after a close: SQLite folds the WAL back and deletes it
    when its last connection closes, unless that checkpoint was busy at that moment (a
    reader's snapshot still open as the writer closed). Once more here, with nothing open."""
    wal = path.with_name(path.name + "-wal")
    if not wal.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:  # the data is safe in the WAL; the next open folds it
        log.warning("could not fold the WAL back into %s: %s", path.name, exc)
