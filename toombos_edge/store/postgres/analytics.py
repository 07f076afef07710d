"""Analytics on PostgreSQL: the sums of :mod:`..sqlite.analytics` over ``job_hours``, read
in one REPEATABLE READ snapshot so that the parts agree while other nodes write.

``job_hours`` counts jobs created and ended per (channel, status, hour) as the jobs store
keeps it; running jobs are read from the jobs table (as many as the nodes' workers), and
pending ones are what remains. Every read here is a sum, so several rows per key (a
writer that spreads its increments over rows, as ``job_counts`` does) sum the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..analytics import HOUR_MS, Summary, Sums, fold
from ..jobs import CREATED, ENDED
from .database import PgDatabase

if TYPE_CHECKING:
    from .migrate import Connection

_STATUSES = [CREATED, *ENDED]

# The channels present, one index probe each (a loose scan of the primary key's first
# column), then, per channel (LATERAL: a joined scan of all channels' hours is what the
# planner would pick otherwise), the window's range of each (channel, status) key: the cost
# follows the hours and channels, not the jobs. '' is every job.
BY_STATUS = (
    "WITH RECURSIVE seen(channel) AS ("
    " SELECT min(channel) FROM job_hours WHERE channel > ''"
    " UNION ALL SELECT (SELECT min(channel) FROM job_hours WHERE channel > seen.channel)"
    " FROM seen WHERE seen.channel IS NOT NULL"
    "), named(channel) AS (SELECT '' UNION ALL SELECT channel FROM seen "
    " WHERE channel IS NOT NULL) "
    "SELECT named.channel, h.* FROM named CROSS JOIN LATERAL ("
    " SELECT status, sum(n)::bigint, sum(run_ms)::bigint, sum(runs)::bigint FROM job_hours"
    " WHERE channel = named.channel AND status = ANY($3::text[]) AND hour BETWEEN $1 AND $2"
    " GROUP BY status) AS h"
)
RUNNING = (
    "SELECT channels FROM jobs WHERE status = 'in_progress' "
    "AND created_at >= $1 AND created_at < $2"
)
OVER_TIME = (
    "SELECT hour / $1 AS bucket, sum(n)::bigint FROM job_hours WHERE channel = '' "
    "AND status = '' AND hour BETWEEN $2 AND $3 GROUP BY bucket ORDER BY bucket"
)
SINCE = (
    "SELECT first, (SELECT coalesce(sum(n), 0)::bigint FROM job_hours WHERE channel = '' "
    "AND status = '' AND hour >= first) FROM unnest($1::bigint[]) AS first"
)


async def _running(conn: Connection, first_hour: int, last_hour: int) -> dict[str, int]:
    counts = {"": 0}
    for (channels,) in await conn.fetch(RUNNING, first_hour * HOUR_MS,
                                        (last_hour + 1) * HOUR_MS):
        counts[""] += 1
        for channel in channels:
            counts[channel] = counts.get(channel, 0) + 1
    return counts


async def _window(conn: Connection, first_hour: int, last_hour: int
                  ) -> tuple[Sums, dict[str, Sums]]:
    running = await _running(conn, first_hour, last_hour)
    per_key: dict[str, list[tuple[str, int, int, int]]] = {"": []}
    for channel, status, n, run, ran in await conn.fetch(
            BY_STATUS, first_hour, last_hour, _STATUSES):
        per_key.setdefault(channel, []).append((status, n, run, ran))
    jobs = fold(per_key.pop(""), running[""])
    per_channel = {}
    for name, rows in per_key.items():
        sums = fold(rows, running.get(name, 0))
        if sums.total:
            per_channel[name] = sums
    return jobs, per_channel


class PgAnalyticsStore:
    """:class:`~toombos_edge.store.analytics.AnalyticsStore` over ``job_hours``."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgAnalyticsStore {self._db!r}>"

    async def summary(
        self, first_hour: int, last_hour: int, hours_per_bucket: int,
        since_hours: Sequence[int] = (),
    ) -> Summary:
        # READ COMMITTED would give each statement its own snapshot: a job ending between
        # two of them would be counted in one part and not the other.
        async with self._db.connection() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            jobs, per_channel = await _window(conn, first_hour, last_hour)
            rows = await conn.fetch(OVER_TIME, hours_per_bucket, first_hour, last_hour)
            since = await conn.fetch(SINCE, list(since_hours))
        buckets = {bucket: n for bucket, n in rows if n}
        return Summary(jobs, per_channel, buckets, {first: n for first, n in since})
