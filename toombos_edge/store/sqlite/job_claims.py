"""Claims: pending jobs a worker starts, in queue order or by id, under a lease.

A claim changes a status (pending to in_progress), so it counts that in ``job_counts``
(:mod:`.job_rows`); the hourly roll-up has nothing to count (see :mod:`.jobs`).
"""

from __future__ import annotations

import sqlite3

from ...records.job import Job
from ..jobs import queue_order
from .job_rows import COLUMNS, count, kind_status, row_to_job

_STARTED = (
    "status = 'in_progress', attempts = attempts + 1, started_at = :now, updated_at = :now, "
    "progress_percent = 0, progress_message = '', lease_until = :lease"
)
_CLAIM = (
    f"UPDATE jobs SET {_STARTED} "
    "WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_queue "
    "WHERE status = 'pending' AND waiting = 0 {urgent} "
    "ORDER BY urgent DESC, priority DESC, due_at, id LIMIT :limit) "
    f"RETURNING {COLUMNS}"
)
_PROMOTE = (  # waiting jobs that came due join the queue
    "UPDATE jobs INDEXED BY jobs_due SET waiting = 0 "
    "WHERE status = 'pending' AND waiting = 1 AND due_at <= ?"
)


def claim(
    conn: sqlite3.Connection, now: int, limit: int, lease_until: int, *, urgent_only: bool
) -> list[Job]:
    """Start up to ``limit`` due pending jobs in queue order: ``in_progress``, attempt
    counted, ``started_at``, under a lease. The engine claims only as many as it has idle
    workers, so a claimed job is a running job."""
    conn.execute(_PROMOTE, (now,))
    sql = _CLAIM.format(urgent="AND urgent = 1" if urgent_only else "")
    rows = conn.execute(sql, {"now": now, "lease": lease_until, "limit": limit}).fetchall()
    count(conn, "pending", kind_status(rows))
    jobs = [row_to_job(row) for row in rows]
    jobs.sort(key=queue_order)
    return jobs


def claim_one(conn: sqlite3.Connection, job_id: str, now: int, lease_until: int) -> Job | None:
    """Start one pending job by id (urgent jobs skip the queue)."""
    row = conn.execute(
        f"UPDATE jobs SET {_STARTED}, waiting = 0 WHERE id = :id AND status = 'pending' "
        f"RETURNING {COLUMNS}",
        {"now": now, "lease": lease_until, "id": job_id},
    ).fetchone()
    if row is None:
        return None
    count(conn, "pending", kind_status([row]))
    return row_to_job(row)


def next_due(conn: sqlite3.Connection) -> int | None:
    """When the earliest waiting job becomes due (None: none is waiting)."""
    value: int | None = conn.execute(
        "SELECT min(due_at) FROM jobs INDEXED BY jobs_due WHERE status = 'pending' AND waiting = 1"
    ).fetchone()[0]
    return value
