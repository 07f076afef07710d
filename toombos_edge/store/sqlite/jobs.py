"""The jobs table: the SQL of :class:`SqliteJobStore`, as functions of a ``sqlite3.Connection``.

``in_progress`` means a worker runs it, under a lease (``lease_until``) its engine renews;
pending rows have no lease. A pending job due later (scheduled, or a retry's backoff) is
``waiting``: out of the queue index until a claim finds it due, so the queue holds only jobs
that may run now. A pending job that depends on another not yet ended is blocked
(``waiting = 2``, :func:`settle`): out of both indexes until the statement that ends that
job releases or cancels it. Each function runs inside the caller's transaction
(``Database.write``) or snapshot (``Database.read``); none commits. Each method of
:class:`SqliteJobStore` is one of those, so the transaction boundary is the store's.

Every function that adds a job or changes a status adds its deltas to ``job_counts`` in one
upsert per call (:mod:`.job_rows`) and passes the jobs it changed to :mod:`.rollup` (new
and ended jobs per hour and channel; a claim or a release changes nothing there). So any
new statement that inserts, deletes or re-statuses jobs belongs in this module or one of
its ``job_*`` siblings (claims, changes, dependencies, prune) and counts what it changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ...records.job import Job, JobStatus
from ..jobs import Fieldset, FieldsPage, JobFilter, Page, Settled
from . import job_query, rollup
from .database import Database
from .engine_lock import EngineLock
from .job_changes import (
    cancel_and_settle,
    recover_and_settle,
    release,
    requeue,
)
from .job_claims import claim, claim_one, next_due
from .job_dependencies import BLOCKED, settle, settle_new
from .job_rows import (
    COLUMNS,
    EMPTY_LIST,
    EMPTY_OBJECT,
    count,
    counts,
    dump,
    row_to_job,
    statuses,
)


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
        dump(job.channels, EMPTY_LIST), dump(job.params, EMPTY_OBJECT), job.attempts,
        job.max_attempts, job.idempotency_key, job.correlation_id,
        dump(job.metadata, EMPTY_OBJECT), job.created_at, job.updated_at, job.scheduled_for,
        due_at, _waiting_new(job, due_at), job.started_at, job.lease_until, job.depends_on,
        int(job.fail_fast),
    )


#: The insert of new jobs (22 parameters): a plan check asserts it needs no temporary b-tree.
INSERT = (
    "INSERT INTO jobs (id, kind, status, priority, urgent, document_id, channels, params, "
    "attempts, max_attempts, idempotency_key, correlation_id, metadata, created_at, "
    "updated_at, scheduled_for, due_at, waiting, started_at, lease_until, depends_on, "
    "fail_fast) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert(conn: sqlite3.Connection, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
    """Insert new jobs, each with the time it becomes due (one statement for the batch).

    A job may arrive already started (``in_progress`` with a lease): the engine hands a
    fresh job straight to an idle worker when nothing older is waiting. A job that depends
    on one that has ended already is settled at once (see :func:`settle`).
    """
    conn.executemany(INSERT, [_insert_row(job, due_at) for job, due_at in jobs])
    count(conn, None, [(job.kind, job.status.value) for job, _due in jobs])
    rollup.count(conn, [(job, None, None) for job, _due in jobs])
    return settle_new(conn, [job for job, _due in jobs])


def insert_once(conn: sqlite3.Connection, job: Job, due_at: int) -> Job:
    """Insert ``job`` unless a job with its idempotency key exists; returns the stored one."""
    row = conn.execute(
        f"SELECT {COLUMNS} FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)
    ).fetchone()
    if row is not None:
        return row_to_job(row)
    conn.execute(INSERT, _insert_row(job, due_at))
    count(conn, None, [(job.kind, job.status.value)])
    rollup.count(conn, [(job, None, None)])
    settle_new(conn, [job])  # the submitter treats a job with a dependency as due
    return job


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return None if row is None else row_to_job(row)


_HELD = "status = 'in_progress' AND lease_until IS NOT NULL"  # a worker of ours runs it


#: The save of a worker's outcome (16 parameters); see :data:`INSERT`.
SAVE = (
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
            job.last_error, dump(job.errors, EMPTY_LIST), dump(job.results, EMPTY_OBJECT),
            dump(job.output, EMPTY_OBJECT), job.document_id, job.updated_at, job.scheduled_for,
            due_at,
            _waiting(job, due_at), job.started_at, job.completed_at, job.id,
        )
        for job, due_at in jobs
    ]
    conn.execute("SAVEPOINT save")
    if conn.executemany(SAVE, rows).rowcount == len(rows):
        conn.execute("RELEASE save")
        count(conn, "in_progress", [(job.kind, job.status.value) for job, _due in jobs])
        rollup.count(conn, rollup.moved([job for job, _due in jobs], "in_progress"))
        return settle(conn, [job for job, _due in jobs], jobs[0][0].updated_at)
    conn.execute("ROLLBACK TO save")
    conn.execute("RELEASE save")
    changed = []
    for (job, _due), row in zip(jobs, rows, strict=True):
        if conn.execute(SAVE, row).rowcount == 1:
            changed.append(job)
    count(conn, "in_progress", [(job.kind, job.status.value) for job in changed])
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


class SqliteJobStore:
    """:class:`~toombos_edge.store.jobs.JobStore` on the SQLite file: each method one
    ``Database.write`` (group-committed with whatever else is queued) or ``read``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = EngineLock(db.path)

    def __repr__(self) -> str:
        return f"<SqliteJobStore {self._db.path}>"

    async def lock_engine(self) -> bool:
        return self._lock.acquire()

    async def unlock_engine(self) -> None:
        self._lock.release()

    async def insert(self, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
        return await self._db.write(lambda c: insert(c, jobs))

    async def insert_once(self, job: Job, due_at: int) -> Job:
        return await self._db.write(lambda c: insert_once(c, job, due_at))

    async def get(self, job_id: str) -> Job | None:
        return await self._db.read(lambda c: get(c, job_id))

    async def statuses(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        return await self._db.read(lambda c: statuses(c, ids)) if ids else {}

    async def counts(self) -> dict[str, int]:
        return await self._db.read(counts)

    async def claim(
        self, now: int, limit: int, lease_until: int, *, urgent_only: bool
    ) -> tuple[list[Job], int | None]:
        def run(conn: sqlite3.Connection) -> tuple[list[Job], int | None]:
            jobs = claim(conn, now, limit, lease_until, urgent_only=urgent_only)
            return jobs, next_due(conn) if len(jobs) < limit else None

        return await self._db.write(run)

    async def claim_one(self, job_id: str, now: int, lease_until: int) -> Job | None:
        return await self._db.write(lambda c: claim_one(c, job_id, now, lease_until))

    async def save(self, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
        return await self._db.write(lambda c: save(c, jobs))

    async def save_progress(self, jobs: Sequence[Job]) -> list[bool]:
        return await self._db.write(lambda c: save_progress(c, jobs))

    async def renew_leases(self, ids: Sequence[str], lease_until: int) -> None:
        await self._db.write(lambda c: renew_leases(c, ids, lease_until))

    async def release(self, ids: Sequence[str], now: int) -> list[Job]:
        return await self._db.write(lambda c: release(c, ids, now))

    async def recover(self, now: int, *, every_lease: bool) -> tuple[list[Job], Settled | None]:
        return await self._db.write(lambda c: recover_and_settle(c, now, every_lease=every_lease))

    async def cancel_pending(
        self, ids: Sequence[str], now: int
    ) -> tuple[list[Job], Settled | None]:
        return await self._db.write(lambda c: cancel_and_settle(c, ids, now))

    async def requeue(self, ids: Sequence[str], now: int) -> list[Job]:
        return await self._db.write(lambda c: requeue(c, ids, now))

    async def page(
        self, flt: JobFilter, limit: int, *, offset: int = 0, before: str | None = None
    ) -> Page:
        def read(conn: sqlite3.Connection) -> Page:
            jobs = job_query.page(conn, flt, limit, offset, before)
            total, exact = job_query.total(conn, flt)
            return Page(jobs, total, exact, jobs[-1].id if len(jobs) == limit else None)

        return await self._db.read(read)

    async def fields_page(
        self, flt: JobFilter, fields: Fieldset, limit: int, *, offset: int = 0,
        before: str | None = None, total: bool = True,
    ) -> FieldsPage:
        def read(conn: sqlite3.Connection) -> FieldsPage:
            jobs = job_query.page_fields(conn, flt, fields, limit, offset=offset, before=before)
            found, exact = job_query.total(conn, flt) if total else (0, True)
            last = jobs[-1]["job_id"] if len(jobs) == limit else None
            return FieldsPage(jobs, found, exact, last)

        return await self._db.read(read)

    async def ids(self, flt: JobFilter, before: str | None, limit: int) -> list[str]:
        rows = await self._db.read(lambda c: job_query.ids_after(c, flt, before, limit))
        return [job_id for job_id, _status in rows]
