"""A read of several statements that sees one state of the database.

PostgreSQL's default isolation (read committed) takes a new snapshot per statement, so a
count and the page after it could disagree while other nodes write. A read-only
repeatable-read transaction reads both in the snapshot of its first statement, without
locking anything or being refused (only writers can fail to serialize).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .database import PgDatabase

if TYPE_CHECKING:
    from .migrate import Connection


@contextlib.asynccontextmanager
async def snapshot(db: PgDatabase) -> AsyncIterator[Connection]:
    """A pooled connection in a read-only transaction over one snapshot."""
    async with db.connection() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True):
        yield conn
