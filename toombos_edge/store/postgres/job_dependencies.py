"""Job dependencies on PostgreSQL: the transaction that ends a job decides for the jobs
blocked on it (``waiting = 2``), as on SQLite (see :mod:`..sqlite.job_dependencies`).

With several nodes, a new dependent and the end of its dependency may commit at once. On
SQLite the single writer orders them; here :func:`settle_new` reads the dependencies
``FOR SHARE``: if the end is committing, the insert waits for it and then sees the end
(and settles its job itself); if the insert holds the share lock first, the end's update
waits for the insert to commit, and the end's release statement, a later statement under
READ COMMITTED, then sees the new dependent. Either way no dependent stays blocked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ...records.job import Job, JobStatus
from ..jobs import Settled
from .job_write import Write, moved
from .jobs_sql import _STATUS, BLOCKED, COLUMNS, row_to_job

_ANY_BLOCKED = f"SELECT 1 FROM jobs WHERE status = 'pending' AND waiting = {BLOCKED} LIMIT 1"
_RELEASE = (
    "UPDATE jobs SET waiting = (due_at > $1)::int "
    f"WHERE depends_on = $2 AND status = 'pending' AND waiting = {BLOCKED} {{only}}"
)
_CANCEL_BLOCKED = (
    "UPDATE jobs SET status = 'cancelled', waiting = 0, updated_at = $1, completed_at = $1, "
    f"last_error = $3 WHERE depends_on = $2 AND status = 'pending' AND waiting = {BLOCKED} "
    f"AND fail_fast RETURNING {COLUMNS}"
)
_SUCCEEDED = frozenset({JobStatus.completed, JobStatus.partial})


def _rowcount(status: str) -> int:
    """The row count of an ``UPDATE n`` command status."""
    return int(status.rsplit(" ", 1)[-1])


async def settle(write: Write, ended: Iterable[Job], now: int) -> Settled | None:
    """Decide for the jobs that wait for any of ``ended`` (those not terminal are skipped).
    None when nothing waited."""
    if await write.conn.fetchval(_ANY_BLOCKED) is None:  # most databases have no dependents
        return None
    return await _settle(write, [(job.id, job.status) for job in ended if job.status.terminal],
                         now)


async def _settle(write: Write, frontier: list[tuple[str, JobStatus]], now: int) -> Settled:
    released, jobs = 0, list[Job]()
    while frontier:
        job_id, status = frontier.pop()
        ok = status in _SUCCEEDED
        only = "" if ok else "AND NOT fail_fast"
        released += _rowcount(await write.conn.execute(_RELEASE.format(only=only), now, job_id))
        if not ok:
            error = f"skipped: job {job_id}, which this one waits for, was {status.value}"
            cancelled = [row_to_job(row) for row in
                         await write.conn.fetch(_CANCEL_BLOCKED, now, job_id, error)]
            jobs += cancelled
            frontier += [(job.id, JobStatus.cancelled) for job in cancelled]
    write.count("pending", [(job.kind, job.status.value) for job in jobs])
    write.hours(moved(jobs, "pending"))
    return Settled(released, jobs)


async def settle_new(write: Write, jobs: Sequence[Job]) -> Settled | None:
    """New jobs whose dependency has ended already (or is gone) are settled at once."""
    waits = {job.depends_on: job.updated_at for job in jobs if job.depends_on is not None}
    if not waits:
        return None
    rows = await write.conn.fetch(
        "SELECT id, status FROM jobs WHERE id = ANY($1::text[]) ORDER BY id FOR SHARE",
        list(waits))
    found = {row["id"]: _STATUS[row["status"]] for row in rows}
    ended = [(job_id, found.get(job_id, JobStatus.completed)) for job_id in waits
             if job_id not in found or found[job_id].terminal]  # gone: nothing to wait for
    return await _settle(write, ended, max(waits.values())) if ended else None
