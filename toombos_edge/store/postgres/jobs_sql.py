"""The jobs table on PostgreSQL: rows as jobs, the claim (how several nodes take jobs from
one queue), inserts and the per-slot counts.

Each function runs inside the caller's transaction on an asyncpg connection (jsonb read as
Python values); none commits. :class:`.jobs.PgJobStore` makes each protocol method one
transaction of these and of :mod:`.job_changes`, :mod:`.job_dependencies`,
:mod:`.job_query`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ...records.job import Job, JobStatus

if TYPE_CHECKING:
    import asyncpg

    from .migrate import Connection

COLUMNS = (
    "id, kind, status, priority, document_id, channels, params, progress_percent, "
    "progress_message, attempts, max_attempts, last_error, errors, results, idempotency_key, "
    "correlation_id, metadata, created_at, updated_at, scheduled_for, started_at, "
    "completed_at, lease_until, urgent, output, depends_on, fail_fast"
)

#: Waiting jobs that came due join the queue. Rows another node is promoting are skipped,
#: not waited for: that node moves them.
_PROMOTE = (
    "UPDATE jobs SET waiting = 0 WHERE id IN (SELECT id FROM jobs "
    "WHERE status = 'pending' AND waiting = 1 AND due_at <= $1 FOR UPDATE SKIP LOCKED)"
)

#: The queue's head, in the order of the jobs_queue index, skipping rows another
#: transaction has locked (claimed and not yet committed): two nodes claiming at once take
#: different jobs and neither waits for the other.
_RETURNED = ", ".join(f"jobs.{name.strip()}" for name in COLUMNS.split(","))
_CLAIM = (
    "WITH picked AS (SELECT id FROM jobs WHERE status = 'pending' AND waiting = 0 {urgent} "
    "ORDER BY urgent DESC, priority DESC, due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
    "UPDATE jobs SET status = 'in_progress', attempts = attempts + 1, started_at = $1, "
    "updated_at = $1, progress_percent = 0, progress_message = '', lease_until = $2 "
    f"FROM picked WHERE jobs.id = picked.id RETURNING {_RETURNED}, jobs.due_at"
)

_COUNT = (
    "INSERT INTO job_counts (kind, status, slot, n) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::bigint[]) "
    "ON CONFLICT (kind, status, slot) DO UPDATE SET n = job_counts.n + excluded.n"
)

_STATUS = {status.value: status for status in JobStatus}


def row_to_job(row: asyncpg.Record) -> Job:
    """A row selected with :data:`COLUMNS` as a :class:`Job`."""
    return Job(
        id=row["id"], kind=row["kind"], status=_STATUS[row["status"]],
        priority=row["priority"], document_id=row["document_id"], channels=row["channels"],
        params=row["params"], progress_percent=row["progress_percent"],
        progress_message=row["progress_message"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], last_error=row["last_error"], errors=row["errors"],
        results=row["results"], idempotency_key=row["idempotency_key"],
        correlation_id=row["correlation_id"], metadata=row["metadata"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        scheduled_for=row["scheduled_for"], started_at=row["started_at"],
        completed_at=row["completed_at"], lease_until=row["lease_until"],
        urgent=row["urgent"], output=row["output"], depends_on=row["depends_on"],
        fail_fast=row["fail_fast"],
    )


def _queue_order(row: asyncpg.Record) -> tuple[bool, int, int, str]:
    """The claim's ORDER BY as a sort key (RETURNING gives rows in no promised order)."""
    return (not row["urgent"], -row["priority"], row["due_at"], row["id"])


async def claim(
    conn: Connection, now: int, limit: int, lease_until: int, *, slot: int,
    urgent_only: bool = False,
) -> list[Job]:
    """Start up to ``limit`` due pending jobs in queue order, for one node.

    What it promises, with any number of nodes claiming at once: each job is claimed by one
    transaction only (``FOR UPDATE SKIP LOCKED``: rows locked by another claim are passed
    over, never waited for, and a claim that commits has moved its jobs out of ``pending``,
    so a later claim cannot see them); jobs come in queue order (urgent first, then
    priority, then due time, then id) among those no other claim holds; each claimed job is
    ``in_progress`` with its attempt counted, ``started_at`` and a lease until
    ``lease_until`` that its node renews (a lease left to expire is any node's to rescue).
    Waiting jobs due by ``now`` join the queue first.

    ``slot`` is this connection's row of ``job_counts`` (0 to 32767): the caller gives each
    of its connections its own, so that concurrent claims add to different counter rows
    and never wait on each other's counts. A claim of an idle queue writes nothing.
    """
    jobs = await start_due(conn, now, limit, lease_until, urgent_only=urgent_only)
    await add_counts(conn, slot, [(job.kind, JobStatus.pending.value, -1) for job in jobs]
                     + [(job.kind, JobStatus.in_progress.value, 1) for job in jobs])
    return jobs


async def start_due(
    conn: Connection, now: int, limit: int, lease_until: int, *, urgent_only: bool
) -> list[Job]:
    """:func:`claim` without the counts (the caller counts the jobs it returns)."""
    await conn.execute(_PROMOTE, now)
    sql = _CLAIM.format(urgent="AND urgent" if urgent_only else "")
    rows = await conn.fetch(sql, now, lease_until, limit)
    return [row_to_job(row) for row in sorted(rows, key=_queue_order)]


async def add_counts(conn: Connection, slot: int, deltas: Iterable[tuple[str, str, int]]) -> None:
    """Add (kind, status, delta) to the counts of ``slot``, in one statement. Rows are
    written in key order, so two writers sharing a slot wait for each other at worst and
    never deadlock."""
    tally: Counter[tuple[str, str]] = Counter()
    for kind, status, delta in deltas:
        tally[kind, status] += delta
    keys = sorted(key for key, n in tally.items() if n)
    if keys:
        await conn.execute(_COUNT, [k for k, _ in keys], [s for _, s in keys],
                           [slot] * len(keys), [tally[key] for key in keys])


async def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Jobs per (kind, status), summed over every slot (zero counts left out)."""
    rows = await conn.fetch(
        "SELECT kind, status, sum(n) AS n FROM job_counts GROUP BY kind, status "
        "HAVING sum(n) <> 0")
    return {(row["kind"], row["status"]): int(row["n"]) for row in rows}


BLOCKED = 2  #: ``waiting`` of a pending job whose ``depends_on`` job has not ended

_INSERT = (
    "INSERT INTO jobs (id, kind, status, priority, urgent, document_id, channels, params, "
    "attempts, max_attempts, idempotency_key, correlation_id, metadata, created_at, "
    "updated_at, scheduled_for, due_at, waiting, started_at, lease_until, depends_on, "
    "fail_fast) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
    "$16, $17, $18, $19, $20, $21, $22)"
)


def _waiting(job: Job, due_at: int) -> int:
    """Out of the queue: blocked on ``depends_on`` (2), or due after it is written (1)."""
    if job.status is not JobStatus.pending:
        return 0
    if job.depends_on is not None:
        return BLOCKED
    return int(due_at > job.updated_at)


async def insert(conn: Connection, jobs: Sequence[tuple[Job, int]], *, slot: int) -> None:
    """Insert new jobs, each with the time it becomes due, and count them in ``slot``
    (see :func:`claim`). A duplicate id or idempotency key fails the whole call."""
    await insert_rows(conn, jobs)
    await add_counts(conn, slot, [(job.kind, job.status.value, 1) for job, _due in jobs])


async def insert_rows(conn: Connection, jobs: Sequence[tuple[Job, int]]) -> None:
    """:func:`insert` without the counts."""
    await conn.executemany(_INSERT, [_insert_args(job, due_at) for job, due_at in jobs])


def _insert_args(job: Job, due_at: int) -> tuple[object, ...]:
    return (job.id, job.kind, job.status.value, job.priority, job.urgent, job.document_id,
            job.channels, job.params, job.attempts, job.max_attempts, job.idempotency_key,
            job.correlation_id, job.metadata, job.created_at, job.updated_at,
            job.scheduled_for, due_at, _waiting(job, due_at), job.started_at, job.lease_until,
            job.depends_on, job.fail_fast)


async def insert_once(conn: Connection, job: Job, due_at: int) -> bool:
    """Insert ``job`` unless a job with its idempotency key is stored (False then); the
    caller counts it.

    One statement: of two nodes inserting one key at once, the second waits for the first
    to commit and then inserts nothing (the unique index decides, not a read before)."""
    inserted = await conn.fetchval(
        _INSERT + " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL "
        "DO NOTHING RETURNING id", *_insert_args(job, due_at))
    return inserted is not None


async def by_key(conn: Connection, key: str) -> Job | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM jobs WHERE idempotency_key = $1", key)
    return None if row is None else row_to_job(row)


async def next_due(conn: Connection) -> int | None:
    """When the earliest waiting job becomes due (None: none is waiting)."""
    value: int | None = await conn.fetchval(
        "SELECT min(due_at) FROM jobs WHERE status = 'pending' AND waiting = 1")
    return value


async def claim_one(conn: Connection, job_id: str, now: int, lease_until: int) -> Job | None:
    """Start one pending job by id (an urgent job skips the queue); None when it is not
    pending any more (another node's claim that commits first wins: the status is checked
    again on the row it changed). The caller counts it."""
    row = await conn.fetchrow(
        "UPDATE jobs SET status = 'in_progress', attempts = attempts + 1, started_at = $2, "
        "updated_at = $2, progress_percent = 0, progress_message = '', lease_until = $3, "
        f"waiting = 0 WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}",
        job_id, now, lease_until)
    return None if row is None else row_to_job(row)
