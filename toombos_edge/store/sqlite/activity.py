"""The activity table's SQL: batched inserts and the newest-first filtered page.

A batch arrives as rows ready to bind, each line already rendered (``activity.lines``):
one ``executemany`` of a plain INSERT. (Rendering the lines inside SQLite, with
``json_object`` over ``json_each``, and reading them back for the file cost about twice
as much per line, measured.)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...records.activity import ActivityFilter, Row, above, first_id
from ..activity import Line
from .database import Database

INSERT = "INSERT INTO activity (id, type, actor, target, line) VALUES (?, ?, ?, ?, ?)"


def last_id(conn: sqlite3.Connection) -> int:
    value: int | None = conn.execute("SELECT max(id) FROM activity").fetchone()[0]
    return value or 0


def insert(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """In the writer's transaction: numbered above the ids stored (one read of the primary
    key's last entry), so two logs on one file never clash."""
    conn.executemany(INSERT, above(rows, last_id(conn)))


def prune(conn: sqlite3.Connection, before_ms: int, limit: int) -> int:
    """Remove up to ``limit`` of the rows older than ``before_ms`` (a key range)."""
    removed: int = conn.execute(
        "DELETE FROM activity WHERE id IN "
        "(SELECT id FROM activity WHERE id < ? ORDER BY id LIMIT ?)",
        (first_id(before_ms), limit),
    ).rowcount
    return removed


def page(
    conn: sqlite3.Connection, flt: ActivityFilter, limit: int, before: int | None = None
) -> list[Line]:
    """(id, line) of up to ``limit`` rows newest first, older than ``before`` if given."""
    where, args = _where(flt, before)
    sql = f"SELECT id, line FROM activity {where} ORDER BY id DESC LIMIT ?"
    return conn.execute(sql, (*args, limit)).fetchall()


def after(
    conn: sqlite3.Connection, flt: ActivityFilter, since_id: int, limit: int
) -> list[Line]:
    """(id, line) of up to ``limit`` rows newer than ``since_id``, oldest first (follow)."""
    where, args = _where(flt, None)
    where = f"{where} AND id > ?" if where else "WHERE id > ?"
    sql = f"SELECT id, line FROM activity {where} ORDER BY id LIMIT ?"
    return conn.execute(sql, (*args, since_id, limit)).fetchall()


def _where(flt: ActivityFilter, before: int | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if flt.types:
        clauses.append(f"type IN ({','.join('?' * len(flt.types))})")
        args += flt.types
    if flt.actor == "system":
        clauses.append("actor IS NULL")
    elif flt.actor is not None:
        clauses.append("actor = ?")
        args.append(flt.actor)
    if flt.target is not None:
        clauses.append("target = ?")
        args.append(flt.target)
    if flt.since is not None:
        clauses.append("id >= ?")
        args.append(first_id(flt.since))
    if flt.until is not None:
        clauses.append("id < ?")
        args.append(first_id(flt.until + 1))
    if before is not None:
        clauses.append("id < ?")
        args.append(before)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


class SqliteActivityStore:
    """:class:`~toombos_edge.store.activity.ActivityStore` in the ``activity`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteActivityStore {self._db.path}>"

    async def last_id(self) -> int:
        return await self._db.read(last_id)

    async def insert(self, rows: Sequence[Row]) -> None:
        await self._db.write(lambda c: insert(c, rows))

    async def prune(self, before_ms: int, limit: int) -> int:
        return await self._db.write(lambda c: prune(c, before_ms, limit), frees=True)

    async def page(
        self, flt: ActivityFilter, limit: int, before: int | None = None
    ) -> list[Line]:
        return await self._db.read(lambda c: page(c, flt, limit, before))

    async def after(self, flt: ActivityFilter, since_id: int, limit: int) -> list[Line]:
        return await self._db.read(lambda c: after(c, flt, since_id, limit))
