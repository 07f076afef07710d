"""The cache's invalidation history (``cache_invalidations``) on PostgreSQL.

Recording is an insert and a trim to the newest ``HISTORY_LIMIT``. Two nodes recording at
once would each trim by a snapshot without the other's new row and leave more than the
limit; so a recording first takes the table in SHARE ROW EXCLUSIVE mode, which only
writers of the table wait for (readers do not), and its trim then sees every committed row.
"""

from __future__ import annotations

import asyncpg

from ..cache import HISTORY_LIMIT, Invalidation
from .database import PgDatabase

_COLUMNS = "id, ts, actor, invalidated, keys, pattern, tags, cleared"
_NEWEST = "ORDER BY ts DESC, id DESC"


def _entry(row: asyncpg.Record) -> Invalidation:
    return Invalidation(row[0], row[1], row[2], row[3], tuple(row[4]), row[5],
                        tuple(row[6]), row[7])


class PgInvalidationHistory:
    """:class:`~toombos_edge.store.cache.InvalidationHistory` in its own table."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgInvalidationHistory {self._db!r}>"

    async def record(self, entry: Invalidation) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("LOCK TABLE cache_invalidations IN SHARE ROW EXCLUSIVE MODE")
            await conn.execute(
                f"INSERT INTO cache_invalidations ({_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                entry.id, entry.ts, entry.actor, entry.invalidated, list(entry.keys),
                entry.pattern, list(entry.tags), entry.cleared)
            await conn.execute(
                "DELETE FROM cache_invalidations WHERE id IN "
                f"(SELECT id FROM cache_invalidations {_NEWEST} OFFSET $1)", HISTORY_LIMIT)

    async def newest(self, limit: int) -> list[Invalidation]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM cache_invalidations {_NEWEST} LIMIT $1", limit)
        return [_entry(row) for row in rows]
