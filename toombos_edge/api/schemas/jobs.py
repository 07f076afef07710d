"""Jobs: the job object, its list and export queries, new jobs and batches by ids or filter."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType, field

from ...records.job import JobStatus
from ...store.jobs import JOB_FIELDS
from ..contract import Body, Query, Reply, optional_all

MAX_LIMIT, DEFAULT_LIMIT, MAX_OFFSET = 500, 50, 100_000
MAX_IDS = 10_000
JOB_ID = r"^job_[0-9a-z]{26}$"

#: A time: ISO 8601 (``Z`` or an offset; a bare date) or integer milliseconds since the epoch.
Time = Annotated[str, Meta(max_length=64, description="ISO 8601 time, or milliseconds")]
JobField = Literal[JOB_FIELDS]  # type: ignore[valid-type]


class Progress(Reply):
    percent: float
    message: str


class Job(Reply):
    """The client contract's job object (plus kind, progress, attempts, output, params)."""

    job_id: str
    kind: str
    status: JobStatus
    priority: int
    document_id: str  #: "" until the job has one
    channels: list[str]
    progress: Progress
    attempts: int
    max_attempts: int
    last_error: str | None
    errors: list[dict[str, Any]]
    #: channel → its result, always an object with ``status``
    results: dict[str, dict[str, Any]]
    output: dict[str, Any]
    params: dict[str, Any]
    metadata: dict[str, Any]
    correlation_id: str | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime
    scheduled_for: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    #: the job this one waits for (the one before it in an ordered batch), else null
    depends_on: str | None = None


#: A job with only the keys ``fields=`` named (every key of :class:`Job`, each optional).
JobFields = optional_all(Job, "JobFields")


class JobFilterQuery(Query):
    """The list's filter: statuses (comma-separated or repeated), kind, text, a time window."""

    status: list[JobStatus] = []
    kind: Annotated[str, Meta(max_length=100)] | None = None
    q: Annotated[str, Meta(max_length=200)] | None = None
    since: Time | None = field(default=None, name="from")
    until: Time | None = field(default=None, name="to")
    #: only these keys of each job (comma-separated or repeated); absent: the whole job
    fields: list[JobField] = []


class JobListQuery(JobFilterQuery):
    limit: Annotated[int, Meta(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    offset: Annotated[int, Meta(ge=0, le=MAX_OFFSET)] | None = None
    page: Annotated[int, Meta(ge=1, le=MAX_OFFSET)] | None = None
    #: the ``next_cursor`` of the page before (not with ``offset`` or ``page``)
    cursor: Annotated[str, Meta(pattern=JOB_ID)] | None = None


class ExportQuery(JobFilterQuery):
    format: Literal["csv", "json"] = "csv"


class JobPage(Reply):
    jobs: list[JobFields]  # type: ignore[valid-type]
    total: int
    total_exact: bool
    page: int | None
    page_size: int
    offset: int
    next_cursor: str | None


class NewJob(Body):
    """``POST /api/jobs``: any registered kind with its params."""

    kind: Annotated[str, Meta(min_length=1, max_length=100)]
    params: dict[str, Any] | None = None
    priority: Annotated[int, Meta(ge=-1000, le=1000)] | None = None
    scheduled_for: Time | int | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=100)] | None = None
    idempotency_key: Annotated[str, Meta(max_length=200)] | None = None
    correlation_id: Annotated[str, Meta(max_length=128)] | None = None
    metadata: dict[str, Any] | None = None
    document_id: Annotated[str, Meta(max_length=100)] | None = None
    channels: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(max_length=20)] = []


class FilterBody(Body):
    """The list's filter in a JSON body (``status`` a list or a comma-separated string)."""

    status: list[JobStatus] | str | UnsetType | None = UNSET
    kind: Annotated[str, Meta(max_length=100)] | UnsetType | None = UNSET
    q: Annotated[str, Meta(max_length=200)] | UnsetType | None = UNSET
    since: Time | int | UnsetType | None = field(default=UNSET, name="from")
    until: Time | int | UnsetType | None = field(default=UNSET, name="to")


JobIds = Annotated[list[str], Meta(max_length=MAX_IDS)]


class BatchBody(FilterBody):
    """Jobs by ``job_ids`` (or ``ids``), or by a ``filter`` (``{}`` selects every job), or by
    the filter's fields at the top level."""

    job_ids: JobIds | UnsetType | None = UNSET
    ids: JobIds | UnsetType | None = UNSET
    filter: FilterBody | UnsetType = UNSET


class BatchTally(Reply):
    touched: int
    refused: int
    touched_ids: list[str]
    refusals: dict[str, str]


class Cancelled(Reply):
    """The dashboard's cancel."""

    cancelled: bool
    job_id: str
    job: Job
