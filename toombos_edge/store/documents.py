"""The documents' storage interface: what the document and search services need of a backend.

Documents are ordered by when they were stored (the order ``insert`` committed them in on
one node; a backend with several writers may order ties by id). Every method is one
transaction. A document's ``project_id`` is checked in the very transaction that sets it,
so that no project can be deleted between the check and the write.

Search speaks a small query language that any full-text engine can answer (SQLite's FTS5,
PostgreSQL's ``tsquery``): words (all must occur), ``"exact phrase"``, ``AND``, ``OR``,
``NOT``, a ``prefix*``, ``title:word`` for a word of the title, parentheses. A plain
query takes every word as written, with no operator. Matches in highlighted text are
wrapped in :data:`MARK_OPEN` and :data:`MARK_CLOSE` (private-use characters, so the caller
can escape the text before it turns them into markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..records.document import Document, DocumentUpdate

MARK_OPEN, MARK_CLOSE = "\ue000", "\ue001"


@dataclass(frozen=True, slots=True)
class Stored:
    """What an ingestion produced: the document, and whether it already existed."""

    document: Document
    duplicate: bool


@dataclass(frozen=True, slots=True)
class TextQuery:
    """A full-text query: the module's query language, or plain words (``plain``)."""

    text: str
    plain: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """One search hit; the document without its text."""

    document: Document
    score: float  #: higher is better; comparable within one answer only
    title: str  #: the title, matches marked
    snippet: str  #: about 24 words of the text around the matches, marked, "…" where cut


class BadQuery(Exception):
    """The query is not valid in the query language; the message says why."""


class DocumentStore(Protocol):
    """Documents, their blobs' users, and full-text search over their title and text."""

    async def insert(self, doc: Document) -> None:
        """Store a new document; ``UnknownProject`` if its project does not exist."""

    async def insert_unless_stored(self, doc: Document) -> Stored:
        """Store ``doc`` unless the same content is stored already, in one transaction.

        The same content: for a document with a blob, the first stored document made from
        that blob whose text was not edited since; for a text-only document with a
        non-empty text, the first stored text-only document with its ``sha256``. That one
        is returned (``duplicate``) and nothing is written. Else ``UnknownProject`` if
        ``doc``'s project does not exist (any more).
        """

    async def get(self, doc_id: str) -> Document | None:
        """The document with its text, or None."""

    async def find_upload(self, blob_sha256: str) -> Document | None:
        """The first stored document made from this blob whose text was not edited, if any."""

    async def list_page(
        self, *, source: str | None, fmt: str | None, project_id: str | None,
        limit: int, offset: int,
    ) -> tuple[list[Document], int]:
        """Newest first, filtered by those given (None: any), with empty texts (a list
        never reads them); and how many documents match the filters in all."""

    async def update(self, doc_id: str, changes: DocumentUpdate, now: int) -> Document | None:
        """Apply ``changes`` to the stored document (``DocumentUpdate.applied_to``) in one
        transaction; returns the new record, or None if there is no such document.
        ``UnknownProject`` if the changes name a project that does not exist."""

    async def delete(self, doc_id: str) -> int | None:
        """Delete the document; returns how many documents still use its blob after the
        delete (0 when it had none), or None if there was no such document. It may run
        when the storage is full: it frees space."""

    async def blobs_in_use(self, shas: Sequence[str]) -> set[str]:
        """Those of ``shas`` that a document uses, or that an ingest job not yet ended
        will read (its ``params.upload.sha256``: an earlier attempt may have moved its
        upload into the blob store already)."""

    async def live_upload_names(self) -> set[str]:
        """The uploads (``params.upload.name``) that ingest jobs not yet ended will read."""

    async def search(
        self, query: TextQuery, *, limit: int, offset: int
    ) -> tuple[list[Match], int]:
        """Best first (a title match weighs as five text matches, more matches more; a
        backend may also weigh rarer words more, as SQLite's BM25 does); and how many
        documents match in all. ``BadQuery`` when the query is not valid in the query
        language."""
