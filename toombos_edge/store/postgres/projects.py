"""The projects on PostgreSQL: :class:`PgProjectStore`.

A project's ``document_count`` is read with it. A step of a delete first locks the
project's row: a document insert or move into the project must lock it too (the foreign
key takes a share lock on it), so while the step runs no other node adds a document that
the step would miss, and one that tries after the project went is refused as unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from ...records.project import OnDocuments, Project, ProjectChanges
from ..projects import DeleteStep
from .database import PgDatabase
from .snapshot import snapshot

if TYPE_CHECKING:
    from .migrate import Connection

_SELECT = (
    "SELECT p.id, p.name, p.description, p.metadata, p.created_at, p.updated_at, "
    "(SELECT count(*) FROM documents AS d WHERE d.project_id = p.id) AS document_count "
    "FROM projects AS p"
)
#: Up to $2 of the project's documents, locked (waited for, not skipped: a skipped one
#: would still name the project when the step deletes it). Materialized, so that the
#: limit holds: as a plain ``IN (subquery)`` the planner may run it more than once.
_SOME_DOCUMENTS = ("WITH chosen AS MATERIALIZED (SELECT seq FROM documents WHERE project_id = $1 "
                   "ORDER BY seq LIMIT $2 FOR UPDATE) ")


def _project(row: asyncpg.Record) -> Project:
    return Project(id=row["id"], name=row["name"], description=row["description"],
                   metadata=row["metadata"], created_at=row["created_at"],
                   updated_at=row["updated_at"], document_count=row["document_count"])


async def _documents_step(
    conn: Connection, project_id: str, on_documents: OnDocuments | None, most: int, now: int,
) -> DeleteStep:
    if on_documents is None:
        count = int(await conn.fetchval(
            "SELECT count(*) FROM documents WHERE project_id = $1", project_id))
        return DeleteStep(done=not count, blocking=count)
    if on_documents is OnDocuments.detach:
        moved = await conn.fetch(
            f"{_SOME_DOCUMENTS} UPDATE documents AS d SET project_id = NULL, updated_at = $3 "
            "FROM chosen WHERE d.seq = chosen.seq AND d.project_id = $1 RETURNING d.seq",
            project_id, most, now)
        return DeleteStep(detached=len(moved), done=len(moved) < most)
    gone = await conn.fetch(
        f"{_SOME_DOCUMENTS} DELETE FROM documents AS d USING chosen "
        "WHERE d.seq = chosen.seq AND d.project_id = $1 RETURNING d.blob_sha256",
        project_id, most)
    return DeleteStep(blobs=[row["blob_sha256"] for row in gone], done=len(gone) < most)


class PgProjectStore:
    """:class:`~toombos_edge.store.projects.ProjectStore` on PostgreSQL."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<PgProjectStore {self._db!r}>"

    async def insert(self, project: Project) -> None:
        await self._db.execute(
            "INSERT INTO projects (id, name, description, metadata, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            project.id, project.name, project.description, project.metadata,
            project.created_at, project.updated_at)

    async def get(self, project_id: str) -> Project | None:
        row = await self._db.fetchrow(f"{_SELECT} WHERE p.id = $1", project_id)
        return _project(row) if row else None

    async def exists(self, project_id: str) -> bool:
        return bool(await self._db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1)", project_id))

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        async with snapshot(self._db) as conn:
            total = await conn.fetchval("SELECT count(*) FROM projects")
            rows = await conn.fetch(f"{_SELECT} ORDER BY p.id DESC LIMIT $1 OFFSET $2",
                                    limit, offset)
        return [_project(row) for row in rows], int(total)

    async def update(
        self, project_id: str, changes: ProjectChanges, now: int
    ) -> Project | None:
        """One statement: each field given replaces the stored one (None keeps it)."""
        async with self._db.transaction() as conn:
            updated = await conn.fetchval(
                "UPDATE projects SET name = coalesce($2, name), "
                "description = coalesce($3, description), metadata = coalesce($4, metadata), "
                "updated_at = $5 WHERE id = $1 RETURNING id",
                project_id, changes.name, changes.description, changes.metadata, now)
            if updated is None:
                return None
            row = await conn.fetchrow(f"{_SELECT} WHERE p.id = $1", project_id)
        return _project(row) if row else None

    async def delete_step(
        self, project_id: str, on_documents: OnDocuments | None, *, most: int, now: int
    ) -> DeleteStep | None:
        async with self._db.transaction() as conn:
            if await conn.fetchval(
                    "SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", project_id) is None:
                return None
            step = await _documents_step(conn, project_id, on_documents, most, now)
            if step.done:
                await conn.execute("DELETE FROM projects WHERE id = $1", project_id)
        return step
