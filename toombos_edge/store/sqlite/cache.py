"""The SQL of the cache's invalidation history (``cache_invalidations``)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..cache import HISTORY_LIMIT, Invalidation
from .database import Database

_COLUMNS = "id, ts, actor, invalidated, keys, pattern, tags, cleared"


def insert(conn: sqlite3.Connection, entry: Invalidation) -> None:
    """Add ``entry``; keep the newest ``HISTORY_LIMIT``."""
    conn.execute(
        f"INSERT INTO cache_invalidations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.id, entry.ts, entry.actor, entry.invalidated,
            orjson.dumps(entry.keys).decode(), entry.pattern,
            orjson.dumps(entry.tags).decode(), int(entry.cleared),
        ),
    )
    conn.execute(
        "DELETE FROM cache_invalidations WHERE id NOT IN "
        "(SELECT id FROM cache_invalidations ORDER BY ts DESC, id DESC LIMIT ?)",
        (HISTORY_LIMIT,),
    )


def newest(conn: sqlite3.Connection, limit: int) -> list[Invalidation]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cache_invalidations ORDER BY ts DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [_entry(row) for row in rows]


def _entry(row: tuple[Any, ...]) -> Invalidation:
    return Invalidation(row[0], row[1], row[2], row[3], tuple(orjson.loads(row[4])), row[5],
                        tuple(orjson.loads(row[6])), bool(row[7]))


class SqliteInvalidationHistory:
    """:class:`~toombos_edge.store.cache.InvalidationHistory` in the database's table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteInvalidationHistory {self._db.path}>"

    async def record(self, entry: Invalidation) -> None:
        await self._db.write(lambda c: insert(c, entry))

    async def newest(self, limit: int) -> list[Invalidation]:
        return await self._db.read(lambda c: newest(c, limit))
