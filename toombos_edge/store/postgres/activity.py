"""The activity log (``activity``) on PostgreSQL: one multi-row insert per batch, and the
same id ranges as SQLite's (:mod:`..sqlite.activity`) for pages and follows.

Ids are made by the node that writes the lines (:mod:`toombos_edge.records.activity`), and
nodes sharing the database make them independently: a batch is stored under a table lock
that only writers wait for, numbered above the largest id committed (``above``). So ids
never clash, and they are in commit order: a follower reading past the last id it saw
misses no line another node committed later with an earlier time.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...records.activity import ActivityFilter, Row, above, first_id
from ..activity import Line
from .database import PgDatabase
from .where import Where

# One statement for the whole batch, in the transaction that numbers it.
_INSERT = (
    "INSERT INTO activity (id, type, actor, target, line) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])"
)
# SKIP LOCKED: two nodes pruning at once delete different lines, neither waits, and each
# count is of lines it removed itself.
_PRUNE = (
    "DELETE FROM activity WHERE id IN (SELECT id FROM activity WHERE id < $1 "
    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)"
)


def _where(flt: ActivityFilter, before: int | None, since_id: int | None
           ) -> tuple[str, list[object]]:
    where = Where()
    if flt.types:
        where.add("type = ANY(?::text[])", list(flt.types))
    if flt.actor == "system":
        where.raw("actor IS NULL")
    elif flt.actor is not None:
        where.add("actor = ?", flt.actor)
    if flt.target is not None:
        where.add("target = ?", flt.target)
    if flt.since is not None:
        where.add("id >= ?", first_id(flt.since))
    if flt.until is not None:
        where.add("id < ?", first_id(flt.until + 1))
    if before is not None:
        where.add("id < ?", before)
    if since_id is not None:
        where.add("id > ?", since_id)
    return str(where), where.params


class PgActivityStore:
    """:class:`~toombos_edge.store.activity.ActivityStore` in the ``activity`` table."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgActivityStore {self._db!r}>"

    async def last_id(self) -> int:
        return int(await self._db.fetchval("SELECT coalesce(max(id), 0) FROM activity"))

    async def insert(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        async with self._db.transaction() as conn:
            # Held to the commit: the next batch, from any node, sees this one's ids.
            await conn.execute("LOCK TABLE activity IN SHARE ROW EXCLUSIVE MODE")
            top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM activity")
            numbered = above(rows, int(top))
            await conn.execute(_INSERT, *(list(col) for col in zip(*numbered, strict=True)))

    async def prune(self, before_ms: int, limit: int) -> int:
        status = await self._db.execute(_PRUNE, first_id(before_ms), limit)
        return int(status.rpartition(" ")[2])

    async def page(
        self, flt: ActivityFilter, limit: int, before: int | None = None
    ) -> list[Line]:
        where, args = _where(flt, before, None)
        sql = f"SELECT id, line FROM activity {where} ORDER BY id DESC LIMIT ${len(args) + 1}"
        return [(row[0], row[1]) for row in await self._db.fetch(sql, *args, limit)]

    async def after(self, flt: ActivityFilter, since_id: int, limit: int) -> list[Line]:
        where, args = _where(flt, None, since_id)
        sql = f"SELECT id, line FROM activity {where} ORDER BY id LIMIT ${len(args) + 1}"
        return [(row[0], row[1]) for row in await self._db.fetch(sql, *args, limit)]
