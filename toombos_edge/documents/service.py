"""The document service: create, list, get, update and delete documents and their blobs.

Blob references are the documents themselves. Everything that can add or drop the last
reference to a blob (storing an upload, deleting a document) holds that blob's lock, so a
delete can never remove a file that an ingestion has just decided to reuse (across nodes,
the blob store checks its users again when it drops one: ``store.blobs.Blobs.drop``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NotFound
from ..events import INGESTION_COMPLETE, Event, EventBus
from ..ids import new_id, now_ms
from ..records.document import (
    KEEP_PROJECT,
    Document,
    DocumentUpdate,
    Origin,
    ProjectChoice,
    text_sha256,
)
from ..store.documents import DocumentStore, Stored
from .blobs import Blobs
from .extract import CONTENT_TYPES, Extracted, content_type_of
from .keyed_locks import KeyedLocks
from .uploads import SHARED_GRACE_SECONDS, Upload, UploadFolder

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 300
#: Media types that say nothing; the detected format's type is served instead.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True, slots=True)
class Raw:
    """The original bytes of a document: a blob file, or its text when it has no blob."""

    document: Document
    content_type: str
    filename: str
    path: Path | None = None
    data: bytes = b""


def choose_title(*candidates: str | None) -> str:
    """The first non-blank candidate, on one line and at most MAX_TITLE_CHARS."""
    for candidate in candidates:
        if candidate and candidate.strip():
            return " ".join(candidate.split())[:MAX_TITLE_CHARS]
    return "Untitled"


class DocumentService:
    """Documents in their store, originals in the blob store; publishes ingestion events."""

    def __init__(
        self,
        store: DocumentStore,
        bus: EventBus,
        blobs: Blobs,
        uploads: UploadFolder,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.bus = bus
        self.blobs = blobs
        self.uploads = uploads
        self._clock = clock
        self._locks = KeyedLocks()

    def __repr__(self) -> str:
        return f"<DocumentService {self.blobs!r} locks={len(self._locks)}>"

    async def create(
        self, *, title: str | None, text: str, fmt: str, metadata: dict[str, Any],
        project_id: str | None = None,
    ) -> Document:
        """A new text-only document (``source: api``), in ``project_id`` when given."""
        doc = self._new(title=title, text=text, fmt=fmt, metadata=metadata,
                        project_id=project_id)
        await self.store.insert(doc)
        return doc

    async def get(self, doc_id: str) -> Document:
        doc = await self.store.get(doc_id)
        if doc is None:
            raise NotFound(f"no document {doc_id!r}")
        return doc

    async def list(
        self, *, source: str | None, fmt: str | None, limit: int, offset: int,
        project_id: str | None = None,
    ) -> tuple[list[Document], int]:
        """A page of documents, newest first, without their text; and the total."""
        return await self.store.list_page(source=source, fmt=fmt, project_id=project_id,
                                          limit=limit, offset=offset)

    async def update(
        self,
        doc_id: str,
        *,
        title: str | None = None,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        project_id: ProjectChoice = KEEP_PROJECT,
    ) -> Document:
        """Change title, text, metadata or project; ``sha256`` follows the text."""
        changes = DocumentUpdate(title=None if title is None else choose_title(title),
                                  text=text, metadata=metadata, project_id=project_id)
        doc = await self.store.update(doc_id, changes, self._clock())
        if doc is None:
            raise NotFound(f"no document {doc_id!r}")
        return doc

    async def delete(self, doc_id: str) -> bool:
        """Delete the document; returns True if its blob went with it (no other user)."""
        doc = await self.get(doc_id)
        if doc.blob_sha256 is None:
            await self._delete(doc_id)
            return False
        sha = doc.blob_sha256
        async with self.blob_lock(sha):
            if await self._delete(doc_id) == 0:
                return await self.blobs.drop(sha, lambda: self.blob_unused(sha))
        return False

    async def _delete(self, doc_id: str) -> int:
        users = await self.store.delete(doc_id)
        if users is None:
            raise NotFound(f"no document {doc_id!r}")
        return users

    async def raw(self, doc_id: str) -> Raw:
        """The original: the blob for an upload, else the text in its format's media type."""
        doc = await self.get(doc_id)
        content_type = doc.content_type or CONTENT_TYPES.get(doc.format, "text/plain")
        filename = doc.filename or f"{doc.id}.{_EXTENSION.get(doc.format, 'txt')}"
        if doc.blob_sha256 is None:
            return Raw(doc, content_type, filename, data=doc.body.encode("utf-8"))
        path = await self.blobs.fetch(doc.blob_sha256)
        if path is None:
            raise NotFound(f"the original of {doc_id!r} is missing from the blob store")
        return Raw(doc, content_type, filename, path=path)

    async def find_upload(self, blob_sha256: str) -> Document | None:
        """The document already made from these bytes, if any."""
        return await self.store.find_upload(blob_sha256)

    async def store_upload(
        self, upload: Upload, extracted: Extracted, *, title: str | None, metadata: dict[str, Any],
        project_id: str | None = None,
    ) -> Stored:
        """Move the upload into the blob store and record its document, once per content
        (the document already made from these bytes keeps its own project)."""
        doc = self._new(
            title=choose_title(title, extracted.title, Path(upload.filename).stem),
            text=extracted.text, fmt=extracted.format, metadata=metadata, upload=upload,
            project_id=project_id,
        )
        if doc.content_type in GENERIC_TYPES:
            doc.content_type = content_type_of(doc.format, upload.filename)
        async with self.blob_lock(upload.sha256):
            await self.blobs.keep(self.uploads.path(upload.name), upload.sha256, upload.name)
            stored = await self.store.insert_unless_stored(doc)
        await self.blobs.drop_upload(upload.name)
        return stored

    async def share_upload(self, upload: Upload) -> None:
        """At intake, before its job is stored: let any node that may run it read it."""
        await self.blobs.share_upload(self.uploads.path(upload.name), upload)

    async def upload_source(self, upload: Upload) -> Path | None:
        """The upload's file here: in the uploads folder, or its blob if an earlier attempt
        moved it there already, or fetched from where another node shared it."""
        local = self.uploads.path(upload.name)
        for path in (local, self.blobs.path(upload.sha256)):
            if await asyncio.to_thread(path.is_file):
                return path
        if await self.blobs.fetch_upload(upload, local):
            return local
        return await self.blobs.fetch(upload.sha256)

    async def store_text(
        self, extracted: Extracted, *, title: str | None, metadata: dict[str, Any],
        project_id: str | None = None,
    ) -> Stored:
        """Record a document sent as text; non-empty text already stored is a duplicate."""
        doc = self._new(
            title=choose_title(title, extracted.title, extracted.text[:80]),
            text=extracted.text, fmt=extracted.format, metadata=metadata, project_id=project_id,
        )
        return await self.store.insert_unless_stored(doc)

    async def sweep_uploads(self) -> int:
        """At start, before any worker runs: drop uploads no pending job refers to."""
        keep = await self.store.live_upload_names()
        swept = await asyncio.to_thread(self.uploads.sweep, keep)
        return swept + await self.blobs.forget_uploads(keep, time.time() - SHARED_GRACE_SECONDS)

    async def sweep_blobs(self, settled_before: float, batch: int = 500) -> int:
        """Remove blobs no document uses that were last changed before ``settled_before``
        (epoch seconds); returns how many. Each is checked again under its lock, which
        storing an upload holds from the move into the store to the document's commit."""
        await self.blobs.recover(settled_before)  # left by a node that died mid-drop
        candidates: Sequence[str] = await self.blobs.settled_before(settled_before)
        removed = 0
        for start in range(0, len(candidates), batch):
            chunk = candidates[start:start + batch]
            for sha in set(chunk) - await self.store.blobs_in_use(chunk):
                removed += await self._remove_unused_blob(sha)
        return removed

    async def remove_unused_blobs(self, shas: Sequence[str]) -> int:
        """Remove those of these blobs that no document (or unfinished ingest) uses now, as
        after deleting documents; returns how many."""
        return sum([await self._remove_unused_blob(sha) for sha in sorted(set(shas))])

    async def _remove_unused_blob(self, sha: str) -> int:
        async with self.blob_lock(sha):
            if not await self.blob_unused(sha):
                return 0
            return int(await self.blobs.drop(sha, lambda: self.blob_unused(sha)))

    async def blob_unused(self, sha: str) -> bool:
        """No document uses the blob and no ingest job not yet ended will read it."""
        return sha not in await self.store.blobs_in_use([sha])

    async def discard_upload(self, upload: Upload) -> None:
        """Remove an upload that will not become a document (refused, failed, duplicate)."""
        await self.discard_local_upload(upload)
        await self.blobs.drop_upload(upload.name)

    async def discard_local_upload(self, upload: Upload) -> None:
        """Remove this node's file of an upload (another node made it a document)."""
        await asyncio.to_thread(self.uploads.path(upload.name).unlink, True)

    def publish_ingested(self, stored: Stored, size: int, sha256: str, job_id: str) -> None:
        """``ingestion_complete``: document id, bytes, sha256 and whether it was a duplicate."""
        self.bus.publish(Event.data(INGESTION_COMPLETE, {
            "job_id": job_id,
            "document_id": stored.document.id,
            "bytes": size,
            "sha256": sha256,
            "duplicate": stored.duplicate,
            "format": stored.document.format,
        }))

    def _new(
        self,
        *,
        title: str | None,
        text: str,
        fmt: str,
        metadata: dict[str, Any],
        upload: Upload | None = None,
        project_id: str | None = None,
    ) -> Document:
        now = self._clock()
        size = upload.size if upload else len(text.encode("utf-8", errors="surrogatepass"))
        return Document(
            id=new_id("doc"), title=choose_title(title, text[:80]), body=text, format=fmt,
            sha256=text_sha256(text), size=size,
            source=Origin.upload if upload else Origin.api, created_at=now, updated_at=now,
            blob_sha256=upload.sha256 if upload else None,
            filename=upload.filename if upload else None,
            content_type=upload.content_type if upload else None, metadata=metadata,
            project_id=project_id,
        )

    def blob_lock(self, sha256: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the blob's lock: storing an upload of these bytes, deleting a document that
        uses them and sweeping them all wait until it is released."""
        return self._locks.hold(sha256)


_EXTENSION = {"text": "txt", "markdown": "md", "html": "html", "json": "json", "csv": "csv",
              "rtf": "rtf"}

