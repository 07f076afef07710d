"""SQLite in WAL mode: one group-committing writer, separate readers, numbered migrations.

Every write is a function of a ``sqlite3.Connection`` queued to the one writer. The writer
takes everything queued, runs it in one ``BEGIN IMMEDIATE`` transaction in the connection's
thread (each function inside its own savepoint, so one failing write does not undo the
others), commits once, then resumes each caller. Many concurrent writers cost one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from itertools import count
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import aiosqlite

from ...errors import SchemaTooNew
from ..space import SpaceState, is_no_space

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_Pending = tuple[asyncio.Future[Any], Op]

log = logging.getLogger(__name__)

#: Pages a delete may use past ``max_size_mb`` while it runs (256 KiB at 4 KiB pages).
_DELETE_RESERVE_PAGES = 64

def migrations() -> list[tuple[int, str, str]]:
    """(number, name, SQL) of each migration shipped with the package, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; refuse a file written by newer code. Returns the version."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    shipped = migrations()
    latest = shipped[-1][0] if shipped else 0
    if current > latest:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this server knows ({latest}); "
            "upgrade toombos-edge or restore a backup"
        )
    for number, name, sql in shipped:
        if number <= current:
            continue
        log.info("applying migration %s", name)
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    return max(current, latest)


def switch_to_incremental_vacuum(conn: sqlite3.Connection) -> bool:
    """Make freed pages returnable to the file system (``PRAGMA incremental_vacuum``).

    A new file takes the setting before its first table. A file made before it needs one
    VACUUM, which rewrites the whole file (about as long as copying it, and as much free
    disk again while it runs), once. Returns True when it ran that VACUUM.
    """
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return False
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        return False  # a new file: no table yet, so nothing to rewrite
    log.warning("rewriting %s once (VACUUM) so that pruning can shrink it",
                conn.execute("PRAGMA database_list").fetchone()[2])
    conn.execute("VACUUM")
    return True


def vacuum_pages(conn: sqlite3.Connection, pages: int) -> int:
    """Give up to ``pages`` free pages back to the file system; returns how many went.

    Each step of ``PRAGMA incremental_vacuum`` frees one page, and Python's sqlite3 steps a
    statement without result columns once per ``execute``: hence one execute per page.
    """
    before: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
    cursor = conn.cursor()
    try:
        for _ in range(min(pages, before)):
            cursor.execute("PRAGMA incremental_vacuum(1)")
    finally:
        cursor.close()
    after: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return before - after


def _configure(conn: sqlite3.Connection, synchronous: str) -> None:
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only a new file takes it here
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")


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
    """The SQLite file: ``write`` group-commits, ``read`` runs on a reader connection."""

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
        self._reader_count = readers
        self._batch_max = batch_max
        self._writer: aiosqlite.Connection | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader = count()
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        self.schema_version = 0
        self.commits = 0
        self.writes = 0
        #: Called after each commit with (writes in it, seconds it took): the metrics.
        self.on_commit: Callable[[int, float], None] | None = None

    def __repr__(self) -> str:
        return (
            f"<Database {self.path.name} v{self.schema_version} commits={self.commits} "
            f"writes={self.writes} queued={self._queue.qsize()}>"
        )

    async def open(self) -> None:
        """Open the connections and apply migrations; raises SchemaTooNew."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            self.schema_version = await self._call(self._writer, self._prepare_writer)
            for _ in range(self._reader_count):
                reader = await aiosqlite.connect(self.path, isolation_level=None)
                self._readers.append(reader)
                await self._call(reader, self._prepare_reader)
        except BaseException:
            await self._close_connections()
            raise
        self._writer_task = asyncio.create_task(self._write_loop(), name="db-writer")

    async def close(self) -> None:
        """Finish the queued writes, then close every connection.

        Each connection is closed whatever happened before (a failed or cancelled writer,
        another connection that would not close): one left open keeps its thread alive, and
        the interpreter waits for that thread at exit.
        """
        task, self._writer_task = self._writer_task, None
        try:
            if task is not None:
                # Refuse new writes first: one queued behind the stop marker would never resume.
                self._queue.put_nowait(None)
                await task
        finally:
            await self._close_connections()

    async def write(self, op: Callable[[sqlite3.Connection], T], *, frees: bool = False) -> T:
        """Run ``op`` in a write transaction; returns after its commit.

        ``frees`` marks a write that makes room (a delete): it may grow the file past
        ``max_size_mb`` by a small reserve while it runs, because deleting a row also writes
        (the full-text index records the deletion), and an operator must be able to free
        space in a full database.
        """
        if self._writer_task is None:
            raise RuntimeError("database is not open")
        if frees and self._max_size_mb:
            op = self._with_reserve(op)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((future, op))
        return await future

    async def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``op`` on a reader connection (a consistent WAL snapshot per statement)."""
        if not self._readers:
            raise RuntimeError("database is not open")
        reader = self._readers[next(self._next_reader) % len(self._readers)]
        return await self._call(reader, op)

    async def backup(self, target: Path) -> None:
        """Copy the live database to ``target`` with SQLite's online backup."""
        def copy(conn: sqlite3.Connection) -> None:
            with contextlib.closing(sqlite3.connect(target)) as dest:
                conn.backup(dest)

        await self.read(copy)

    async def has_room(self, pages: int = 32) -> bool:
        """Whether ``pages`` more pages fit under ``max_size_mb`` (always, without one)."""
        if not self._max_size_mb:
            return True

        def room(conn: sqlite3.Connection) -> bool:
            size, free, page_size = (conn.execute(f"PRAGMA {name}").fetchone()[0] for name in
                                     ("page_count", "freelist_count", "page_size"))
            return bool((size - free + pages) * page_size <= self._max_size_mb << 20)

        return await self.read(room)

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
        _configure(conn, self._synchronous)
        version = apply_migrations(conn)
        switch_to_incremental_vacuum(conn)
        if self._max_size_mb:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            self._max_pages = (self._max_size_mb << 20) // page_size
            conn.execute(f"PRAGMA max_page_count = {self._max_pages}")
        return version

    def _prepare_reader(self, conn: sqlite3.Connection) -> None:
        _configure(conn, self._synchronous)
        conn.execute("PRAGMA query_only = ON")

    @staticmethod
    async def _call(conn: aiosqlite.Connection, op: Callable[[sqlite3.Connection], T]) -> T:
        # aiosqlite offers no public "run this function in the connection's thread"; its
        # _execute does exactly that and lets a whole batch cost one thread hop.
        raw: sqlite3.Connection = conn._conn
        run = cast(Callable[..., Awaitable[T]], conn._execute)
        return await run(op, raw)

    async def _write_loop(self) -> None:
        assert self._writer is not None
        stopping = False
        while not stopping:
            item = await self._queue.get()
            batch: list[_Pending] = []
            while item is not None:
                batch.append(item)
                if len(batch) >= self._batch_max or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            stopping = item is None
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        assert self._writer is not None
        started = time.perf_counter()
        try:
            outcomes = await self._call(self._writer, lambda c: _run_batch(c, batch))
        except Exception as exc:  # the commit itself failed (disk full, I/O error)
            if not is_no_space(exc):
                log.error("write batch of %d failed: %s", len(batch), exc)
            outcomes = [(False, exc)] * len(batch)
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
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(error)

    async def _close_connections(self) -> None:
        connections = [c for c in (*self._readers, self._writer) if c is not None]
        self._readers.clear()
        self._writer = None
        failure: BaseException | None = None
        for conn in connections:
            try:
                await conn.close()
            except BaseException as exc:  # cancelled, or the close failed: the others go on
                # Its thread must end all the same: stop() queues the close and the thread's
                # exit behind whatever it runs now, without waiting for either.
                conn.stop()
                log.error("a database connection did not close cleanly: %r", exc)
                failure = failure or exc
        if failure is not None:
            raise failure
