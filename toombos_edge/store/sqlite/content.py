"""The content store on SQLite: content items, their versions, page views.

All the SQL of content, as functions of a ``sqlite3.Connection``; ``SqliteContentStore``
runs them through the database's group-committing writer and its readers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

import orjson

from ...errors import Conflict, NotFound
from ...ids import now_ms
from ...records.content import ContentItem
from ..content import LIST_FILTERS, ContentVersion
from .database import Database

_COLUMNS = ("id, job_id, document_id, channel, style, tone, content_type, slug, body, "
            "version, status, published_url, published_at, created_at, updated_at")


def _row(row: tuple[Any, ...]) -> ContentItem:
    values = list(row)
    values[8] = orjson.loads(values[8])
    return ContentItem(*values)


def insert(conn: sqlite3.Connection, item: ContentItem) -> ContentItem:
    conn.execute(
        f"INSERT INTO content ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (item.id, item.job_id, item.document_id, item.channel, item.style, item.tone,
         item.content_type, item.slug, orjson.dumps(item.body).decode(), item.version,
         item.status, item.published_url, item.published_at, item.created_at, item.updated_at),
    )
    return item


def fetch(conn: sqlite3.Connection, content_id: str) -> ContentItem:
    row = conn.execute(f"SELECT {_COLUMNS} FROM content WHERE id = ?", (content_id,)).fetchone()
    if row is None:
        raise NotFound(f"no content with id {content_id!r}")
    return _row(row)


def for_job(conn: sqlite3.Connection, job_id: str) -> list[ContentItem]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM content WHERE job_id = ? ORDER BY id", (job_id,)
    ).fetchall()
    return [_row(r) for r in rows]


def listing(
    conn: sqlite3.Connection, filters: dict[str, str], limit: int, offset: int
) -> tuple[list[ContentItem], int]:
    """Items matching every filter (job_id, document_id, channel, status), newest first."""
    terms = [f"{name} = ?" for name in filters if name in LIST_FILTERS]
    where = f"WHERE {' AND '.join(terms)}" if terms else ""
    values = [filters[name] for name in filters if name in LIST_FILTERS]
    rows = conn.execute(f"SELECT {_COLUMNS} FROM content {where} ORDER BY id DESC "
                        "LIMIT ? OFFSET ?", (*values, limit, offset)).fetchall()
    total = conn.execute(f"SELECT count(*) FROM content {where}", values).fetchone()[0]
    return [_row(r) for r in rows], total


def merge_body(
    conn: sqlite3.Connection, content_id: str, fields: dict[str, Any],
    expected_version: int | None = None,
) -> ContentItem:
    """``fields`` merged into the current body, stored as the next version."""
    current = fetch(conn, content_id)
    if expected_version is not None and expected_version != current.version:
        raise Conflict(f"content {content_id} is at version {current.version}, "
                       f"not {expected_version}", {"version": current.version})
    return replace_body(conn, current, {**current.body, **fields})


def replace_body(conn: sqlite3.Connection, current: ContentItem,
                 body: dict[str, Any]) -> ContentItem:
    """Store ``body`` as the next version; the current one goes to ``content_versions``."""
    at = now_ms()
    conn.execute(
        "INSERT INTO content_versions (content_id, version, body, created_at, replaced_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (current.id, current.version, orjson.dumps(current.body).decode(),
         current.updated_at, at),
    )
    updated = replace(current, body=body, version=current.version + 1, updated_at=at,
                      slug=body.get("slug", current.slug))
    conn.execute(
        "UPDATE content SET body = ?, version = ?, slug = ?, updated_at = ? WHERE id = ?",
        (orjson.dumps(body).decode(), updated.version, updated.slug, at, current.id),
    )
    return updated


def versions(conn: sqlite3.Connection, content_id: str) -> list[ContentVersion]:
    """Every version of an item, the current one first, then newest to oldest."""
    current = fetch(conn, content_id)
    rows = conn.execute(
        "SELECT version, body, created_at, replaced_at FROM content_versions "
        "WHERE content_id = ? ORDER BY version DESC", (content_id,),
    ).fetchall()
    out = [ContentVersion(current.version, current.body, current.updated_at, None, True)]
    out += [ContentVersion(r[0], orjson.loads(r[1]), r[2], r[3], False) for r in rows]
    return out


def prior_body(
    conn: sqlite3.Connection, content_id: str, to_version: int | None
) -> dict[str, Any]:
    """The body of ``to_version``, or of the version before the current one."""
    if to_version is None:
        row = conn.execute(
            "SELECT body FROM content_versions WHERE content_id = ? "
            "ORDER BY version DESC LIMIT 1", (content_id,)).fetchone()
    else:
        row = conn.execute(
            "SELECT body FROM content_versions WHERE content_id = ? AND version = ?",
            (content_id, to_version)).fetchone()
    if row is None:
        fetch(conn, content_id)  # NotFound for an unknown item
        wanted = "an earlier version" if to_version is None else f"version {to_version}"
        raise Conflict(f"content {content_id} has no {wanted} to roll back to")
    body: dict[str, Any] = orjson.loads(row[0])
    return body


def prune_versions(
    conn: sqlite3.Connection, after: tuple[str, int], keep: int, replaced_before: int,
    scan: int,
) -> tuple[int, tuple[str, int] | None]:
    """Delete earlier versions beyond the ``keep`` newest of their item (0: keep all) or
    replaced before ``replaced_before``, among the next ``scan`` versions after ``after``
    (content id, version). Returns how many went, and where the next call goes on (None:
    the end). A bounded scan per call keeps each transaction short."""
    rows = conn.execute(
        "SELECT v.content_id, v.version, v.replaced_at < :before "
        "OR (:keep > 0 AND v.version < c.version - :keep) "
        "FROM content_versions AS v JOIN content AS c ON c.id = v.content_id "
        "WHERE (v.content_id, v.version) > (:id, :version) "
        "ORDER BY v.content_id, v.version LIMIT :scan",
        {"before": replaced_before, "keep": keep, "id": after[0], "version": after[1],
         "scan": scan},
    ).fetchall()
    doomed = [(row[0], row[1]) for row in rows if row[2]]
    conn.executemany(
        "DELETE FROM content_versions WHERE content_id = ? AND version = ?", doomed
    )
    return len(doomed), ((rows[-1][0], rows[-1][1]) if len(rows) == scan else None)


def mark_published(
    conn: sqlite3.Connection, content_id: str, url: str | None, at: int
) -> ContentItem:
    conn.execute(
        "UPDATE content SET status = 'published', published_url = ?, published_at = ?, "
        "updated_at = ? WHERE id = ?", (url, at, at, content_id))
    return fetch(conn, content_id)


def delete(conn: sqlite3.Connection, content_id: str) -> None:
    if conn.execute("DELETE FROM content WHERE id = ?", (content_id,)).rowcount == 0:
        raise NotFound(f"no content with id {content_id!r}")


def published_page(conn: sqlite3.Connection, slug: str) -> ContentItem | None:
    """The website item last published under ``slug``."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM content WHERE slug = ? AND status = 'published' "
        "AND channel = 'website' ORDER BY published_at DESC LIMIT 1", (slug,)).fetchone()
    return None if row is None else _row(row)


def count_view(conn: sqlite3.Connection, slug: str, day: str) -> None:
    conn.execute(
        "INSERT INTO site_views (slug, day, views) VALUES (?, ?, 1) "
        "ON CONFLICT (slug, day) DO UPDATE SET views = views + 1", (slug, day))


def views(conn: sqlite3.Connection, slug: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT day, views FROM site_views WHERE slug = ? ORDER BY day", (slug,)).fetchall()
    return {r[0]: r[1] for r in rows}


class SqliteContentStore:
    """The ``ContentStore`` protocol over the database's writer and readers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteContentStore {self._db!r}>"

    async def add(self, item: ContentItem) -> ContentItem:
        """One item (tools and tests; the service stores a job's items with ``add_many``)."""
        return await self._db.write(lambda c: insert(c, item))

    async def add_many(self, items: list[ContentItem]) -> list[ContentItem]:
        if not items:
            return []
        return await self._db.write(lambda c: [insert(c, item) for item in items])

    async def get(self, content_id: str) -> ContentItem:
        return await self._db.read(lambda c: fetch(c, content_id))

    async def for_job(self, job_id: str) -> list[ContentItem]:
        return await self._db.read(lambda c: for_job(c, job_id))

    async def find(
        self, filters: dict[str, str], limit: int, offset: int
    ) -> tuple[list[ContentItem], int]:
        return await self._db.read(lambda c: listing(c, filters, limit, offset))

    async def update(
        self, content_id: str, fields: dict[str, Any], expected_version: int | None = None
    ) -> ContentItem:
        return await self._db.write(lambda c: merge_body(c, content_id, fields, expected_version))

    async def rollback(self, content_id: str, to_version: int | None = None) -> ContentItem:
        def op(conn: sqlite3.Connection) -> ContentItem:
            return replace_body(conn, fetch(conn, content_id),
                                prior_body(conn, content_id, to_version))

        return await self._db.write(op)

    async def versions(self, content_id: str) -> list[ContentVersion]:
        return await self._db.read(lambda c: versions(c, content_id))

    async def mark_published(self, content_id: str, url: str | None, at: int) -> ContentItem:
        return await self._db.write(lambda c: mark_published(c, content_id, url, at))

    async def delete(self, content_id: str) -> None:
        await self._db.write(lambda c: delete(c, content_id), frees=True)

    async def page(self, slug: str) -> ContentItem | None:
        return await self._db.read(lambda c: published_page(c, slug))

    async def count_view(self, slug: str, day: str) -> None:
        await self._db.write(lambda c: count_view(c, slug, day))

    async def views(self, slug: str) -> dict[str, int]:
        return await self._db.read(lambda c: views(c, slug))
