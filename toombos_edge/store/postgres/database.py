"""PostgreSQL for the stores: one asyncpg pool, transactions, the schema checked at open.

Where SQLite has one writer that group-commits, PostgreSQL has a pool of connections, each
running its own transactions concurrently; the stores' protocols promise one transaction per
method, which here is ``async with db.transaction() as conn``. Reads that need no
transaction take a pooled connection with ``db.fetch``/``fetchrow``/``fetchval``.

JSON columns are ``jsonb``, read and written as Python values through orjson (the codec is
set on every pooled connection).

Failures mean the same as on SQLite to the layers above: a database that cannot be reached
(down, restarting, a connection lost mid-statement) raises ``DatabaseUnavailable`` (503,
and the health check fails), and a write refused for a full disk raises
``InsufficientStorage`` (507) and is reported to :attr:`PgDatabase.space`; text it cannot
hold (NUL) is ``Invalid`` (422).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

from ...errors import DatabaseUnavailable, Invalid
from ...logs import redacted_url
from ..space import SpaceState
from .migrate import CONNECT_SECONDS, apply_migrations, latest, schema_version

if TYPE_CHECKING:
    from .migrate import Connection
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]

log = logging.getLogger(__name__)

#: Connections per node by default: the engine's claims and saves, the requests' reads,
#: and room for a burst, well under PostgreSQL's default max_connections of 100 for a few
#: nodes.
POOL_SIZE = 10
_UNREACHABLE = (OSError, TimeoutError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError,
                asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
                asyncpg.TooManyConnectionsError,
                # A connection left mid-operation when its server went away.
                asyncpg.InternalClientError)
#: Text PostgreSQL cannot hold: the NUL character, in text or in jsonb.
_NOT_TEXT = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)
#: Longest a statement may take before it fails (a server that stopped answering must not
#: hold a claim, and so every worker, forever).
COMMAND_SECONDS = 60.0


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="text",
                              encoder=lambda value: orjson.dumps(value).decode(),
                              decoder=orjson.loads)


class PgDatabase:
    """The database at ``url``: ``open`` migrates (or refuses a newer schema) and pools."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE, migrate: bool = True) -> None:
        self.url = url
        self._pool_size = pool_size
        self._migrate = migrate
        self._pool: Pool | None = None
        self.schema_version = 0
        #: Transactions of :meth:`transaction` committed (each store write is one).
        self.commits = 0
        #: Whether the last write failed for a full disk (PostgreSQL's ``disk_full``).
        self.space = SpaceState()
        #: Told of each transaction committed: (1, seconds from its start to its commit).
        self.on_commit: Callable[[int, float], None] | None = None

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "closed"
        return (f"<PgDatabase {redacted_url(self.url)} v{self.schema_version} {state} "
                f"commits={self.commits}>")

    async def open(self) -> None:
        """Connect the pool and bring the schema up to date; raises SchemaTooNew,
        DatabaseUnavailable."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self._pool_size, timeout=CONNECT_SECONDS,
                command_timeout=COMMAND_SECONDS, init=_init_connection)
        except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(
                f"cannot connect to {redacted_url(self.url)}: {exc}") from None
        try:
            async with self._pool.acquire() as conn:
                if self._migrate:
                    self.schema_version = (await apply_migrations(conn)).version
                else:
                    self.schema_version = await schema_version(conn)
                    if self.schema_version != latest():
                        raise DatabaseUnavailable(
                            f"the schema is at {self.schema_version}, this server needs "
                            f"{latest()}: run toombos-edge migrate")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction (committed on a normal exit)."""
        with self._failures():
            async with self.pool.acquire() as conn:
                began = time.perf_counter()
                async with conn.transaction():
                    yield conn
                self.commits += 1
                if self.on_commit is not None:
                    self.on_commit(1, time.perf_counter() - began)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection, outside any transaction (LISTEN, several statements)."""
        with self._failures():
            async with self.pool.acquire() as conn:
                yield conn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with self._failures():
            return await self.pool.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        with self._failures():
            return await self.pool.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        with self._failures():
            return await self.pool.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        with self._failures():
            return await self.pool.execute(sql, *args)

    async def executemany(self, sql: str, args: Sequence[Sequence[Any]]) -> None:
        with self._failures():
            await self.pool.executemany(sql, args)

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        """The database's failures as the server's errors (see the module docstring)."""
        try:
            yield
        except asyncpg.DiskFullError as exc:
            raise self.space.refuse("a database write", exc) from None
        except _NOT_TEXT as exc:  # NUL: the API refuses it; this is for what slips past
            raise Invalid(f"the database cannot store this text: {exc}") from None
        except _UNREACHABLE as exc:
            raise DatabaseUnavailable(
                f"the database {redacted_url(self.url)} is not answering: "
                f"{type(exc).__name__}") from None

    async def ping(self) -> int:
        """The schema version, read: proves the database answers (health checks)."""
        return int(await self.fetchval(
            "SELECT coalesce(max(version), 0) FROM schema_version"))
