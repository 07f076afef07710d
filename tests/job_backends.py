"""The job store on each backend, for the tests that drive the engine over one: a real
SQLite file, and a real PostgreSQL database (tests/postgres.py). One fixture parameter,
test ids ending in ``[sqlite]``/``[postgres]``.

Fixtures (registered by ``pytest_plugins`` in conftest.py):

* ``job_database``: the SQLite :class:`Database` of the ``db`` fixture, or a migrated
  :class:`PgDatabase` of its own.
* ``job_store``: the :class:`JobStore` on it, the one place that names a backend's store.

And what only reading behind the protocol can tell, on either backend: :func:`writes`,
:func:`exact_counts`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest

from toombos_edge.store import Database
from toombos_edge.store.jobs import JobStore
from toombos_edge.store.postgres.database import PgDatabase
from toombos_edge.store.postgres.jobs import PgJobStore
from toombos_edge.store.sqlite.jobs import SqliteJobStore

AnyDatabase = Database | PgDatabase


@pytest.fixture(params=["sqlite", "postgres"])
def job_database(request: pytest.FixtureRequest) -> AnyDatabase:
    """A sync fixture: an async one cannot ask for an async fixture by name."""
    found: AnyDatabase = request.getfixturevalue(
        "pg_database" if request.param == "postgres" else "db")
    return found


@pytest.fixture
async def job_store(job_database: AnyDatabase) -> AsyncIterator[JobStore]:
    if isinstance(job_database, Database):
        yield SqliteJobStore(job_database)
        return
    store = PgJobStore(job_database)
    yield store
    await store.unlock_engine()  # nothing when every engine stopped (each stop unlocks)


def writes(database: AnyDatabase) -> int:
    """Writes committed so far: SQLite's writer counts each write of a group commit; on
    PostgreSQL each write is a transaction of its own."""
    return database.writes if isinstance(database, Database) else database.commits


def sqlite_exact_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """The counters per kind and status, checked against a count of the table itself."""
    counted = dict(conn.execute("SELECT kind || '/' || status, n FROM job_counts WHERE n <> 0"))
    real = dict(conn.execute(
        "SELECT kind || '/' || status, count(*) FROM jobs GROUP BY kind, status"))
    assert counted == real
    return counted


async def exact_counts(database: AnyDatabase) -> dict[str, int]:
    """The store's tallies per kind and status, checked against a count of the jobs table
    itself in the same snapshot (what the protocol's ``counts`` answers from)."""
    if isinstance(database, Database):
        return await database.read(sqlite_exact_counts)
    async with database.connection() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True):
        counted = {row[0]: row[1] for row in await conn.fetch(
            "SELECT kind || '/' || status, sum(n)::bigint FROM job_counts "
            "GROUP BY kind, status HAVING sum(n) <> 0")}
        real = {row[0]: row[1] for row in await conn.fetch(
            "SELECT kind || '/' || status, count(*) FROM jobs GROUP BY kind, status")}
    assert counted == real
    return counted
