"""SQL of documents and their full-text index, as functions of a ``sqlite3.Connection``.

The FTS5 index is kept in step by the triggers of migration 0003, so these functions only
touch ``documents``; search reads ``documents_fts``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ..records.document import Document, Origin

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


def count_in_project(conn: sqlite3.Connection, project_id: str) -> int:
    return int(conn.execute(
        "SELECT count(*) FROM documents WHERE project_id = ?", (project_id,)
    ).fetchone()[0])


def detach_from_project(conn: sqlite3.Connection, project_id: str, most: int, now: int) -> int:
    """Take up to ``most`` documents out of the project; returns how many."""
    return conn.execute(
        "UPDATE documents SET project_id = NULL, updated_at = ? WHERE seq IN "
        "(SELECT seq FROM documents WHERE project_id = ? LIMIT ?)",
        (now, project_id, most),
    ).rowcount


def delete_in_project(conn: sqlite3.Connection, project_id: str, most: int) -> list[str | None]:
    """Delete up to ``most`` documents of the project; returns the blob of each (None for a
    text-only one)."""
    rows = conn.execute(
        "SELECT seq, blob_sha256 FROM documents WHERE project_id = ? LIMIT ?",
        (project_id, most),
    ).fetchall()
    conn.executemany("DELETE FROM documents WHERE seq = ?", [(row[0],) for row in rows])
    return [row[1] for row in rows]


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
