"""A job as a row of the ``jobs`` table, and the per-(kind, status) tally ``job_counts``.

Every statement of :mod:`.jobs` that adds a job or changes a status adds its deltas to
``job_counts`` in one upsert per call (:func:`count`). Row triggers did this before and
cost about a fifth of the writer's time per job (a trigger program per row).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ...records.job import Job, JobStatus

COLUMNS = (
    "id, kind, status, priority, document_id, channels, params, progress_percent, "
    "progress_message, attempts, max_attempts, last_error, errors, results, idempotency_key, "
    "correlation_id, metadata, created_at, updated_at, scheduled_for, started_at, "
    "completed_at, lease_until, urgent, output, depends_on, fail_fast"
)
EMPTY_LIST, EMPTY_OBJECT = "[]", "{}"
STATUS = {status.value: status for status in JobStatus}
_load = orjson.loads


def dump(value: Any, empty: str) -> str:
    """A JSON column's text (``empty`` for an empty value)."""
    return orjson.dumps(value).decode() if value else empty


def row_to_job(row: Sequence[Any]) -> Job:
    """A row selected with :data:`COLUMNS` as a :class:`Job`."""
    return Job(
        id=row[0], kind=row[1], status=STATUS[row[2]], priority=row[3], document_id=row[4],
        channels=_load(row[5]), params=_load(row[6]), progress_percent=row[7],
        progress_message=row[8], attempts=row[9], max_attempts=row[10], last_error=row[11],
        errors=_load(row[12]), results=_load(row[13]), idempotency_key=row[14],
        correlation_id=row[15], metadata=_load(row[16]), created_at=row[17],
        updated_at=row[18], scheduled_for=row[19], started_at=row[20], completed_at=row[21],
        lease_until=row[22], urgent=bool(row[23]), output=_load(row[24]),
        depends_on=row[25], fail_fast=bool(row[26]),
    )


_COUNT = (
    "INSERT INTO job_counts (kind, status, n) VALUES (?, ?, ?) "
    "ON CONFLICT (kind, status) DO UPDATE SET n = n + excluded.n"
)


def count(conn: sqlite3.Connection, before: str | None, after: Iterable[tuple[str, str]]) -> None:
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


def uncount(conn: sqlite3.Connection, deleted: Iterable[tuple[str, str]]) -> None:
    """Take deleted jobs, as (kind, status), off the counts."""
    tally: dict[tuple[str, str], int] = {}
    for key in deleted:
        tally[key] = tally.get(key, 0) + 1
    conn.executemany(_COUNT, [(kind, status, -n) for (kind, status), n in tally.items()])


def kind_status(rows: Iterable[Sequence[Any]]) -> list[tuple[str, str]]:
    """(kind, status) of rows returned with :data:`COLUMNS`."""
    return [(row[1], row[2]) for row in rows]


def statuses(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, JobStatus]:
    marks = ",".join("?" * len(ids))
    rows = conn.execute(f"SELECT id, status FROM jobs WHERE id IN ({marks})", ids)
    return {job_id: STATUS[status] for job_id, status in rows}


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Jobs per status (from the counters: no table scan)."""
    rows = conn.execute("SELECT status, sum(n) FROM job_counts GROUP BY status").fetchall()
    return {status.value: 0 for status in JobStatus} | dict(rows)
