"""The engine lock on PostgreSQL: what "no other engine runs" means when nodes share the
database by design.

On SQLite an exclusive file lock proves no other engine uses the file, so every lease left
in it is a dead process's and is recovered at once. Here every running engine holds a
*shared* session advisory lock on :data:`ENGINE_LOCK` for its life, on a connection of its
own (outside the pool, so that no pooled transaction ever releases it). An engine starting
first tries the *exclusive* lock:

* granted: no other engine runs (each would hold the shared lock), so every lease found is
  a dead node's. It keeps the exclusive lock through its start-up recovery (engines that
  start meanwhile wait in :meth:`PgEngineLock.acquire`, so none can claim a job that this
  recovery would take), then :meth:`downgrade` swaps it for the shared lock.
* refused: other engines run. It waits for the shared lock (only an engine between its
  exclusive lock and its recovery holds it off) and recovers only leases that ran out.

A node whose lock connection drops (PostgreSQL restarted) holds no lock until
:meth:`PgEngineLock.keep` takes it again (the engine's poll calls it through ``recover``,
every few seconds): an engine starting in that window would take it for dead and recover
its running jobs early; their saves are then refused (the job is no longer held), as after
any expired lease, and the jobs run again.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import asyncpg

from .migrate import connect

if TYPE_CHECKING:
    from .migrate import Connection

#: The advisory lock key of the engines ("engine" in ASCII), apart from the migrations'.
ENGINE_LOCK = 0x656E67696E65
PING_SECONDS = 5.0  #: how long the lock's session may take to answer before it is replaced


class PgEngineLock:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Connection | None = None
        self._exclusive = False

    def __repr__(self) -> str:
        state = "exclusive" if self._exclusive else "shared" if self._conn else "free"
        return f"<PgEngineLock {state}>"

    async def acquire(self) -> bool:
        """True: no other engine runs (held exclusively until :meth:`downgrade`). False:
        others run; this engine is now one of them."""
        if self._conn is not None:
            return self._exclusive
        conn = await connect(self._url)
        try:
            self._exclusive = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK))
            if not self._exclusive:
                await conn.execute("SELECT pg_advisory_lock_shared($1)", ENGINE_LOCK)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return self._exclusive

    async def downgrade(self) -> None:
        """After the start-up recovery: share the lock with the engines that start next."""
        if self._conn is not None and self._exclusive:
            await self._conn.execute("SELECT pg_advisory_lock_shared($1)", ENGINE_LOCK)
            await self._conn.execute("SELECT pg_advisory_unlock($1)", ENGINE_LOCK)
            self._exclusive = False

    async def keep(self) -> None:
        """Take the shared lock again if its connection was lost (a no-op while it holds);
        raises what connecting raises, for the caller to try again later."""
        if self._conn is None or await self._alive(self._conn):
            return
        conn = await connect(self._url)
        try:
            await conn.execute("SELECT pg_advisory_lock_shared($1)", ENGINE_LOCK)
        except BaseException:
            await conn.close()
            raise
        self._conn, self._exclusive = conn, False

    @staticmethod
    async def _alive(conn: Connection) -> bool:
        """The session answers (a killed one may not look closed until it is used)."""
        if not conn.is_closed():
            try:
                await conn.fetchval("SELECT 1", timeout=PING_SECONDS)
                return True
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncpg.InternalClientError):
                pass
        conn.terminate()
        return False

    async def release(self) -> None:
        """Closing the session drops its advisory locks."""
        conn, self._conn, self._exclusive = self._conn, None, False
        if conn is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.close()
