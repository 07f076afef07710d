"""Reading many jobs: a page with its total, every match in pages, batch changes by filter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..records.job import Job
from ..store import Database
from . import query
from .fields import Fieldset
from .query import JobFilter

PAGE = 500  # rows per read when walking every match (export, batch by filter)
DETAIL_CAP = 1000  # ids listed in a batch answer; the counts are always complete


@dataclass(frozen=True, slots=True)
class Page:
    jobs: list[Job]
    total: int
    total_exact: bool
    next_cursor: str | None


async def list_page(
    db: Database, flt: JobFilter, limit: int, offset: int = 0, cursor: str | None = None
) -> Page:
    """One page, newest first, with the total of matches (capped when not exact)."""

    def read(conn: Any) -> Page:
        jobs = query.page(conn, flt, limit, offset, cursor)
        total, exact = query.total(conn, flt)
        return Page(jobs, total, exact, jobs[-1].id if len(jobs) == limit else None)

    return await db.read(read)


@dataclass(frozen=True, slots=True)
class FieldsPage:
    """A page of job objects cut down to a fieldset (``?fields=``)."""

    jobs: list[dict[str, Any]]
    total: int
    total_exact: bool
    next_cursor: str | None


async def list_fields_page(
    db: Database, flt: JobFilter, fieldset: Fieldset, limit: int, *, offset: int = 0,
    cursor: str | None = None,
) -> FieldsPage:
    """Like :func:`list_page`, each job with only the fieldset's keys."""

    def read(conn: Any) -> FieldsPage:
        jobs = query.page_fields(conn, flt, fieldset, limit, offset=offset, before=cursor)
        total, exact = query.total(conn, flt)
        last = jobs[-1]["job_id"] if len(jobs) == limit else None
        return FieldsPage(jobs, total, exact, last)

    return await db.read(read)


async def walk_fields(
    db: Database, flt: JobFilter, fieldset: Fieldset, size: int = PAGE
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every match with the fieldset's keys, newest first, ``size`` at a time (flat memory)."""
    cursor: str | None = None
    while True:
        jobs = await db.read(
            partial(query.page_fields, flt=flt, fieldset=fieldset, limit=size, before=cursor)
        )
        if jobs:
            yield jobs
        if len(jobs) < size:
            return
        cursor = jobs[-1]["job_id"]


@dataclass(slots=True)
class BatchTally:
    """A batch operation's answer: counts, and the ids (up to a cap) with reasons."""

    touched: int = 0
    refused: int = 0
    touched_ids: list[str] = field(default_factory=list)
    refusals: dict[str, str] = field(default_factory=dict)

    def add(self, touched: Sequence[Job], refused: dict[str, str]) -> None:
        self.touched += len(touched)
        self.refused += len(refused)
        room = DETAIL_CAP - len(self.touched_ids)
        self.touched_ids += [job.id for job in touched[: max(room, 0)]]
        for job_id, reason in refused.items():
            if len(self.refusals) >= DETAIL_CAP:
                break
            self.refusals[job_id] = reason

    def to_json(self) -> dict[str, Any]:
        return {
            "touched": self.touched,
            "refused": self.refused,
            "touched_ids": self.touched_ids,
            "refusals": self.refusals,
        }


Apply = Callable[[Sequence[str]], Awaitable[Any]]


async def apply_to_matching(db: Database, flt: JobFilter, apply: Apply) -> BatchTally:
    """Run a batch operation (``engine.cancel_many`` …) on every match, a page at a time."""
    tally = BatchTally()
    ids: list[str] = []
    cursor: str | None = None
    # Collect ids first: the operation changes statuses, which would shift a status filter.
    while True:
        rows = await db.read(partial(query.ids_after, flt=flt, before=cursor, limit=PAGE))
        ids += [job_id for job_id, _status in rows]
        if len(rows) < PAGE:
            break
        cursor = rows[-1][0]
    for start in range(0, len(ids), PAGE):
        result = await apply(ids[start : start + PAGE])
        tally.add(result.touched, result.refused)
    return tally


async def apply_to_ids(ids: Sequence[str], apply: Apply) -> BatchTally:
    tally = BatchTally()
    for start in range(0, len(ids), PAGE):
        result = await apply(ids[start : start + PAGE])
        tally.add(result.touched, result.refused)
    return tally
