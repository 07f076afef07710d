"""The documents on PostgreSQL: :class:`PgDocumentStore`.

Where SQLite's single writer makes "look, then write" safe, several nodes need a lock: the
project named by a document is checked by the foreign key in the insert or update itself
(its violation is ``UnknownProject``), and a transaction that asks whether some content is
stored already, or how many documents still use a blob, first takes a transaction-level
advisory lock on that content's hash, so two nodes storing the same upload at once store it
once, and a delete counts its blob's users after any insert of that blob has committed.
Reads that take more than one statement run in one read-only snapshot. Full text goes
through the ``documents_text`` configuration of migration 0002 (words lower-cased and
without diacritics, as SQLite's index has them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from ...records.document import KEEP_PROJECT, Document, DocumentUpdate, Origin
from ...records.project import UnknownProject
from ..documents import MARK_CLOSE, MARK_OPEN, BadQuery, Match, Stored, TextQuery
from .database import PgDatabase
from .snapshot import snapshot
from .text_query import plain_tsquery_text, to_tsquery_text

if TYPE_CHECKING:
    from .migrate import Connection

_NAMES = ("id", "title", "body", "format", "sha256", "size", "source", "created_at",
          "updated_at", "blob_sha256", "filename", "content_type", "metadata", "text_edited",
          "project_id")
_COLUMNS = ", ".join(_NAMES)
#: Lists never read the texts (a body may be megabytes).
_LIST_COLUMNS = ", ".join("'' AS body" if name == "body" else name for name in _NAMES)
_INSERT = (f"INSERT INTO documents ({_COLUMNS}) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")

#: ts_rank's weights for D, C, B (the text), A (the title): a title match weighs five.
_RANK_WEIGHTS = "{0, 0, 0.2, 1.0}"
_HEADLINE = (f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=24, MinWords=12, "
             "MaxFragments=1, ShortWord=0")
#: ts_headline's parser takes ``<…>`` for an HTML tag and leaves it out of the excerpt; the
#: excerpt must show the text as written (escaped by the caller), so the angle brackets are
#: stood in for by private-use characters around the headline, and put back after.
_TAG_STAND_INS = str.maketrans("\ue002\ue003", "<>")
#: The best page of matches with the total, in one statement (one snapshot): the title
#: highlighted whole, the indexed text as an excerpt around the matches, and whether the
#: excerpt starts and ends the text (else the caller adds "…").
_SEARCH = f"""
WITH q AS (SELECT to_tsquery('documents_text', $1) AS q),
matched AS (
    SELECT d.seq, ts_rank('{_RANK_WEIGHTS}', d.search, q.q, 1) AS score
    FROM documents AS d, q WHERE d.search @@ q.q),
page AS (SELECT seq, score FROM matched ORDER BY score DESC, seq LIMIT $2 OFFSET $3),
marked AS (
    SELECT page.seq, page.score, translate(left(d.body, 1000000), '<>', E'\\ue002\\ue003')
               AS text,
           ts_headline('documents_text', translate(d.title, '<>', E'\\ue002\\ue003'), q.q,
                       'HighlightAll=true, {_HEADLINE}') AS title_hl,
           ts_headline('documents_text',
                       translate(left(d.body, 1000000), '<>', E'\\ue002\\ue003'), q.q,
                       '{_HEADLINE}') AS snippet,
           {", ".join("d." + name for name in _NAMES if name != "body")}
    FROM page JOIN documents AS d USING (seq), q),
plain AS (
    SELECT marked.*, replace(replace(snippet, '{MARK_OPEN}', ''), '{MARK_CLOSE}', '') AS bare
    FROM marked)
SELECT (SELECT count(*) FROM matched) AS total, plain.seq, plain.score, plain.title_hl,
       plain.snippet, starts_with(plain.text, plain.bare) AS at_start,
       right(plain.text, length(plain.bare)) = plain.bare AS at_end,
       {", ".join("plain." + name for name in _NAMES if name != "body")}, '' AS body
FROM (SELECT 1) AS one LEFT JOIN plain ON true
ORDER BY plain.score DESC, plain.seq
"""


def _document(row: asyncpg.Record) -> Document:
    return Document(
        id=row["id"], title=row["title"], body=row["body"],
        format=row["format"], sha256=row["sha256"], size=row["size"],
        source=Origin(row["source"]), created_at=row["created_at"],
        updated_at=row["updated_at"], blob_sha256=row["blob_sha256"],
        filename=row["filename"], content_type=row["content_type"],
        metadata=row["metadata"], text_edited=row["text_edited"], project_id=row["project_id"],
    )


def _values(doc: Document) -> tuple[Any, ...]:
    return (doc.id, doc.title, doc.body, doc.format, doc.sha256, doc.size, doc.source.value,
            doc.created_at, doc.updated_at, doc.blob_sha256, doc.filename, doc.content_type,
            doc.metadata, doc.text_edited, doc.project_id)


async def _lock_content(conn: Connection, key: str) -> None:
    """Until this transaction ends, no other one looks for or counts this content."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)


async def _insert(conn: Connection, doc: Document) -> None:
    try:
        await conn.execute(_INSERT, *_values(doc))
    except asyncpg.ForeignKeyViolationError:
        raise UnknownProject(str(doc.project_id)) from None


async def _existing(conn: Connection, doc: Document) -> Document | None:
    """The stored document that stands for ``doc``'s content, under its content's lock."""
    if doc.blob_sha256 is not None:
        await _lock_content(conn, f"blob:{doc.blob_sha256}")
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM documents WHERE blob_sha256 = $1 AND NOT text_edited "
            "ORDER BY seq LIMIT 1", doc.blob_sha256)
    elif doc.body:
        await _lock_content(conn, f"text:{doc.sha256}")
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM documents WHERE sha256 = $1 AND blob_sha256 IS NULL "
            "ORDER BY seq LIMIT 1", doc.sha256)
    else:
        return None
    return _document(row) if row else None


def _snippet(row: asyncpg.Record) -> str:
    """The excerpt, with "…" on each side where the text goes on."""
    before = "" if row["at_start"] else "…"
    after = "" if row["at_end"] else "…"
    return f"{before}{row['snippet'].translate(_TAG_STAND_INS)}{after}"


class PgDocumentStore:
    """:class:`~toombos_edge.store.documents.DocumentStore` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgDocumentStore {self._db!r}>"

    async def insert(self, doc: Document) -> None:
        async with self._db.transaction() as conn:
            await _insert(conn, doc)

    async def insert_unless_stored(self, doc: Document) -> Stored:
        async with self._db.transaction() as conn:
            existing = await _existing(conn, doc)
            if existing is not None:
                return Stored(existing, duplicate=True)
            await _insert(conn, doc)
        return Stored(doc, duplicate=False)

    async def get(self, doc_id: str) -> Document | None:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM documents WHERE id = $1", doc_id)
        return _document(row) if row else None

    async def find_upload(self, blob_sha256: str) -> Document | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM documents WHERE blob_sha256 = $1 AND NOT text_edited "
            "ORDER BY seq LIMIT 1", blob_sha256)
        return _document(row) if row else None

    async def list_page(
        self, *, source: str | None, fmt: str | None, project_id: str | None,
        limit: int, offset: int,
    ) -> tuple[list[Document], int]:
        clauses, args = [], []
        for column, value in (("project_id", project_id), ("source", source), ("format", fmt)):
            if value:
                args.append(value)
                clauses.append(f"{column} = ${len(args)}")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        n = len(args)
        async with snapshot(self._db) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM documents{where}", *args)
            rows = await conn.fetch(
                f"SELECT {_LIST_COLUMNS} FROM documents{where} ORDER BY seq DESC "
                f"LIMIT ${n + 1} OFFSET ${n + 2}", *args, limit, offset)
        return [_document(row) for row in rows], int(total)

    async def update(self, doc_id: str, changes: DocumentUpdate, now: int) -> Document | None:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM documents WHERE id = $1 FOR UPDATE", doc_id)
            if row is None:
                return None
            changed = changes.applied_to(_document(row), now)
            try:
                await conn.execute(
                    "UPDATE documents SET title = $2, body = $3, sha256 = $4, size = $5, "
                    "metadata = $6, text_edited = $7, project_id = $8, updated_at = $9 "
                    "WHERE id = $1",
                    doc_id, changed.title, changed.body, changed.sha256, changed.size,
                    changed.metadata, changed.text_edited, changed.project_id,
                    changed.updated_at)
            except asyncpg.ForeignKeyViolationError:
                assert changes.project_id is not KEEP_PROJECT
                raise UnknownProject(str(changes.project_id)) from None
        return changed

    async def delete(self, doc_id: str) -> int | None:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(
                "DELETE FROM documents WHERE id = $1 RETURNING blob_sha256", doc_id)
            if row is None:
                return None
            blob = row["blob_sha256"]
            if blob is None:
                return 0
            await _lock_content(conn, f"blob:{blob}")
            return int(await conn.fetchval(
                "SELECT count(*) FROM documents WHERE blob_sha256 = $1", blob))

    async def blobs_in_use(self, shas: Sequence[str]) -> set[str]:
        rows = await self._db.fetch(
            "SELECT DISTINCT blob_sha256 AS sha FROM documents "
            "WHERE blob_sha256 = ANY($1::text[]) "
            "UNION SELECT params -> 'upload' ->> 'sha256' FROM jobs WHERE kind = 'ingest' "
            "AND status IN ('pending', 'in_progress') "
            "AND params -> 'upload' ->> 'sha256' IS NOT NULL", list(shas))
        return {row["sha"] for row in rows}

    async def live_upload_names(self) -> set[str]:
        rows = await self._db.fetch(
            "SELECT params -> 'upload' ->> 'name' AS name FROM jobs WHERE kind = 'ingest' "
            "AND status IN ('pending', 'in_progress') "
            "AND params -> 'upload' ->> 'name' IS NOT NULL")
        return {row["name"] for row in rows}

    async def search(
        self, query: TextQuery, *, limit: int, offset: int
    ) -> tuple[list[Match], int]:
        text = plain_tsquery_text(query.text) if query.plain else to_tsquery_text(query.text)
        try:
            rows = await self._db.fetch(_SEARCH, text, limit, offset)
        except asyncpg.PostgresSyntaxError as exc:  # what the parser let through
            raise BadQuery(str(exc)) from None
        total = int(rows[0]["total"]) if rows else 0
        matches = [
            Match(_document(row), float(row["score"]),
                  row["title_hl"].translate(_TAG_STAND_INS), _snippet(row))
            for row in rows if row["seq"] is not None
        ]
        return matches, total
