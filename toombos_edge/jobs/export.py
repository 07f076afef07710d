"""Jobs as CSV or a JSON array, produced a page at a time (flat memory for any count)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import orjson

from ..store import Database
from .listing import walk
from .model import Job
from .query import JobFilter

CSV_COLUMNS = (
    "job_id", "kind", "status", "priority", "document_id", "channels", "attempts",
    "max_attempts", "progress", "last_error", "correlation_id", "created_at", "updated_at",
    "scheduled_for", "started_at", "completed_at",
)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _csv_row(job: Job) -> list[object]:
    data = job.to_json()
    data["channels"] = " ".join(job.channels)
    data["progress"] = job.progress_percent
    return [_safe(data[column]) for column in CSV_COLUMNS]


def _safe(value: object) -> object:
    # A cell starting with = + - @ is a formula to a spreadsheet: defuse it.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


async def export(db: Database, flt: JobFilter, fmt: str) -> AsyncIterator[bytes]:
    """Chunks of the export; ``fmt`` is ``csv`` or ``json``."""
    if fmt == "csv":
        async for chunk in _csv(db, flt):
            yield chunk
    else:
        async for chunk in _json(db, flt):
            yield chunk


async def _csv(db: Database, flt: JobFilter) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    async for jobs in walk(db, flt):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_csv_row(job) for job in jobs)
        yield buffer.getvalue().encode()


async def _json(db: Database, flt: JobFilter) -> AsyncIterator[bytes]:
    opening = b"["
    async for jobs in walk(db, flt):
        yield opening + b",".join(orjson.dumps(job.to_json()) for job in jobs)
        opening = b","
    yield b"[]" if opening == b"[" else b"]"
