"""Jobs as CSV or a JSON array, produced a page at a time (flat memory for any count)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..store.jobs import Fieldset

CSV_COLUMNS = (
    "job_id", "kind", "status", "priority", "document_id", "channels", "attempts",
    "max_attempts", "progress", "last_error", "correlation_id", "created_at", "updated_at",
    "scheduled_for", "started_at", "completed_at",
)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def csv_columns(fieldset: Fieldset) -> tuple[str, ...]:
    """The CSV's columns that the fieldset asks for (all of them for the whole object)."""
    return tuple(column for column in CSV_COLUMNS if column in fieldset.fields)


def _csv_row(data: dict[str, Any], columns: tuple[str, ...]) -> list[object]:
    if "channels" in data:
        data["channels"] = " ".join(data["channels"])
    if "progress" in data:
        data["progress"] = data["progress"]["percent"]
    return [_safe(data[column]) for column in columns]


def _safe(value: object) -> object:
    # A cell starting with = + - @ is a formula to a spreadsheet: defuse it.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


async def export_chunks(
    pages: AsyncIterator[list[dict[str, Any]]], fmt: str, fieldset: Fieldset
) -> AsyncIterator[bytes]:
    """Chunks of the export of ``pages`` (job objects cut to ``fieldset``); ``fmt`` is
    ``csv`` or ``json``."""
    if fmt == "csv":
        async for chunk in _csv(pages, csv_columns(fieldset)):
            yield chunk
    else:
        async for chunk in _json(pages):
            yield chunk


async def _csv(
    pages: AsyncIterator[list[dict[str, Any]]], columns: tuple[str, ...]
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue().encode()
    async for rows in pages:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(_csv_row(data, columns) for data in rows)
        yield buffer.getvalue().encode()


async def _json(pages: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[bytes]:
    opening = b"["
    async for rows in pages:
        yield opening + b",".join(orjson.dumps(data) for data in rows)
        opening = b","
    yield b"[]" if opening == b"[" else b"]"
