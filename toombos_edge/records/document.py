"""The document record, its JSON shape, and the shape of a change to one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from typing import Any, Literal

from ..ids import iso


class Origin(StrEnum):
    upload = "upload"  #: a file sent to POST /api/ingest; its original bytes are a blob
    api = "api"  #: text sent as JSON (POST /api/documents or a JSON ingest)


def text_sha256(text: str) -> str:
    """The document's ``sha256``: of its text as UTF-8, so it follows every edit."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


@dataclass(slots=True)
class Document:
    """One document as stored; times are integer milliseconds since the epoch (UTC)."""

    id: str
    title: str
    body: str
    format: str
    sha256: str
    size: int
    source: Origin
    created_at: int
    updated_at: int
    blob_sha256: str | None = None
    filename: str | None = None
    content_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    text_edited: bool = False  #: the text was changed after ingestion
    project_id: str | None = None  #: the project it belongs to, if any

    def to_json(self, *, with_text: bool = True) -> dict[str, Any]:
        """The API's document object; ``text`` only when asked (lists leave it out)."""
        out: dict[str, Any] = {
            "id": self.id,
            "document_id": self.id,
            "title": self.title,
            "format": self.format,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source.value,
            "blob_sha256": self.blob_sha256,
            "filename": self.filename,
            "content_type": self.content_type,
            "metadata": self.metadata,
            "text_edited": self.text_edited,
            "project_id": self.project_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if with_text:
            out["text"] = self.body
            out["text_length"] = len(self.body)
        return out


class Keep(Enum):
    project = "keep"


#: An update's default: the document stays in its project (None takes it out of one).
KEEP_PROJECT: Literal[Keep.project] = Keep.project
ProjectChoice = str | None | Literal[Keep.project]


@dataclass(frozen=True, slots=True)
class DocumentUpdate:
    """An update, validated: None (``KEEP_PROJECT`` for the project) leaves a field as it is."""

    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None
    project_id: ProjectChoice = KEEP_PROJECT

    def applied_to(self, doc: Document, now: int) -> Document:
        """``doc`` with these changes, updated at ``now``: ``sha256`` follows a new text,
        which marks the text edited, and so does ``size`` when there is no blob (an
        upload's size is its original's)."""
        changed = replace(doc, updated_at=now)
        if self.project_id is not KEEP_PROJECT:
            changed.project_id = self.project_id
        if self.title is not None:
            changed.title = self.title
        if self.text is not None and self.text != doc.body:
            changed.body, changed.sha256 = self.text, text_sha256(self.text)
            changed.text_edited = True
            if doc.blob_sha256 is None:
                changed.size = len(self.text.encode("utf-8", errors="surrogatepass"))
        if self.metadata is not None:
            changed.metadata = self.metadata
        return changed
