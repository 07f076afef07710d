"""The SQL of analytics: sums over ``job_hours`` (jobs/rollup.py keeps it), not the jobs.

Every sum reads ranges of hours of the primary key ``(channel, status, hour)``, one per
status (hence the explicit list): thirty days are 720 rows per status and channel, whatever
the number of jobs, summed in key order (bench/analytics.py). ``job_hours`` counts jobs
created and jobs ended; running jobs are read from the jobs table by its status index
(there are as many as workers), and pending ones are what remains.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import orjson

from ..store.jobs import CREATED, ENDED, HOUR_MS

_IN = "status IN (" + ", ".join(f"'{status}'" for status in (CREATED, *ENDED)) + ")"

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
    "SELECT hour / ? AS bucket, sum(n) FROM job_hours WHERE channel = '' AND status = '' "
    "AND hour BETWEEN ? AND ? GROUP BY bucket ORDER BY bucket"
)
_SINCE = "SELECT sum(n) FROM job_hours WHERE channel = '' AND status = '' AND hour >= ?"
_RUNNING = (
    "SELECT channels FROM jobs INDEXED BY jobs_status WHERE status = 'in_progress' "
    "AND created_at >= ? AND created_at < ?"
)


@dataclass(slots=True)
class Sums:
    """Jobs per status, and the run time of those that ran to an end."""

    by_status: dict[str, int] = field(default_factory=dict)
    run_ms: int = 0
    runs: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def _sums(conn: sqlite3.Connection, channel: str, first_hour: int, last_hour: int,
          running: int) -> Sums:
    """Jobs created in ``[first_hour, last_hour]`` naming ``channel`` ('': every job), of
    which ``running`` run now."""
    sums = Sums()
    created = 0
    for status, n, run, ran in conn.execute(_BY_STATUS, (channel, first_hour, last_hour)):
        if status == CREATED:
            created = n
        elif n:
            sums.by_status[status] = n
        sums.run_ms += run
        sums.runs += ran
    if running:
        sums.by_status["in_progress"] = running
    pending = created - sums.total
    if pending > 0:
        sums.by_status["pending"] = pending
    return sums


def _running(conn: sqlite3.Connection, first_hour: int, last_hour: int) -> dict[str, int]:
    """Running jobs created in the window, per channel ('': all of them)."""
    counts = {"": 0}
    rows = conn.execute(_RUNNING, (first_hour * HOUR_MS, (last_hour + 1) * HOUR_MS))
    for (channels,) in rows:
        counts[""] += 1
        for channel in orjson.loads(channels):
            counts[channel] = counts.get(channel, 0) + 1
    return counts


def channels(conn: sqlite3.Connection) -> list[str]:
    """Every channel any job has named."""
    return [row[0] for row in conn.execute(_CHANNELS)]


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
    rows = conn.execute(_OVER_TIME, (hours_per_bucket, first_hour, last_hour))
    return {bucket: n for bucket, n in rows if n}


def created_since(conn: sqlite3.Connection, first_hour: int) -> int:
    """Jobs created in ``first_hour`` or later."""
    value = conn.execute(_SINCE, (first_hour,)).fetchone()[0]
    return int(value or 0)
