"""The project service: create, list, get, update and delete projects; publishes events.

Deleting a project that still has documents needs a say in what becomes of them
(``OnDocuments``); without one it is a 409 and nothing changes. The documents are detached
or deleted in batches of ``BATCH`` per transaction, so that a large project never holds
the one writer for long; the project row goes in the transaction that finds none left.
"""

from __future__ import annotations

from collections.abc import Callable

from ..documents.service import DocumentService
from ..errors import Conflict, NotFound
from ..events import PROJECT_CREATED, PROJECT_DELETED, PROJECT_UPDATED, Event, EventBus
from ..ids import new_id, now_ms
from ..records.project import (
    NewProject,
    OnDocuments,
    Project,
    ProjectChanges,
    ProjectDeleted,
    UnknownProject,
)
from ..store.projects import DeleteStep, ProjectStore

BATCH = 500


class ProjectService:
    """Projects in their store; their documents' blobs through the documents' service."""

    def __init__(self, store: ProjectStore, bus: EventBus, documents: DocumentService, *,
                 clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.bus = bus
        self.documents = documents
        self._clock = clock

    def __repr__(self) -> str:
        return f"<ProjectService {self.store!r}>"

    async def create(self, new: NewProject) -> Project:
        now = self._clock()
        project = Project(id=new_id("prj"), name=new.name, description=new.description,
                          metadata=new.metadata, created_at=now, updated_at=now)
        await self.store.insert(project)
        self._publish(PROJECT_CREATED, project)
        return project

    async def get(self, project_id: str) -> Project:
        project = await self.store.get(project_id)
        if project is None:
            raise NotFound(f"no project {project_id!r}")
        return project

    async def require(self, project_id: str | None) -> None:
        """``UnknownProject`` (422, naming ``project_id``) unless it is None or names a
        project: for a request checked before its document is made (an ingest job)."""
        if project_id is not None and not await self.store.exists(project_id):
            raise UnknownProject(project_id)

    async def list(self, *, limit: int, offset: int) -> tuple[list[Project], int]:
        """A page of projects, newest first, each with its document count; and the total."""
        return await self.store.list_page(limit=limit, offset=offset)

    async def update(self, project_id: str, changes: ProjectChanges) -> Project:
        project = await self.store.update(project_id, changes, self._clock())
        if project is None:
            raise NotFound(f"no project {project_id!r}")
        self._publish(PROJECT_UPDATED, project, changed=changes.names())
        return project

    async def delete(self, project_id: str, on_documents: OnDocuments | None) -> ProjectDeleted:
        """Delete the project; Conflict (409) if it has documents and ``on_documents`` is
        None, else they are detached or deleted first."""
        name = (await self.get(project_id)).name
        detached, done = 0, False
        blobs: list[str | None] = []
        while not done:
            step = await self._step(project_id, on_documents)
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

    async def _step(self, project_id: str, on_documents: OnDocuments | None) -> DeleteStep:
        """One transaction of a delete: up to BATCH documents, then the project in the
        transaction that finds none left."""
        step = await self.store.delete_step(project_id, on_documents, most=BATCH,
                                            now=self._clock())
        if step is None:
            raise NotFound(f"no project {project_id!r}")
        if step.blocking:
            raise _still_has_documents(project_id, step.blocking)
        return step

    def _publish(self, type_: str, project: Project, **extra: object) -> None:
        """An event for the activity log: ids and names only (never the description or the
        metadata, which may hold anything a user put there)."""
        self.bus.publish(Event.data(type_, {"project_id": project.id, "name": project.name,
                                            **extra}))


def _still_has_documents(project_id: str, count: int) -> Conflict:
    return Conflict(
        f"project {project_id!r} still has {count} document(s): delete it with "
        "?documents=detach to keep them without a project, or ?documents=delete to delete "
        "them too",
        {"documents": count, "choices": [choice.value for choice in OnDocuments]},
    )
