"""SQL of projects, as functions of a ``sqlite3.Connection``.

The documents' side (their ``project_id``) is the documents' repository's to write; a
project's ``document_count`` is read here with it, on the index of migration 0009.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from ..records.project import Project

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
