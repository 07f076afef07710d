"""The SQL of analytics: sums over ``job_hours`` (jobs/rollup.py keeps it), never the jobs.

Every query reads ranges of hours of the primary key ``(channel, status, hour)``, one per
status (hence the explicit list of statuses): thirty days are 720 rows per status and
channel, whatever the number of jobs, summed in key order (bench/analytics.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..jobs.model import JobStatus

_IN = "status IN (" + ", ".join(f"'{status.value}'" for status in JobStatus) + ")"

# The channels present, one index seek each (a skip-scan over the primary key's first
# column), so that the per-channel sums below are ranges of hours, not a scan of all hours.
_CHANNELS = (
    "WITH RECURSIVE seen(channel) AS ("
    " SELECT min(channel) FROM job_hours WHERE channel > ''"
    " UNION ALL SELECT (SELECT min(channel) FROM job_hours WHERE channel > seen.channel)"
    " FROM seen WHERE seen.channel IS NOT NULL"
    ") SELECT channel FROM seen WHERE channel IS NOT NULL"
)
_BY_STATUS = (
    "SELECT status, sum(n), sum(run_ms), sum(runs) FROM job_hours "
    f"WHERE channel = ? AND {_IN} AND hour BETWEEN ? AND ? GROUP BY status"
)
_OVER_TIME = (
    "SELECT hour / ? AS bucket, sum(n) FROM job_hours "
    f"WHERE channel = '' AND {_IN} AND hour BETWEEN ? AND ? GROUP BY bucket ORDER BY bucket"
)
_SINCE = f"SELECT sum(n) FROM job_hours WHERE channel = '' AND {_IN} AND hour >= ?"


@dataclass(frozen=True, slots=True)
class Sums:
    """Jobs per status, and the run time of those that ran to an end."""

    by_status: dict[str, int]
    run_ms: int
    runs: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def sums(conn: sqlite3.Connection, channel: str, first_hour: int, last_hour: int) -> Sums:
    """Jobs created in ``[first_hour, last_hour]`` naming ``channel`` ('' : every job)."""
    by_status: dict[str, int] = {}
    run_ms = runs = 0
    for status, n, run, ran in conn.execute(_BY_STATUS, (channel, first_hour, last_hour)):
        if n:
            by_status[status] = n
        run_ms += run
        runs += ran
    return Sums(by_status, run_ms, runs)


def channels(conn: sqlite3.Connection) -> list[str]:
    """Every channel any job has named."""
    return [row[0] for row in conn.execute(_CHANNELS)]


def per_channel(conn: sqlite3.Connection, first_hour: int, last_hour: int) -> dict[str, Sums]:
    """The sums of each channel with jobs in the range."""
    found = {name: sums(conn, name, first_hour, last_hour) for name in channels(conn)}
    return {name: found_sums for name, found_sums in found.items() if found_sums.total}


def over_time(
    conn: sqlite3.Connection, first_hour: int, last_hour: int, hours_per_bucket: int
) -> dict[int, int]:
    """Jobs created per bucket of ``hours_per_bucket`` hours: bucket number → count."""
    rows = conn.execute(_OVER_TIME, (hours_per_bucket, first_hour, last_hour))
    return {bucket: n for bucket, n in rows if n}


def created_since(conn: sqlite3.Connection, first_hour: int) -> int:
    """Jobs created in ``first_hour`` or later."""
    value = conn.execute(_SINCE, (first_hour,)).fetchone()[0]
    return int(value or 0)
