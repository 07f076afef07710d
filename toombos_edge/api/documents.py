"""Documents: list, create, get, update, delete, and the original bytes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import hdrs, web

from ..appkeys import DOCUMENTS
from ..content.extract import ExtractionError, normalize_format
from ..content.ingest import parse_metadata
from ..content.model import Source
from ..errors import BadRequest, Invalid
from ..projects.membership import KEEP_PROJECT, ProjectChoice
from .paging import page_params
from .responses import json_object, json_response


def _text_field(body: dict[str, Any]) -> str | None:
    """``text``, or ``content`` as the seed's documents API calls it."""
    value = body.get("text", body.get("content"))
    if value is not None and not isinstance(value, str):
        raise Invalid("'text' must be a string")
    return value


def _title_field(body: dict[str, Any]) -> str | None:
    value = body.get("title")
    if value is not None and not isinstance(value, str):
        raise Invalid("'title' must be a string")
    return value


def project_field(raw: Any) -> str | None:
    """``project_id``: a project's id, or null (or "") for none."""
    if raw is not None and not isinstance(raw, str):
        raise Invalid("'project_id' must be a string or null", {"field": "project_id"})
    return raw or None


def _project_change(body: dict[str, Any]) -> ProjectChoice:
    return project_field(body["project_id"]) if "project_id" in body else KEEP_PROJECT


def _format_field(raw: Any) -> str | None:
    if raw is not None and not isinstance(raw, str):
        raise Invalid("'format' must be a string")
    try:
        return normalize_format(raw)
    except ExtractionError as exc:
        raise Invalid(str(exc)) from None


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients, the exact name in ``filename*``."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\%' else "_"
                       for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def list_documents(request: web.Request) -> web.Response:
    """A page of documents, newest first, without text; filter by ``source``, ``format``
    and ``project_id``."""
    limit, offset = page_params(request)
    source = request.query.get("source") or None
    if source is not None and source not in Source.__members__:
        raise BadRequest(f"'source' must be one of {', '.join(Source.__members__)}")
    fmt = request.query.get("format") or None
    if fmt is not None:
        fmt = _format_field(fmt)
    docs, total = await request.app[DOCUMENTS].list(
        source=source, fmt=fmt, limit=limit, offset=offset,
        project_id=request.query.get("project_id") or None,
    )
    return json_response({
        "documents": [doc.to_json(with_text=False) for doc in docs],
        "total": total, "limit": limit, "offset": offset,
    })


async def create_document(request: web.Request) -> web.Response:
    """A document from JSON: ``title``, ``text`` (or ``content``), ``format``, ``metadata``,
    ``project_id``."""
    body = await json_object(request)
    text = _text_field(body)
    if text is None:
        raise Invalid("'text' is required")
    doc = await request.app[DOCUMENTS].create(
        title=_title_field(body), text=text, fmt=_format_field(body.get("format")) or "text",
        metadata=parse_metadata(body.get("metadata")),
        project_id=project_field(body.get("project_id")),
    )
    return json_response(doc.to_json(), status=201)


async def get_document(request: web.Request) -> web.Response:
    """One document with its metadata and text."""
    doc = await request.app[DOCUMENTS].get(request.match_info["doc_id"])
    return json_response(doc.to_json())


async def update_document(request: web.Request) -> web.Response:
    """Change ``title``, ``text`` (or ``content``), ``metadata`` or ``project_id`` (null
    takes it out of its project); ``sha256`` follows text."""
    body = await json_object(request)
    changes: dict[str, Any] = {"title": _title_field(body), "text": _text_field(body)}
    if "metadata" in body:
        changes["metadata"] = parse_metadata(body["metadata"])
    project_id = _project_change(body)
    if all(value is None for value in changes.values()) and project_id is KEEP_PROJECT:
        raise Invalid("nothing to update: send 'title', 'text', 'metadata' or 'project_id'")
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
