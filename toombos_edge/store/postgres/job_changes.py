"""Changes to stored jobs on PostgreSQL: a worker's outcome and progress, leases, give
back, recover, cancel, start again. Each is one statement over the ids (not a statement per
id), counts what it changed (:class:`.job_write.Write`), and returns jobs in the order of
the ids it was given, as :mod:`..sqlite.job_changes` does.

Several nodes: every statement's ``WHERE`` names the status it moves from, and PostgreSQL
re-checks it on a row another transaction changed meanwhile, so of two nodes moving one job
only the first does. :func:`recover` passes over rows locked by another transaction
(``SKIP LOCKED``: their node is saving them right now) and, unless told that no other
engine runs, takes only leases that ran out: a live node's job is never taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from ...ids import iso
from ...records.job import Job, JobStatus
from ..jobs import RETRYABLE, Settled
from .job_dependencies import settle
from .job_write import Write, moved, run_ms
from .jobs_sql import BLOCKED, COLUMNS, row_to_job

_RETURNED = ", ".join(f"jobs.{name.strip()}" for name in COLUMNS.split(","))
_HELD = "jobs.status = 'in_progress' AND jobs.lease_until IS NOT NULL"  # a worker runs it

_SAVE = (
    "UPDATE jobs SET status = v.status, progress_percent = v.percent, "
    "progress_message = v.message, attempts = v.attempts, last_error = v.last_error, "
    "errors = v.errors::jsonb, results = v.results::jsonb, output = v.output::jsonb, "
    "document_id = v.document_id, updated_at = v.updated_at, scheduled_for = v.scheduled_for, "
    "due_at = v.due_at, waiting = v.waiting, started_at = v.started_at, "
    "completed_at = v.completed_at, lease_until = NULL "
    "FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::int[], $6::text[], "
    "$7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], "
    "$13::bigint[], $14::smallint[], $15::bigint[], $16::bigint[]) AS v(id, status, percent, "
    "message, attempts, last_error, errors, results, output, document_id, updated_at, "
    "scheduled_for, due_at, waiting, started_at, completed_at) "
    f"WHERE jobs.id = v.id AND {_HELD} RETURNING jobs.id"
)


def _in_order(jobs: list[Job], ids: Sequence[str]) -> list[Job]:
    place = {job_id: n for n, job_id in enumerate(ids)}
    return sorted(jobs, key=lambda job: place.get(job.id, len(place)))


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def _waiting(job: Job, due_at: int) -> int:
    """1 for a pending job due after the moment it is written (its ``updated_at``)."""
    return int(due_at > job.updated_at and job.status is JobStatus.pending)


async def save(write: Write, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
    """Store what a worker decided for jobs it held; a job no longer held is left as it is."""
    rows = [
        (job.id, job.status.value, job.progress_percent, job.progress_message, job.attempts,
         job.last_error, _json(job.errors), _json(job.results), _json(job.output),
         job.document_id, job.updated_at, job.scheduled_for, due_at, _waiting(job, due_at),
         job.started_at, job.completed_at)
        for job, due_at in jobs
    ]
    saved = {row["id"] for row in await write.conn.fetch(
        _SAVE, *(list(column) for column in zip(*rows, strict=True)))}
    changed = [job for job, _due in jobs if job.id in saved]
    write.count("in_progress", [(job.kind, job.status.value) for job in changed])
    write.hours(moved(changed, "in_progress"))
    return await settle(write, changed, jobs[0][0].updated_at)


async def save_progress(write: Write, jobs: Sequence[Job]) -> list[bool]:
    """Store progress of running jobs; False for a job that is no longer running."""
    rows = await write.conn.fetch(
        "UPDATE jobs SET progress_percent = v.percent, progress_message = v.message, "
        "updated_at = v.updated_at FROM unnest($1::text[], $2::float8[], $3::text[], "
        "$4::bigint[]) AS v(id, percent, message, updated_at) "
        "WHERE jobs.id = v.id AND jobs.status = 'in_progress' RETURNING jobs.id",
        [job.id for job in jobs], [job.progress_percent for job in jobs],
        [job.progress_message for job in jobs], [job.updated_at for job in jobs])
    stored = {row["id"] for row in rows}
    return [job.id in stored for job in jobs]


async def renew_leases(write: Write, ids: Sequence[str], lease_until: int) -> None:
    await write.conn.execute(
        f"UPDATE jobs SET lease_until = $2 WHERE id = ANY($1::text[]) AND {_HELD}",
        list(ids), lease_until)


async def release(write: Write, ids: Sequence[str], now: int) -> list[Job]:
    """Give started jobs back to the queue, their attempt not counted (stop, pause)."""
    rows = await write.conn.fetch(
        "UPDATE jobs SET status = 'pending', attempts = greatest(attempts - 1, 0), "
        "waiting = 0, lease_until = NULL, started_at = NULL, updated_at = $2, "
        "due_at = least(due_at, $2) WHERE id = ANY($1::text[]) AND status = 'in_progress' "
        f"RETURNING {COLUMNS}", list(ids), now)
    jobs = [row_to_job(row) for row in rows]
    write.count("in_progress", [(job.kind, job.status.value) for job in jobs])
    return _in_order(jobs, ids)


_INTERRUPTED = "interrupted: the process running it stopped"
_RECOVER = (
    "UPDATE jobs SET status = CASE WHEN attempts >= max_attempts THEN 'failed' "
    "ELSE 'pending' END, lease_until = NULL, updated_at = $1, due_at = $1, waiting = 0, "
    "last_error = $3, completed_at = CASE WHEN attempts >= max_attempts THEN $1 END, "
    "errors = errors || jsonb_build_array(jsonb_build_object("
    "'error', $3::text, 'at', $4::text, 'attempt', attempts)) "
    "WHERE id IN (SELECT id FROM jobs WHERE status = 'in_progress' "
    "AND (lease_until < $1 OR $2::boolean) FOR UPDATE SKIP LOCKED) "
    f"RETURNING {COLUMNS}"
)


async def recover(write: Write, now: int, *, every_lease: bool) -> tuple[list[Job], Settled | None]:
    """Jobs whose lease ran out go back to pending, attempt counted (failed on their last),
    and the dependents of those failed for good are settled."""
    rows = await write.conn.fetch(_RECOVER, now, every_lease, _INTERRUPTED, iso(now))
    jobs = sorted((row_to_job(row) for row in rows), key=lambda job: job.id)
    write.count("in_progress", [(job.kind, job.status.value) for job in jobs])
    write.hours(moved(jobs, "in_progress"))
    return jobs, await settle(write, jobs, now)


async def cancel_pending(
    write: Write, ids: Sequence[str], now: int
) -> tuple[list[Job], Settled | None]:
    """Cancel those of ``ids`` that are pending, and settle their dependents."""
    rows = await write.conn.fetch(
        "UPDATE jobs SET status = 'cancelled', updated_at = $2, completed_at = $2, waiting = 0 "
        f"WHERE id = ANY($1::text[]) AND status = 'pending' RETURNING {COLUMNS}",
        list(ids), now)
    jobs = _in_order([row_to_job(row) for row in rows], ids)
    write.count("pending", [(job.kind, job.status.value) for job in jobs])
    write.hours(moved(jobs, "pending"))
    return jobs, await settle(write, jobs, now)


# A job started again waits for its dependency again if that one has not ended, or is
# started again by this same call ahead of it (SQLite goes id by id, so a dependency earlier
# in the ids is pending by then): a batch retried in its order runs in its order.
_DEPENDENCY_OPEN = (
    "depends_on IS NOT NULL AND EXISTS (SELECT 1 FROM jobs AS d WHERE d.id = jobs.depends_on "
    "AND (d.status IN ('pending', 'in_progress') OR d.status = ANY($3::text[]) "
    "AND array_position($1::text[], d.id) < array_position($1::text[], jobs.id)))"
)
_REQUEUE = (
    "UPDATE jobs SET status = 'pending', attempts = 0, last_error = NULL, "
    "progress_percent = 0, progress_message = '', scheduled_for = NULL, due_at = $2, "
    f"waiting = CASE WHEN {_DEPENDENCY_OPEN} THEN {BLOCKED} ELSE 0 END, "
    "started_at = NULL, completed_at = NULL, updated_at = $2 "
    f"WHERE id = ANY($1::text[]) AND status = ANY($3::text[]) RETURNING {_RETURNED}"
)


async def requeue(write: Write, ids: Sequence[str], now: int) -> list[Job]:
    """Start failed, cancelled or partial jobs again with their attempts reset.

    The jobs are locked first, so the status and run time they are counted off are those
    the update changes. Their dependencies are locked ``FOR SHARE`` (see
    :mod:`.job_dependencies`): a dependency ending at the same moment either commits first,
    and the update sees it ended, or waits for this transaction, and then releases the job
    blocked here.
    """
    if not ids:
        return []
    before = {row["id"]: (row["status"], run_ms(row["status"], row["started_at"],
                                                 row["completed_at"]))
              for row in await write.conn.fetch(
                  "SELECT id, status, started_at, completed_at FROM jobs "
                  "WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", list(ids))}
    await write.conn.execute(
        "SELECT 1 FROM jobs WHERE id IN (SELECT depends_on FROM jobs WHERE id = ANY($1::text[])) "
        "ORDER BY id FOR SHARE", list(ids))
    rows = await write.conn.fetch(_REQUEUE, list(ids), now, list(RETRYABLE))
    jobs = _in_order([row_to_job(row) for row in rows], ids)
    for status in RETRYABLE:
        write.count(status, [(job.kind, job.status.value) for job in jobs
                                   if before[job.id][0] == status])
    write.hours([(job, *before[job.id]) for job in jobs])
    return jobs
