"""The SQL of API keys (``api_keys``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from ...records.key import ApiKey, Role
from .database import Database

_COLUMNS = "id, name, role, secret_hash, created_at, last_used_at, revoked_at"
_ROLES = {role.name: role for role in Role}  # a dict lookup: Role[name] is slow per row


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(row[0], row[1], _ROLES[row[2]], row[3], row[4], row[5], row[6])


def insert(conn: sqlite3.Connection, key: ApiKey) -> None:
    conn.execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key.id, key.name, key.role.name, key.secret_hash, key.created_at,
         key.last_used_at, key.revoked_at),
    )


def listing(conn: sqlite3.Connection, limit: int, offset: int) -> list[ApiKey]:
    sql = f"SELECT {_COLUMNS} FROM api_keys ORDER BY id LIMIT ? OFFSET ?"
    return [_key(row) for row in conn.execute(sql, (limit, offset))]


def revoke(conn: sqlite3.Connection, key_id: str, at: int) -> tuple[ApiKey, bool] | None:
    revoked = conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (at, key_id)).rowcount == 1
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else (_key(row), revoked)


def active(conn: sqlite3.Connection) -> list[ApiKey]:
    sql = f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
    return [_key(row) for row in conn.execute(sql)]


def record_use(conn: sqlite3.Connection, last_used: Mapping[str, int]) -> None:
    conn.executemany("UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                     [(stamp, key_id) for key_id, stamp in last_used.items()])


def count(conn: sqlite3.Connection) -> int:
    total: int = conn.execute("SELECT count(*) FROM api_keys").fetchone()[0]
    return total


class SqliteKeyStore:
    """:class:`~toombos_edge.store.keys.KeyStore` in the database's ``api_keys`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteKeyStore {self._db.path}>"

    async def insert(self, key: ApiKey) -> None:
        await self._db.write(lambda c: insert(c, key))

    async def page(self, limit: int = -1, offset: int = 0) -> list[ApiKey]:
        return await self._db.read(lambda c: listing(c, limit, offset))

    async def revoke(self, key_id: str, at: int) -> tuple[ApiKey, bool] | None:
        return await self._db.write(lambda c: revoke(c, key_id, at))

    async def active(self) -> list[ApiKey]:
        return await self._db.read(active)

    async def record_use(self, last_used: Mapping[str, int]) -> None:
        await self._db.write(lambda c: record_use(c, last_used))

    async def count(self) -> int:
        return await self._db.read(count)
