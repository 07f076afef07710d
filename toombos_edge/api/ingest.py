"""POST /api/ingest: a file (multipart, streamed to disk while hashed) or text becomes a job.

Accepted bodies: ``multipart/form-data`` with a ``file`` part and optional ``metadata``,
``title``, ``format`` fields (curl ``-F``); ``application/x-www-form-urlencoded`` fields
(PowerShell's ``-Body @{...}``); or a JSON object. The answer is 202 with the job, sent
only after the job is committed.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import BodyPartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from ..appkeys import CORRELATION_ID, INGEST, SETTINGS
from ..documents.intake import IngestService
from ..documents.uploads import Upload, safe_filename
from ..errors import BadRequest, Invalid, PayloadTooLarge
from .contract import given, read_body, refuse_nul
from .job_params import idempotency_key
from .responses import json_response
from .schemas.documents import IngestText

FIELDS = ("metadata", "title", "text", "format", "project_id")
READ_CHUNK = 256 * 1024
#: Room for part headers and boundaries when the whole body's length is checked up front.
MULTIPART_OVERHEAD = 64 * 1024
_MEDIA_TYPE_RE = re.compile(r"^[\w.+-]+/[\w.+-]+(?:\s*;\s*charset=\"?[\w.:-]+\"?)?$")


async def ingest(request: web.Request) -> web.Response:
    """Start an ingestion; 202 ``{"job_id", "status", ...}`` at once."""
    intake = request.app[INGEST]
    idempotency = idempotency_key(request.headers.get("Idempotency-Key"))  # before the upload
    fields, upload = await _read_body(request, intake)
    job = await intake.submit(fields, upload, correlation_id=request[CORRELATION_ID],
                              idempotency_key=idempotency)
    body = job.to_json()
    if upload is not None:
        body["upload"] = {"filename": upload.filename, "bytes": upload.size,
                          "sha256": upload.sha256, "content_type": upload.content_type}
    return json_response(body, status=202)


async def _read_body(
    request: web.Request, intake: IngestService
) -> tuple[dict[str, Any], Upload | None]:
    if request.content_type == "multipart/form-data":
        fields, upload = await _read_multipart(request, intake)
    elif request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        fields = {name: form[name] for name in FIELDS if isinstance(form.get(name), str)}
        upload = None
    else:
        return given(await read_body(request, IngestText)), None
    try:
        for name, value in fields.items():
            refuse_nul(name, value)
    except Invalid:
        if upload is not None:  # refused: the upload will never be read
            await intake.discard(upload)
        raise
    return fields, upload


async def _read_multipart(
    request: web.Request, intake: IngestService
) -> tuple[dict[str, Any], Upload | None]:
    limit = intake.max_upload_bytes
    length = request.content_length
    if length is not None and length > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)
    fields: dict[str, Any] = {}
    upload: Upload | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("nested multipart bodies are not supported")
            if part.name == "file":
                if upload is not None:
                    raise BadRequest("send one 'file' per request")
                upload = await _stream(part, intake)
            elif part.name in FIELDS:
                fields[part.name] = await _read_field(part, request.app[SETTINGS].max_body_kb)
            else:
                await part.release()
    except BaseException as exc:
        await intake.discard(upload)
        if isinstance(exc, ValueError | HttpProcessingError):
            raise BadRequest(f"malformed multipart body: {_reason(exc)}") from None
        raise
    return fields, upload


async def _stream(part: BodyPartReader, intake: IngestService) -> Upload:
    """The file part to a temporary file, hashed as it comes; removed on any failure."""
    sink = intake.receive(safe_filename(part.filename),
                          _media_type(part.headers.get(hdrs.CONTENT_TYPE)))
    try:
        while chunk := await part.read_chunk(READ_CHUNK):
            await sink.write(chunk)
        return await sink.finish()
    except BaseException:
        await sink.abort()
        raise


async def _read_field(part: BodyPartReader, max_kb: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK):
        data += chunk
        if len(data) > max_kb * 1024:
            raise PayloadTooLarge(f"form field '{part.name}' is larger than {max_kb} KiB")
    try:
        return data.decode(part.get_charset("utf-8"))
    except (LookupError, UnicodeDecodeError):
        raise BadRequest(f"form field '{part.name}' is not valid text") from None


def _media_type(raw: str | None) -> str:
    """The part's Content-Type if it is a plain media type, else octet-stream."""
    value = (raw or "").strip()
    return value.lower() if _MEDIA_TYPE_RE.match(value) else "application/octet-stream"


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, HttpProcessingError) else str(exc)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"upload is larger than the limit of {limit >> 20} MiB",
                           {"limit_bytes": limit})
