"""What content is made from: a stored document or an inline title and text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import Invalid, Unavailable
from .request import GenerateRequest
from .text import paragraphs, truncate


class DocumentLookup(Protocol):
    """The part of the document service generation needs (``get`` raises NotFound)."""

    async def get(self, document_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Source:
    """A document's title, Markdown text and tags, with the SHA-256 of what was read."""

    title: str
    text: str
    tags: tuple[str, ...]
    sha256: str
    document_id: str | None = None


def inline_source(title: str | None, text: str, tags: tuple[str, ...] = ()) -> Source:
    """A source from request fields; the title defaults to the text's first line."""
    found = paragraphs(text)
    first = found[0].rstrip(":") if found else "Untitled"
    name = (title or truncate(first, 90)).strip() or "Untitled"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Source(name, text, tags, digest)


def _tags_of(metadata: Any) -> tuple[str, ...]:
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list):
        return ()
    return tuple(str(t).strip() for t in tags if str(t).strip())


def document_source(document: Any, document_id: str) -> Source:
    """A source from a stored document (any object or dict with title, text, metadata)."""
    def field(name: str, default: Any = None) -> Any:
        if isinstance(document, dict):
            return document.get(name, default)
        return getattr(document, name, default)

    text = field("text") or field("body") or ""
    if not isinstance(text, str) or not text.strip():
        raise Invalid(f"document {document_id} has no text to generate from",
                      {"document_id": document_id})
    sha = field("sha256") or hashlib.sha256(text.encode("utf-8")).hexdigest()
    base = inline_source(field("title"), text, _tags_of(field("metadata")))
    return Source(base.title, text, base.tags, str(sha), document_id)


async def resolve(request: GenerateRequest, documents: DocumentLookup | None) -> Source:
    """The source a request names: its document (inline fields win), or its inline text."""
    if request.document_id is None:
        assert request.text is not None  # parse() guarantees one of the two
        return inline_source(request.title, request.text, request.tags)
    if documents is None:
        raise Unavailable("documents are not available on this server; send 'text' inline")
    source = document_source(await documents.get(request.document_id), request.document_id)
    return Source(
        title=request.title or source.title,
        text=request.text or source.text,
        tags=request.tags or source.tags,
        sha256=source.sha256 if request.text is None else inline_source(
            None, request.text).sha256,
        document_id=request.document_id,
    )
