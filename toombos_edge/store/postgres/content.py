"""The content store on PostgreSQL: :class:`PgContentStore`.

A change of body locks the item's row first (``FOR UPDATE``), so that two nodes updating
or rolling back one item at once make two versions one after the other, the second seeing
the first (and an ``expected_version`` from before the first is a ``Conflict``). Page views
are one upsert each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from ...errors import Conflict, NotFound
from ...ids import now_ms
from ...records.content import ContentItem
from ..content import LIST_FILTERS, ContentVersion
from .database import PgDatabase
from .snapshot import snapshot

if TYPE_CHECKING:
    from .migrate import Connection

_COLUMNS = ("id, job_id, document_id, channel, style, tone, content_type, slug, body, "
            "version, status, published_url, published_at, created_at, updated_at")
_INSERT = (f"INSERT INTO content ({_COLUMNS}) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")


def _item(row: asyncpg.Record) -> ContentItem:
    return ContentItem(*row.values())


def _missing(content_id: str) -> NotFound:
    return NotFound(f"no content with id {content_id!r}")


async def _locked(conn: Connection, content_id: str) -> ContentItem:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM content WHERE id = $1 FOR UPDATE", content_id)
    if row is None:
        raise _missing(content_id)
    return _item(row)


async def _replace_body(
    conn: Connection, current: ContentItem, body: dict[str, Any]
) -> ContentItem:
    """Keep the current body as an earlier version and make ``body`` the next one."""
    at = now_ms()
    await conn.execute(
        "INSERT INTO content_versions (content_id, version, body, created_at, replaced_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        current.id, current.version, current.body, current.updated_at, at)
    row = await conn.fetchrow(
        "UPDATE content SET body = $2, version = version + 1, slug = $3, updated_at = $4 "
        f"WHERE id = $1 RETURNING {_COLUMNS}",
        current.id, body, body.get("slug", current.slug), at)
    assert row is not None  # locked by the caller
    return _item(row)


async def _prior_body(
    conn: Connection, content_id: str, to_version: int | None
) -> dict[str, Any]:
    if to_version is None:
        body = await conn.fetchval(
            "SELECT body FROM content_versions WHERE content_id = $1 "
            "ORDER BY version DESC LIMIT 1", content_id)
    else:
        body = await conn.fetchval(
            "SELECT body FROM content_versions WHERE content_id = $1 AND version = $2",
            content_id, to_version)
    if body is None:
        wanted = "an earlier version" if to_version is None else f"version {to_version}"
        raise Conflict(f"content {content_id} has no {wanted} to roll back to")
    result: dict[str, Any] = body
    return result


class PgContentStore:
    """The ``ContentStore`` protocol on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgContentStore {self._db!r}>"

    async def add(self, item: ContentItem) -> ContentItem:
        """One item (tools and tests; the service stores a job's items with ``add_many``)."""
        return (await self.add_many([item]))[0]

    async def add_many(self, items: list[ContentItem]) -> list[ContentItem]:
        if items:
            async with self._db.transaction() as conn:
                await conn.executemany(_INSERT, [
                    (i.id, i.job_id, i.document_id, i.channel, i.style, i.tone,
                     i.content_type, i.slug, i.body, i.version, i.status, i.published_url,
                     i.published_at, i.created_at, i.updated_at) for i in items])
        return items

    async def get(self, content_id: str) -> ContentItem:
        row = await self._db.fetchrow(f"SELECT {_COLUMNS} FROM content WHERE id = $1",
                                      content_id)
        if row is None:
            raise _missing(content_id)
        return _item(row)

    async def for_job(self, job_id: str) -> list[ContentItem]:
        rows = await self._db.fetch(
            f"SELECT {_COLUMNS} FROM content WHERE job_id = $1 ORDER BY id", job_id)
        return [_item(row) for row in rows]

    async def find(
        self, filters: dict[str, str], limit: int, offset: int
    ) -> tuple[list[ContentItem], int]:
        names = [name for name in filters if name in LIST_FILTERS]
        terms = [f"{name} = ${n}" for n, name in enumerate(names, start=1)]
        where = f" WHERE {' AND '.join(terms)}" if terms else ""
        values = [filters[name] for name in names]
        async with snapshot(self._db) as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM content{where}", *values)
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM content{where} ORDER BY id DESC "
                f"LIMIT ${len(values) + 1} OFFSET ${len(values) + 2}", *values, limit, offset)
        return [_item(row) for row in rows], int(total)

    async def update(
        self, content_id: str, fields: dict[str, Any], expected_version: int | None = None
    ) -> ContentItem:
        async with self._db.transaction() as conn:
            current = await _locked(conn, content_id)
            if expected_version is not None and expected_version != current.version:
                raise Conflict(f"content {content_id} is at version {current.version}, "
                               f"not {expected_version}", {"version": current.version})
            return await _replace_body(conn, current, {**current.body, **fields})

    async def rollback(self, content_id: str, to_version: int | None = None) -> ContentItem:
        async with self._db.transaction() as conn:
            current = await _locked(conn, content_id)
            return await _replace_body(conn, current,
                                       await _prior_body(conn, content_id, to_version))

    async def versions(self, content_id: str) -> list[ContentVersion]:
        async with snapshot(self._db) as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM content WHERE id = $1", content_id)
            if row is None:
                raise _missing(content_id)
            rows = await conn.fetch(
                "SELECT version, body, created_at, replaced_at FROM content_versions "
                "WHERE content_id = $1 ORDER BY version DESC", content_id)
        current = _item(row)
        out = [ContentVersion(current.version, current.body, current.updated_at, None, True)]
        out += [ContentVersion(r["version"], r["body"], r["created_at"], r["replaced_at"],
                               False) for r in rows]
        return out

    async def mark_published(self, content_id: str, url: str | None, at: int) -> ContentItem:
        row = await self._db.fetchrow(
            "UPDATE content SET status = 'published', published_url = $2, published_at = $3, "
            f"updated_at = $3 WHERE id = $1 RETURNING {_COLUMNS}", content_id, url, at)
        if row is None:
            raise _missing(content_id)
        return _item(row)

    async def delete(self, content_id: str) -> None:
        """The item's versions go with it (``ON DELETE CASCADE``)."""
        if await self._db.execute("DELETE FROM content WHERE id = $1", content_id) \
                == "DELETE 0":
            raise _missing(content_id)

    async def page(self, slug: str) -> ContentItem | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM content WHERE slug = $1 AND status = 'published' "
            "AND channel = 'website' ORDER BY published_at DESC, id DESC LIMIT 1", slug)
        return None if row is None else _item(row)

    async def count_view(self, slug: str, day: str) -> None:
        await self._db.execute(
            "INSERT INTO site_views (slug, day, views) VALUES ($1, $2, 1) "
            "ON CONFLICT (slug, day) DO UPDATE SET views = site_views.views + 1", slug, day)

    async def views(self, slug: str) -> dict[str, int]:
        rows = await self._db.fetch(
            "SELECT day, views FROM site_views WHERE slug = $1 ORDER BY day", slug)
        return {row["day"]: int(row["views"]) for row in rows}
