"""The PostgreSQL database as the health checks see it.

``ping`` is one round trip that reads the schema version, bounded by :data:`PING_SECONDS`
so that a database that stopped answering fails the check instead of hanging it.

Room to write means something else than on SQLite. The disk is the database server's,
often another machine: a node cannot measure it, and PostgreSQL has no size limit of its
own like SQLite's ``max_page_count``. What a node sees is a write failing with SQLSTATE
53100 (``disk_full``: a table or index could not grow); :func:`is_no_space` recognises it,
for the code that runs the node's writes to report it to the shared
:class:`~..space.SpaceState` as SQLite's writer does. :meth:`PgHealthStore.has_room`, which
the health check asks only after such a failure, then tries what failed: it grows a
temporary table by a page or two (a relation extension, as a full disk refuses it) in a
transaction it rolls back. That is the database's own disk unless ``temp_tablespaces``
puts temporary tables elsewhere. A full write-ahead log is not seen this way: PostgreSQL
stops (PANIC) and ``ping`` fails.
"""

from __future__ import annotations

import asyncpg

from ..space import SpaceState
from ..space import is_no_space as is_local_no_space
from .database import PgDatabase

PING_SECONDS = 5.0  #: how long a ping may take before the database counts as not answering
#: 300 rows of a temporary table fill more than one 8 kB page: the file is extended.
_PROBE = "CREATE TEMP TABLE room_probe ON COMMIT DROP AS SELECT generate_series(1, 300) AS n"


def is_no_space(exc: BaseException) -> bool:
    """True for PostgreSQL's ``disk_full`` as for the local disk's and SQLite's errors."""
    return isinstance(exc, asyncpg.DiskFullError) or is_local_no_space(exc)


class PgHealthStore:
    """:class:`~toombos_edge.store.health.HealthStore` of a PostgreSQL database.

    ``space`` is the state the node's writes report a full disk to (one per node, shared
    with them); a new one when none is given.
    """

    def __init__(self, db: PgDatabase, space: SpaceState | None = None) -> None:
        self._db = db
        self._space = space or SpaceState()

    def __repr__(self) -> str:
        return f"<PgHealthStore {self._db!r}>"

    @property
    def space(self) -> SpaceState:
        return self._space

    async def ping(self) -> str:
        async with self._db.pool.acquire(timeout=PING_SECONDS) as conn:
            version = await conn.fetchval(
                "SELECT coalesce(max(version), 0) FROM schema_version", timeout=PING_SECONDS)
        return f"postgresql schema v{version}"

    async def has_room(self) -> bool:
        try:
            async with self._db.connection() as conn:
                tx = conn.transaction()
                await tx.start()
                try:
                    await conn.execute(_PROBE)
                finally:
                    await tx.rollback()
        except asyncpg.DiskFullError:
            return False
        return True
