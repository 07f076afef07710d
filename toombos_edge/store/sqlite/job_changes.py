"""Changes to stored jobs from outside a worker's attempt: give back (pause, stop), recover
after a dead process, cancel pending jobs, start ended ones again. Each counts what it
changed, as every statement of the jobs table does (see :mod:`.jobs`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from ...ids import iso
from ...records.job import Job
from ..jobs import RETRYABLE, Settled
from . import rollup
from .job_dependencies import BLOCKED, settle
from .job_rows import COLUMNS, count, kind_status, row_to_job


def release(conn: sqlite3.Connection, ids: Sequence[str], now: int) -> list[Job]:
    """Give started jobs back to the queue, their attempt not counted (stop, pause).

    Returns the jobs given back (those still running in the database).
    """
    rows = []
    for job_id in ids:
        rows += conn.execute(
            "UPDATE jobs SET status = 'pending', attempts = max(attempts - 1, 0), waiting = 0, "
            "lease_until = NULL, started_at = NULL, updated_at = ?, due_at = min(due_at, ?) "
            f"WHERE id = ? AND status = 'in_progress' RETURNING {COLUMNS}",
            (now, now, job_id),
        ).fetchall()
    count(conn, "in_progress", kind_status(rows))
    return [row_to_job(row) for row in rows]


def recover(conn: sqlite3.Connection, now: int, *, every_lease: bool) -> list[Job]:
    """Jobs whose lease expired (their process died) go back to pending, attempt counted.

    ``every_lease`` treats every lease as expired: the caller knows that no other engine
    runs on this database. A job that has used its last attempt is failed instead.
    """
    error = orjson.dumps(
        {"error": "interrupted: the process running it stopped", "at": iso(now)}
    ).decode()
    rows = conn.execute(
        "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' "
        "ELSE 'pending' END, lease_until = NULL, updated_at = :now, due_at = :now, waiting = 0, "
        "last_error = 'interrupted: the process running it stopped', "
        "completed_at = CASE WHEN attempts >= max_attempts THEN :now END, "
        "errors = json_insert(errors, '$[#]', json_set(json(:error), '$.attempt', attempts)) "
        "WHERE status = 'in_progress' AND (lease_until < :now OR :every) "
        f"RETURNING {COLUMNS}",
        {"now": now, "error": error, "every": int(every_lease)},
    ).fetchall()
    count(conn, "in_progress", kind_status(rows))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, rollup.moved(jobs, "in_progress"))
    return jobs


def cancel_pending(conn: sqlite3.Connection, ids: Sequence[str], now: int) -> list[Job]:
    """Cancel those of ``ids`` that are pending; returns the cancelled jobs.

    A running job is cancelled by its engine, which stops the handler first.
    """
    rows = []
    for job_id in ids:
        rows += conn.execute(
            "UPDATE jobs SET status = 'cancelled', updated_at = ?, completed_at = ?, waiting = 0 "
            "WHERE id = ? AND status = 'pending' "
            f"RETURNING {COLUMNS}",
            (now, now, job_id),
        ).fetchall()
    count(conn, "pending", kind_status(rows))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, rollup.moved(jobs, "pending"))
    return jobs


def cancel_and_settle(
    conn: sqlite3.Connection, ids: Sequence[str], now: int
) -> tuple[list[Job], Settled | None]:
    """:func:`cancel_pending`, and what that decides for the jobs waiting for those."""
    jobs = cancel_pending(conn, ids, now)
    return jobs, settle(conn, jobs, now)


def recover_and_settle(
    conn: sqlite3.Connection, now: int, *, every_lease: bool
) -> tuple[list[Job], Settled | None]:
    """:func:`recover`, and the dependents of the jobs it failed for good."""
    jobs = recover(conn, now, every_lease=every_lease)
    return jobs, settle(conn, jobs, now)


# A job started again waits for its dependency again if that one has not ended (retried
# itself, say): a batch retried in its order runs in its order.
_DEPENDENCY_OPEN = (
    "depends_on IS NOT NULL AND EXISTS (SELECT 1 FROM jobs AS d WHERE d.id = jobs.depends_on "
    "AND d.status IN ('pending', 'in_progress'))"
)


def requeue(conn: sqlite3.Connection, ids: Sequence[str], now: int) -> list[Job]:
    """Start failed, cancelled or partial jobs again with their attempts reset."""
    before = _ended(conn, ids) if ids else {}
    rows = []
    for job_id in ids:
        rows += conn.execute(
            "UPDATE jobs SET status = 'pending', attempts = 0, last_error = NULL, "
            "progress_percent = 0, progress_message = '', scheduled_for = NULL, due_at = ?, "
            f"waiting = CASE WHEN {_DEPENDENCY_OPEN} THEN {BLOCKED} ELSE 0 END, "
            "started_at = NULL, completed_at = NULL, updated_at = ? "
            f"WHERE id = ? AND status IN {RETRYABLE} RETURNING {COLUMNS}",
            (now, now, job_id),
        ).fetchall()
    for status in RETRYABLE:
        count(conn, status, kind_status(row for row in rows if before[row[0]][0] == status))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, [(job, *before[job.id]) for job in jobs])
    return jobs


def _ended(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """(status, run time) of each of ``ids`` before a requeue clears them."""
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, status, started_at, completed_at FROM jobs WHERE id IN ({marks})", ids)
    return {row[0]: (row[1], rollup.run_ms(row[1], row[2], row[3])) for row in rows}
