"""Generation requests (the client contract's body and its older spellings), previews,
validation, stored content items with their versions, templates, and critical operations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from ...content.channels import ContentType, Style, Tone
from ...content.edits import MAX_FIELD_CHARS
from ...content.request import MAX_TEXT
from ...content.request_body import (
    ChannelName,
    Channels,
    ContentTypeOrBlank,
    GenerateFields,
    Recipients,
)
from ..contract import Body, Query, Reply
from .jobs import Job


class Generate(GenerateFields, Body):
    """What to make (``channels``; all of them when absent), from what (a ``document_id``
    or an inline ``text``), how, and whether to publish."""


class GenerateSocial(Generate):
    """Social channels only (``platforms`` or ``channels``; all three when absent)."""

    platforms: Channels | None = None


class BatchGenerate(Body):
    #: Each is checked on its own (the invalid ones are listed in ``errors`` unless
    #: ``fail_fast``), so they decode as objects; the document describes them as the body.
    requests: Annotated[list[dict[str, Any]], Meta(
        min_length=1, max_length=100, description="generate requests, each the generate body",
        extra_json_schema={"items": {"$ref": "#/components/schemas/Generate"}})]
    parallel: bool = True
    fail_fast: bool = False


class BatchError(Reply):
    index: int
    error: str
    details: Any = None


class BatchCreated(Reply):
    batch_id: str
    jobs: list[Job]
    total: int
    errors: list[BatchError]
    parallel: bool
    fail_fast: bool


class PreviewQuery(Query):
    """A document's id, or a short inline text (a request line holds 8 KiB at most; preview
    longer text by storing it as a document first)."""

    document_id: Annotated[str, Meta(max_length=200)] | None = None
    living_doc_id: Annotated[str, Meta(max_length=200)] | None = None
    title: Annotated[str, Meta(max_length=200)] | None = None
    text: Annotated[str, Meta(max_length=1000)] | None = None
    channels: list[ChannelName] = []
    channel: ChannelName | None = None
    tags: list[str] = []
    content_type: ContentType | None = None
    template_style: Style | None = None
    style: Style | None = None
    tone: Tone | None = None
    link: Annotated[str, Meta(max_length=2000, pattern="^https?://")] | None = None


class Preview(Reply):
    document_id: str | None
    title: str
    channels: list[str]
    previews: dict[str, dict[str, Any]]
    template_style: Style
    tone: Tone
    content_type: ContentType
    generated_at: datetime


class ContentToCheck(Body):
    content: Annotated[str, Meta(max_length=MAX_TEXT)] | dict[str, Any]
    content_type: ContentTypeOrBlank | None = None  # type: ignore[valid-type]
    strict: bool = False


class EnhancedMetadata(Reply):
    word_count: int
    reading_time: int
    seo_score: float
    recommended_channels: list[str]


class Validation(Reply):
    is_valid: bool
    content_type: ContentType
    issues: list[str]
    warnings: list[str]
    enhanced_metadata: EnhancedMetadata


class ContentQuery(Query):
    job_id: Annotated[str, Meta(max_length=200)] | None = None
    document_id: Annotated[str, Meta(max_length=200)] | None = None
    channel: Annotated[str, Meta(max_length=50)] | None = None
    status: Literal["draft", "published"] | None = None
    limit: Annotated[int, Meta(ge=1, le=200)] = 50
    offset: Annotated[int, Meta(ge=0, le=10**9)] = 0


class Views(Reply):
    total: int
    by_day: dict[str, int]


class ContentItem(Reply):
    content_id: str
    id: str
    job_id: str | None
    document_id: str | None
    channel: str
    style: str
    tone: str
    content_type: str
    slug: str | None
    body: dict[str, Any]
    version: int
    status: Literal["draft", "published"]
    published_url: str | None
    published_at: datetime | None
    created_at: datetime
    updated_at: datetime
    views: Views | UnsetType = UNSET  #: a website page's views


class ContentPage(Reply):
    content: list[ContentItem]
    total: int
    limit: int
    offset: int


Field = Annotated[str, Meta(max_length=MAX_FIELD_CHARS)]


class EditableFields(Body, forbid_unknown_fields=True):
    """The fields of a content body that an edit may change (others are refused)."""

    title: Field | UnsetType | None = UNSET
    subject: Field | UnsetType | None = UNSET
    preheader: Field | UnsetType | None = UNSET
    html: Field | UnsetType | None = UNSET
    text: Field | UnsetType | None = UNSET
    posts: list[str] | UnsetType = UNSET
    meta_description: Field | UnsetType | None = UNSET
    article_html: Field | UnsetType | None = UNSET
    link: Field | UnsetType | None = UNSET
    hashtags: list[str] | UnsetType = UNSET


class ContentEdit(EditableFields, forbid_unknown_fields=True):
    """The fields to change, flat or under ``body``; ``expected_version`` makes the edit
    conditional (409 when the item moved on)."""

    body: EditableFields | UnsetType = UNSET
    expected_version: int | UnsetType | None = UNSET


class PublishBody(Body):
    recipients: Recipients | None = None


class ContentDeleted(Reply):
    deleted: bool
    content_id: str


class Version(Reply):
    version: int
    body: dict[str, Any]
    created_at: datetime
    replaced_at: datetime | None
    current: bool


class Versions(Reply):
    content_id: str
    versions: list[Version]
    total: int


class Template(Reply):
    id: str
    name: str
    description: str
    style: Style
    channels: list[str]
    supported_channels: list[str]
    variables: list[str]
    source: Literal["override", "package"]


class Templates(Reply):
    templates: list[Template]
    total: int
    version: str
