"""Listing jobs on PostgreSQL: a page newest first, its total, and sparse fieldsets.

As on SQLite (:mod:`..sqlite.job_query`): pages go by id, newest first (ids sort by
creation; they are lower-case letters and digits, so every collation orders them as bytes),
a time range is an id range, and the total is exact from ``job_counts`` (summed over its
slots) when the filter is statuses and kind only, else counted up to :data:`COUNT_CAP`.
``q`` is a prefix of the id, document id or correlation id: a range ``[q, q + _TOP)`` of
each one's index, which these columns' bytewise collation (migration 0004) makes exact.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ...ids import id_floor, iso
from ...records.job import Job
from ..jobs import COUNT_CAP, JOB_FIELDS, Fieldset, JobFilter
from .jobs_sql import COLUMNS, row_to_job
from .where import Where

_TOP = "\U0010ffff"  #: sorts after every character: [q, q + _TOP) is "starts with q"

if TYPE_CHECKING:
    import asyncpg

    from .migrate import Connection


def _conditions(flt: JobFilter, before: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause of ``flt`` below the cursor ``before``, and its parameters."""
    where = Where()
    if flt.statuses:
        where.add("status = ANY(?::text[])", list(flt.statuses))
    if flt.kind is not None:
        where.add("kind = ?", flt.kind)
    if flt.since is not None:
        where.add("id >= ?", id_floor("job", flt.since))
    if flt.until is not None:
        where.add("id < ?", id_floor("job", flt.until + 1))
    if before is not None:
        where.add("id < ?", before)
    if flt.q:  # [q, q + _TOP): a range of each column's index (bytewise: migration 0004)
        low, high = where.param(flt.q), where.param(flt.q + _TOP)
        where.raw("(" + " OR ".join(f"{column} >= {low} AND {column} < {high}" for column in (
            "id", "document_id", "correlation_id")) + ")")
    clause = str(where)
    return (f" {clause}" if clause else ""), where.params


def _page_sql(flt: JobFilter, columns: str, limit: int, offset: int,
              before: str | None) -> tuple[str, list[Any]]:
    where, params = _conditions(flt, before)
    tail = f" OFFSET {int(offset)}" if offset else ""
    return f"SELECT {columns} FROM jobs{where} ORDER BY id DESC LIMIT {int(limit)}{tail}", params


async def page(conn: Connection, flt: JobFilter, limit: int, offset: int,
               before: str | None) -> list[Job]:
    sql, params = _page_sql(flt, COLUMNS, limit, offset, before)
    return [row_to_job(row) for row in await conn.fetch(sql, *params)]


async def page_fields(conn: Connection, flt: JobFilter, fields: Fieldset, limit: int, *,
                      offset: int, before: str | None) -> list[dict[str, Any]]:
    """One page as job objects with only the fieldset's keys (no :class:`Job` built)."""
    columns, render = _compiled(fields)
    sql, params = _page_sql(flt, columns, limit, offset, before)
    return [render(row) for row in await conn.fetch(sql, *params)]


async def ids(conn: Connection, flt: JobFilter, before: str | None, limit: int) -> list[str]:
    sql, params = _page_sql(flt, "id", limit, 0, before)
    return [row["id"] for row in await conn.fetch(sql, *params)]


async def total(conn: Connection, flt: JobFilter) -> tuple[int, bool]:
    """(matching jobs, exact?): exact from the counters, else capped at ``COUNT_CAP``."""
    if flt.counted:
        where, params = _conditions(flt, None)
        exact = await conn.fetchval(f"SELECT sum(n) FROM job_counts{where}", *params)
        return int(exact or 0), True
    where, params = _conditions(flt, None)
    found: int = await conn.fetchval(
        f"SELECT count(*) FROM (SELECT 1 FROM jobs{where} LIMIT {COUNT_CAP + 1}) AS m", *params)
    return min(found, COUNT_CAP), found <= COUNT_CAP


def _text(value: str | None) -> str:
    return value or ""


# Each key of Job.to_json: the column it is read from and how the stored value becomes the
# JSON value (None: as read; jsonb columns arrive decoded). Keyed as JOB_FIELDS.
_FIELDS: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "job_id": ("id", None), "kind": ("kind", None), "status": ("status", None),
    "priority": ("priority", None), "document_id": ("document_id", _text),
    "channels": ("channels", None), "progress": ("progress_percent", None),
    "attempts": ("attempts", None), "max_attempts": ("max_attempts", None),
    "last_error": ("last_error", None), "errors": ("errors", None),
    "results": ("results", None), "output": ("output", None), "params": ("params", None),
    "metadata": ("metadata", None), "correlation_id": ("correlation_id", None),
    "idempotency_key": ("idempotency_key", None), "created_at": ("created_at", iso),
    "updated_at": ("updated_at", iso), "scheduled_for": ("scheduled_for", iso),
    "started_at": ("started_at", iso), "completed_at": ("completed_at", iso),
    "depends_on": ("depends_on", None),
}
assert tuple(_FIELDS) == JOB_FIELDS


@lru_cache(maxsize=64)  # a dashboard asks for the same few sets on every request
def _compiled(fieldset: Fieldset) -> tuple[str, Callable[[asyncpg.Record], dict[str, Any]]]:
    """The columns of ``fieldset`` and a function rendering one row of them."""
    names = fieldset.fields
    columns = [_FIELDS[name][0] for name in names]
    if "progress" in names:
        columns.append("progress_message")
    last = len(columns) - 1
    plan = [(name, index, _FIELDS[name][1]) for index, name in enumerate(names)]

    def render(row: asyncpg.Record) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, index, convert in plan:
            if name == "progress":
                out[name] = {"percent": row[index], "message": row[last]}
            else:
                out[name] = row[index] if convert is None else convert(row[index])
        return out

    return ", ".join(columns), render
