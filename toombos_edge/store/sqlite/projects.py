"""The projects in SQLite: :class:`SqliteProjectStore`, and its SQL as functions of a
``sqlite3.Connection``.

A project's ``document_count`` is read here with it, on the index of migration 0009, and
the documents' side of a delete (their ``project_id``, or the documents) is written here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ...records.project import OnDocuments, Project, ProjectChanges, UnknownProject
from ..projects import DeleteStep
from .database import Database

_SELECT = (
    "SELECT p.id, p.name, p.description, p.metadata, p.created_at, p.updated_at, "
    "(SELECT count(*) FROM documents AS d WHERE d.project_id = p.id) FROM projects AS p"
)


def _row(row: tuple[Any, ...]) -> Project:
    return Project(id=row[0], name=row[1], description=row[2], metadata=orjson.loads(row[3]),
                   created_at=row[4], updated_at=row[5], document_count=row[6])


def insert(conn: sqlite3.Connection, project: Project) -> None:
    conn.execute(
        "INSERT INTO projects (id, name, description, metadata, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?)",
        (project.id, project.name, project.description, orjson.dumps(project.metadata).decode(),
         project.created_at, project.updated_at),
    )


def get(conn: sqlite3.Connection, project_id: str) -> Project | None:
    row = conn.execute(f"{_SELECT} WHERE p.id = ?", (project_id,)).fetchone()
    return _row(row) if row else None


def exists(conn: sqlite3.Connection, project_id: str) -> bool:
    return conn.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is not None


def check(conn: sqlite3.Connection, project_id: str | None) -> None:
    """``UnknownProject`` unless ``project_id`` is None or names a project (checked in the
    document's own write: migration 0009's foreign key would refuse it too, but as an
    ``IntegrityError`` instead of a 422 naming the field)."""
    if project_id is not None and not exists(conn, project_id):
        raise UnknownProject(project_id)


def list_page(conn: sqlite3.Connection, limit: int, offset: int) -> tuple[list[Project], int]:
    """Newest first (ids sort by creation time); and the total."""
    total = conn.execute("SELECT count(*) FROM projects").fetchone()[0]
    rows = conn.execute(f"{_SELECT} ORDER BY p.id DESC LIMIT ? OFFSET ?",
                        (limit, offset)).fetchall()
    return [_row(row) for row in rows], total


def update(conn: sqlite3.Connection, project: Project) -> None:
    conn.execute(
        "UPDATE projects SET name = ?, description = ?, metadata = ?, updated_at = ? "
        "WHERE id = ?",
        (project.name, project.description, orjson.dumps(project.metadata).decode(),
         project.updated_at, project.id),
    )


def delete(conn: sqlite3.Connection, project_id: str) -> None:
    """Remove the project; its documents must be gone or detached (the foreign key)."""
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))


def count_documents(conn: sqlite3.Connection, project_id: str) -> int:
    return int(conn.execute(
        "SELECT count(*) FROM documents WHERE project_id = ?", (project_id,)
    ).fetchone()[0])


def detach_documents(conn: sqlite3.Connection, project_id: str, most: int, now: int) -> int:
    """Take up to ``most`` documents out of the project; returns how many."""
    return conn.execute(
        "UPDATE documents SET project_id = NULL, updated_at = ? WHERE seq IN "
        "(SELECT seq FROM documents WHERE project_id = ? LIMIT ?)",
        (now, project_id, most),
    ).rowcount


def delete_documents(conn: sqlite3.Connection, project_id: str, most: int) -> list[str | None]:
    """Delete up to ``most`` documents of the project; returns the blob of each (None for a
    text-only one)."""
    rows = conn.execute(
        "SELECT seq, blob_sha256 FROM documents WHERE project_id = ? LIMIT ?",
        (project_id, most),
    ).fetchall()
    conn.executemany("DELETE FROM documents WHERE seq = ?", [(row[0],) for row in rows])
    return [row[1] for row in rows]


def change(
    conn: sqlite3.Connection, project_id: str, changes: ProjectChanges, now: int
) -> Project | None:
    project = get(conn, project_id)
    if project is None:
        return None
    if changes.name is not None:
        project.name = changes.name
    if changes.description is not None:
        project.description = changes.description
    if changes.metadata is not None:
        project.metadata = changes.metadata
    project.updated_at = now
    update(conn, project)
    return project


def delete_step(
    conn: sqlite3.Connection, project_id: str, on_documents: OnDocuments | None, most: int,
    now: int,
) -> DeleteStep | None:
    """One transaction of a delete: up to ``most`` documents, then the project in the
    transaction that finds fewer left."""
    if not exists(conn, project_id):
        return None
    if on_documents is None:
        count = count_documents(conn, project_id)
        step = DeleteStep(done=not count, blocking=count)
    elif on_documents is OnDocuments.detach:
        moved = detach_documents(conn, project_id, most, now)
        step = DeleteStep(detached=moved, done=moved < most)
    else:
        blobs = delete_documents(conn, project_id, most)
        step = DeleteStep(blobs=blobs, done=len(blobs) < most)
    if step.done:
        delete(conn, project_id)
    return step


class SqliteProjectStore:
    """:class:`~toombos_edge.store.projects.ProjectStore` on the SQLite database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __repr__(self) -> str:
        return f"<SqliteProjectStore {self._db.path.name}>"

    async def insert(self, project: Project) -> None:
        await self._db.write(lambda conn: insert(conn, project))

    async def get(self, project_id: str) -> Project | None:
        return await self._db.read(lambda conn: get(conn, project_id))

    async def exists(self, project_id: str) -> bool:
        return await self._db.read(lambda conn: exists(conn, project_id))

    async def list_page(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        return await self._db.read(lambda conn: list_page(conn, limit, offset))

    async def update(
        self, project_id: str, changes: ProjectChanges, now: int
    ) -> Project | None:
        return await self._db.write(lambda conn: change(conn, project_id, changes, now))

    async def delete_step(
        self, project_id: str, on_documents: OnDocuments | None, *, most: int, now: int
    ) -> DeleteStep | None:
        return await self._db.write(
            lambda conn: delete_step(conn, project_id, on_documents, most, now), frees=True)
