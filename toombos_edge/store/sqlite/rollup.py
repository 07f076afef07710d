"""Jobs per hour of creation and channel, and how many of them ended how: what analytics
reads instead of the jobs.

Thirty days of a million jobs are a million rows to count; the same thirty days here are
720 hours of a few rows each. ``job_hours`` holds, per (channel, status, hour): with status
``''``, how many jobs were created in that hour (UTC); with an end status (completed,
partial, failed, cancelled), how many of those jobs are in it now, and the summed run time
of those that ran to an end (``completed_at - started_at``). Channel ``''`` is the jobs
themselves; every other channel counts the jobs that name it. Pending and running jobs are
not kept here: a window's running jobs are few and read from the jobs table by its status
index, and pending ones are what remains.

So only a new job, an end, and a retry of an ended job write here; the busiest moves of a
job (claimed, given back, retried after a failed attempt) cost nothing. Kept like
``job_counts``: the statements of :mod:`.jobs` that make those changes pass the changed
jobs here, and one upsert per distinct key writes the deltas of the whole call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ...records.job import Job
from ..jobs import CREATED, ENDED, HOUR_MS

__all__ = ["CREATED", "ENDED", "HOUR_MS", "count", "moved", "rebuild", "run_ms"]
RAN = frozenset({"completed", "partial", "failed"})  #: the statuses whose run time counts
_ENDED = frozenset(ENDED)

#: (the job as it is now, its status before (None: a new job), its run time before)
Change = tuple[Job, str | None, int | None]

_UPSERT = (
    "INSERT INTO job_hours (channel, status, hour, n, run_ms, runs) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (channel, status, hour) DO UPDATE SET n = n + excluded.n, "
    "run_ms = run_ms + excluded.run_ms, runs = runs + excluded.runs"
)


def run_ms(status: str, started_at: int | None, completed_at: int | None) -> int | None:
    """How long a job that ran to an end took (None: it has not, or never started)."""
    if status in RAN and started_at is not None and completed_at is not None:
        return completed_at - started_at
    return None


def count(conn: sqlite3.Connection, changes: Iterable[Change]) -> None:
    """Count new jobs, and move ended ones from their old end to their new one."""
    deltas: dict[tuple[str, str, int], list[int]] = {}

    def add(job: Job, status: str, hour: int, run: int | None, sign: int) -> None:
        for channel in ("", *job.channels):
            delta = deltas.get((channel, status, hour))
            if delta is None:
                delta = deltas[channel, status, hour] = [0, 0, 0]
            delta[0] += sign
            if run is not None:
                delta[1] += sign * run
                delta[2] += sign

    for job, before, before_run in changes:
        status = job.status.value
        hour = job.created_at // HOUR_MS
        if before is None:
            add(job, CREATED, hour, None, 1)
        elif before in _ENDED:
            add(job, before, hour, before_run, -1)
        if status in _ENDED:
            add(job, status, hour, run_ms(status, job.started_at, job.completed_at), 1)
    rows = [(*key, *delta) for key, delta in deltas.items() if any(delta)]
    if rows:
        conn.executemany(_UPSERT, rows)


def moved(jobs: Iterable[Job], before: str) -> list[Change]:
    """Changes of jobs that were all in ``before``, a status that is not an end."""
    return [(job, before, None) for job in jobs]


_RAN_SQL = ("status IN ('completed', 'partial', 'failed') AND started_at IS NOT NULL "
            "AND completed_at IS NOT NULL")
_ENDED_SQL = "status IN ('completed', 'partial', 'failed', 'cancelled')"
_SUMS = (f"count(*), sum(CASE WHEN {_RAN_SQL} THEN completed_at - started_at ELSE 0 END), "
         f"sum({_RAN_SQL})")
_REBUILD = (
    "INSERT INTO job_hours (channel, status, hour, n, run_ms, runs) "
    f"SELECT '', '', created_at / {HOUR_MS}, count(*), 0, 0 FROM jobs GROUP BY 3 UNION ALL "
    f"SELECT '', status, created_at / {HOUR_MS}, {_SUMS} FROM jobs WHERE {_ENDED_SQL} "
    "GROUP BY 2, 3 UNION ALL "
    f"SELECT c.value, '', created_at / {HOUR_MS}, count(*), 0, 0 "
    "FROM jobs, json_each(jobs.channels) AS c WHERE jobs.channels <> '[]' GROUP BY 1, 3 "
    f"UNION ALL SELECT c.value, status, created_at / {HOUR_MS}, {_SUMS} "
    f"FROM jobs, json_each(jobs.channels) AS c WHERE jobs.channels <> '[]' AND {_ENDED_SQL} "
    "GROUP BY 1, 2, 3"
)


def rebuild(conn: sqlite3.Connection) -> None:
    """Count ``job_hours`` again from the jobs (migration 0008 does it once, with this
    statement): for a table filled outside the store, as bench/analytics.py fills one."""
    conn.execute("DELETE FROM job_hours")
    conn.execute(_REBUILD)
