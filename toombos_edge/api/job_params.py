"""Reading job requests: list filters from the typed query or a batch body, new-job fields.

The types (:mod:`.schemas.jobs`) checked the shapes; what is left here are the rules across
fields (``from`` before ``to``, a cursor or an offset), each a 422 naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..errors import Invalid
from ..records.job import JobStatus
from ..store.jobs import Fieldset, JobFilter, fieldset, whole
from .paging import parse_int
from .schemas.jobs import MAX_OFFSET, BatchBody, JobFilterQuery, JobListQuery, NewJob

_STATUSES = {status.value for status in JobStatus}
_DAY_MS = 86_400_000
_FILTER_FIELDS = {"status", "kind", "q", "from", "to"}
GetAll = Callable[[str], list[Any]]


@dataclass(frozen=True, slots=True)
class Paging:
    limit: int
    offset: int
    cursor: str | None

    @property
    def page(self) -> int | None:
        return None if self.cursor else self.offset // self.limit + 1


def parse_time(name: str, raw: Any, *, end_of_day: bool = False) -> int:
    """ISO 8601 (``Z`` or an offset; a bare date) or integer milliseconds, as ms UTC."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if (ms := parse_int(text)) is not None and text[:1] not in "+-":
        return ms
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{name}: expected an ISO 8601 time or milliseconds, got {text!r}",
                      {"field": name}) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return ms + _DAY_MS - 1 if end_of_day and len(text) == 10 else ms


def _text(raw: Any) -> str | None:
    return (raw.strip() or None) if isinstance(raw, str) else None


def _statuses(values: list[Any]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else str(value).split(",")
        found += [str(item).strip() for item in items if str(item).strip()]
    unknown = [item for item in found if item not in _STATUSES]
    if unknown:
        raise Invalid(f"status: expected one of {', '.join(_STATUSES)}, got {unknown[0]!r}",
                      {"field": "status", "known": sorted(_STATUSES)})
    return tuple(dict.fromkeys(found))


def job_filter(get_all: GetAll) -> JobFilter:
    """The list filter from ``get_all(name)`` (the typed query or a JSON body's fields)."""

    def one(name: str) -> Any:
        values = get_all(name)
        return values[-1] if values else None

    since, until = one("from"), one("to")
    flt = JobFilter(
        statuses=_statuses(get_all("status")),
        kind=_text(one("kind")),
        q=_text(one("q")),
        since=None if since in (None, "") else parse_time("from", since),
        until=None if until in (None, "") else parse_time("to", until, end_of_day=True),
    )
    if flt.since is not None and flt.until is not None and flt.since > flt.until:
        raise Invalid("from: after 'to'", {"field": "from"})
    return flt


def query_filter(query: JobFilterQuery) -> JobFilter:
    """The list filter of a typed query (the job list's hot path: no detour through dicts)."""
    since, until = query.since, query.until
    flt = JobFilter(
        statuses=tuple(dict.fromkeys(status.value for status in query.status)),
        kind=_text(query.kind),
        q=_text(query.q),
        since=parse_time("from", since) if since and since.strip() else None,
        until=parse_time("to", until, end_of_day=True) if until and until.strip() else None,
    )
    if flt.since is not None and flt.until is not None and flt.since > flt.until:
        raise Invalid("from: after 'to'", {"field": "from"})
    return flt


def query_fieldset(query: JobFilterQuery) -> Fieldset:
    """``fields=job_id,status,…`` (the type knows the names); absent: the whole object."""
    return fieldset(list(query.fields)) if query.fields else whole()


def paging(query: JobListQuery) -> Paging:
    """``limit`` with ``offset``, ``page`` (1-based) or ``cursor``."""
    offset = query.offset
    if offset is None:
        offset = 0 if query.page is None else (query.page - 1) * query.limit
    if query.cursor is not None and offset:
        raise Invalid("cursor: send either 'cursor' or 'offset'/'page', not both",
                      {"field": "cursor"})
    if offset > MAX_OFFSET:
        raise Invalid(f"page: offsets beyond {MAX_OFFSET} are refused; page with 'cursor'",
                      {"field": "page"})
    return Paging(query.limit, offset, query.cursor)


def job_ids(body: BatchBody) -> list[str] | None:
    """``job_ids`` (or ``ids``) of a batch body: None when the body selects by filter."""
    raw = body.job_ids if isinstance(body.job_ids, list) else body.ids
    return list(dict.fromkeys(raw)) if isinstance(raw, list) else None


def body_filter(body: BatchBody) -> JobFilter:
    """The filter of a batch body: under ``filter``, or the list's names at the top level."""
    given = msgspec.to_builtins(body)
    source = given.get("filter", given)
    if "filter" not in given and not set(given) & _FILTER_FIELDS:
        # An empty body must not mean "every job": everything is {"filter": {}}.
        raise Invalid("body: send 'job_ids', or a 'filter' ({} selects every job)",
                      {"field": "filter"})
    flt = job_filter(lambda name: [source[name]] if source.get(name) is not None else [])
    if "filter" not in given and flt == JobFilter():
        # {"status": ""} or {"status": []} names a filter yet selects everything.
        raise Invalid("filter: the filter fields are empty; everything is {\"filter\": {}}",
                      {"field": "filter"})
    return flt


def idempotency_key(raw: str | None) -> str | None:
    """An ``Idempotency-Key`` header: a string of at most 200 characters."""
    text = _text(raw)
    if text is not None and len(text) > 200:
        raise Invalid("Idempotency-Key: longer than 200 characters",
                      {"field": "Idempotency-Key"})
    return text


def new_job(body: NewJob, idempotency_header: str | None) -> dict[str, Any]:
    """Keyword arguments for ``JobEngine.submit`` from a ``POST /api/jobs`` body."""
    kind = _text(body.kind)
    if kind is None:
        raise Invalid("kind: required", {"field": "kind"})
    scheduled = body.scheduled_for
    return {
        "kind": kind,
        "params": body.params or {},
        "priority": body.priority or 0,
        "scheduled_for": None if scheduled in (None, "") else parse_time(
            "scheduled_for", scheduled
        ),
        "max_attempts": body.max_attempts,
        "idempotency_key": _text(body.idempotency_key) or idempotency_key(idempotency_header),
        "correlation_id": _text(body.correlation_id),
        "metadata": body.metadata or {},
        "document_id": _text(body.document_id),
        "channels": list(body.channels),
    }
