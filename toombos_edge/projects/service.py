"""The project service: create, list, get, update and delete projects; publishes events.

Deleting a project that still has documents needs a say in what becomes of them
(``OnDocuments``); without one it is a 409 and nothing changes. The documents are detached
or deleted in batches of ``BATCH`` per transaction, so that a large project never holds
the one writer for long; the project row goes in the transaction that finds none left.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from ..documents import repository as documents_sql
from ..documents.service import DocumentService
from ..errors import Conflict, NotFound
from ..events import PROJECT_CREATED, PROJECT_DELETED, PROJECT_UPDATED, Event, EventBus
from ..ids import new_id, now_ms
from ..records.project import NewProject, OnDocuments, Project, ProjectChanges, ProjectDeleted
from ..store import Database
from . import repository
from .membership import unknown_project

BATCH = 500


class ProjectService:
    """Projects in the database; their documents through the documents' service."""

    def __init__(self, db: Database, bus: EventBus, documents: DocumentService, *,
                 clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.bus = bus
        self.documents = documents
        self._clock = clock

    def __repr__(self) -> str:
        return f"<ProjectService {self.db!r}>"

    async def create(self, new: NewProject) -> Project:
        now = self._clock()
        project = Project(id=new_id("prj"), name=new.name, description=new.description,
                          metadata=new.metadata, created_at=now, updated_at=now)
        await self.db.write(lambda conn: repository.insert(conn, project))
        self._publish(PROJECT_CREATED, project)
        return project

    async def get(self, project_id: str) -> Project:
        project = await self.db.read(lambda conn: repository.get(conn, project_id))
        if project is None:
            raise NotFound(f"no project {project_id!r}")
        return project

    async def require(self, project_id: str | None) -> None:
        """Invalid (422, naming ``project_id``) unless it is None or names a project: for a
        request checked before its document is made (an ingest job)."""
        if project_id is not None and not await self.db.read(
                lambda conn: repository.exists(conn, project_id)):
            raise unknown_project(project_id)

    async def list(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        """A page of projects, newest first, each with its document count; and the total."""
        return await self.db.read(lambda conn: repository.list_page(conn, limit, offset))

    async def update(self, project_id: str, changes: ProjectChanges) -> Project:
        def change(conn: sqlite3.Connection) -> Project:
            project = _existing(conn, project_id)
            if changes.name is not None:
                project.name = changes.name
            if changes.description is not None:
                project.description = changes.description
            if changes.metadata is not None:
                project.metadata = changes.metadata
            project.updated_at = self._clock()
            repository.update(conn, project)
            return project

        project = await self.db.write(change)
        self._publish(PROJECT_UPDATED, project, changed=changes.names())
        return project

    async def delete(self, project_id: str, on_documents: OnDocuments | None) -> ProjectDeleted:
        """Delete the project; Conflict (409) if it has documents and ``on_documents`` is
        None, else they are detached or deleted first."""
        name = (await self.get(project_id)).name
        detached, done = 0, False
        blobs: list[str | None] = []
        while not done:
            step = await self.db.write(
                lambda conn: self._step(conn, project_id, on_documents), frees=True)
            detached, blobs, done = detached + step.detached, blobs + step.blobs, step.done
        removed = await self.documents.remove_unused_blobs(
            [sha for sha in blobs if sha is not None])
        deleted = ProjectDeleted(project_id, on_documents, documents_detached=detached,
                                 documents_deleted=len(blobs), blobs_removed=removed)
        self.bus.publish(Event.data(PROJECT_DELETED, {
            "project_id": project_id, "name": name,
            "documents": on_documents.value if on_documents else None,
            "documents_detached": detached, "documents_deleted": len(blobs),
        }))
        return deleted

    def _step(self, conn: sqlite3.Connection, project_id: str,
              on_documents: OnDocuments | None) -> _Step:
        """One transaction of a delete: up to BATCH documents, then the project in the
        transaction that finds none left."""
        if not repository.exists(conn, project_id):
            raise NotFound(f"no project {project_id!r}")
        if on_documents is None:
            count = documents_sql.count_in_project(conn, project_id)
            if count:
                raise _still_has_documents(project_id, count)
            step = _Step()
        elif on_documents is OnDocuments.detach:
            moved = documents_sql.detach_from_project(conn, project_id, BATCH, self._clock())
            step = _Step(detached=moved, done=moved < BATCH)
        else:
            blobs = documents_sql.delete_in_project(conn, project_id, BATCH)
            step = _Step(blobs=blobs, done=len(blobs) < BATCH)
        if step.done:
            repository.delete(conn, project_id)
        return step

    def _publish(self, type_: str, project: Project, **extra: object) -> None:
        """An event for the activity log: ids and names only (never the description or the
        metadata, which may hold anything a user put there)."""
        self.bus.publish(Event.data(type_, {"project_id": project.id, "name": project.name,
                                            **extra}))


@dataclass(frozen=True, slots=True)
class _Step:
    """What one transaction of a delete did: documents detached, the blob of each document
    deleted (None for a text-only one), and whether the project went too."""

    detached: int = 0
    blobs: list[str | None] = field(default_factory=list)
    done: bool = True


def _existing(conn: sqlite3.Connection, project_id: str) -> Project:
    project = repository.get(conn, project_id)
    if project is None:
        raise NotFound(f"no project {project_id!r}")
    return project


def _still_has_documents(project_id: str, count: int) -> Conflict:
    return Conflict(
        f"project {project_id!r} still has {count} document(s): delete it with "
        "?documents=detach to keep them without a project, or ?documents=delete to delete "
        "them too",
        {"documents": count, "choices": [choice.value for choice in OnDocuments]},
    )
