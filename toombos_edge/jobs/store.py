"""The jobs table: every statement the engine runs, as functions of a ``sqlite3.Connection``.

``in_progress`` means a worker runs it, under a lease (``lease_until``) its engine renews;
pending rows have no lease. A pending job due later (scheduled, or a retry's backoff) is
``waiting``: out of the queue index until a claim finds it due, so the queue holds only jobs
that may run now. A pending job that depends on another not yet ended is blocked
(``waiting = 2``, :func:`settle`): out of both indexes until the statement that ends that
job releases or cancels it. Kept narrow on purpose
(insert, claim, save, transitions, recovery) so that a PostgreSQL implementation is a
second module, not a rewrite. Each function runs inside the caller's
transaction (``Database.write``) or snapshot (``Database.read``); none commits.

The counts per kind and status (``job_counts``) are kept here too: every function that adds
a job or changes a status adds its deltas in one upsert per call (:func:`_count`), and
passes the jobs it changed to :mod:`.rollup` (new and ended jobs per hour and channel; a
claim or a release changes nothing there). Row
triggers did this before and cost about a fifth of the writer's time per job (a trigger
program per row). So any new statement that inserts, deletes or re-statuses jobs belongs in
this module and counts what it changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..ids import id_floor, iso
from ..records.job import Job, JobStatus
from . import rollup

COLUMNS = (
    "id, kind, status, priority, document_id, channels, params, progress_percent, "
    "progress_message, attempts, max_attempts, last_error, errors, results, idempotency_key, "
    "correlation_id, metadata, created_at, updated_at, scheduled_for, started_at, "
    "completed_at, lease_until, urgent, output, depends_on, fail_fast"
)
_EMPTY_LIST, _EMPTY_OBJECT = "[]", "{}"
_STATUS = {status.value: status for status in JobStatus}


def _load(text: str) -> Any:
    return orjson.loads(text)


def _dump(value: Any, empty: str) -> str:
    return orjson.dumps(value).decode() if value else empty


def row_to_job(row: Sequence[Any]) -> Job:
    """A row selected with :data:`COLUMNS` as a :class:`Job`."""
    return Job(
        id=row[0], kind=row[1], status=_STATUS[row[2]], priority=row[3], document_id=row[4],
        channels=_load(row[5]), params=_load(row[6]), progress_percent=row[7],
        progress_message=row[8], attempts=row[9], max_attempts=row[10], last_error=row[11],
        errors=_load(row[12]), results=_load(row[13]), idempotency_key=row[14],
        correlation_id=row[15], metadata=_load(row[16]), created_at=row[17],
        updated_at=row[18], scheduled_for=row[19], started_at=row[20], completed_at=row[21],
        lease_until=row[22], urgent=bool(row[23]), output=_load(row[24]),
        depends_on=row[25], fail_fast=bool(row[26]),
    )


BLOCKED = 2  #: ``waiting`` of a pending job whose ``depends_on`` job has not ended


def _waiting(job: Job, due_at: int) -> int:
    """1 for a pending job due after the moment it is written (its ``updated_at``)."""
    return int(due_at > job.updated_at and job.status is JobStatus.pending)


def _waiting_new(job: Job, due_at: int) -> int:
    """A new job's ``waiting``: blocked while it depends on a job (see :func:`settle`)."""
    if job.depends_on is not None and job.status is JobStatus.pending:
        return BLOCKED
    return _waiting(job, due_at)


def _insert_row(job: Job, due_at: int) -> tuple[Any, ...]:
    return (
        job.id, job.kind, job.status.value, job.priority, int(job.urgent), job.document_id,
        _dump(job.channels, _EMPTY_LIST), _dump(job.params, _EMPTY_OBJECT), job.attempts,
        job.max_attempts, job.idempotency_key, job.correlation_id,
        _dump(job.metadata, _EMPTY_OBJECT), job.created_at, job.updated_at, job.scheduled_for,
        due_at, _waiting_new(job, due_at), job.started_at, job.lease_until, job.depends_on,
        int(job.fail_fast),
    )


_INSERT = (
    "INSERT INTO jobs (id, kind, status, priority, urgent, document_id, channels, params, "
    "attempts, max_attempts, idempotency_key, correlation_id, metadata, created_at, "
    "updated_at, scheduled_for, due_at, waiting, started_at, lease_until, depends_on, "
    "fail_fast) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_COUNT = (
    "INSERT INTO job_counts (kind, status, n) VALUES (?, ?, ?) "
    "ON CONFLICT (kind, status) DO UPDATE SET n = n + excluded.n"
)


def _count(conn: sqlite3.Connection, before: str | None, after: Iterable[tuple[str, str]]) -> None:
    """Count jobs that were ``before`` (None: new jobs) and are now ``(kind, status)`` each."""
    tally: dict[tuple[str, str], int] = {}
    for key in after:
        tally[key] = tally.get(key, 0) + 1
    rows = []
    for (kind, status), n in tally.items():
        if status != before:
            rows.append((kind, status, n))
            if before is not None:
                rows.append((kind, before, -n))
    if rows:
        conn.executemany(_COUNT, rows)


def _kind_status(rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    """(kind, status) of rows returned with :data:`COLUMNS`."""
    return [(row[1], row[2]) for row in rows]


def insert(conn: sqlite3.Connection, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
    """Insert new jobs, each with the time it becomes due (one statement for the batch).

    A job may arrive already started (``in_progress`` with a lease): the engine hands a
    fresh job straight to an idle worker when nothing older is waiting. A job that depends
    on one that has ended already is settled at once (see :func:`settle`).
    """
    conn.executemany(_INSERT, [_insert_row(job, due_at) for job, due_at in jobs])
    _count(conn, None, [(job.kind, job.status.value) for job, _due in jobs])
    rollup.count(conn, [(job, None, None) for job, _due in jobs])
    return _settle_new(conn, [job for job, _due in jobs])


def insert_once(conn: sqlite3.Connection, job: Job, due_at: int) -> Job:
    """Insert ``job`` unless a job with its idempotency key exists; returns the stored one."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)
    ).fetchone()
    if row is not None:
        return row_to_job(row)
    conn.execute(_INSERT, _insert_row(job, due_at))
    _count(conn, None, [(job.kind, job.status.value)])
    rollup.count(conn, [(job, None, None)])
    _settle_new(conn, [job])  # the submitter treats a job with a dependency as due
    return job


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row_to_job(row)


def get_many(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Job]:
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id IN ({marks})", ids).fetchall()
    return [row_to_job(row) for row in rows]


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
    _count(conn, "pending", _kind_status(rows))
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
    _count(conn, "pending", _kind_status([row]))
    return row_to_job(row)


def queue_order(job: Job) -> tuple[int, int, int, str]:
    """The order workers take jobs in: urgent, priority, due time, creation."""
    return (-job.urgent, -job.priority, job.scheduled_for or job.created_at, job.id)


def next_due(conn: sqlite3.Connection) -> int | None:
    """When the earliest waiting job becomes due (None: none is waiting)."""
    value: int | None = conn.execute(
        "SELECT min(due_at) FROM jobs INDEXED BY jobs_due WHERE status = 'pending' AND waiting = 1"
    ).fetchone()[0]
    return value


_HELD = "status = 'in_progress' AND lease_until IS NOT NULL"  # a worker of ours runs it


_SAVE = (
    "UPDATE jobs SET status = ?, progress_percent = ?, progress_message = ?, attempts = ?, "
    "last_error = ?, errors = ?, results = ?, output = ?, document_id = ?, updated_at = ?, "
    "scheduled_for = ?, due_at = ?, waiting = ?, started_at = ?, completed_at = ?, "
    f"lease_until = NULL WHERE id = ? AND {_HELD}"
)


def save(conn: sqlite3.Connection, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
    """Store what a worker decided for jobs it held: the outcome, or a retry when due.

    A job no longer held (another engine recovered it after its lease ran out) is left as
    it is. That is rare, so the batch is one statement and only a shortfall in its row
    count makes it go again row by row, to count exactly what changed.
    """
    rows = [
        (
            job.status.value, job.progress_percent, job.progress_message, job.attempts,
            job.last_error, _dump(job.errors, _EMPTY_LIST), _dump(job.results, _EMPTY_OBJECT),
            _dump(job.output, _EMPTY_OBJECT), job.document_id, job.updated_at, job.scheduled_for,
            due_at,
            _waiting(job, due_at), job.started_at, job.completed_at, job.id,
        )
        for job, due_at in jobs
    ]
    conn.execute("SAVEPOINT save")
    if conn.executemany(_SAVE, rows).rowcount == len(rows):
        conn.execute("RELEASE save")
        _count(conn, "in_progress", [(job.kind, job.status.value) for job, _due in jobs])
        rollup.count(conn, rollup.moved([job for job, _due in jobs], "in_progress"))
        return settle(conn, [job for job, _due in jobs], jobs[0][0].updated_at)
    conn.execute("ROLLBACK TO save")
    conn.execute("RELEASE save")
    changed = []
    for (job, _due), row in zip(jobs, rows, strict=True):
        if conn.execute(_SAVE, row).rowcount == 1:
            changed.append(job)
    _count(conn, "in_progress", [(job.kind, job.status.value) for job in changed])
    rollup.count(conn, rollup.moved(changed, "in_progress"))
    return settle(conn, changed, jobs[0][0].updated_at)


def save_progress(conn: sqlite3.Connection, jobs: Sequence[Job]) -> list[bool]:
    """Store progress of running jobs; False for a job that is no longer running."""
    stored = []
    for job in jobs:
        cursor = conn.execute(
            "UPDATE jobs SET progress_percent = ?, progress_message = ?, updated_at = ? "
            "WHERE id = ? AND status = 'in_progress'",
            (job.progress_percent, job.progress_message, job.updated_at, job.id),
        )
        stored.append(cursor.rowcount == 1)
    return stored


def renew_leases(conn: sqlite3.Connection, ids: Sequence[str], lease_until: int) -> None:
    conn.executemany(
        f"UPDATE jobs SET lease_until = ? WHERE id = ? AND {_HELD}",
        [(lease_until, job_id) for job_id in ids],
    )


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
    _count(conn, "in_progress", _kind_status(rows))
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
    _count(conn, "in_progress", _kind_status(rows))
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
    _count(conn, "pending", _kind_status(rows))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, rollup.moved(jobs, "pending"))
    return jobs


@dataclass(frozen=True, slots=True)
class Settled:
    """What the end of jobs decided for the jobs that depend on them."""

    released: int  #: dependents that may run now (or when they are due)
    cancelled: list[Job]  #: fail-fast dependents cancelled, and theirs in turn


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
    _count(conn, "pending", _kind_status(rows))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, rollup.moved(jobs, "pending"))
    return Settled(released, jobs)


def _settle_new(conn: sqlite3.Connection, jobs: Sequence[Job]) -> Settled | None:
    """New jobs whose dependency has ended already (or is gone) are settled at once."""
    waits = {job.depends_on: job.updated_at for job in jobs if job.depends_on is not None}
    if not waits:
        return None
    found = statuses(conn, list(waits))
    ended = [(job_id, found.get(job_id, JobStatus.completed)) for job_id in waits
             if job_id not in found or found[job_id].terminal]  # gone: nothing to wait for
    return _settle(conn, ended, max(waits.values())) if ended else None


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


RETRYABLE = ("failed", "cancelled", "partial")
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
        _count(conn, status, _kind_status(row for row in rows if before[row[0]][0] == status))
    jobs = [row_to_job(row) for row in rows]
    rollup.count(conn, [(job, *before[job.id]) for job in jobs])
    return jobs


def _ended(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """(status, run time) of each of ``ids`` before a requeue clears them."""
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT id, status, started_at, completed_at FROM jobs WHERE id IN ({marks})", ids)
    return {row[0]: (row[1], rollup.run_ms(row[1], row[2], row[3])) for row in rows}


def statuses(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, JobStatus]:
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, status FROM jobs WHERE id IN ({marks})", ids)
    return {job_id: _STATUS[status] for job_id, status in rows}


def _uncount(conn: sqlite3.Connection, deleted: Iterable[tuple[str, str]]) -> None:
    """Take deleted jobs, as (kind, status), off the counts."""
    tally: dict[tuple[str, str], int] = {}
    for key in deleted:
        tally[key] = tally.get(key, 0) + 1
    conn.executemany(_COUNT, [(kind, status, -n) for (kind, status), n in tally.items()])


def prune_ended(
    conn: sqlite3.Connection, statuses: Sequence[str], ended_before: int, limit: int
) -> int:
    """Delete up to ``limit`` jobs in one of ``statuses`` (ended ones) that ended before
    ``ended_before``; returns how many.

    Ids sort by creation and a job ends after it is created, so each status's scan stays
    among the jobs created before the cutoff (an index range, not the whole status).
    """
    ceiling, rows = id_floor("job", ended_before), list[tuple[str, str]]()
    for status in statuses:
        if len(rows) >= limit:
            break
        rows += conn.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_status "
            "WHERE status = ? AND id < ? AND coalesce(completed_at, updated_at) < ? "
            "ORDER BY id LIMIT ?) RETURNING kind, status",
            (status, ceiling, ended_before, limit - len(rows)),
        ).fetchall()
    _uncount(conn, rows)
    return len(rows)


def prune_oldest(conn: sqlite3.Connection, status: str, keep: int, limit: int) -> int:
    """Delete the oldest jobs of ``status`` beyond the newest ``keep``, at most ``limit``."""
    total = conn.execute(
        "SELECT coalesce(sum(n), 0) FROM job_counts WHERE status = ?", (status,)
    ).fetchone()[0]
    excess = min(total - keep, limit)
    if excess <= 0:
        return 0
    rows = conn.execute(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_status "
        "WHERE status = ? ORDER BY id LIMIT ?) RETURNING kind, status",
        (status, excess),
    ).fetchall()
    _uncount(conn, rows)
    return len(rows)


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Jobs per status (from the counters: no table scan)."""
    rows = conn.execute("SELECT status, sum(n) FROM job_counts GROUP BY status").fetchall()
    return {status.value: 0 for status in JobStatus} | dict(rows)
