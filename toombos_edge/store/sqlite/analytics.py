"""The SQL of analytics: sums over ``job_hours`` (the jobs store keeps it), not the jobs.

Every sum reads ranges of hours of the primary key ``(channel, status, hour)``, one per
status (hence the explicit list): thirty days are 720 rows per status and channel, whatever
the number of jobs, summed in key order (bench/analytics.py). ``job_hours`` counts jobs
created and jobs ended; running jobs are read from the jobs table by its status index
(there are as many as workers), and pending ones are what remains. The statements are
public so that a test can check their query plans.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from ..analytics import HOUR_MS, Summary, Sums, fold

# The roll-up's own encoding of the statuses it counts.
from ..jobs import CREATED, ENDED
from .database import Database

_IN = "status IN (" + ", ".join(f"'{status}'" for status in (CREATED, *ENDED)) + ")"

# The channels present, one index seek each (a skip-scan over the primary key's first
# column), so that the per-channel sums below are ranges of hours, not a scan of all hours.
CHANNELS = (
    "WITH RECURSIVE seen(channel) AS ("
    " SELECT min(channel) FROM job_hours WHERE channel > ''"
    " UNION ALL SELECT (SELECT min(channel) FROM job_hours WHERE channel > seen.channel)"
    " FROM seen WHERE seen.channel IS NOT NULL"
    ") SELECT channel FROM seen WHERE channel IS NOT NULL"
)
BY_STATUS = (
    "SELECT status, sum(n), sum(run_ms), sum(runs) FROM job_hours "
    f"WHERE channel = ? AND {_IN} AND hour BETWEEN ? AND ? GROUP BY status"
)
OVER_TIME = (
    "SELECT hour / ? AS bucket, sum(n) FROM job_hours WHERE channel = '' AND status = '' "
    "AND hour BETWEEN ? AND ? GROUP BY bucket ORDER BY bucket"
)
SINCE = "SELECT sum(n) FROM job_hours WHERE channel = '' AND status = '' AND hour >= ?"
RUNNING = (
    "SELECT channels FROM jobs INDEXED BY jobs_status WHERE status = 'in_progress' "
    "AND created_at >= ? AND created_at < ?"
)


def _sums(conn: sqlite3.Connection, channel: str, first_hour: int, last_hour: int,
          running: int) -> Sums:
    """Jobs created in ``[first_hour, last_hour]`` naming ``channel`` ('': every job), of
    which ``running`` run now."""
    return fold(conn.execute(BY_STATUS, (channel, first_hour, last_hour)), running)


def _running(conn: sqlite3.Connection, first_hour: int, last_hour: int) -> dict[str, int]:
    """Running jobs created in the window, per channel ('': all of them)."""
    counts = {"": 0}
    rows = conn.execute(RUNNING, (first_hour * HOUR_MS, (last_hour + 1) * HOUR_MS))
    for (channels,) in rows:
        counts[""] += 1
        for channel in orjson.loads(channels):
            counts[channel] = counts.get(channel, 0) + 1
    return counts


def channels(conn: sqlite3.Connection) -> list[str]:
    """Every channel any job has named."""
    return [row[0] for row in conn.execute(CHANNELS)]


def window(conn: sqlite3.Connection, first_hour: int, last_hour: int
           ) -> tuple[Sums, dict[str, Sums]]:
    """The sums of every job created in the window, and of each channel with jobs in it."""
    running = _running(conn, first_hour, last_hour)
    jobs = _sums(conn, "", first_hour, last_hour, running[""])
    per_channel = {}
    for name in channels(conn):
        sums = _sums(conn, name, first_hour, last_hour, running.get(name, 0))
        if sums.total:
            per_channel[name] = sums
    return jobs, per_channel


def over_time(
    conn: sqlite3.Connection, first_hour: int, last_hour: int, hours_per_bucket: int
) -> dict[int, int]:
    """Jobs created per bucket of ``hours_per_bucket`` hours: bucket number → count."""
    rows = conn.execute(OVER_TIME, (hours_per_bucket, first_hour, last_hour))
    return {bucket: n for bucket, n in rows if n}


def created_since(conn: sqlite3.Connection, first_hour: int) -> int:
    """Jobs created in ``first_hour`` or later."""
    value = conn.execute(SINCE, (first_hour,)).fetchone()[0]
    return int(value or 0)


def summary(conn: sqlite3.Connection, first_hour: int, last_hour: int, hours_per_bucket: int,
            since_hours: Sequence[int]) -> Summary:
    jobs, per_channel = window(conn, first_hour, last_hour)
    buckets = over_time(conn, first_hour, last_hour, hours_per_bucket)
    since = {hour: created_since(conn, hour) for hour in since_hours}
    return Summary(jobs, per_channel, buckets, since)


class SqliteAnalyticsStore:
    """:class:`~toombos_edge.store.analytics.AnalyticsStore` over ``job_hours``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteAnalyticsStore {self._db.path}>"

    async def summary(
        self, first_hour: int, last_hour: int, hours_per_bucket: int,
        since_hours: Sequence[int] = (),
    ) -> Summary:
        return await self._db.read(
            lambda c: summary(c, first_hour, last_hour, hours_per_bucket, since_hours))
