"""Documents, full-text search over them, and ingestion (a file or text becomes a job)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from ...records.document import Origin
from ..contract import Body, Query, Reply
from .jobs import Job

#: ``metadata``: an object, or a JSON string of one (what a form field can carry).
Metadata = dict[str, Any] | str
Text = Annotated[str, Meta(description="the document's text")]
ProjectId = Annotated[str, Meta(max_length=100, description="a project's id; \"\" is none")]


class DocumentQuery(Query):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    offset: Annotated[int, Meta(ge=0, le=10**9)] = 0
    source: Origin | None = None
    format: Annotated[str, Meta(max_length=50)] | None = None
    project_id: Annotated[str, Meta(max_length=100)] | None = None


class DocumentSummary(Reply):
    """A document without its text (as lists show it)."""

    id: str
    document_id: str
    title: str
    format: str
    sha256: str
    size: int
    source: Origin
    blob_sha256: str | None
    filename: str | None
    content_type: str | None
    metadata: dict[str, Any]
    text_edited: bool
    project_id: str | None
    created_at: datetime
    updated_at: datetime


class Document(DocumentSummary):
    text: str
    text_length: int


class DocumentPage(Reply):
    documents: list[DocumentSummary]
    total: int
    limit: int
    offset: int


class NewDocument(Body):
    """``text`` (or ``content``, the seed's name) is required."""

    title: str | None = None
    text: Text | None = None
    content: Text | None = None
    format: Annotated[str, Meta(max_length=50)] | None = None
    metadata: Metadata | None = None
    project_id: ProjectId | None = None


class DocumentChanges(Body):
    """At least one of ``title``, ``text`` (or ``content``), ``metadata``, ``project_id``
    (null takes the document out of its project)."""

    title: str | None = None
    text: Text | None = None
    content: Text | None = None
    metadata: Metadata | UnsetType | None = UNSET
    project_id: ProjectId | UnsetType | None = UNSET


class DocumentDeleted(Reply):
    id: str
    deleted: bool
    blob_removed: bool


class SearchQuery(Query):
    """``q`` in FTS5 syntax (``mode=fts``) or words as written (``mode=plain``)."""

    q: Annotated[str, Meta(min_length=1, max_length=1000)]
    mode: Literal["fts", "plain"] = "fts"
    limit: Annotated[int, Meta(ge=1, le=100)] = 20
    offset: Annotated[int, Meta(ge=0, le=10**9)] = 0


class Hit(DocumentSummary):
    score: float
    title_highlighted: str  #: HTML, matches in <mark>
    snippet: str  #: HTML, matches in <mark>


class SearchPage(Reply):
    query: str
    results: list[Hit]
    total: int
    limit: int
    offset: int
    latency_ms: float


class IngestText(Body):
    """A JSON (or form-encoded) ingestion: text, or nothing but metadata."""

    title: str | None = None
    text: str | None = None
    format: str | None = None
    metadata: Metadata | None = None
    project_id: ProjectId | None = None


class IngestForm(Body):
    """``multipart/form-data``: one ``file`` part, and these optional fields (curl ``-F``)."""

    file: Annotated[bytes, Meta(extra_json_schema={"type": "string", "format": "binary"})]
    title: str | None = None
    format: str | None = None
    metadata: Annotated[str, Meta(description="a JSON object, as text")] | None = None
    project_id: ProjectId | None = None


class UploadInfo(Reply):
    filename: str
    bytes: int
    sha256: str
    content_type: str


class IngestAccepted(Job):
    """The ingest job; with ``upload`` when a file came."""

    upload: UploadInfo | UnsetType = UNSET
