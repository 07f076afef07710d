"""The history of cache invalidations, kept in SQLite (the cache itself may be rebuilt)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..ids import iso

HISTORY_LIMIT = 500
TARGET = "local"


_HISTORY_COLUMNS = "id, ts, actor, invalidated, keys, pattern, tags, cleared"


def insert(conn: sqlite3.Connection, entry: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO cache_invalidations ({_HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry["id"], entry["ts"], entry["actor"], entry["invalidated"],
            orjson.dumps(entry["keys"]).decode(), entry["pattern"],
            orjson.dumps(entry["tags"]).decode(), int(entry["cleared"]),
        ),
    )
    conn.execute(
        "DELETE FROM cache_invalidations WHERE id NOT IN "
        "(SELECT id FROM cache_invalidations ORDER BY ts DESC, id DESC LIMIT ?)",
        (HISTORY_LIMIT,),
    )


def rows(conn: sqlite3.Connection, limit: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        f"SELECT {_HISTORY_COLUMNS} FROM cache_invalidations ORDER BY ts DESC, id DESC LIMIT ?",
        (limit,),
    ).fetchall()


def to_json(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "timestamp": iso(row[1]),
        "actor": row[2],
        "invalidated": row[3],
        "cache_keys": orjson.loads(row[4]),
        "pattern": row[5],
        "tags": orjson.loads(row[6]),
        "cleared": bool(row[7]),
        "targets": [TARGET],
    }
