"""The document record and its JSON shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
