"""Documents: list, create, get, update, delete, and the original bytes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import hdrs, web
from msgspec import UnsetType

from ..appkeys import DOCUMENTS
from ..documents.extract import ExtractionError, normalize_format
from ..documents.ingest import parse_metadata
from ..errors import Invalid
from ..records.document import KEEP_PROJECT, ProjectChoice
from .responses import json_response
from .schemas.documents import DocumentChanges, DocumentQuery, NewDocument


def _format_field(raw: str | None) -> str | None:
    try:
        return normalize_format(raw)
    except ExtractionError as exc:
        raise Invalid(f"format: {exc}", {"field": "format"}) from None


def _project_change(raw: str | UnsetType | None) -> ProjectChoice:
    """``project_id`` of an update: absent keeps the project, null (or "") takes the
    document out of it."""
    return KEEP_PROJECT if isinstance(raw, UnsetType) else raw or None


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients, the exact name in ``filename*``."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_"
                       for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def list_documents(request: web.Request, query: DocumentQuery) -> web.Response:
    """A page of documents, newest first, without text; filter by ``source``, ``format``
    and ``project_id``."""
    limit, offset = query.limit, query.offset
    source = None if query.source is None else query.source.value
    docs, total = await request.app[DOCUMENTS].list(
        source=source, fmt=_format_field(query.format), limit=limit, offset=offset,
        project_id=query.project_id or None,
    )
    return json_response({
        "documents": [doc.to_json(with_text=False) for doc in docs],
        "total": total, "limit": limit, "offset": offset,
    })


async def create_document(request: web.Request, body: NewDocument) -> web.Response:
    """A document from JSON: ``title``, ``text`` (or ``content``), ``format``, ``metadata``,
    ``project_id``."""
    text = body.text if body.text is not None else body.content
    if text is None:
        raise Invalid("text: required ('text' or 'content')", {"field": "text"})
    doc = await request.app[DOCUMENTS].create(
        title=body.title, text=text, fmt=_format_field(body.format) or "text",
        metadata=parse_metadata(body.metadata), project_id=body.project_id or None,
    )
    return json_response(doc.to_json(), status=201)


async def get_document(request: web.Request) -> web.Response:
    """One document with its metadata and text."""
    doc = await request.app[DOCUMENTS].get(request.match_info["doc_id"])
    return json_response(doc.to_json())


async def update_document(request: web.Request, body: DocumentChanges) -> web.Response:
    """Change ``title``, ``text`` (or ``content``), ``metadata`` or ``project_id`` (null
    takes it out of its project); ``sha256`` follows text."""
    text = body.text if body.text is not None else body.content
    changes: dict[str, Any] = {"title": body.title, "text": text}
    if not isinstance(body.metadata, UnsetType):
        changes["metadata"] = parse_metadata(body.metadata)
    project_id = _project_change(body.project_id)
    if all(value is None for value in changes.values()) and project_id is KEEP_PROJECT:
        raise Invalid("body: nothing to update: send 'title', 'text', 'metadata' or "
                      "'project_id'", {"field": "body"})
    doc = await request.app[DOCUMENTS].update(request.match_info["doc_id"],
                                              project_id=project_id, **changes)
    return json_response(doc.to_json())


async def delete_document(request: web.Request) -> web.Response:
    """Delete; the original's blob goes too when no other document uses it."""
    doc_id = request.match_info["doc_id"]
    blob_removed = await request.app[DOCUMENTS].delete(doc_id)
    return json_response({"id": doc_id, "deleted": True, "blob_removed": blob_removed})


async def document_file(request: web.Request) -> web.StreamResponse:
    """The original bytes, as an attachment (never rendered by the browser).

    An upload's blob is streamed from disk off the event loop (sendfile, or chunks read in
    the executor) with ``Range`` (206, 416), ``ETag`` and ``If-Range`` as aiohttp's
    ``FileResponse`` serves them; a document sent as text has no file, and its text is
    sent whole (it is small, and already in memory).
    """
    raw = await request.app[DOCUMENTS].raw(request.match_info["doc_id"])
    headers = {
        hdrs.CONTENT_TYPE: raw.content_type,
        hdrs.CONTENT_DISPOSITION: attachment(raw.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "X-Content-SHA256": raw.document.blob_sha256 or raw.document.sha256,
    }
    if raw.path is None:
        return web.Response(body=raw.data, headers=headers)
    return web.FileResponse(raw.path, headers=headers)
