"""Reading many jobs: a page with its total, every match as an export, batch changes by
filter. :class:`JobQueries` is the one service the jobs API calls for each of these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..records.job import Job
from ..store.jobs import Fieldset, FieldsPage, JobFilter, JobStore, Page, whole
from .engine import BatchResult, JobEngine
from .export import export_chunks

PAGE = 500  # rows per read when walking every match (export, batch by filter)
DETAIL_CAP = 1000  # ids listed in a batch answer; the counts are always complete


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


Apply = Callable[[Sequence[str]], Awaitable[BatchResult]]


class JobQueries:
    """The jobs list, the export and batch retry/cancel (by ids or by the list's filter):
    reads from the store, changes through the engine."""

    def __init__(self, store: JobStore, engine: JobEngine) -> None:
        self._store, self._engine = store, engine

    def __repr__(self) -> str:
        return f"<JobQueries {self._store!r}>"

    async def page(
        self, flt: JobFilter, limit: int, *, offset: int = 0, cursor: str | None = None
    ) -> Page:
        """One page of whole jobs, newest first, with the total of matches (capped when
        not exact)."""
        return await self._store.page(flt, limit, offset=offset, before=cursor)

    async def fields_page(
        self, flt: JobFilter, fields: Fieldset, limit: int, *, offset: int = 0,
        cursor: str | None = None,
    ) -> FieldsPage:
        """Like :meth:`page`, each job as its object with only the fieldset's keys."""
        return await self._store.fields_page(flt, fields, limit, offset=offset, before=cursor)

    async def walk(
        self, flt: JobFilter, fields: Fieldset, size: int = PAGE
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every match with the fieldset's keys, newest first, ``size`` at a time (flat
        memory)."""
        cursor: str | None = None
        while True:
            page = await self._store.fields_page(flt, fields, size, before=cursor, total=False)
            if page.jobs:
                yield page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def export(
        self, flt: JobFilter, fmt: str, fields: Fieldset | None = None
    ) -> AsyncIterator[bytes]:
        """Every match as CSV or a JSON array (``fmt``), in chunks of a page each."""
        fields = fields or whole()
        return export_chunks(self.walk(flt, fields), fmt, fields)

    async def batch(
        self, action: Literal["retry", "cancel"], ids: Sequence[str] | None,
        flt: JobFilter | None = None,
    ) -> BatchTally:
        """Retry or cancel each of ``ids``, or, given None, every job matching ``flt``
        (their ids collected first: the changes would shift a status filter)."""
        engine = self._engine
        apply = engine.retry_many if action == "retry" else engine.cancel_many
        if ids is None:
            ids = await self._matching(flt or JobFilter())
        tally = BatchTally()
        for start in range(0, len(ids), PAGE):
            result = await apply(ids[start : start + PAGE])
            tally.add(result.touched, result.refused)
        return tally

    async def _matching(self, flt: JobFilter) -> list[str]:
        ids: list[str] = []
        cursor: str | None = None
        while True:
            found = await self._store.ids(flt, cursor, PAGE)
            ids += found
            if len(found) < PAGE:
                return ids
            cursor = found[-1]
