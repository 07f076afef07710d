"""Retention's deletions of jobs: ended jobs past their age, the oldest beyond a count.

Each statement returns the kind and status of what it deleted, so ``job_counts`` loses
exactly those (:func:`~.job_rows.uncount`); the hourly roll-up keeps the history.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...ids import id_floor
from .job_rows import uncount


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
    uncount(conn, rows)
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
    uncount(conn, rows)
    return len(rows)
