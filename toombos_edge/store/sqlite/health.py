"""The SQLite database as the health checks see it."""

from __future__ import annotations

import sqlite3

from ..space import SpaceState
from .database import Database


def _select_one(conn: sqlite3.Connection) -> object:
    return conn.execute("SELECT 1").fetchone()[0]


class SqliteHealthStore:
    """:class:`~toombos_edge.store.health.HealthStore` of the database file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteHealthStore {self._db.path}>"

    @property
    def space(self) -> SpaceState:
        return self._db.space

    async def ping(self) -> str:
        value = await self._db.read(_select_one)
        if value != 1:
            raise RuntimeError(f"SELECT 1 answered {value!r}")
        return f"sqlite schema v{self._db.schema_version}"

    async def has_room(self) -> bool:
        return await self._db.has_room()
