"""Job dependencies (``depends_on``): the statement that ends a job decides for the jobs
blocked on it, in the same transaction.

A blocked job is pending with ``waiting = 2`` (:data:`BLOCKED`): out of the queue and due
indexes until its dependency ends. Of a dependency that completed (or partly) the dependents
join the queue; of one that failed or was cancelled, the ``fail_fast`` ones are cancelled
with the reason, and so on down their own dependents.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ...records.job import Job, JobStatus
from ..jobs import Settled
from . import rollup
from .job_rows import COLUMNS, count, kind_status, row_to_job, statuses

BLOCKED = 2  #: ``waiting`` of a pending job whose ``depends_on`` job has not ended

_ANY_BLOCKED = (  # one probe per write of ended jobs: most databases have no dependents
    "SELECT 1 FROM jobs INDEXED BY jobs_dependents "
    f"WHERE status = 'pending' AND waiting = {BLOCKED} LIMIT 1"
)
_RELEASE = (
    "UPDATE jobs INDEXED BY jobs_dependents SET waiting = (due_at > :now) "
    f"WHERE depends_on = :id AND status = 'pending' AND waiting = {BLOCKED} {{only}}"
)
_CANCEL_BLOCKED = (
    "UPDATE jobs INDEXED BY jobs_dependents SET status = 'cancelled', waiting = 0, "
    "updated_at = :now, completed_at = :now, last_error = :error "
    f"WHERE depends_on = :id AND status = 'pending' AND waiting = {BLOCKED} AND fail_fast = 1 "
    f"RETURNING {COLUMNS}"
)
_SUCCEEDED = frozenset({JobStatus.completed, JobStatus.partial})


def settle(conn: sqlite3.Connection, ended: Iterable[Job], now: int) -> Settled | None:
    """Decide for the jobs that wait for any of ``ended`` (those not terminal are skipped).

    A dependent of a job that completed (or partly) joins the queue. Of one that failed or
    was cancelled, a ``fail_fast`` dependent is cancelled with the reason, and so on down
    its own dependents; the others join the queue. None when nothing waited.
    """
    if conn.execute(_ANY_BLOCKED).fetchone() is None:
        return None
    frontier = [(job.id, job.status) for job in ended if job.status.terminal]
    return _settle(conn, frontier, now)


def _settle(conn: sqlite3.Connection, frontier: list[tuple[str, JobStatus]], now: int) -> Settled:
    released, rows = 0, list[Any]()
    while frontier:
        job_id, status = frontier.pop()
        ok = status in _SUCCEEDED
        only = "" if ok else "AND fail_fast = 0"
        released += conn.execute(_RELEASE.format(only=only), {"now": now, "id": job_id}).rowcount
        if not ok:
            error = f"skipped: job {job_id}, which this one waits for, was {status.value}"
            cancelled = conn.execute(
                _CANCEL_BLOCKED, {"now": now, "id": job_id, "error": error}).fetchall()
            rows += cancelled
            frontier += [(row[0], JobStatus.cancelled) for row in cancelled]
    count(conn, "pending", kind_status(rows))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, rollup.moved(jobs, "pending"))
    return Settled(released, jobs)


def settle_new(conn: sqlite3.Connection, jobs: Sequence[Job]) -> Settled | None:
    """New jobs whose dependency has ended already (or is gone) are settled at once."""
    waits = {job.depends_on: job.updated_at for job in jobs if job.depends_on is not None}
    if not waits:
        return None
    found = statuses(conn, list(waits))
    ended = [(job_id, found.get(job_id, JobStatus.completed)) for job_id in waits
             if job_id not in found or found[job_id].terminal]  # gone: nothing to wait for
    return _settle(conn, ended, max(waits.values())) if ended else None


