"""The documents in SQLite: :class:`SqliteDocumentStore`, and its SQL as functions of a
``sqlite3.Connection``.

The FTS5 index is kept in step by the triggers of migration 0003, so these functions only
touch ``documents``; search reads ``documents_fts``. The order of storing is the ``seq``
column (the rowid the index joins on).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ...records.document import KEEP_PROJECT, Document, DocumentUpdate, Origin
from ..documents import MARK_CLOSE, MARK_OPEN, BadQuery, Match, Stored, TextQuery
from . import projects
from .database import Database

#: What SQLite says of a query that is not valid FTS5 (any other error is not the query's).
_SYNTAX_HINTS = ("fts5:", "syntax error", "no such column", "unterminated", "unknown special")

_NAMES = ("id", "title", "body", "format", "sha256", "size", "source", "created_at",
          "updated_at", "blob_sha256", "filename", "content_type", "metadata", "text_edited",
          "project_id")


def _select(prefix: str = "", *, with_body: bool = True) -> str:
    """The column list; listings leave the body out (not even its length: counting the
    characters of a TEXT value reads all of it)."""
    cols = [prefix + name if with_body or name != "body" else "''" for name in _NAMES]
    return ", ".join(cols)


_COLUMNS = _select()
_LIST_COLUMNS = _select(with_body=False)


def _row(row: tuple[Any, ...]) -> Document:
    return Document(
        id=row[0], title=row[1], body=row[2], format=row[3], sha256=row[4], size=row[5],
        source=Origin(row[6]), created_at=row[7], updated_at=row[8], blob_sha256=row[9],
        filename=row[10], content_type=row[11], metadata=orjson.loads(row[12]),
        text_edited=bool(row[13]), project_id=row[14],
    )


def insert(conn: sqlite3.Connection, doc: Document) -> None:
    conn.execute(
        f"INSERT INTO documents ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (doc.id, doc.title, doc.body, doc.format, doc.sha256, doc.size, doc.source.value,
         doc.created_at, doc.updated_at, doc.blob_sha256, doc.filename, doc.content_type,
         orjson.dumps(doc.metadata).decode(), int(doc.text_edited), doc.project_id),
    )


def insert_checked(conn: sqlite3.Connection, doc: Document) -> None:
    """Insert; ``UnknownProject`` if its project does not exist, checked in this write."""
    projects.check(conn, doc.project_id)
    insert(conn, doc)


def get(conn: sqlite3.Connection, doc_id: str) -> Document | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return _row(row) if row else None


def find_by_blob(conn: sqlite3.Connection, blob_sha256: str) -> Document | None:
    """The first unedited document made from this original content, if any."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM documents WHERE blob_sha256 = ? AND text_edited = 0 "
        "ORDER BY seq LIMIT 1",
        (blob_sha256,),
    ).fetchone()
    return _row(row) if row else None


def find_text_only(conn: sqlite3.Connection, sha256: str) -> Document | None:
    """The first document without an upload whose text has this hash."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM documents WHERE sha256 = ? AND blob_sha256 IS NULL "
        "ORDER BY seq LIMIT 1",
        (sha256,),
    ).fetchone()
    return _row(row) if row else None


def list_page(
    conn: sqlite3.Connection, source: str | None, fmt: str | None, limit: int, offset: int,
    *, project_id: str | None = None,
) -> tuple[list[Document], int]:
    """Newest first, without bodies; and the total that matches the filters."""
    where, args = _filters(source, fmt, project_id)
    total = conn.execute(f"SELECT count(*) FROM documents{where}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_LIST_COLUMNS} FROM documents{where} ORDER BY seq DESC LIMIT ? OFFSET ?",
        (*args, limit, offset),
    ).fetchall()
    return [_row(row) for row in rows], total


def _filters(
    source: str | None, fmt: str | None, project_id: str | None
) -> tuple[str, tuple[str, ...]]:
    clauses, args = [], []
    if project_id:
        clauses.append("project_id = ?")
        args.append(project_id)
    if source:
        clauses.append("source = ?")
        args.append(source)
    if fmt:
        clauses.append("format = ?")
        args.append(fmt)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def update(conn: sqlite3.Connection, doc: Document) -> None:
    conn.execute(
        "UPDATE documents SET title = ?, body = ?, sha256 = ?, size = ?, metadata = ?, "
        "text_edited = ?, project_id = ?, updated_at = ? WHERE id = ?",
        (doc.title, doc.body, doc.sha256, doc.size, orjson.dumps(doc.metadata).decode(),
         int(doc.text_edited), doc.project_id, doc.updated_at, doc.id),
    )


def delete(conn: sqlite3.Connection, doc_id: str) -> Document | None:
    """Remove the document; returns what was removed (None if there was none)."""
    doc = get(conn, doc_id)
    if doc is not None:
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))
    return doc


def blob_users(conn: sqlite3.Connection, blob_sha256: str) -> int:
    return int(conn.execute(
        "SELECT count(*) FROM documents WHERE blob_sha256 = ?", (blob_sha256,)
    ).fetchone()[0])


def blobs_in_use(conn: sqlite3.Connection, shas: Sequence[str]) -> set[str]:
    """Those of ``shas`` that a document uses, or that an ingest job not yet ended will
    read (an earlier attempt may have moved its upload into the blob store)."""
    marks = ",".join("?" * len(shas))
    used = {row[0] for row in conn.execute(
        f"SELECT DISTINCT blob_sha256 FROM documents WHERE blob_sha256 IN ({marks})", shas)}
    used |= {row[0] for row in conn.execute(
        "SELECT json_extract(params, '$.upload.sha256') FROM jobs WHERE kind = 'ingest' "
        "AND status IN ('pending', 'in_progress')")}
    return used


def live_upload_names(conn: sqlite3.Connection) -> set[str]:
    """Uploads that an ingest job not yet ended will read (the jobs table, read only)."""
    rows = conn.execute(
        "SELECT json_extract(params, '$.upload.name') FROM jobs WHERE kind = 'ingest' "
        "AND status IN ('pending', 'in_progress') AND json_extract(params, '$.upload.name') "
        "IS NOT NULL"
    ).fetchall()
    return {row[0] for row in rows}


def insert_unless_stored(conn: sqlite3.Connection, doc: Document) -> Stored:
    if doc.blob_sha256 is not None:
        existing = find_by_blob(conn, doc.blob_sha256)
    else:
        existing = find_text_only(conn, doc.sha256) if doc.body else None
    if existing is not None:
        return Stored(existing, duplicate=True)
    insert_checked(conn, doc)  # its project may have been deleted since the job was sent
    return Stored(doc, duplicate=False)


def change(
    conn: sqlite3.Connection, doc_id: str, changes: DocumentUpdate, now: int
) -> Document | None:
    doc = get(conn, doc_id)
    if doc is None:
        return None
    if changes.project_id is not KEEP_PROJECT:
        projects.check(conn, changes.project_id)
    changed = changes.applied_to(doc, now)
    update(conn, changed)
    return changed


def delete_counting(conn: sqlite3.Connection, doc_id: str) -> int | None:
    """Delete; how many documents still use its blob (0 when it has none), None if none."""
    doc = delete(conn, doc_id)
    if doc is None:
        return None
    return blob_users(conn, doc.blob_sha256) if doc.blob_sha256 else 0


def plain_query(text: str) -> str:
    """Every word as a quoted FTS5 string: all must occur, no operator is special."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in text.split())


def search(
    conn: sqlite3.Connection, match: str, limit: int, offset: int, marks: tuple[str, str]
) -> tuple[list[tuple[Document, float, str, str]], int]:
    """Best first (bm25, a title hit weighing 5 body hits): (document, score, title, snippet).

    Raises ``sqlite3.OperationalError`` when ``match`` is not valid FTS5 syntax.
    """
    total = conn.execute(
        "SELECT count(*) FROM documents_fts WHERE documents_fts MATCH ?", (match,)
    ).fetchone()[0]
    rows = conn.execute(
        f"SELECT {_select('d.', with_body=False)}, "
        "bm25(documents_fts, 5.0, 1.0) AS score, "
        "highlight(documents_fts, 0, ?, ?), snippet(documents_fts, 1, ?, ?, '…', 24) "
        "FROM documents_fts JOIN documents AS d ON d.seq = documents_fts.rowid "
        "WHERE documents_fts MATCH ? ORDER BY score LIMIT ? OFFSET ?",
        (*marks, *marks, match, limit, offset),
    ).fetchall()
    width = len(_NAMES)
    return [(_row(row[:width]), -row[width], row[width + 1], row[width + 2])
            for row in rows], total


class SqliteDocumentStore:
    """:class:`~toombos_edge.store.documents.DocumentStore` on the SQLite database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteDocumentStore {self._db.path.name}>"

    async def insert(self, doc: Document) -> None:
        await self._db.write(lambda conn: insert_checked(conn, doc))

    async def insert_unless_stored(self, doc: Document) -> Stored:
        return await self._db.write(lambda conn: insert_unless_stored(conn, doc))

    async def get(self, doc_id: str) -> Document | None:
        return await self._db.read(lambda conn: get(conn, doc_id))

    async def find_upload(self, blob_sha256: str) -> Document | None:
        return await self._db.read(lambda conn: find_by_blob(conn, blob_sha256))

    async def list_page(
        self, *, source: str | None, fmt: str | None, project_id: str | None,
        limit: int, offset: int,
    ) -> tuple[list[Document], int]:
        return await self._db.read(
            lambda conn: list_page(conn, source, fmt, limit, offset, project_id=project_id))

    async def update(self, doc_id: str, changes: DocumentUpdate, now: int) -> Document | None:
        return await self._db.write(lambda conn: change(conn, doc_id, changes, now))

    async def delete(self, doc_id: str) -> int | None:
        return await self._db.write(lambda conn: delete_counting(conn, doc_id), frees=True)

    async def blobs_in_use(self, shas: Sequence[str]) -> set[str]:
        return await self._db.read(lambda conn: blobs_in_use(conn, shas))

    async def live_upload_names(self) -> set[str]:
        return await self._db.read(live_upload_names)

    async def search(
        self, query: TextQuery, *, limit: int, offset: int
    ) -> tuple[list[Match], int]:
        match = plain_query(query.text) if query.plain else query.text
        try:
            rows, total = await self._db.read(
                lambda conn: search(conn, match, limit, offset, (MARK_OPEN, MARK_CLOSE)))
        except sqlite3.OperationalError as exc:
            if not any(hint in str(exc) for hint in _SYNTAX_HINTS):
                raise
            raise BadQuery(str(exc)) from None
        return [Match(doc, score, title, snip) for doc, score, title, snip in rows], total
