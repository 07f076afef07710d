"""Retention's deletions on PostgreSQL: ended jobs, the dead set's cap, old content
versions; freed space is VACUUM's business.

Several nodes may run retention at once. Each deletion picks its rows ``FOR UPDATE SKIP
LOCKED``: a row another node is deleting (or a job another transaction is changing, a retry
say) is passed over, and a picked job that changed status meanwhile is re-checked and left
alone; the job counters are taken off by the status each deleted job really had. The dead
set's cap reads the count first, so its calls are serialised by an advisory lock: two
nodes could otherwise each delete the whole excess.

``give_back_space`` returns 0: PostgreSQL's (auto)vacuum makes deleted rows' space reusable
and gives trailing empty pages back to the file system by itself; shrinking a table further
takes ``VACUUM FULL``, which locks the table out, an operator's decision, not a server's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...ids import id_floor
from ..retention import VersionPosition
from . import jobs_sql
from .database import PgDatabase

if TYPE_CHECKING:
    import asyncpg

    from .migrate import Connection

#: The ``job_counts`` slot retention adds to (it runs seldom: any slot sums the same).
COUNT_SLOT = 0
#: The advisory lock of the dead set's cap ("retentn" in ASCII).
CAP_LOCK = 0x726574656E746E

_PRUNE_ENDED = (
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = $1 AND id < $2 "
    "AND coalesce(completed_at, updated_at) < $3 ORDER BY id LIMIT $4 "
    "FOR UPDATE SKIP LOCKED) RETURNING kind, status"
)
_PRUNE_OLDEST = (
    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = $1 ORDER BY id "
    "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING kind, status"
)
_VERSIONS = (
    "SELECT v.content_id, v.version, v.replaced_at < $3 "
    "OR ($4 > 0 AND v.version < c.version - $4) "
    "FROM content_versions AS v JOIN content AS c ON c.id = v.content_id "
    "WHERE (v.content_id, v.version) > ($1, $2) ORDER BY v.content_id, v.version LIMIT $5"
)
_DELETE_VERSIONS = (
    "DELETE FROM content_versions WHERE (content_id, version) IN "
    "(SELECT * FROM unnest($1::text[], $2::integer[]))"
)


async def _uncount(conn: Connection, rows: list[asyncpg.Record]) -> int:
    await jobs_sql.add_counts(conn, COUNT_SLOT, [(row[0], row[1], -1) for row in rows])
    return len(rows)


class PgRetentionStore:
    """:class:`~toombos_edge.store.retention.RetentionStore` of a PostgreSQL database."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgRetentionStore {self._db!r}>"

    async def prune_ended_jobs(
        self, statuses: Sequence[str], ended_before: int, limit: int
    ) -> int:
        # Ids sort by creation and a job ends after it is created: each status's scan stays
        # among the jobs created before the cutoff.
        ceiling = id_floor("job", ended_before)
        rows: list[asyncpg.Record] = []
        async with self._db.transaction() as conn:
            for status in statuses:
                if len(rows) >= limit:
                    break
                rows += await conn.fetch(_PRUNE_ENDED, status, ceiling, ended_before,
                                         limit - len(rows))
            return await _uncount(conn, rows)

    async def prune_oldest_jobs(self, status: str, keep: int, limit: int) -> int:
        async with self._db.transaction() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", CAP_LOCK)
            total = await conn.fetchval(
                "SELECT coalesce(sum(n), 0) FROM job_counts WHERE status = $1", status)
            excess = min(int(total) - keep, limit)
            if excess <= 0:
                return 0
            return await _uncount(conn, await conn.fetch(_PRUNE_OLDEST, status, excess))

    async def prune_content_versions(
        self, after: VersionPosition, keep: int, replaced_before: int, scan: int
    ) -> tuple[int, VersionPosition | None]:
        async with self._db.transaction() as conn:
            rows = await conn.fetch(_VERSIONS, after[0], after[1], replaced_before, keep, scan)
            doomed = [row for row in rows if row[2]]
            gone = 0
            if doomed:
                status = await conn.execute(_DELETE_VERSIONS, [row[0] for row in doomed],
                                            [row[1] for row in doomed])
                gone = int(status.rpartition(" ")[2])  # another node may have taken some
        return gone, ((rows[-1][0], rows[-1][1]) if len(rows) == scan else None)

    async def give_back_space(self, most: int) -> int:
        return 0
