"""The document service: create, list, get, update and delete documents and their blobs.

Blob references are the documents themselves. Everything that can add or drop the last
reference to a blob (storing an upload, deleting a document) holds that blob's lock, so a
delete can never remove a file that an ingestion has just decided to reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotFound
from ..events import INGESTION_COMPLETE, Event, EventBus
from ..ids import new_id, now_ms
from ..projects.membership import KEEP_PROJECT, ProjectChoice, check_project
from ..records.document import Document, Origin, text_sha256
from ..store import Database
from . import repository
from .blobs import BlobStore
from .extract import CONTENT_TYPES, Extracted, content_type_of
from .uploads import Upload, UploadFolder

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


@dataclass(frozen=True, slots=True)
class Stored:
    """What an ingestion produced: the document, and whether it already existed."""

    document: Document
    duplicate: bool


def choose_title(*candidates: str | None) -> str:
    """The first non-blank candidate, on one line and at most MAX_TITLE_CHARS."""
    for candidate in candidates:
        if candidate and candidate.strip():
            return " ".join(candidate.split())[:MAX_TITLE_CHARS]
    return "Untitled"


class DocumentService:
    """Documents in the database, originals in the blob store; publishes ingestion events."""

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        blobs: BlobStore,
        uploads: UploadFolder,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.bus = bus
        self.blobs = blobs
        self.uploads = uploads
        self._clock = clock
        self._locks: dict[str, _Held] = {}

    def __repr__(self) -> str:
        return f"<DocumentService {self.blobs!r} locks={len(self._locks)}>"

    async def create(
        self, *, title: str | None, text: str, fmt: str, metadata: dict[str, Any],
        project_id: str | None = None,
    ) -> Document:
        """A new text-only document (``source: api``), in ``project_id`` when given."""
        doc = self._new(title=title, text=text, fmt=fmt, metadata=metadata,
                        project_id=project_id)

        def insert(conn: sqlite3.Connection) -> None:
            check_project(conn, project_id)
            repository.insert(conn, doc)

        await self.db.write(insert)
        return doc

    async def get(self, doc_id: str) -> Document:
        doc = await self.db.read(lambda conn: repository.get(conn, doc_id))
        if doc is None:
            raise NotFound(f"no document {doc_id!r}")
        return doc

    async def list(
        self, *, source: str | None, fmt: str | None, limit: int, offset: int,
        project_id: str | None = None,
    ) -> tuple[list[Document], int]:
        """A page of documents, newest first, without their text; and the total."""
        return await self.db.read(
            lambda conn: repository.list_page(conn, source, fmt, limit, offset,
                                              project_id=project_id)
        )

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

        def change(conn: sqlite3.Connection) -> Document:
            doc = repository.get(conn, doc_id)
            if doc is None:
                raise NotFound(f"no document {doc_id!r}")
            if project_id is not KEEP_PROJECT:
                check_project(conn, project_id)
                doc.project_id = project_id
            if title is not None:
                doc.title = choose_title(title)
            if text is not None and text != doc.body:
                doc.body, doc.sha256, doc.text_edited = text, text_sha256(text), True
                if doc.blob_sha256 is None:
                    doc.size = len(text.encode("utf-8", errors="surrogatepass"))
            if metadata is not None:
                doc.metadata = metadata
            doc.updated_at = self._clock()
            repository.update(conn, doc)
            return doc

        return await self.db.write(change)

    async def delete(self, doc_id: str) -> bool:
        """Delete the document; returns True if its blob went with it (no other user)."""
        doc = await self.get(doc_id)
        if doc.blob_sha256 is None:
            await self.db.write(lambda conn: _delete_counting(conn, doc_id, None), frees=True)
            return False
        sha = doc.blob_sha256
        async with self._blob_lock(sha):
            users = await self.db.write(lambda conn: _delete_counting(conn, doc_id, sha),
                                        frees=True)
            if users == 0:
                return await asyncio.to_thread(self.blobs.remove, sha)
        return False

    async def raw(self, doc_id: str) -> Raw:
        """The original: the blob for an upload, else the text in its format's media type."""
        doc = await self.get(doc_id)
        content_type = doc.content_type or CONTENT_TYPES.get(doc.format, "text/plain")
        filename = doc.filename or f"{doc.id}.{_EXTENSION.get(doc.format, 'txt')}"
        if doc.blob_sha256 is None:
            return Raw(doc, content_type, filename, data=doc.body.encode("utf-8"))
        path = self.blobs.path(doc.blob_sha256)
        if not await asyncio.to_thread(path.is_file):
            raise NotFound(f"the original of {doc_id!r} is missing from the blob store")
        return Raw(doc, content_type, filename, path=path)

    async def find_upload(self, blob_sha256: str) -> Document | None:
        """The document already made from these bytes, if any."""
        return await self.db.read(lambda conn: repository.find_by_blob(conn, blob_sha256))

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
        async with self._blob_lock(upload.sha256):
            source = self.uploads.path(upload.name)
            await asyncio.to_thread(self.blobs.adopt, source, upload.sha256)
            return await self.db.write(lambda conn: _insert_unless_stored(conn, doc))

    async def store_text(
        self, extracted: Extracted, *, title: str | None, metadata: dict[str, Any],
        project_id: str | None = None,
    ) -> Stored:
        """Record a document sent as text; non-empty text already stored is a duplicate."""
        doc = self._new(
            title=choose_title(title, extracted.title, extracted.text[:80]),
            text=extracted.text, fmt=extracted.format, metadata=metadata, project_id=project_id,
        )
        return await self.db.write(lambda conn: _insert_unless_stored(conn, doc))

    async def sweep_uploads(self) -> int:
        """At start, before any worker runs: drop uploads no pending job refers to."""
        keep = await self.db.read(repository.live_upload_names)
        return await asyncio.to_thread(self.uploads.sweep, keep)

    async def sweep_blobs(self, settled_before: float, batch: int = 500) -> int:
        """Remove blobs no document uses that were last changed before ``settled_before``
        (epoch seconds); returns how many. Each is checked again under its lock, which
        storing an upload holds from the move into the store to the document's commit."""
        candidates: Sequence[str] = await asyncio.to_thread(self.blobs.settled, settled_before)
        removed = 0
        for start in range(0, len(candidates), batch):
            chunk = candidates[start:start + batch]
            for sha in set(chunk) - await self._in_use(chunk):
                removed += await self._remove_unused_blob(sha)
        return removed

    async def _in_use(self, shas: Sequence[str]) -> set[str]:
        return await self.db.read(lambda conn: repository.blobs_in_use(conn, shas))

    async def remove_unused_blobs(self, shas: Sequence[str]) -> int:
        """Remove those of these blobs that no document (or unfinished ingest) uses now, as
        after deleting documents; returns how many."""
        return sum([await self._remove_unused_blob(sha) for sha in sorted(set(shas))])

    async def _remove_unused_blob(self, sha: str) -> int:
        async with self._blob_lock(sha):
            if sha in await self._in_use([sha]):
                return 0
            return int(await asyncio.to_thread(self.blobs.remove, sha))

    async def discard_upload(self, upload: Upload) -> None:
        """Remove an upload that will not become a document (refused, failed, duplicate)."""
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

    @contextlib.asynccontextmanager
    async def _blob_lock(self, sha256: str) -> AsyncIterator[None]:
        entry = self._locks.get(sha256)
        if entry is None:
            entry = self._locks[sha256] = _Held()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[sha256]


@dataclass(slots=True)
class _Held:
    """A blob's lock and how many tasks hold or wait for it (dropped at zero)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


_EXTENSION = {"text": "txt", "markdown": "md", "html": "html", "json": "json", "csv": "csv",
              "rtf": "rtf"}


def _insert_unless_stored(conn: sqlite3.Connection, doc: Document) -> Stored:
    if doc.blob_sha256 is not None:
        existing = repository.find_by_blob(conn, doc.blob_sha256)
    else:
        existing = repository.find_text_only(conn, doc.sha256) if doc.body else None
    if existing is not None:
        return Stored(existing, duplicate=True)
    check_project(conn, doc.project_id)  # it may have been deleted since the job was sent
    repository.insert(conn, doc)
    return Stored(doc, duplicate=False)


def _delete_counting(conn: sqlite3.Connection, doc_id: str, blob_sha256: str | None) -> int:
    """Delete; returns how many documents still use the blob (0 when it has none)."""
    if repository.delete(conn, doc_id) is None:
        raise NotFound(f"no document {doc_id!r}")
    return repository.blob_users(conn, blob_sha256) if blob_sha256 else 0
