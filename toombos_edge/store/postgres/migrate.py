"""PostgreSQL's numbered migrations: applied in order, once, whoever starts first.

The applied numbers are rows of ``schema_version`` (SQLite keeps its one number in
``PRAGMA user_version``; PostgreSQL has no such slot, and a row per migration also says
when each was applied). Several nodes may start at once against one database: each takes a
session advisory lock before it reads the version, so one applies what is missing while the
others wait and then find nothing to do. Each migration runs in its own transaction with
its ``schema_version`` row, so a failure leaves the schema at the last whole step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import orjson

from ...errors import DatabaseUnavailable, SchemaTooNew
from ...logs import redacted_url

log = logging.getLogger(__name__)

#: The advisory lock key every node takes around migrations ("toombos" in ASCII).
MIGRATION_LOCK = 0x746F6F6D626F73
CONNECT_SECONDS = 10.0  #: how long a connection may take before the database is unavailable

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at bigint NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    number: int
    name: str
    sql: str


if TYPE_CHECKING:  # asyncpg's classes are generic in its type stubs only
    #: A connection made by :func:`connect`, or one lent by a pool (rows as asyncpg records).
    Connection: TypeAlias = (asyncpg.Connection[asyncpg.Record]
                             | asyncpg.pool.PoolConnectionProxy[asyncpg.Record])


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: its ``version`` against the ``latest`` this code ships."""

    version: int
    latest: int
    applied: tuple[str, ...] = ()  #: the migrations this run applied (names, in order)

    @property
    def current(self) -> bool:
        return self.version == self.latest


def migrations() -> list[Migration]:
    """Each migration shipped with the package, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = [
        Migration(int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql") and entry.name[:4].isdigit()
    ]
    return sorted(found, key=lambda m: m.number)


def latest() -> int:
    shipped = migrations()
    return shipped[-1].number if shipped else 0


async def connect(url: str) -> Connection:
    """One connection to ``url``, with jsonb read and written as Python values (orjson).

    Raises :class:`DatabaseUnavailable` (naming the URL without its password) when the
    server cannot be reached or refuses the connection.
    """
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"cannot connect to {redacted_url(url)}: {exc}") from None
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="text",
                              encoder=lambda value: orjson.dumps(value).decode(),
                              decoder=orjson.loads)
    return conn


async def schema_version(conn: Connection) -> int:
    """The highest migration applied (0 on an empty database)."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


def _refuse_newer(version: int, known: int) -> None:
    if version > known:
        raise SchemaTooNew(
            f"database schema version {version} is newer than this server knows ({known}); "
            "upgrade toombos-edge or restore a backup"
        )


async def apply_migrations(conn: Connection) -> SchemaState:
    """Bring the schema up to date under the migration lock; refuse a newer schema."""
    shipped = migrations()
    known = shipped[-1].number if shipped else 0
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(_VERSION_TABLE)
        version = await schema_version(conn)
        _refuse_newer(version, known)
        applied = []
        for migration in shipped:
            if migration.number <= version:
                continue
            log.info("applying migration %s", migration.name)
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
                    migration.number, migration.name, int(time.time() * 1000))
            applied.append(migration.name)
        return SchemaState(max(version, known), known, tuple(applied))
    finally:
        if not conn.is_closed():  # a lost connection released the lock with it
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def migrate(url: str) -> SchemaState:
    """Connect to ``url`` and apply what is missing (``toombos-edge migrate``)."""
    conn = await connect(url)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


async def inspect(url: str) -> SchemaState:
    """Where the database at ``url`` stands, changing nothing (``toombos-edge check``);
    raises SchemaTooNew for a schema newer than this code."""
    conn = await connect(url)
    try:
        version = await schema_version(conn)
    finally:
        await conn.close()
    known = latest()
    _refuse_newer(version, known)
    return SchemaState(version, known)

