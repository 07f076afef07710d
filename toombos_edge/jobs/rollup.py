"""Jobs per hour of creation, status and channel: what analytics reads instead of the jobs.

Thirty days of a million jobs are a million rows to count; the same thirty days here are
720 hours of a few rows each. ``job_hours`` holds, per (channel, status, hour), how many
jobs created in that hour (UTC) are in that status now, and the summed run time of those
that ran to an end (completed, partial or failed: ``completed_at - started_at``). Channel
``''`` is the jobs themselves; every other channel counts the jobs that name it.

Kept like ``job_counts``: each statement of :mod:`.store` that adds a job or changes a
status passes the changed jobs here, and one upsert per distinct key writes the deltas of
the whole call (a batch of a thousand jobs of the same hour is a few rows).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .model import Job

HOUR_MS = 3_600_000
RAN = frozenset({"completed", "partial", "failed"})  #: the statuses whose run time counts

#: (the job as it is now, its status before (None: a new job), its run time before)
Change = tuple[Job, str | None, int | None]

_UPSERT = (
    "INSERT INTO job_hours (channel, hour, status, n, run_ms, runs) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (channel, status, hour) DO UPDATE SET n = n + excluded.n, "
    "run_ms = run_ms + excluded.run_ms, runs = runs + excluded.runs"
)


def run_ms(status: str, started_at: int | None, completed_at: int | None) -> int | None:
    """How long a job that ran to an end took (None: it has not, or never started)."""
    if status in RAN and started_at is not None and completed_at is not None:
        return completed_at - started_at
    return None


def count(conn: sqlite3.Connection, changes: Iterable[Change]) -> None:
    """Move each changed job from its old (status, run time) to its current ones."""
    deltas: dict[tuple[str, int, str], list[int]] = {}

    def add(job: Job, hour: int, status: str, run: int | None, sign: int) -> None:
        for channel in ("", *job.channels):
            delta = deltas.get((channel, hour, status))
            if delta is None:
                delta = deltas[channel, hour, status] = [0, 0, 0]
            delta[0] += sign
            if run is not None:
                delta[1] += sign * run
                delta[2] += sign

    for job, before, before_run in changes:
        status = job.status.value
        hour = job.created_at // HOUR_MS
        if before is not None:
            add(job, hour, before, before_run, -1)
        add(job, hour, status, run_ms(status, job.started_at, job.completed_at), 1)
    rows = [(*key, *delta) for key, delta in deltas.items() if any(delta)]
    if rows:
        conn.executemany(_UPSERT, rows)


def moved(jobs: Iterable[Job], before: str) -> list[Change]:
    """Changes of jobs that were all in ``before``, a status without a run time."""
    return [(job, before, None) for job in jobs]


_RAN_SQL = ("status IN ('completed', 'partial', 'failed') AND started_at IS NOT NULL "
            "AND completed_at IS NOT NULL")
_REBUILD = (
    "INSERT INTO job_hours (channel, hour, status, n, run_ms, runs) "
    f"SELECT '', created_at / {HOUR_MS}, status, count(*), "
    f"sum(CASE WHEN {_RAN_SQL} THEN completed_at - started_at ELSE 0 END), sum({_RAN_SQL}) "
    "FROM jobs GROUP BY 2, 3 UNION ALL "
    f"SELECT c.value, created_at / {HOUR_MS}, status, count(*), "
    f"sum(CASE WHEN {_RAN_SQL} THEN completed_at - started_at ELSE 0 END), sum({_RAN_SQL}) "
    "FROM jobs, json_each(jobs.channels) AS c WHERE jobs.channels <> '[]' GROUP BY 1, 2, 3"
)


def rebuild(conn: sqlite3.Connection) -> None:
    """Count ``job_hours`` again from the jobs (migration 0008 does the same once): for a
    table filled outside the store, as bench/analytics.py fills one."""
    conn.execute("DELETE FROM job_hours")
    conn.execute(_REBUILD)
