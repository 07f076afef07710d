"""API keys (``api_keys``) on PostgreSQL.

Several nodes share the table: a revocation is one ``UPDATE … RETURNING`` (the row lock
orders two revocations, and the second keeps the first one's time), and uses recorded by
different nodes keep the latest time whichever commits last.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from ...records.key import ApiKey, Role
from .database import PgDatabase

_COLUMNS = "id, name, role, secret_hash, created_at, last_used_at, revoked_at"
_ROLES = {role.name: role for role in Role}

# Ids sort by time in byte order; their alphabet (digits and lower-case letters after one
# prefix) sorts the same under any collation, so the primary key's order is theirs.
_PAGE = f"SELECT {_COLUMNS} FROM api_keys ORDER BY id LIMIT $1 OFFSET $2"
# A second revocation waits for the first's row lock, then finds revoked_at set: no row.
_REVOKE = (f"UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL "
           f"RETURNING {_COLUMNS}")
# greatest() ignores NULL: a first use sets the time, a later flush of an older use (another
# node's batch committing after ours) does not move it back.
_USE = "UPDATE api_keys SET last_used_at = greatest(last_used_at, $2) WHERE id = $1"


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row[0], row[1], _ROLES[row[2]], row[3], row[4], row[5], row[6])


class PgKeyStore:
    """:class:`~toombos_edge.store.keys.KeyStore` in the ``api_keys`` table."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgKeyStore {self._db!r}>"

    async def insert(self, key: ApiKey) -> None:
        await self._db.execute(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            key.id, key.name, key.role.name, key.secret_hash, key.created_at,
            key.last_used_at, key.revoked_at)

    async def page(self, limit: int = -1, offset: int = 0) -> list[ApiKey]:
        # LIMIT NULL is no limit, as SQLite's LIMIT -1.
        rows = await self._db.fetch(_PAGE, None if limit < 0 else limit, offset)
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str, at: int) -> tuple[ApiKey, bool] | None:
        row = await self._db.fetchrow(_REVOKE, key_id, at)
        if row is not None:
            return _key(row), True
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", key_id)
        return None if row is None else (_key(row), False)

    async def active(self) -> list[ApiKey]:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL")
        return [_key(row) for row in rows]

    async def record_use(self, last_used: Mapping[str, int]) -> None:
        # In id order: two nodes recording the same keys lock them in the same order, so
        # neither can deadlock the other.
        uses = sorted(last_used.items())
        if uses:
            async with self._db.transaction() as conn:
                await conn.executemany(_USE, uses)

    async def count(self) -> int:
        return int(await self._db.fetchval("SELECT count(*) FROM api_keys"))
