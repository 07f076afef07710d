"""Reading job requests: list filters from a query string or a JSON body, new-job fields.

Every refusal is a 400 (malformed) or 422 (well-formed, not allowed) naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import BadRequest, Invalid
from ..jobs.fields import JOB_FIELDS, Fieldset, UnknownFields, fieldset, whole
from ..jobs.model import JobStatus
from ..jobs.query import JobFilter
from .paging import parse_int

MAX_LIMIT, DEFAULT_LIMIT, MAX_OFFSET = 500, 50, 100_000
MAX_IDS = 10_000
_ID = re.compile(r"^job_[0-9a-z]{26}$")
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
        raise Invalid(f"{name!r} must be an ISO 8601 time or milliseconds, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    return ms + _DAY_MS - 1 if end_of_day and len(text) == 10 else ms


def _text(name: str, raw: Any, most: int) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise Invalid(f"{name!r} must be a string")
    text = raw.strip()
    if len(text) > most:
        raise Invalid(f"{name!r} is longer than {most} characters")
    return text or None


def _statuses(values: list[Any]) -> tuple[str, ...]:
    found: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else str(value).split(",")
        found += [str(item).strip() for item in items if str(item).strip()]
    unknown = [item for item in found if item not in _STATUSES]
    if unknown:
        raise Invalid(f"unknown status {unknown[0]!r}", {"known": sorted(_STATUSES)})
    return tuple(dict.fromkeys(found))


def job_filter(get_all: GetAll) -> JobFilter:
    """The list filter from ``get_all(name)`` (query string or JSON body)."""

    def one(name: str) -> Any:
        values = get_all(name)
        return values[-1] if values else None

    since, until = one("from"), one("to")
    flt = JobFilter(
        statuses=_statuses(get_all("status")),
        kind=_text("kind", one("kind"), 100),
        q=_text("q", one("q"), 200),
        since=None if since in (None, "") else parse_time("from", since),
        until=None if until in (None, "") else parse_time("to", until, end_of_day=True),
    )
    if flt.since is not None and flt.until is not None and flt.since > flt.until:
        raise Invalid("'from' is after 'to'")
    return flt


def query_filter(query: Mapping[str, str]) -> JobFilter:
    getall = getattr(query, "getall", None)
    if getall is None:
        return job_filter(lambda name: [query[name]] if name in query else [])
    return job_filter(lambda name: list(getall(name, [])))


def query_fieldset(query: Mapping[str, str]) -> Fieldset:
    """``fields=job_id,status,…`` (comma-separated, may repeat); absent: the whole object."""
    getall = getattr(query, "getall", None)
    values = list(getall("fields", [])) if getall else [query.get("fields", "")]
    names = [name.strip() for value in values for name in value.split(",")]
    if not any(names):
        return whole()
    try:
        return fieldset(names)
    except UnknownFields as exc:
        raise Invalid(
            f"unknown field{'s' if len(exc.names) > 1 else ''} {', '.join(exc.names)}",
            {"unknown": exc.names, "known": list(JOB_FIELDS)},
        ) from None


def _integer(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name!r} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise Invalid(f"{name!r} must be from {low} to {high}, got {value}")
    return value


def paging(query: Mapping[str, str]) -> Paging:
    """``limit`` (≤ 500) with ``offset``, ``page`` (1-based) or ``cursor``."""
    limit = _integer("limit", query.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
    cursor = query.get("cursor") or None
    if cursor is not None and not _ID.match(cursor):
        raise BadRequest("'cursor' is not a cursor this server gave out")
    offset = _integer("offset", query.get("offset"), 0, 0, MAX_OFFSET)
    if "page" in query and "offset" not in query:
        offset = (_integer("page", query.get("page"), 1, 1, MAX_OFFSET) - 1) * limit
    if cursor is not None and offset:
        raise BadRequest("send either 'cursor' or 'offset'/'page', not both")
    if offset > MAX_OFFSET:
        raise Invalid(f"offsets beyond {MAX_OFFSET} are refused; page with 'cursor'")
    return Paging(limit, offset, cursor)


def job_ids(body: Mapping[str, Any]) -> list[str] | None:
    """``job_ids`` (or ``ids``) of a batch body: None when the body selects by filter."""
    raw = body.get("job_ids", body.get("ids"))
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise Invalid("'job_ids' must be a list of job id strings")
    if len(raw) > MAX_IDS:
        raise Invalid(f"at most {MAX_IDS} job ids per batch; select by filter for more")
    return list(dict.fromkeys(raw))


def body_filter(body: Mapping[str, Any]) -> JobFilter:
    """The filter of a batch body: under ``filter``, or the list's names at the top level."""
    source = body.get("filter", body)
    if not isinstance(source, dict):
        raise Invalid("'filter' must be an object")
    if "filter" not in body and not set(body) & _FILTER_FIELDS:
        # An empty body must not mean "every job": everything is {"filter": {}}.
        raise Invalid("send 'job_ids', or a 'filter' ({} selects every job)")
    flt = job_filter(lambda name: [source[name]] if source.get(name) is not None else [])
    if "filter" not in body and flt == JobFilter():
        # {"status": ""} or {"status": []} names a filter yet selects everything.
        raise Invalid("the filter fields are empty; everything is {\"filter\": {}}")
    return flt


def _object(name: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise Invalid(f"{name!r} must be a JSON object")
    return raw


def _int_field(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= high:
        raise Invalid(f"{name!r} must be an integer from {low} to {high}")
    return raw


def _channels(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, str) and c for c in raw):
        raise Invalid("'channels' must be a list of channel names")
    if len(raw) > 20:
        raise Invalid("at most 20 channels")
    return list(raw)


def idempotency_key(raw: Any) -> str | None:
    """An ``Idempotency-Key`` header (or field): a string of at most 200 characters."""
    return _text("Idempotency-Key", raw, 200)


def new_job(body: Mapping[str, Any], idempotency_header: str | None) -> dict[str, Any]:
    """Keyword arguments for ``JobEngine.submit`` from a ``POST /api/jobs`` body."""
    kind = _text("kind", body.get("kind"), 100)
    if kind is None:
        raise Invalid("'kind' is required")
    scheduled = body.get("scheduled_for")
    return {
        "kind": kind,
        "params": _object("params", body.get("params")),
        "priority": _int_field(body, "priority", -1000, 1000) or 0,
        "scheduled_for": None if scheduled in (None, "") else parse_time(
            "scheduled_for", scheduled
        ),
        "max_attempts": _int_field(body, "max_attempts", 1, 100),
        "idempotency_key": _text("idempotency_key", body.get("idempotency_key"), 200)
        or idempotency_key(idempotency_header),
        "correlation_id": _text("correlation_id", body.get("correlation_id"), 128),
        "metadata": _object("metadata", body.get("metadata")),
        "document_id": _text("document_id", body.get("document_id"), 100),
        "channels": _channels(body.get("channels")),
    }
