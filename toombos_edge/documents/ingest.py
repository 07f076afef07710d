"""The ``ingest`` job kind: an upload or a text becomes a document.

An upload waits in ``uploads/`` (streamed there by the API, already hashed). The job looks
for a document made from the same bytes (then it is a duplicate and the upload is dropped),
else extracts the text off the event loop, moves the file into the blob store and records
the document. An upload is kept whatever it holds: when no text can be drawn from it (an
image, a corrupt or too large file, a zip bomb) the document has no text, and the job
completes and says why (``text_extracted: false`` and ``no_text_reason`` in its output).
Text sent as JSON that does not parse as its format fails the job: there is no file to keep.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import orjson

from ..errors import Invalid, NotFound
from ..events import JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED, Event
from ..events_wire import is_remote
from ..ids import iso, now_ms
from ..jobs.kinds import JobContext, JobKind, Outcome
from ..store.documents import Stored
from .archives import ArchiveLimits
from .blobs import hash_file
from .extract import (
    BINARY,
    Extracted,
    ExtractionError,
    extract_text,
    extract_upload,
    normalize_format,
)
from .readers import ReaderPool
from .service import DocumentService
from .uploads import Upload

KIND = "ingest"
TIMEOUT_SECONDS = 900.0
_ENDED = frozenset({JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED})
NOTHING_SENT = "neither a file nor text was sent: no document was made"


def parse_metadata(raw: Any) -> dict[str, Any]:
    """``metadata`` as an object, or a JSON string of one; anything else is ``Invalid``."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Invalid(f"'metadata' is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise Invalid(f"'metadata' must be a JSON object, not {type(raw).__name__}")
    try:  # what the store will write: an integer past 64 bits is JSON orjson refuses
        orjson.dumps(raw)
    except orjson.JSONEncodeError as exc:
        raise Invalid(f"'metadata' cannot be stored: {exc}", {"field": "metadata"}) from None
    return raw


def _optional_text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"'{name}' must be a string")
    return value


def validate_params(params: dict[str, Any]) -> dict[str, Any]:
    """Normalise an ingest job's parameters; ``Invalid`` (422) names the bad field."""
    out: dict[str, Any] = {"metadata": parse_metadata(params.get("metadata"))}
    for name in ("title", "text"):
        value = _optional_text(params, name)
        if value is not None:
            out[name] = value
    project_id = _optional_text(params, "project_id")
    if project_id:  # an empty one (a form's blank choice) is none
        out["project_id"] = project_id
    declared = _optional_text(params, "format")
    if declared:
        try:
            out["format"] = normalize_format(declared)
        except ExtractionError as exc:
            raise Invalid(str(exc)) from None
    if params.get("upload") is not None:
        if "text" in out:
            raise Invalid("send either a file or 'text', not both")
        out["upload"] = Upload.from_json(params["upload"]).to_json()
    return out


class Ingestor:
    """Runs ingest jobs against the document service."""

    def __init__(self, documents: DocumentService, *, max_text_bytes: int,
                 archive: ArchiveLimits | None = None, readers: ReaderPool | None = None,
                 ) -> None:
        self.documents = documents
        self.max_text_bytes = max_text_bytes
        #: Zip-based documents' limits; their checked copy goes to the uploads folder.
        self.archive = archive or ArchiveLimits(scratch=documents.uploads.root)
        #: Where files are read: worker processes (the default), or threads.
        self.readers = readers or ReaderPool(0)
        self._dropping: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Ingestor max_text_bytes={self.max_text_bytes} readers={self.readers!r}>"

    def kind(self) -> JobKind:
        return JobKind(KIND, self.run, timeout=TIMEOUT_SECONDS, max_attempts=1,
                       validate=validate_params)

    def on_event(self, event: Event) -> None:
        """A bus subscriber: a cancelled ingest's upload goes at once (a stop that requeues
        the job keeps it; a retry of the cancelled job then asks for the file again). An
        ingest that ended on another node leaves no reader for this node's copy of its
        upload: that copy goes too, rather than wait for the sweep at the next start (the node
        that cancelled or ran it drops the shared copy)."""
        if event.type == JOB_CANCELLED and not is_remote(event):
            drop = self.documents.discard_upload
        elif event.type in _ENDED and is_remote(event):
            drop = self.documents.discard_local_upload
        else:
            return
        job = event.body.get("job") or {}
        raw = (job.get("params") or {}).get("upload") if job.get("kind") == KIND else None
        if raw is None:
            return
        try:
            upload = Upload.from_json(raw)
        except Invalid:
            return
        task = asyncio.get_running_loop().create_task(drop(upload))
        self._dropping.add(task)
        task.add_done_callback(self._dropping.discard)

    async def close(self) -> None:
        """Wait for uploads being dropped; stop the reader processes."""
        while self._dropping:
            await asyncio.gather(*self._dropping, return_exceptions=True)
        await self.readers.close()

    async def run(self, ctx: JobContext) -> Outcome:
        params = validate_params(ctx.params)
        if "upload" not in params and not params.get("text", "").strip():
            return await _nothing_sent(ctx)
        if "upload" in params:
            upload = Upload.from_json(params["upload"])
            try:
                stored, extracted = await self._from_upload(ctx, upload, params)
            except Exception:
                # A final failure drops the upload; a cancellation (a stop that requeues
                # the job) keeps it for the next attempt.
                if ctx.job.attempts >= ctx.job.max_attempts:
                    await self.documents.discard_upload(upload)
                raise
            size, sha256 = upload.size, upload.sha256
        else:
            stored, extracted = await self._from_text(ctx, params)
            size, sha256 = stored.document.size, stored.document.sha256
        self.documents.publish_ingested(stored, size, sha256, ctx.job.id)
        await ctx.progress(100, _finished(stored))
        return Outcome(results={"document": _entry(stored)},
                       output=_output(stored, size, sha256, extracted),
                       document_id=stored.document.id)

    async def _from_upload(
        self, ctx: JobContext, upload: Upload, params: dict[str, Any]
    ) -> tuple[Stored, Extracted | None]:
        source = await self._source(upload)
        await ctx.progress(2, "verifying the upload's SHA-256")
        await self._verify(ctx, source, upload)
        existing = await self.documents.find_upload(upload.sha256)
        if existing is not None:
            await self.documents.discard_upload(upload)
            return Stored(existing, duplicate=True), None
        await ctx.progress(10, f"extracting text from {upload.filename}")
        read = functools.partial(
            extract_upload, source, filename=upload.filename, content_type=upload.content_type,
            declared=params.get("format"), max_bytes=self.max_text_bytes, archive=self.archive,
        )
        try:
            extracted = await self.readers.run(read)
        except ExtractionError as exc:
            extracted = Extracted(params.get("format") or BINARY, None, "", error=str(exc))
        if extracted.error:
            ctx.log.info("no text from %s: %s", upload.filename, extracted.error)
        await ctx.progress(80, "indexing" if extracted.text else "storing without text")
        stored = await self.documents.store_upload(
            upload, extracted, title=params.get("title"), metadata=params["metadata"],
            project_id=params.get("project_id"),
        )
        return stored, extracted

    @staticmethod
    async def _verify(ctx: JobContext, source: Path, upload: Upload) -> None:
        """The bytes must hash to the name they will be stored under, whoever sent the job."""
        size, actual = await ctx.run_blocking(_size_and_hash, source)
        if (size, actual) != (upload.size, upload.sha256):
            raise Invalid(
                f"the upload of {upload.filename!r} does not match its recorded size and "
                "SHA-256", {"expected": upload.sha256, "actual": actual},
            )

    async def _from_text(
        self, ctx: JobContext, params: dict[str, Any]
    ) -> tuple[Stored, Extracted]:
        await ctx.progress(10, "reading text")
        text, fmt = params.get("text", ""), params.get("format") or "text"
        extracted = await ctx.run_blocking(extract_text, text, fmt)
        await ctx.progress(80, "indexing")
        stored = await self.documents.store_text(
            extracted, title=params.get("title"), metadata=params["metadata"],
            project_id=params.get("project_id"),
        )
        return stored, extracted

    async def _source(self, upload: Upload) -> Path:
        """The upload's file (or its blob, if an earlier attempt moved it there already),
        from another node when that one took the upload in."""
        path = await self.documents.upload_source(upload)
        if path is not None:
            return path
        raise NotFound(f"the upload of {upload.filename!r} is gone; send the file again")


async def _nothing_sent(ctx: JobContext) -> Outcome:
    """Seed 003's first example sends only metadata: its job completes and says that it
    made nothing, rather than storing an empty "Untitled" document each time."""
    await ctx.progress(100, NOTHING_SENT)
    return Outcome(output={"document_id": None, "reason": NOTHING_SENT})


def _size_and_hash(path: Path) -> tuple[int, str]:
    return path.stat().st_size, hash_file(path)


def _finished(stored: Stored) -> str:
    if stored.duplicate:
        return "duplicate of an existing document"
    return "document stored" if stored.document.body else "document stored without text"


def _entry(stored: Stored) -> dict[str, Any]:
    """The job's one channel-shaped result: the document it made (or found)."""
    return {"status": "success", "document_id": stored.document.id,
            "duplicate": stored.duplicate, "text_extracted": bool(stored.document.body),
            "timestamp": iso(now_ms())}


def _output(
    stored: Stored, size: int, sha256: str, extracted: Extracted | None
) -> dict[str, Any]:
    doc = stored.document
    out: dict[str, Any] = {
        "document_id": doc.id, "duplicate": stored.duplicate, "bytes": size, "sha256": sha256,
        "format": doc.format, "title": doc.title, "text_length": len(doc.body),
        "text_extracted": bool(doc.body),
    }
    if extracted is not None:
        out.update(encoding=extracted.encoding, truncated=extracted.truncated,
                   pages=extracted.pages)
        if not doc.body:
            out["no_text_reason"] = extracted.error or "the file holds no text"
    return out
