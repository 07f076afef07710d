"""The job store on PostgreSQL: :class:`~toombos_edge.store.jobs.JobStore` for one node of
several sharing a database.

Each write method is one transaction on a pooled connection (:class:`.job_write.Write`:
its counter slot, its hour tallies written last); each read of many jobs is one
``REPEATABLE READ`` read-only transaction, so a page and its total come from one snapshot.
Where SQLite relied on its single writer, the statements here hold with nodes writing at
once: the claim skips rows another claim holds (``FOR UPDATE SKIP LOCKED``), every change
re-checks the status it moves from, the idempotency key is decided by its unique index,
and recovery passes over live leases. The engine lock is a session advisory lock
(:mod:`.engine_lock`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from ...records.job import Job, JobStatus
from ..jobs import Fieldset, FieldsPage, JobFilter, Page, Settled
from . import job_changes, job_query, jobs_sql
from .database import PgDatabase
from .engine_lock import PgEngineLock
from .job_dependencies import settle_new
from .job_write import Write

if TYPE_CHECKING:
    from .migrate import Connection


class PgJobStore:
    """:class:`~toombos_edge.store.jobs.JobStore` on a :class:`PgDatabase`."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._lock = PgEngineLock(db.url)

    def __repr__(self) -> str:
        return f"<PgJobStore {self._db!r}>"

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Write]:
        async with self._db.transaction() as conn:
            write = Write.on(conn)
            yield write
            await write.flush()

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Connection]:
        async with self._db.connection() as conn, conn.transaction(
                isolation="repeatable_read", readonly=True):
            yield conn

    async def lock_engine(self) -> bool:
        return await self._lock.acquire()

    async def unlock_engine(self) -> None:
        await self._lock.release()

    async def insert(self, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
        async with self._write() as write:
            await jobs_sql.insert_rows(write.conn, jobs)
            write.count(None, [(job.kind, job.status.value) for job, _due in jobs])
            write.hours((job, None, None) for job, _due in jobs)
            return await settle_new(write, [job for job, _due in jobs])

    async def insert_once(self, job: Job, due_at: int) -> Job:
        assert job.idempotency_key is not None, "insert_once needs an idempotency key"
        async with self._write() as write:
            if not await jobs_sql.insert_once(write.conn, job, due_at):
                stored = await jobs_sql.by_key(write.conn, job.idempotency_key)
                if stored is not None:
                    return stored
                raise RuntimeError(f"job of idempotency key {job.idempotency_key!r} vanished")
            write.count(None, [(job.kind, job.status.value)])
            write.hours([(job, None, None)])
            await settle_new(write, [job])  # the submitter treats a job with a dependency as due
            return job

    async def get(self, job_id: str) -> Job | None:
        row = await self._db.fetchrow(f"SELECT {jobs_sql.COLUMNS} FROM jobs WHERE id = $1", job_id)
        return None if row is None else jobs_sql.row_to_job(row)

    async def statuses(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        if not ids:
            return {}
        rows = await self._db.fetch(
            "SELECT id, status FROM jobs WHERE id = ANY($1::text[])", list(ids))
        return {row["id"]: JobStatus(row["status"]) for row in rows}

    async def counts(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT status, sum(n) AS n FROM job_counts GROUP BY status")
        return {status.value: 0 for status in JobStatus} | {
            row["status"]: int(row["n"]) for row in rows}

    async def claim(
        self, now: int, limit: int, lease_until: int, *, urgent_only: bool
    ) -> tuple[list[Job], int | None]:
        async with self._write() as write:
            jobs = await jobs_sql.start_due(write.conn, now, limit, lease_until,
                                            urgent_only=urgent_only)
            write.count("pending", [(job.kind, job.status.value) for job in jobs])
            return jobs, await jobs_sql.next_due(write.conn) if len(jobs) < limit else None

    async def claim_one(self, job_id: str, now: int, lease_until: int) -> Job | None:
        async with self._write() as write:
            job = await jobs_sql.claim_one(write.conn, job_id, now, lease_until)
            write.count("pending", [] if job is None else [(job.kind, job.status.value)])
            return job

    async def save(self, jobs: Sequence[tuple[Job, int]]) -> Settled | None:
        if not jobs:
            return None
        async with self._write() as write:
            return await job_changes.save(write, jobs)

    async def save_progress(self, jobs: Sequence[Job]) -> list[bool]:
        async with self._write() as write:
            return await job_changes.save_progress(write, jobs)

    async def renew_leases(self, ids: Sequence[str], lease_until: int) -> None:
        async with self._write() as write:
            await job_changes.renew_leases(write, ids, lease_until)

    async def release(self, ids: Sequence[str], now: int) -> list[Job]:
        async with self._write() as write:
            return await job_changes.release(write, ids, now)

    async def recover(self, now: int, *, every_lease: bool) -> tuple[list[Job], Settled | None]:
        if not every_lease:  # the poll: hold the engine lock again if its link was lost
            await self._lock.keep()
        try:
            async with self._write() as write:
                return await job_changes.recover(write, now, every_lease=every_lease)
        finally:  # the start-up recovery is over, done or not: engines waiting may start
            await self._lock.downgrade()

    async def cancel_pending(
        self, ids: Sequence[str], now: int
    ) -> tuple[list[Job], Settled | None]:
        async with self._write() as write:
            return await job_changes.cancel_pending(write, ids, now)

    async def requeue(self, ids: Sequence[str], now: int) -> list[Job]:
        async with self._write() as write:
            return await job_changes.requeue(write, ids, now)

    async def page(
        self, flt: JobFilter, limit: int, *, offset: int = 0, before: str | None = None
    ) -> Page:
        async with self._snapshot() as conn:
            jobs = await job_query.page(conn, flt, limit, offset, before)
            total, exact = await job_query.total(conn, flt)
        return Page(jobs, total, exact, jobs[-1].id if len(jobs) == limit else None)

    async def fields_page(
        self, flt: JobFilter, fields: Fieldset, limit: int, *, offset: int = 0,
        before: str | None = None, total: bool = True,
    ) -> FieldsPage:
        async with self._snapshot() as conn:
            jobs = await job_query.page_fields(conn, flt, fields, limit, offset=offset,
                                                 before=before)
            found, exact = await job_query.total(conn, flt) if total else (0, True)
        return FieldsPage(jobs, found, exact, jobs[-1]["job_id"] if len(jobs) == limit else None)

    async def ids(self, flt: JobFilter, before: str | None, limit: int) -> list[str]:
        async with self._db.connection() as conn:
            return await job_query.ids(conn, flt, before, limit)
