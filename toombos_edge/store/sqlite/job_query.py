"""Listing jobs in SQLite: the SQL of a page, and a total that stays cheap.

Pages are newest first (ids are time-sortable) and every filter is an index ending in
``id``: status ``(status, id)``, kind ``(kind, status, id)``, ``q`` the primary key, ``(document_id,
id)`` and ``(correlation_id, id)``, and a time range is an id range. Several statuses are one
ordered sub-select each, merged: never a sort of the whole table. ``total`` is exact from the
per-kind-and-status counters when the filter is statuses and kind only, else counted up to
:data:`COUNT_CAP`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from ...ids import id_floor
from ...records.job import Job, JobStatus
from ..jobs import COUNT_CAP, Fieldset, JobFilter
from .job_fields import compiled
from .job_rows import COLUMNS, row_to_job

ALL_STATUSES = tuple(status.value for status in JobStatus)
_TOP = "\U0010ffff"  # sorts after every character: [q, q + _TOP) is "starts with q"


def _conditions(flt: JobFilter, before: str | None) -> tuple[list[str], list[Any]]:
    """WHERE terms other than status, with their parameters."""
    terms: list[str] = []
    params: list[Any] = []
    if flt.kind is not None:
        terms.append("kind = ?")
        params.append(flt.kind)
    if flt.since is not None:
        terms.append("id >= ?")
        params.append(id_floor("job", flt.since))
    if flt.until is not None:
        terms.append("id < ?")
        params.append(id_floor("job", flt.until + 1))
    if before is not None:
        terms.append("id < ?")
        params.append(before)
    if flt.q:
        terms.append(
            "(id >= ? AND id < ? OR document_id >= ? AND document_id < ? "
            "OR correlation_id >= ? AND correlation_id < ?)"
        )
        params += [flt.q, flt.q + _TOP] * 3
    return terms, params


def _select(terms: list[str], columns: str, limit: int, offset: int = 0) -> str:
    where = " WHERE " + " AND ".join(terms) if terms else ""
    tail = f" OFFSET {offset}" if offset else ""
    return f"SELECT {columns} FROM jobs{where} ORDER BY id DESC LIMIT {limit}{tail}"


def page_sql(
    flt: JobFilter, limit: int, offset: int = 0, before: str | None = None,
    columns: str = COLUMNS,
) -> tuple[str, list[Any]]:
    """The SQL and parameters of one page (``before``: the cursor, an id)."""
    terms, params = _conditions(flt, before)
    if flt.kind is not None and not flt.statuses:
        # (kind, status, id) is ordered by id within each status: merge one range per status.
        flt = replace(flt, statuses=ALL_STATUSES)
    if len(flt.statuses) <= 1:
        status_terms = ["status = ?"] if flt.statuses else []
        return _select(status_terms + terms, columns, limit, offset), [*flt.statuses, *params]
    # Merge the ids only (each arm reads its index alone), then read the page's rows.
    parts, values = [], []
    for status in flt.statuses:
        parts.append(f"SELECT id FROM ({_select(['status = ?', *terms], 'id', limit + offset)})")
        values += [status, *params]
    tail = f" OFFSET {offset}" if offset else ""
    ids = " UNION ALL ".join(parts) + f" ORDER BY id DESC LIMIT {limit}{tail}"
    return f"SELECT {columns} FROM jobs WHERE id IN ({ids}) ORDER BY id DESC", values


def page(
    conn: sqlite3.Connection, flt: JobFilter, limit: int, offset: int = 0,
    before: str | None = None,
) -> list[Job]:
    sql, params = page_sql(flt, limit, offset, before)
    return [row_to_job(row) for row in conn.execute(sql, params)]


def page_fields(
    conn: sqlite3.Connection, flt: JobFilter, fieldset: Fieldset, limit: int, *,
    offset: int = 0, before: str | None = None,
) -> list[dict[str, Any]]:
    """One page as job objects with only the fieldset's keys (no :class:`Job` built)."""
    shape = compiled(fieldset)
    sql, params = page_sql(flt, limit, offset, before, columns=shape.columns)
    return shape.render_all(conn.execute(sql, params))


def count_sql(flt: JobFilter) -> tuple[str, list[Any]]:
    """Count matching rows, stopping at ``COUNT_CAP + 1``."""
    terms, params = _conditions(flt, None)
    if flt.statuses:
        terms.insert(0, f"status IN ({','.join('?' * len(flt.statuses))})")
        params = [*flt.statuses, *params]
    where = " WHERE " + " AND ".join(terms) if terms else ""
    return f"SELECT count(*) FROM (SELECT 1 FROM jobs{where} LIMIT {COUNT_CAP + 1})", params


def total(conn: sqlite3.Connection, flt: JobFilter) -> tuple[int, bool]:
    """(matching jobs, exact?): exact from the counters, else capped at ``COUNT_CAP``."""
    if flt.counted:
        terms, params = [], []
        if flt.kind is not None:
            terms.append("kind = ?")
            params.append(flt.kind)
        if flt.statuses:
            terms.append(f"status IN ({','.join('?' * len(flt.statuses))})")
            params += flt.statuses
        where = " WHERE " + " AND ".join(terms) if terms else ""
        exact = conn.execute(f"SELECT sum(n) FROM job_counts{where}", params).fetchone()[0]
        return int(exact or 0), True
    sql, params = count_sql(flt)
    found: int = conn.execute(sql, params).fetchone()[0]
    return min(found, COUNT_CAP), found <= COUNT_CAP


def ids_after(
    conn: sqlite3.Connection, flt: JobFilter, before: str | None, limit: int
) -> list[tuple[str, str]]:
    """(id, status) of the next ``limit`` matching jobs older than ``before``."""
    sql, params = page_sql(flt, limit, 0, before, columns="id, status")
    rows = conn.execute(sql, params)
    return [(row[0], row[1]) for row in rows]
