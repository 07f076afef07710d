"""The activity table's SQL: batched inserts and the newest-first filtered page.

A row's id is its time: ``ms << 10 | n`` (:class:`LineIds`), so ``since``/``until`` are an
id range on the primary key and every filter walks one index backwards from the cursor.

A batch arrives as rows ready to bind, each line already rendered (``lines.render``):
one ``executemany`` of a plain INSERT. (Rendering the lines inside SQLite, with
``json_object`` over ``json_each``, and reading them back for the file cost about twice
as much per line, measured.)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

SEQ_BITS = 10
#: One row: id, type, actor id (None: the server), target, and the line itself.
Row = tuple[int, str, str | None, str | None, str]
INSERT = "INSERT INTO activity (id, type, actor, target, line) VALUES (?, ?, ?, ?, ?)"


class LineIds:
    """Increasing ids from millisecond times (a clock step back never reuses an id)."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def next(self, ms: int) -> int:
        ident = max(ms << SEQ_BITS, self.last + 1)
        self.last = ident
        return ident


def last_id(conn: sqlite3.Connection) -> int:
    value: int | None = conn.execute("SELECT max(id) FROM activity").fetchone()[0]
    return value or 0


def insert(conn: sqlite3.Connection, rows: list[Row]) -> None:
    conn.executemany(INSERT, rows)


PRUNE_STEP = 10_000  #: rows removed per write: the writer is never held for long


def prune(conn: sqlite3.Connection, before_ms: int) -> int:
    """Remove up to ``PRUNE_STEP`` of the rows older than ``before_ms`` (a key range)."""
    removed: int = conn.execute(
        "DELETE FROM activity WHERE id IN "
        "(SELECT id FROM activity WHERE id < ? ORDER BY id LIMIT ?)",
        (before_ms << SEQ_BITS, PRUNE_STEP),
    ).rowcount
    return removed


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    types: tuple[str, ...] = ()
    actor: str | None = None  #: a key id, an IP, or "system"
    target: str | None = None
    since: int | None = None  #: ms, inclusive
    until: int | None = None  #: ms, inclusive


def page(
    conn: sqlite3.Connection, flt: ActivityFilter, limit: int, before: int | None = None
) -> list[tuple[int, str]]:
    """(id, line) of up to ``limit`` rows newest first, older than ``before`` if given."""
    where, args = _where(flt, before)
    sql = f"SELECT id, line FROM activity {where} ORDER BY id DESC LIMIT ?"
    return conn.execute(sql, (*args, limit)).fetchall()


def after(
    conn: sqlite3.Connection, flt: ActivityFilter, since_id: int, limit: int
) -> list[tuple[int, str]]:
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
        args.append(flt.since << SEQ_BITS)
    if flt.until is not None:
        clauses.append("id < ?")
        args.append((flt.until + 1) << SEQ_BITS)
    if before is not None:
        clauses.append("id < ?")
        args.append(before)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args
